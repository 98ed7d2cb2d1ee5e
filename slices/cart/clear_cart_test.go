package cart

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestClearCartRules(t *testing.T) {
	t.Parallel()
	bothWays(t, clearCart, func(t *testing.T, spec gwt.Scenario[cart, ClearCart]) {
		t.Run("RejectsUnknownCart", func(t *testing.T) {
			spec.Given().When(ClearCart{newID()}).ThenError(t, ErrCartNotFound)
		})
		t.Run("RejectsSubmittedCart", func(t *testing.T) {
			c := newID()
			spec.Given(CartCreated{c}, item(c, newID(), "1"), CartSubmitted{CartID: c}).When(ClearCart{c}).ThenError(t, ErrCartSubmitted)
		})
		t.Run("ClearsCart", func(t *testing.T) {
			c := newID()
			spec.Given(CartCreated{c}, item(c, newID(), "1")).When(ClearCart{c}).Then(t, CartCleared{c})
		})
		t.Run("ClearsEmptyCart", func(t *testing.T) {
			c := newID()
			spec.Given(CartCreated{c}, CartCleared{c}).When(ClearCart{c}).Then(t, CartCleared{c})
		})
	})
}

func TestClearCartHTTP(t *testing.T) {
	t.Parallel()
	api := newClient(t, &Service{Store: testStore(t)})
	c := newID()
	status, _ := api.do("POST", "/additem/"+c.String(), map[string]any{"cart_id": c, "item_id": newID(), "product_id": newID(), "description": "d", "image": "i", "price": "1"})
	require.Equal(t, 200, status)
	status, body := api.do("POST", "/clearcart/"+c.String(), nil)
	require.Equal(t, http.StatusOK, status, body)
	require.Positive(t, body["position"])
	status, body = api.do("POST", "/clearcart/"+c.String(), map[string]any{"cart_id": newID()})
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "id_mismatch", body["code"])
	status, body = api.do("POST", "/clearcart/"+newID().String(), nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "cart_not_found", body["code"])
}
