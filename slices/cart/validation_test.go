package cart

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
)

// TestBadRequestsChangeNothing: malformed requests get a precise 4xx and
// write nothing.
func TestBadRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	api := newClient(t, &Service{Store: store})
	c, i, p := newID(), newID(), newID()
	v4 := "0b8e5f2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b"
	good := func(change func(map[string]any)) map[string]any {
		m := map[string]any{"cart_id": c.String(), "item_id": i.String(), "product_id": p.String(), "description": "d", "image": "i", "price": "1"}
		change(m)
		return m
	}
	cases := []struct {
		name, path string
		body       any
		status     int
		code, msg  string
	}{
		{"PathNotUUID", "/additem/nope", good(func(map[string]any) {}), 400, "invalid_id", "version 7 UUID required"},
		{"PathUUIDv4", "/additem/" + v4, good(func(m map[string]any) { m["cart_id"] = v4 }), 400, "invalid_id", "version 7"},
		{"BodyItemV4", "/additem/" + c.String(), good(func(m map[string]any) { m["item_id"] = v4 }), 400, "invalid_id", "item_id"},
		{"IDMismatch", "/additem/" + c.String(), good(func(m map[string]any) { m["cart_id"] = newID().String() }), 400, "id_mismatch", ""},
		{"MissingProduct", "/additem/" + c.String(), good(func(m map[string]any) { delete(m, "product_id") }), 400, "invalid_request", "product_id: required"},
		{"MissingPrice", "/additem/" + c.String(), good(func(m map[string]any) { delete(m, "price") }), 400, "invalid_request", "price: required"},
		{"NegativePrice", "/additem/" + c.String(), good(func(m map[string]any) { m["price"] = "-1" }), 400, "invalid_request", "must not be negative"},
		{"PriceNotNumber", "/additem/" + c.String(), good(func(m map[string]any) { m["price"] = "ten" }), 400, "invalid_request", "not a decimal"},
		{"HugePrice", "/additem/" + c.String(), good(func(m map[string]any) { m["price"] = "1e400" }), 400, "invalid_request", "out of range"},
		{"PriceTooPrecise", "/additem/" + c.String(), good(func(m map[string]any) { m["price"] = "0.0000000001" }), 400, "invalid_request", "decimal places"},
		{"DescriptionWrongType", "/additem/" + c.String(), good(func(m map[string]any) { m["description"] = 5 }), 400, "invalid_request", `"description": expected a string`},
		{"DescriptionTooLong", "/additem/" + c.String(), good(func(m map[string]any) { m["description"] = strings.Repeat("é", 1001) }), 400, "invalid_request", "at most 1000"},
		{"DescriptionNUL", "/additem/" + c.String(), good(func(m map[string]any) { m["description"] = "a\x00b" }), 400, "invalid_request", "description: must not contain NUL"},
		{"ImageNUL", "/additem/" + c.String(), good(func(m map[string]any) { m["image"] = "\x00" }), 400, "invalid_request", "image: must not contain NUL"},
		{"DescriptionNotUTF8", "/additem/" + c.String(), `{"item_id":"` + i.String() + `","product_id":"` + p.String() + "\",\"description\":\"\xff\",\"image\":\"i\",\"price\":1}", 400, "invalid_request", "not valid UTF-8"},
		{"UnknownField", "/additem/" + c.String(), good(func(m map[string]any) { m["quantity"] = 2 }), 400, "invalid_request", `unknown field "quantity"`},
		{"SQLInID", "/additem/" + c.String() + "'%3B%20DROP%20TABLE%20events", good(func(map[string]any) {}), 400, "invalid_id", ""},
		{"NotJSON", "/additem/" + c.String(), "price=1", 400, "invalid_request", "malformed JSON"},
		{"InventoryNegative", "/changeinventory/" + p.String(), map[string]any{"product_id": p, "inventory": -1}, 400, "invalid_request", "between 0"},
		{"InventoryFraction", "/changeinventory/" + p.String(), map[string]any{"product_id": p, "inventory": 1.5}, 400, "invalid_request", `"inventory": expected a number`},
		{"InventoryHuge", "/changeinventory/" + p.String(), `{"product_id":"` + p.String() + `","inventory":99999999999999999999}`, 400, "invalid_request", "inventory"},
		{"NewPriceNegative", "/changeprice/" + p.String(), map[string]any{"product_id": p, "old_price": 1, "new_price": -2}, 400, "invalid_request", "new_price: must not be negative"},
		{"RemoveWithoutItem", "/removeitem/" + c.String(), map[string]any{"cart_id": c}, 400, "invalid_request", "item_id: required"},
	}
	head, err := store.Head(context.Background())
	require.NoError(t, err)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := api.do("POST", tc.path, tc.body)
			require.Equal(t, tc.status, status, fmt.Sprint(body))
			require.Equal(t, tc.code, body["code"])
			require.Contains(t, body["message"], tc.msg)
		})
	}
	stored, err := store.Read(context.Background(),
		eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c), {Tags: []string{productTag(p)}}}},
		eventstore.ReadOptions{From: head + 1})
	require.NoError(t, err)
	require.Empty(t, stored, "nothing was written")
}
