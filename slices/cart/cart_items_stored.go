package cart

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5"
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
// Deletions only take items added before them, and inserts do nothing for a
// row that exists, so applying an event twice changes nothing.
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
	b := &pgx.Batch{}
	for _, e := range events {
		v, err := Events.Decode(e)
		if err != nil {
			return fmt.Errorf("cart_items: event at %d: %w", e.Position, err)
		}
		switch v := v.(type) {
		case CartCreated:
			b.Queue(`INSERT INTO cart_items_carts (cart_id, position) VALUES ($1, $2) ON CONFLICT DO NOTHING`, v.CartID, e.Position)
		case CartItemAdded:
			b.Queue(`INSERT INTO cart_items_carts (cart_id, position) VALUES ($1, $2) ON CONFLICT DO NOTHING`, v.CartID, e.Position)
			b.Queue(`INSERT INTO cart_items (cart_id, item_id, product_id, description, image, price, fingerprint, added_position)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
				v.CartID, v.ItemID, v.ProductID, v.Description, v.Image, v.Price.String(), v.Fingerprint, e.Position)
		case CartItemRemoved:
			b.Queue(`DELETE FROM cart_items WHERE cart_id = $1 AND item_id = $2 AND added_position < $3`, v.CartID, v.ItemID, e.Position)
		case ItemArchived:
			b.Queue(`DELETE FROM cart_items WHERE cart_id = $1 AND item_id = $2 AND added_position < $3`, v.CartID, v.ItemID, e.Position)
		case CartCleared:
			b.Queue(`DELETE FROM cart_items WHERE cart_id = $1 AND added_position < $2`, v.CartID, e.Position)
		}
	}
	return tx.SendBatch(ctx, b).Close()
}

// GET /{cart_id}/cartitemsfromdb
func (s *Service) cartItemsStoredHandler(c *gin.Context) {
	id, ok := pathID(c, "cart_id", nil)
	if !ok || !s.ReadModels.Await(c, CartItemsReadModel) {
		return
	}
	ctx := c.Request.Context()
	var exists bool
	if err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM cart_items_carts WHERE cart_id = $1)`, id).Scan(&exists); err != nil {
		s.fail(c, err)
		return
	}
	if !exists {
		s.fail(c, ErrCartNotFound)
		return
	}
	rows, err := s.Pool.Query(ctx, `SELECT item_id, product_id, description, image, price::text, fingerprint
		FROM cart_items WHERE cart_id = $1 ORDER BY added_position`, id)
	if err != nil {
		s.fail(c, err)
		return
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
		s.fail(c, err)
		return
	}
	answer := CartItems{CartID: id, TotalPrice: decimal.Zero, Items: items}
	for _, it := range items {
		answer.TotalPrice = answer.TotalPrice.Add(it.Price)
	}
	c.JSON(http.StatusOK, answer)
}
