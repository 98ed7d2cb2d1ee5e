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

// TestBodyErrorsNameTheField: every error about a request body's field
// names the field and says what it takes, for each kind of field: decimal
// amounts, integers, strings and ids; the codes are the documented ones.
func TestBodyErrorsNameTheField(t *testing.T) {
	t.Parallel()
	api := newClient(t, &Service{Store: testStore(t)})
	c, i, p := newID(), newID(), newID()
	v4 := "0b8e5f2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b"
	addItem := func(field string, value any) map[string]any {
		m := map[string]any{"item_id": i, "product_id": p, "description": "d", "image": "i", "price": "1"}
		m[field] = value
		return m
	}
	const money = `expected a JSON number or a string holding one, such as 12.34 or "12.34"`
	const int64s = "a number that is an integer from -9223372036854775808 to 9223372036854775807"
	cases := []struct {
		name, path string
		body       any
		code, msg  string
	}{
		// Decimal amounts.
		{"PriceText", "/additem/" + c.String(), addItem("price", "ten"), "invalid_request", `price: not a decimal number: ` + money + `, got JSON string "ten"`},
		{"PriceBool", "/additem/" + c.String(), addItem("price", true), "invalid_request", `price: not a decimal number: ` + money + `, got JSON bool`},
		{"PriceObject", "/additem/" + c.String(), addItem("price", map[string]int{"amount": 1}), "invalid_request", `price: not a decimal number: ` + money + `, got JSON object`},
		{"PriceArray", "/additem/" + c.String(), addItem("price", []int{1}), "invalid_request", `price: not a decimal number: ` + money + `, got JSON array`},
		{"PriceNaN", "/additem/" + c.String(), addItem("price", "NaN"), "invalid_request", `price: not a decimal number: ` + money + `, got JSON string "NaN"`},
		{"PriceHuge", "/additem/" + c.String(), `{"item_id":"` + i.String() + `","product_id":"` + p.String() + `","description":"d","image":"i","price":1e400}`, "invalid_request",
			"price: out of range: expected an amount below 1000000000000000 in absolute value, got JSON number 1e400"},
		{"PriceTooPrecise", "/additem/" + c.String(), addItem("price", "0.000000001"), "invalid_request",
			`price: expected an amount with at most 8 decimal places, got JSON string "0.000000001" with 9`},
		{"PriceTooLong", "/additem/" + c.String(), addItem("price", strings.Repeat("1", 41)), "invalid_request",
			"price: too many digits: expected a decimal number of at most 40 characters, got a JSON string of 41"},
		{"PriceNull", "/additem/" + c.String(), addItem("price", nil), "invalid_request", "price: required"},
		{"PriceNegative", "/additem/" + c.String(), addItem("price", -1), "invalid_request", "price: must not be negative"},
		{"OldPriceText", "/changeprice/" + p.String(), map[string]any{"old_price": "abc", "new_price": "1"}, "invalid_request",
			`old_price: not a decimal number: ` + money + `, got JSON string "abc"`},
		{"NewPriceBool", "/changeprice/" + p.String(), map[string]any{"old_price": "1", "new_price": true}, "invalid_request",
			`new_price: not a decimal number: ` + money + `, got JSON bool`},
		{"NewPriceMissing", "/changeprice/" + p.String(), map[string]any{"old_price": "1"}, "invalid_request", "new_price: required"},
		// Integers.
		{"InventoryFraction", "/changeinventory/" + p.String(), `{"inventory":1.5}`, "invalid_request", `field "inventory": expected ` + int64s + `, got JSON number 1.5`},
		{"InventoryExponent", "/changeinventory/" + p.String(), `{"inventory":1e3}`, "invalid_request", `field "inventory": expected ` + int64s + `, got JSON number 1e3`},
		{"InventoryOver64Bits", "/changeinventory/" + p.String(), `{"inventory":9223372036854775808}`, "invalid_request",
			`field "inventory": expected ` + int64s + `, got JSON number 9223372036854775808`},
		{"InventoryString", "/changeinventory/" + p.String(), `{"inventory":"7"}`, "invalid_request", `field "inventory": expected a number, got JSON string`},
		{"InventoryBool", "/changeinventory/" + p.String(), `{"inventory":true}`, "invalid_request", `field "inventory": expected a number, got JSON bool`},
		{"InventoryNull", "/changeinventory/" + p.String(), `{"inventory":null}`, "invalid_request", "inventory: required"},
		{"InventoryOverMax", "/changeinventory/" + p.String(), `{"inventory":1000000001}`, "invalid_request", "inventory: must be between 0 and 1000000000"},
		// Strings.
		{"DescriptionNumber", "/additem/" + c.String(), addItem("description", 5), "invalid_request", `field "description": expected a string, got JSON number`},
		{"DescriptionArray", "/additem/" + c.String(), addItem("description", []string{"a"}), "invalid_request", `field "description": expected a string, got JSON array`},
		{"ImageBool", "/additem/" + c.String(), addItem("image", true), "invalid_request", `field "image": expected a string, got JSON bool`},
		{"DescriptionNull", "/additem/" + c.String(), addItem("description", nil), "invalid_request", "description: required"},
		{"ImageTooLong", "/additem/" + c.String(), addItem("image", strings.Repeat("é", 2049)), "invalid_request", "image: at most 2048 characters"},
		// Ids.
		{"ItemIDNumber", "/additem/" + c.String(), addItem("item_id", 7), "invalid_request", `field "item_id": expected a string, got JSON number`},
		{"ItemIDText", "/additem/" + c.String(), addItem("item_id", "abc"), "invalid_id", "item_id: version 7 UUID required"},
		{"ProductIDV4", "/additem/" + c.String(), addItem("product_id", v4), "invalid_id", "product_id: version 7 UUID required"},
		{"ProductIDObject", "/additem/" + c.String(), addItem("product_id", map[string]any{}), "invalid_request", `field "product_id": expected a string, got JSON object`},
		{"CartIDNumber", "/additem/" + c.String(), addItem("cart_id", 5), "invalid_request", `field "cart_id": expected a string, got JSON number`},
		{"CartIDV4", "/additem/" + c.String(), addItem("cart_id", v4), "invalid_id", "cart_id: version 7 UUID required"},
		{"PathCartID", "/additem/" + v4, addItem("price", "1"), "invalid_id", "cart_id in the path: version 7 UUID required"},
		{"RemoveItemIDBool", "/removeitem/" + c.String(), `{"item_id":true}`, "invalid_request", `field "item_id": expected a string, got JSON bool`},
		{"ClearCartIDNumber", "/clearcart/" + c.String(), `{"cart_id":5}`, "invalid_request", `field "cart_id": expected a string, got JSON number`},
		{"InventoryProductIDNumber", "/changeinventory/" + p.String(), `{"product_id":5,"inventory":1}`, "invalid_request", `field "product_id": expected a string, got JSON number`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body := api.do("POST", tc.path, tc.body)
			require.Equal(t, 400, status, fmt.Sprint(body))
			require.Equal(t, tc.code, body["code"])
			require.Equal(t, tc.msg, body["message"])
		})
	}
}
