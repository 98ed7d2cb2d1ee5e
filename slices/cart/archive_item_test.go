package cart

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/gwt"
)

func TestArchiveItemRules(t *testing.T) {
	t.Parallel()
	bothWays(t, archiveItem, func(t *testing.T, spec gwt.Scenario[cart, ArchiveItem]) {
		t.Run("NothingForAnItemRemoved", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it, CartItemRemoved{c, it.ItemID}).When(ArchiveItem{CartID: c, ItemID: it.ItemID, PriceChangedPosition: 7}).Then(t)
		})
		t.Run("NothingForAnItemArchived", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it, ItemArchived{c, it.ItemID, 7}).When(ArchiveItem{CartID: c, ItemID: it.ItemID, PriceChangedPosition: 7}).Then(t)
		})
		t.Run("NothingForACartCleared", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it, CartCleared{c}).When(ArchiveItem{CartID: c, ItemID: it.ItemID, PriceChangedPosition: 7}).Then(t)
		})
		t.Run("NothingForASubmittedCart", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it, CartSubmitted{CartID: c, TotalPrice: it.Price,
				OrderedProducts: []OrderedProduct{{it.ItemID, it.ProductID, it.Price}}}).
				When(ArchiveItem{CartID: c, ItemID: it.ItemID, PriceChangedPosition: 7}).Then(t)
		})
		t.Run("NothingForTheItemBackInTheCartSince", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			back := it
			back.Fingerprint = uuid.NewString()
			spec.Given(CartCreated{c}, it, CartItemRemoved{c, it.ItemID}, back).
				When(ArchiveItem{CartID: c, ItemID: it.ItemID, PriceChangedPosition: 7, Fingerprint: it.Fingerprint}).Then(t)
		})
		t.Run("ArchivesTheItemInTheCart", func(t *testing.T) {
			c := newID()
			it, other := item(c, newID(), "1"), item(c, newID(), "2")
			spec.Given(CartCreated{c}, it, other).
				When(ArchiveItem{CartID: c, ItemID: it.ItemID, PriceChangedPosition: 7, Fingerprint: it.Fingerprint}).
				Then(t, ItemArchived{c, it.ItemID, 7})
		})
		t.Run("ArchivesWhenTheJobPredatesFingerprints", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it).When(ArchiveItem{CartID: c, ItemID: it.ItemID, PriceChangedPosition: 7}).
				Then(t, ItemArchived{c, it.ItemID, 7})
		})
	})
}

// TestPriceChangeEnqueuesOneArchivePerCartItem: carts_with_products, handling
// a PriceChanged, enqueues one archive job for every (cart, item) of the
// product: both items of it in one cart, and items of two carts that have
// the same item id (ids are the client's; the job's unique key once left
// out the cart, so the second cart's item was never archived). Handling the
// batch again (a redelivery, a replay) enqueues nothing more.
func TestPriceChangeEnqueuesOneArchivePerCartItem(t *testing.T) {
	t.Parallel()
	s := serviceWithJobs(t)
	store, pool := s.Store, s.Pool

	p := newID()
	one, two, three := newID(), newID(), newID()
	a, b := item(one, p, "1"), item(one, p, "1")
	shared := item(two, p, "1")
	again := shared
	again.CartID, again.Fingerprint = three, uuid.NewString()
	given, err := Events.EncodeAll([]any{CartCreated{one}, a, b, CartCreated{two}, shared, CartCreated{three}, again,
		PriceChanged{ProductID: p, OldPrice: money("1"), NewPrice: money("2")}})
	require.NoError(t, err)
	res, err := store.Append(context.Background(), given, nil)
	require.NoError(t, err)
	stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{
		cartQuery(one), cartQuery(two), cartQuery(three), {Tags: []string{productTag(p)}}}}, eventstore.ReadOptions{})
	require.NoError(t, err)

	for range 2 { // the second time is a redelivery
		require.NoError(t, pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
			return s.applyCartsWithProducts(context.Background(), tx, stored)
		}))
	}
	rows, err := pool.Query(context.Background(), `SELECT args->'args' FROM river_job
		WHERE kind = 'cart.archive_item' AND (args->'args'->>'price_changed_position')::bigint = $1`, res.Position)
	require.NoError(t, err)
	enqueued, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	var got []ArchiveItem
	for _, raw := range enqueued {
		var a ArchiveItem
		require.NoError(t, json.Unmarshal(raw, &a))
		got = append(got, a)
	}
	require.ElementsMatch(t, []ArchiveItem{
		{one, a.ItemID, res.Position, a.Fingerprint}, {one, b.ItemID, res.Position, b.Fingerprint},
		{two, shared.ItemID, res.Position, shared.Fingerprint}, {three, shared.ItemID, res.Position, again.Fingerprint},
	}, got)
}
