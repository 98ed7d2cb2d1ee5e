package cart

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/gwt"
)

func TestSubmitCartRules(t *testing.T) {
	t.Parallel()
	bothWays(t, submitCart, func(t *testing.T, spec gwt.Scenario[submitState, SubmitCart]) {
		t.Run("RejectsUnknownCart", func(t *testing.T) {
			spec.Given().When(SubmitCart{CartID: newID()}).ThenError(t, ErrCartNotFound)
		})
		t.Run("RejectsEmptyCart", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it, CartItemRemoved{c, it.ItemID}).When(SubmitCart{CartID: c}).ThenError(t, ErrCartEmpty)
		})
		t.Run("RejectsSubmittedCart", func(t *testing.T) {
			c, p := newID(), newID()
			it := item(c, p, "1")
			spec.Given(CartCreated{c}, it, CartSubmitted{CartID: c}).When(SubmitCart{c, []uuid.UUID{p}}).ThenError(t, ErrCartAlreadySubmitted)
		})
		t.Run("RejectsProductsShortOfStockNamingThem", func(t *testing.T) {
			c, short, plenty, unknown := newID(), newID(), newID(), newID()
			got := spec.Given(CartCreated{c}, item(c, short, "1"), item(c, short, "1"), item(c, plenty, "1"), item(c, unknown, "1"),
				InventoryChanged{short, 1}, InventoryChanged{plenty, 5})
			got.When(SubmitCart{c, []uuid.UUID{short, plenty, unknown}}).ThenError(t, &OutOfStockError{Products: []uuid.UUID{short}})
		})
		t.Run("SubmitsOneProductPerRemainingItemInOrder", func(t *testing.T) {
			c, p, q := newID(), newID(), newID()
			a, b, d := item(c, p, "1.10"), item(c, p, "2.20"), item(c, q, "3.30")
			// Two items share a product and one of them is removed: the
			// earlier implementation crashed here.
			spec.Given(CartCreated{c}, a, b, d, CartItemRemoved{c, a.ItemID}, InventoryChanged{p, 1}).
				When(SubmitCart{c, []uuid.UUID{p, q}}).
				Then(t, CartSubmitted{CartID: c, TotalPrice: money("5.50"), OrderedProducts: []OrderedProduct{
					{b.ItemID, p, money("2.20")}, {d.ItemID, q, money("3.30")},
				}})
		})
		t.Run("AsksForTheBoundaryAgainWhenProductsChanged", func(t *testing.T) {
			c, p := newID(), newID()
			spec.Given(CartCreated{c}, item(c, p, "1")).When(SubmitCart{CartID: c}).ThenError(t, errBoundaryChanged)
		})
	})
}

func TestSubmitCartHTTP(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	api := newClient(t, &Service{Store: store})
	c, p := newID(), newID()
	for range 2 {
		status, _ := api.do("POST", "/additem/"+c.String(), map[string]any{"cart_id": c, "item_id": newID(), "product_id": p, "description": "d", "image": "i", "price": "1.5"})
		require.Equal(t, 200, status)
	}
	status, body := api.do("POST", "/changeinventory/"+p.String(), map[string]any{"product_id": p, "inventory": 1})
	require.Equal(t, 200, status, body)
	status, body = api.do("POST", "/submitcart/"+c.String(), map[string]any{"cart_id": c})
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "out_of_stock", body["code"])
	require.Contains(t, body["message"], p.String())

	status, _ = api.do("POST", "/changeinventory/"+p.String(), map[string]any{"product_id": p, "inventory": 2})
	require.Equal(t, 200, status)
	status, body = api.do("POST", "/submitcart/"+c.String(), map[string]any{"cart_id": c})
	require.Equal(t, http.StatusOK, status, body)
	stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c)}}, eventstore.ReadOptions{Backwards: true, Limit: 1})
	require.NoError(t, err)
	v, err := Events.Decode(stored[0])
	require.NoError(t, err)
	require.Equal(t, "3", v.(CartSubmitted).TotalPrice.String())
	require.Equal(t, int64(body["position"].(float64)), stored[0].Position)

	status, body = api.do("POST", "/submitcart/"+c.String(), map[string]any{"cart_id": c})
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "cart_already_submitted", body["code"])
}

// TestSubmitRacesAddItem: a submit and adds of new products race on one
// cart, round after round. Never is an item added after the submission, and
// the submission lists exactly the items before it.
func TestSubmitRacesAddItem(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	api := newClient(t, &Service{Store: store})
	for round := range 20 {
		c := newID()
		status, _ := api.do("POST", "/additem/"+c.String(), map[string]any{"cart_id": c, "item_id": newID(), "product_id": newID(), "description": "d", "image": "i", "price": "1"})
		require.Equal(t, 200, status)
		var wg sync.WaitGroup
		wg.Go(func() { api.do("POST", "/submitcart/"+c.String(), nil) })
		for range 2 {
			wg.Go(func() {
				api.do("POST", "/additem/"+c.String(), map[string]any{"cart_id": c, "item_id": newID(), "product_id": newID(), "description": "d", "image": "i", "price": "1"})
			})
		}
		wg.Wait()
		stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c)}}, eventstore.ReadOptions{})
		require.NoError(t, err)
		var items []uuid.UUID
		var submitted *CartSubmitted
		for _, e := range stored {
			v, err := Events.Decode(e)
			require.NoError(t, err)
			switch v := v.(type) {
			case CartItemAdded:
				require.Nil(t, submitted, "round %d: an item was added after the submission", round)
				items = append(items, v.ItemID)
			case CartSubmitted:
				submitted = &v
			}
		}
		require.NotNil(t, submitted, "round %d: the submit always succeeds eventually", round)
		require.Len(t, submitted.OrderedProducts, len(items))
	}
}
