package cart

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/workqueue"
)

// ArchiveItem is the automation of a price change: every item of the
// product in a cart not yet submitted is archived, at the position of the
// PriceChanged. The trigger is the listener carts_with_products
// (carts_with_products.go), which enqueues one job per (cart, item, price
// change) in its own transaction, unique by that triple: a redelivered or
// replayed price change enqueues nothing again. The cart is part of the key
// because item ids are the client's: nothing stops two carts from holding
// items with the same id, and each must be archived.
//
//	given the item not in the cart (removed, archived, cleared)   → nothing
//	given CartSubmitted                                           → nothing
//	given the item back in the cart since (another fingerprint)   → nothing
//	given the item in the cart                                    → ItemArchived{price_changed_position}
type ArchiveItem struct {
	CartID               uuid.UUID `json:"cart_id"`
	ItemID               uuid.UUID `json:"item_id"`
	PriceChangedPosition int64     `json:"price_changed_position"`
	// Fingerprint is that of the CartItemAdded the price change applies to;
	// "" (jobs from before it was recorded) matches any.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Kind is the job's kind.
func (ArchiveItem) Kind() string { return "cart.archive_item" }

func (a ArchiveItem) uniqueKey() string {
	return fmt.Sprintf("%s/%s@%d", a.CartID, a.ItemID, a.PriceChangedPosition)
}

func decideArchive(c cart, a ArchiveItem) ([]any, error) {
	i := slices.IndexFunc(c.items, func(it CartItemAdded) bool { return it.ItemID == a.ItemID })
	if c.submitted || i < 0 || (a.Fingerprint != "" && c.items[i].Fingerprint != a.Fingerprint) {
		return nil, nil
	}
	return []any{ItemArchived{CartID: a.CartID, ItemID: a.ItemID, PriceChangedPosition: a.PriceChangedPosition}}, nil
}

var archiveItem = decide.Decider[cart, ArchiveItem]{
	Events: Events,
	Query: func(a ArchiveItem) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{cartQuery(a.CartID)}}
	},
	Evolve: evolveCart,
	Decide: decideArchive,
}

// archive is the job's work: the decision, idempotent by its rules.
func (s *Service) archive(ctx context.Context, job workqueue.Job[ArchiveItem]) error {
	_, err := decide.Run(ctx, s.Store, archiveItem, job.Args)
	return err
}
