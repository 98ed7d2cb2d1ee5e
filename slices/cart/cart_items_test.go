package cart

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
)

func TestCartItemsLive(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	api := newClient(t, &Service{Store: store})
	c, p := newID(), newID()
	a, b, d := item(c, p, "1.25"), item(c, p, "2.50"), item(c, newID(), "4")
	events, err := Events.EncodeAll([]any{CartCreated{c}, a, b, CartItemRemoved{c, a.ItemID}, d})
	require.NoError(t, err)
	_, err = store.Append(context.Background(), events, nil)
	require.NoError(t, err)

	status, raw, _ := api.raw("GET", "/"+c.String()+"/cartitems")
	require.Equal(t, http.StatusOK, status, string(raw))
	require.JSONEq(t, `{"cart_id":"`+c.String()+`","total_price":"6.5","items":[
		{"item_id":"`+b.ItemID.String()+`","product_id":"`+p.String()+`","description":"a thing","image":"thing.png","price":"2.5","fingerprint":"`+b.Fingerprint+`"},
		{"item_id":"`+d.ItemID.String()+`","product_id":"`+d.ProductID.String()+`","description":"a thing","image":"thing.png","price":"4","fingerprint":"`+d.Fingerprint+`"}]}`,
		string(raw), "in the order added, money as strings")

	status, body := api.do("GET", "/"+newID().String()+"/cartitems", nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "cart_not_found", body["code"])
	status, body = api.do("GET", "/not-a-uuid/cartitems", nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "invalid_id", body["code"])
}

// TestFingerprintUpcaster: an item stored before fingerprints existed (raw
// old JSON) reads with the default fingerprint through the normal path.
func TestFingerprintUpcaster(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	api := newClient(t, &Service{Store: store})
	c, i, p := newID(), newID(), newID()
	old := `{"cart_id":"` + c.String() + `","item_id":"` + i.String() + `","product_id":"` + p.String() + `","description":"Old","image":"old.png","price":"3.00"}`
	_, err := store.Append(context.Background(), []eventstore.Event{
		{Type: "CartCreated", Tags: []string{cartTag(c)}, Data: []byte(`{"cart_id":"` + c.String() + `"}`)},
		{Type: "CartItemAdded", Tags: []string{cartTag(c), "item_id:" + i.String(), productTag(p)}, Data: []byte(old)},
	}, nil)
	require.NoError(t, err)
	status, raw, _ := api.raw("GET", "/"+c.String()+"/cartitems")
	require.Equal(t, http.StatusOK, status)
	var got CartItems
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, DefaultFingerprint, got.Items[0].Fingerprint)
}
