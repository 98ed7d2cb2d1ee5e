package cart

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/listeners"
	"github.com/dcbkit/dcbkit/workqueue"
)

// Carts with products: every item of a product in a cart not yet submitted,
// in the table carts_with_products kept by the listener of that name. Its
// feed is cart events and price events in one position order, so a price
// change is handled after exactly the items added before it: for each of
// those it enqueues ArchiveItem (archive_item.go) in the listener's own
// transaction, so the jobs exist if and only if the checkpoint moved.
// The events between two price changes are written as their net effect, in
// one round trip (itemChanges).
//
//	CartItemAdded                   → the row
//	CartItemRemoved, ItemArchived   → the row is gone
//	CartCleared, CartSubmitted      → the cart's rows are gone
//	PriceChanged at P               → ArchiveItem{cart, item, P} for each row of the product
const CartsWithProductsReadModel = "carts_with_products"

// CartsWithProductsListener is the listener that keeps the read model and
// triggers archiving.
func (s *Service) CartsWithProductsListener() listeners.Listener {
	return listeners.Listener{
		Name: CartsWithProductsReadModel,
		Query: eventstore.Query{Items: []eventstore.QueryItem{{
			Types: Events.TypesOf(CartItemAdded{}, CartItemRemoved{}, ItemArchived{}, CartCleared{}, CartSubmitted{}, PriceChanged{}),
		}}},
		Handle: s.applyCartsWithProducts,
		Reset: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "TRUNCATE carts_with_products")
			return err
		},
	}
}

func (s *Service) applyCartsWithProducts(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
	changes := newItemChanges()
	for _, e := range events {
		v, err := Events.Decode(e)
		if err != nil {
			return fmt.Errorf("carts_with_products: event at %d: %w", e.Position, err)
		}
		switch v := v.(type) {
		case CartItemAdded:
			changes.add(v, e.Position)
		case CartItemRemoved:
			changes.remove(v.CartID, v.ItemID, e.Position)
		case ItemArchived:
			changes.remove(v.CartID, v.ItemID, e.Position)
		case CartCleared:
			changes.clear(v.CartID, e.Position)
		case CartSubmitted:
			changes.clear(v.CartID, e.Position)
		case PriceChanged:
			// The rows must be those of every event before this one.
			if err := writeCartsWithProducts(ctx, tx, changes); err != nil {
				return fmt.Errorf("carts_with_products: events before %d: %w", e.Position, err)
			}
			changes = newItemChanges()
			if err := s.archiveProduct(ctx, tx, v.ProductID, e.Position); err != nil {
				return fmt.Errorf("carts_with_products: event at %d: %w", e.Position, err)
			}
		}
	}
	if err := writeCartsWithProducts(ctx, tx, changes); err != nil {
		return fmt.Errorf("carts_with_products: events up to %d: %w", events[len(events)-1].Position, err)
	}
	return nil
}

// writeCartsWithProducts applies a run of events to the table, in one
// round trip whatever its length (see itemChanges).
func writeCartsWithProducts(ctx context.Context, tx pgx.Tx, changes *itemChanges) error {
	if changes.empty() {
		return nil
	}
	b := &pgx.Batch{}
	changes.queueDeletes(b, "carts_with_products", "position")
	var carts, items, products [][16]byte
	var positions []int64
	var fingerprints []string
	for _, it := range changes.added {
		carts, items, products = append(carts, it.CartID), append(items, it.ItemID), append(products, it.ProductID)
		positions, fingerprints = append(positions, it.position), append(fingerprints, it.Fingerprint)
	}
	b.Queue(`INSERT INTO carts_with_products (cart_id, item_id, product_id, position, fingerprint)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[])
		ON CONFLICT DO NOTHING`, carts, items, products, positions, fingerprints)
	return tx.SendBatch(ctx, b).Close()
}

// archiveProduct enqueues the archiving of every item of the product that
// is in a cart at this point of the feed.
func (s *Service) archiveProduct(ctx context.Context, tx pgx.Tx, product uuid.UUID, at int64) error {
	rows, err := tx.Query(ctx, `SELECT cart_id, item_id, fingerprint FROM carts_with_products
		WHERE product_id = $1 AND position < $2`, product, at)
	if err != nil {
		return err
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ArchiveItem, error) {
		a := ArchiveItem{PriceChangedPosition: at}
		return a, row.Scan(&a.CartID, &a.ItemID, &a.Fingerprint)
	})
	if err != nil {
		return err
	}
	for _, job := range jobs {
		if _, err := s.Jobs.EnqueueTx(ctx, tx, job, workqueue.EnqueueOptions{UniqueKey: job.uniqueKey()}); err != nil {
			return err
		}
	}
	return nil
}

// CartWithProduct is one row of the answer.
type CartWithProduct struct {
	CartID    uuid.UUID `json:"cart_id"`
	ItemID    uuid.UUID `json:"item_id"`
	ProductID uuid.UUID `json:"product_id"`
}

// readCartsWithProduct lists the (cart, item) pairs of a product from the
// carts_with_products read model.
func readCartsWithProduct(ctx context.Context, pool *pgxpool.Pool, product uuid.UUID) ([]CartWithProduct, error) {
	rows, err := pool.Query(ctx, `SELECT cart_id, item_id, product_id FROM carts_with_products
		WHERE product_id = $1 ORDER BY cart_id, item_id`, product)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CartWithProduct])
	if list == nil {
		list = []CartWithProduct{}
	}
	return list, err
}

// GET /cartswithproducts/{product_id}
func (s *Service) cartsWithProductsHandler(c *gin.Context) {
	id, ok := pathID(c, "product_id", nil)
	if !ok || !s.ReadModels.Await(c, CartsWithProductsReadModel) {
		return
	}
	list, err := readCartsWithProduct(c.Request.Context(), s.Pool, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}
