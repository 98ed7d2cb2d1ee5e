package cart

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestCartItemsProjectionMatchesTheFold: random cart histories (adds,
// removals, archives, clears, an item id coming back), applied in batches of
// random sizes, leave exactly the items the live fold shows, in order; and
// applying every batch a second time changes nothing.
func TestCartItemsProjectionMatchesTheFold(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.SharedPool(t)
	ctx := context.Background()
	for round := range 20 {
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		carts := []uuid.UUID{newID(), newID(), newID()}
		h := &history{t: t, position: int64(1_000_000 * (round + 1))}
		live := map[uuid.UUID]cart{}
		for _, c := range carts {
			h.emit(CartCreated{c})
			live[c] = evolveCart(live[c], CartCreated{c})
		}
		for range 60 {
			c := carts[rng.IntN(len(carts))]
			state := live[c]
			var v any
			switch n := rng.IntN(10); {
			case n < 5 || len(state.items) == 0:
				it := item(c, newID(), "1.5")
				if len(state.items) == 0 && n == 0 && len(h.events) > 3 { // an id coming back
					for i := len(h.events) - 1; i >= 0; i-- {
						if old, err := Events.Decode(h.events[i]); err == nil {
							if a, ok := old.(CartItemAdded); ok && a.CartID == c {
								it.ItemID = a.ItemID
								break
							}
						}
					}
				}
				v = it
			case n < 7:
				v = CartItemRemoved{c, state.items[rng.IntN(len(state.items))].ItemID}
			case n < 9:
				v = ItemArchived{c, state.items[rng.IntN(len(state.items))].ItemID, h.position}
			default:
				v = CartCleared{c}
			}
			h.emit(v)
			live[c] = evolveCart(live[c], v)
		}

		for range 2 { // the second time is a redelivery of every batch
			for rest := h.events; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(25))
				require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return applyCartItems(ctx, tx, rest[:n]) }))
				rest = rest[n:]
			}
			for _, c := range carts {
				rows, err := pool.Query(ctx, `SELECT item_id, product_id, description, image, price::text, fingerprint
					FROM cart_items WHERE cart_id = $1 ORDER BY added_position`, c)
				require.NoError(t, err)
				stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CartItem, error) {
					var it CartItem
					var price string
					err := row.Scan(&it.ItemID, &it.ProductID, &it.Description, &it.Image, &price, &it.Fingerprint)
					it.Price = money(price)
					return it, err
				})
				require.NoError(t, err)
				want := cartItemsOf(c, live[c]).Items
				require.Equal(t, len(want), len(stored), "round %d", round)
				for i := range want {
					require.Equal(t, want[i].ItemID, stored[i].ItemID, "round %d", round)
					require.True(t, want[i].Price.Equal(stored[i].Price))
				}
			}
		}
	}
}
