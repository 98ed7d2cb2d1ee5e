package cart

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestRemoveItemRules(t *testing.T) {
	t.Parallel()
	bothWays(t, removeItem, func(t *testing.T, spec gwt.Scenario[cart, RemoveItem]) {
		t.Run("RejectsUnknownCart", func(t *testing.T) {
			spec.Given().When(RemoveItem{newID(), newID()}).ThenError(t, ErrCartNotFound)
		})
		t.Run("RejectsSubmittedCart", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it, CartSubmitted{CartID: c}).When(RemoveItem{c, it.ItemID}).ThenError(t, ErrCartSubmitted)
		})
		t.Run("RejectsItemNeverAdded", func(t *testing.T) {
			c := newID()
			spec.Given(CartCreated{c}, item(c, newID(), "1")).When(RemoveItem{c, newID()}).ThenError(t, ErrItemNotInCart)
		})
		t.Run("RejectsItemRemovedArchivedOrCleared", func(t *testing.T) {
			for _, gone := range []func(c, i [16]byte) any{
				func(c, i [16]byte) any { return CartItemRemoved{c, i} },
				func(c, i [16]byte) any { return ItemArchived{c, i, 3} },
				func(c, i [16]byte) any { return CartCleared{c} },
			} {
				c := newID()
				it := item(c, newID(), "1")
				spec.Given(CartCreated{c}, it, gone(c, it.ItemID)).When(RemoveItem{c, it.ItemID}).ThenError(t, ErrItemNotInCart)
			}
		})
		t.Run("RemovesItem", func(t *testing.T) {
			c := newID()
			it := item(c, newID(), "1")
			spec.Given(CartCreated{c}, it, item(c, newID(), "2")).When(RemoveItem{c, it.ItemID}).Then(t, CartItemRemoved{c, it.ItemID})
		})
	})
}

func TestRemoveItemHTTP(t *testing.T) {
	t.Parallel()
	api := newClient(t, &Service{Store: testStore(t)})
	c, i := newID(), newID()
	status, _ := api.do("POST", "/additem/"+c.String(), map[string]any{"cart_id": c, "item_id": i, "product_id": newID(), "description": "d", "image": "i", "price": "1"})
	require.Equal(t, 200, status)
	status, body := api.do("POST", "/removeitem/"+c.String(), map[string]any{"cart_id": c, "item_id": i})
	require.Equal(t, http.StatusOK, status, body)
	require.Positive(t, body["position"])
	status, body = api.do("POST", "/removeitem/"+c.String(), map[string]any{"cart_id": c, "item_id": i})
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "item_not_in_cart", body["code"])
	unknown := newID()
	status, body = api.do("POST", "/removeitem/"+unknown.String(), map[string]any{"cart_id": unknown, "item_id": i})
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "cart_not_found", body["code"])
}
