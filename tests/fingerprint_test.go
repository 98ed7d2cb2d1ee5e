package tests

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOldItemsReadWithDefaultFingerprint: a CartItemAdded stored before
// fingerprints existed (raw old JSON, appended through the operator DCB
// API) reads as "default-fingerprint" in the live view, the stored view,
// and the stored view rebuilt by a replay; the stored event is unchanged.
func TestOldItemsReadWithDefaultFingerprint(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	c, i, p := newID(), newID(), newID()
	cs, is, ps := c.String(), i.String(), p.String()
	old := `{"cart_id":"` + cs + `","item_id":"` + is + `","product_id":"` + ps + `","description":"Old","image":"old.png","price":"3.00"}`
	r := Request(t, "POST", s.Admin, "/dcb/append", "application/json", map[string]any{"events": []any{
		map[string]any{"type": "CartCreated", "tags": []string{"cart_id:" + cs}, "data": `{"cart_id":"` + cs + `"}`},
		map[string]any{"type": "CartItemAdded", "tags": []string{"cart_id:" + cs, "item_id:" + is, "product_id:" + ps}, "data": old},
	}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	at := int64(r.JSON(t)["position"].(float64))

	want := `{"cart_id":"` + cs + `","total_price":"3","items":[{"item_id":"` + is + `","product_id":"` + ps +
		`","description":"Old","image":"old.png","price":"3","fingerprint":"default-fingerprint"}]}`
	require.JSONEq(t, want, string(s.Get(t, "/"+cs+"/cartitems").Body), "live")
	require.JSONEq(t, want, string(s.readModel(t, "/"+cs+"/cartitemsfromdb", at).Body), "stored")
	s.Stop()

	s = s.Restart(t, "--reset-read-model", "cart_items")
	require.JSONEq(t, want, string(s.readModel(t, "/"+cs+"/cartitemsfromdb", at).Body), "stored, replayed")
	added := ofType(s.CartEvents(t, c), "CartItemAdded")
	require.Len(t, added, 1)
	require.NotContains(t, added[0].Data, "fingerprint", "stored events are never rewritten")
}
