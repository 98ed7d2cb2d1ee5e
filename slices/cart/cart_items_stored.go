package cart

import (
	"cmp"
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/listeners"
)

// Cart items, stored: the same answer as the live view, from the tables
// cart_items_carts and cart_items kept by the listener cart_items, and
// rebuildable with --reset-read-model cart_items.
//
//	CartCreated                     → the cart exists (an empty cart answers 200)
//	CartItemAdded                   → the item, in the order added
//	CartItemRemoved, ItemArchived   → the item is gone
//	CartCleared                     → every item is gone
//
// A batch of events is applied as its net effect (itemChanges), plus the
// carts it saw, in one round trip whatever its size. Applying an event
// twice changes nothing.
const CartItemsReadModel = "cart_items"

// CartItemsListener is the listener that keeps the read model.
func CartItemsListener() listeners.Listener {
	return listeners.Listener{
		Name: CartItemsReadModel,
		Query: eventstore.Query{Items: []eventstore.QueryItem{{
			Types: Events.TypesOf(CartCreated{}, CartItemAdded{}, CartItemRemoved{}, ItemArchived{}, CartCleared{}),
		}}},
		Handle: applyCartItems,
		Reset: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "TRUNCATE cart_items, cart_items_carts")
			return err
		},
	}
}

func applyCartItems(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
	carts := map[uuid.UUID]int64{} // cart → first position seen in this batch
	changes := newItemChanges()
	for _, e := range events {
		v, err := Events.Decode(e)
		if err != nil {
			return fmt.Errorf("cart_items: event at %d: %w", e.Position, err)
		}
		switch v := v.(type) {
		case CartCreated:
			carts[v.CartID] = min(e.Position, cmp.Or(carts[v.CartID], e.Position))
		case CartItemAdded:
			carts[v.CartID] = min(e.Position, cmp.Or(carts[v.CartID], e.Position))
			changes.add(v, e.Position)
		case CartItemRemoved:
			changes.remove(v.CartID, v.ItemID, e.Position)
		case ItemArchived:
			changes.remove(v.CartID, v.ItemID, e.Position)
		case CartCleared:
			changes.clear(v.CartID, e.Position)
		}
	}

	b := &pgx.Batch{}
	changes.queueDeletes(b, "cart_items", "added_position")
	var cartIDs [][16]byte
	var cartPositions []int64
	for c, p := range carts {
		cartIDs, cartPositions = append(cartIDs, c), append(cartPositions, p)
	}
	b.Queue(`INSERT INTO cart_items_carts (cart_id, position) SELECT * FROM unnest($1::uuid[], $2::bigint[])
		ON CONFLICT DO NOTHING`, cartIDs, cartPositions)
	var a struct {
		carts, items, products       [][16]byte
		descriptions, images, prices []string
		fingerprints                 []string
		positions                    []int64
	}
	for _, it := range changes.added {
		a.carts, a.items, a.products = append(a.carts, it.CartID), append(a.items, it.ItemID), append(a.products, it.ProductID)
		a.descriptions, a.images = append(a.descriptions, it.Description), append(a.images, it.Image)
		a.prices, a.fingerprints = append(a.prices, it.Price.String()), append(a.fingerprints, it.Fingerprint)
		a.positions = append(a.positions, it.position)
	}
	b.Queue(`INSERT INTO cart_items (cart_id, item_id, product_id, description, image, price, fingerprint, added_position)
		SELECT c, i, p, d, im, pr::numeric, f, pos
		FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
			AS a(c, i, p, d, im, pr, f, pos)
		ON CONFLICT DO NOTHING`, a.carts, a.items, a.products, a.descriptions, a.images, a.prices, a.fingerprints, a.positions)
	return tx.SendBatch(ctx, b).Close()
}

// readStoredCartItems reads a cart from the cart_items read model;
// ErrCartNotFound if the model holds no such cart.
func readStoredCartItems(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID) (CartItems, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM cart_items_carts WHERE cart_id = $1)`, id).Scan(&exists); err != nil {
		return CartItems{}, err
	}
	if !exists {
		return CartItems{}, ErrCartNotFound
	}
	rows, err := pool.Query(ctx, `SELECT item_id, product_id, description, image, price::text, fingerprint
		FROM cart_items WHERE cart_id = $1 ORDER BY added_position`, id)
	if err != nil {
		return CartItems{}, err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CartItem, error) {
		var it CartItem
		var price string
		if err := row.Scan(&it.ItemID, &it.ProductID, &it.Description, &it.Image, &price, &it.Fingerprint); err != nil {
			return it, err
		}
		it.Price, err = decimal.NewFromString(price)
		return it, err
	})
	if err != nil {
		return CartItems{}, err
	}
	answer := CartItems{CartID: id, TotalPrice: decimal.Zero, Items: items}
	for _, it := range items {
		answer.TotalPrice = answer.TotalPrice.Add(it.Price)
	}
	return answer, nil
}

// GET /{cart_id}/cartitemsfromdb
func (s *Service) cartItemsStoredHandler(c *gin.Context) {
	id, ok := pathID(c, "cart_id", nil)
	if !ok || !s.ReadModels.Await(c, CartItemsReadModel) {
		return
	}
	answer, err := readStoredCartItems(c.Request.Context(), s.Pool, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, answer)
}
