package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/listeners"
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

// TestDCBAppendCannotStallTheListeners: the operator's DCB append of a cart
// event whose data does not decode is refused, with the rest of its append,
// so the cart_items and carts_with_products listeners (which never skip an
// event) are not stopped by it: an item appended next through the same API
// reaches both read models, and the live view answers.
func TestDCBAppendCannotStallTheListeners(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t) // its own database: the real listeners run on it
	store := eventstore.New(pool, eventstore.Options{})
	t.Cleanup(store.Close)
	s := &Service{Store: store, Pool: pool}
	runtime := listeners.New(pool, store, listeners.Options{Logger: slog.New(slog.DiscardHandler)},
		CartItemsListener(), s.CartsWithProductsListener())
	s.ReadModels = httpapi.ReadModels{Checkpoints: runtime, Wait: 10 * time.Second}
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- runtime.Run(ctx) }()
	t.Cleanup(func() { stop(); <-stopped })
	e := httpapi.NewEngine(httpapi.Options{})
	s.Routes(e)
	httpapi.RegisterDCB(e, store, nil, Events)
	api := &client{t: t, engine: e}

	cartID := newID()
	status, body := api.do("POST", "/dcb/append", fmt.Sprintf(`{"events":[
		{"type":"CartCreated","tags":[%[1]q],"data":"{\"cart_id\":\"%[2]s\"}"},
		{"type":"CartItemAdded","tags":[%[1]q],"data":"not json"}]}`, cartTag(cartID), cartID))
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Equal(t, "invalid_event_data", body["code"])
	require.Contains(t, body["message"], `events[1].data: not valid data of the application's event type "CartItemAdded": `)
	stored, err := store.Read(ctx, eventstore.Query{Items: []eventstore.QueryItem{cartQuery(cartID)}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Empty(t, stored, "nothing of the refused append was written")

	added := item(cartID, newID(), "2.50")
	var req struct {
		Events []map[string]any `json:"events"`
	}
	for _, v := range []any{CartCreated{cartID}, added} {
		ev, err := Events.Encode(v)
		require.NoError(t, err)
		req.Events = append(req.Events, map[string]any{"type": ev.Type, "tags": ev.Tags, "data": string(ev.Data)})
	}
	status, body = api.do("POST", "/dcb/append", req)
	require.Equal(t, http.StatusOK, status, body)
	position := int64(body["position"].(float64))

	code, raw, _ := api.raw("GET", fmt.Sprintf("/%s/cartitemsfromdb?min_position=%d", cartID, position))
	require.Equal(t, http.StatusOK, code, "cart_items reached the item: %s", raw)
	var items CartItems
	require.NoError(t, json.Unmarshal(raw, &items))
	require.Len(t, items.Items, 1)
	require.Equal(t, added.ItemID, items.Items[0].ItemID)
	code, raw, _ = api.raw("GET", fmt.Sprintf("/cartswithproducts/%s?min_position=%d", added.ProductID, position))
	require.Equal(t, http.StatusOK, code, "carts_with_products reached the item: %s", raw)
	require.Contains(t, string(raw), added.ItemID.String())
	code, raw, _ = api.raw("GET", fmt.Sprintf("/%s/cartitems", cartID))
	require.Equal(t, http.StatusOK, code, "the live view: %s", raw)
}
