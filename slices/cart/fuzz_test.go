package cart

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/kafkabridge"
)

// Fuzz targets for every decoder of outside input in the cart: the bodies
// of the commands and the Kafka messages. Whatever the input, the answer is
// a valid command that does what the input says, or a precise refusal (a
// 4xx with one of the endpoint's codes and a message; a rejected message)
// that writes nothing. Never a panic, a 5xx, or an error that would stop a
// Kafka consumer.
//
// A fuzzed input may hold the placeholders $CART, $ITEM and $PRODUCT: each
// run replaces them with fresh ids (and uses them in the path), so that the
// fuzzer reaches the success paths, whose outcome is then checked too.

// fuzzIDs are one run's fresh ids.
type fuzzIDs struct{ cart, item, product uuid.UUID }

func newFuzzIDs() fuzzIDs { return fuzzIDs{newID(), newID(), newID()} }

func (ids fuzzIDs) fill(input string) string {
	return strings.NewReplacer("$CART", ids.cart.String(), "$ITEM", ids.item.String(), "$PRODUCT", ids.product.String()).Replace(input)
}

// fuzzAPI is the engine with the cart's routes on the package's store.
type fuzzAPI struct {
	store  *eventstore.Store
	engine http.Handler
}

func newFuzzAPI(f *testing.F) fuzzAPI {
	store := eventstoretest.SharedStore(f)
	e := httpapi.NewEngine(httpapi.Options{})
	(&Service{Store: store}).Routes(e)
	return fuzzAPI{store: store, engine: e}
}

func (a fuzzAPI) post(path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.engine.ServeHTTP(rec, req)
	return rec
}

func (a fuzzAPI) head(t *testing.T) int64 {
	t.Helper()
	head, err := a.store.Head(context.Background())
	require.NoError(t, err)
	return head
}

// requireRefusal checks a refusal: one of the statuses and codes allowed,
// with a message, in the error envelope.
func requireRefusal(t *testing.T, rec *httptest.ResponseRecorder, allowed map[int][]string) {
	t.Helper()
	var env struct{ Code, Message string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &env), "status %d without the error envelope: %s", rec.Code, rec.Body)
	require.Contains(t, allowed[rec.Code], env.Code, "status %d, code %q: %s", rec.Code, env.Code, rec.Body)
	require.NotEmpty(t, env.Message, rec.Body.String())
	require.True(t, utf8.ValidString(env.Message), "message not UTF-8: %q", env.Message)
}

// badInput is what any command may answer to malformed input.
var badInput = map[int][]string{
	http.StatusBadRequest:            {"invalid_request", "invalid_id", "id_mismatch"},
	http.StatusRequestEntityTooLarge: {"body_too_large"},
}

// send posts body to route+id, whose answer names id as idField. A refusal
// must be one of allowed and change nothing: send returns false. An
// acceptance returns the events it stored.
func (a fuzzAPI) send(t *testing.T, route, idField string, id uuid.UUID, body string, allowed map[int][]string) ([]any, bool) {
	t.Helper()
	head := a.head(t)
	rec := a.post(route+id.String(), body)
	if rec.Code != http.StatusOK {
		requireRefusal(t, rec, allowed)
		a.requireUnchanged(t, head, body)
		return nil, false
	}
	return requireAccepted(t, a, rec, idField, id, head), true
}

// requireAccepted checks a command's success answer and returns the events
// it appended, in order.
func requireAccepted(t *testing.T, a fuzzAPI, rec *httptest.ResponseRecorder, idField string, id uuid.UUID, head int64) []any {
	t.Helper()
	var res map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res), rec.Body.String())
	require.Equal(t, id.String(), res[idField], rec.Body.String())
	pos, _ := res["position"].(float64)
	require.Greater(t, int64(pos), head, rec.Body.String())
	stored, err := a.store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{eventstore.Tag(idField, id)}}}},
		eventstore.ReadOptions{From: head + 1})
	require.NoError(t, err)
	events := make([]any, len(stored))
	for i, e := range stored {
		events[i], err = Events.Decode(e)
		require.NoError(t, err)
	}
	return events
}

// requireUnchanged checks that a refused input wrote nothing.
func (a fuzzAPI) requireUnchanged(t *testing.T, head int64, input string) {
	t.Helper()
	require.Equal(t, head, a.head(t), "a refused input wrote events: %q", input)
}

// plainMoney decodes a fuzzed amount the way a client means it, for
// comparing with what was stored.
func plainMoney(t *testing.T, raw json.RawMessage) decimal.Decimal {
	t.Helper()
	d, err := parseMoney(raw)
	require.NoError(t, err, "accepted an amount the decoder refuses: %s", raw)
	return d
}

// FuzzAddItemBody: POST /additem/{cart_id}. An accepted body created the
// cart and added exactly the item it describes, and the stored read model
// can hold it (nothing a client may send stops the cart_items listener).
func FuzzAddItemBody(f *testing.F) {
	for _, seed := range []string{
		`{"cart_id":"$CART","item_id":"$ITEM","product_id":"$PRODUCT","description":"Socks","image":"socks.png","price":"12.50"}`,
		`{"item_id":"$ITEM","product_id":"$PRODUCT","description":"","image":"","price":0}`,
		`{"item_id":"$ITEM","product_id":"$PRODUCT","description":"'; DROP TABLE events; --","image":"\u202egnp.exe","price":1e3}`,
		`{"item_id":"$ITEM","product_id":"$PRODUCT","description":"a\u0000b","image":"😀","price":"0.00000001"}`,
		`{"item_id":"$ITEM","product_id":"$PRODUCT","description":"\ud800","image":"x","price":"1e400"}`,
		`{"cart_id":"$ITEM","item_id":"$ITEM","product_id":"$PRODUCT","description":"d","image":"i","price":-1}`,
		`{"item_id":"$ITEM","product_id":"$PRODUCT","description":5,"image":"i","price":1}`,
		`{"item_id":"$ITEM","product_id":"$PRODUCT","description":"d","image":"i","price":9223372036854775808}`,
		`{"item_id":"0b8e5f2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b","product_id":"$PRODUCT","description":"d","image":"i","price":1}`,
		`{"item_id":"$ITEM","product_id":"$PRODUCT","description":"d","image":"i","price":1,"quantity":2}`,
		`{}`, `null`, `[]`, ``, `{"item_id":"$ITEM"} {}`, "{\"description\":\"\xff\"}",
	} {
		f.Add(seed)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, input string) {
		ids := newFuzzIDs()
		body := ids.fill(input)
		events, ok := a.send(t, "/additem/", "cart_id", ids.cart, body, badInput)
		if !ok {
			return
		}
		require.Len(t, events, 2)
		require.Equal(t, CartCreated{CartID: ids.cart}, events[0])
		added := events[1].(CartItemAdded)
		var sent struct {
			ItemID      string          `json:"item_id"`
			ProductID   string          `json:"product_id"`
			Description string          `json:"description"`
			Image       string          `json:"image"`
			Price       json.RawMessage `json:"price"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &sent), "accepted: %s", body)
		require.Equal(t, uuid.MustParse(sent.ItemID), added.ItemID)
		require.Equal(t, uuid.MustParse(sent.ProductID), added.ProductID)
		require.Equal(t, sent.Description, added.Description)
		require.Equal(t, sent.Image, added.Image)
		require.True(t, plainMoney(t, sent.Price).Equal(added.Price), "price %s stored as %s", sent.Price, added.Price)
		requireStoredItem(t, a.store, ids.cart, added)
	})
}

// requireStoredItem applies the cart's events to the cart_items read model
// in a transaction it rolls back, and checks the item's row.
func requireStoredItem(t *testing.T, store *eventstore.Store, cart uuid.UUID, want CartItemAdded) {
	t.Helper()
	ctx := context.Background()
	stored, err := store.Read(ctx, eventstore.Query{Items: []eventstore.QueryItem{cartQuery(cart)}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	tx, err := store.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	require.NoError(t, applyCartItems(ctx, tx, stored), "the cart_items listener cannot store an accepted item")
	var description, image, price string
	require.NoError(t, tx.QueryRow(ctx, `SELECT description, image, price::text FROM cart_items WHERE cart_id = $1 AND item_id = $2`,
		cart, want.ItemID).Scan(&description, &image, &price))
	require.Equal(t, want.Description, description)
	require.Equal(t, want.Image, image)
	require.True(t, money(price).Equal(want.Price), "price %s read back as %s", want.Price, price)
}

// FuzzRemoveItemBody: POST /removeitem/{cart_id} on a cart holding the item
// $ITEM. An accepted body removed exactly the item it names.
func FuzzRemoveItemBody(f *testing.F) {
	for _, seed := range []string{
		`{"cart_id":"$CART","item_id":"$ITEM"}`, `{"item_id":"$ITEM"}`, `{"item_id":"$PRODUCT"}`,
		`{"cart_id":"$PRODUCT","item_id":"$ITEM"}`, `{"cart_id":"$CART"}`, `{"item_id":null}`, `{"item_id":1}`,
		`{"item_id":"$ITEM","extra":1}`, `{"item_id":"'; DROP TABLE events; --"}`, `{}`, ``, `null`, `{"item_id":"$ITEM"}x`,
	} {
		f.Add(seed)
	}
	a := newFuzzAPI(f)
	refusals := withCodes(badInput, http.StatusConflict, "item_not_in_cart")
	f.Fuzz(func(t *testing.T, input string) {
		ids := newFuzzIDs()
		givenCart(t, a.store, ids)
		body := ids.fill(input)
		events, ok := a.send(t, "/removeitem/", "cart_id", ids.cart, body, refusals)
		if !ok {
			return
		}
		require.Equal(t, []any{CartItemRemoved{CartID: ids.cart, ItemID: ids.item}}, events)
	})
}

// FuzzClearAndSubmitBodies: POST /clearcart/{cart_id} and /submitcart/{cart_id},
// whose optional body holds at most the cart id, each on a cart of its own
// with one item. An accepted body cleared, or submitted, that cart.
func FuzzClearAndSubmitBodies(f *testing.F) {
	for _, seed := range []string{
		`{"cart_id":"$CART"}`, ``, ` `, `{}`, `null`, `{"cart_id":"$ITEM"}`, `{"cart_id":null}`, `{"cart_id":"nope"}`,
		`{"cart_id":"$CART","item_id":"$ITEM"}`, `{"cart_id":"$CART"}{}`, `[]`, `"$CART"`, "\x00",
	} {
		f.Add(seed)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, input string) {
		for _, path := range []string{"/clearcart/", "/submitcart/"} {
			ids := newFuzzIDs()
			givenCart(t, a.store, ids)
			body := ids.fill(input)
			events, ok := a.send(t, path, "cart_id", ids.cart, body, badInput)
			if !ok {
				continue
			}
			require.Len(t, events, 1)
			if path == "/clearcart/" {
				require.Equal(t, CartCleared{CartID: ids.cart}, events[0])
			} else {
				require.Equal(t, ids.cart, events[0].(CartSubmitted).CartID)
			}
		}
	})
}

// FuzzChangeInventoryBody: POST /changeinventory/{product_id}. An accepted
// body stored the inventory it holds, an integer from 0 to MaxInventory.
func FuzzChangeInventoryBody(f *testing.F) {
	for _, seed := range []string{
		`{"product_id":"$PRODUCT","inventory":7}`, `{"inventory":0}`, `{"inventory":1000000000}`, `{"inventory":1000000001}`,
		`{"inventory":-1}`, `{"inventory":1.5}`, `{"inventory":1e3}`, `{"inventory":"7"}`, `{"inventory":9223372036854775808}`,
		`{"inventory":1e400}`, `{"product_id":"$CART","inventory":1}`, `{"inventory":null}`, `{}`, ``, `{"inventory":1,"x":2}`,
	} {
		f.Add(seed)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, input string) {
		ids := newFuzzIDs()
		body := ids.fill(input)
		events, ok := a.send(t, "/changeinventory/", "product_id", ids.product, body, badInput)
		if !ok {
			return
		}
		var sent struct{ Inventory json.Number }
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&sent), body)
		n, err := sent.Inventory.Int64()
		require.NoError(t, err, "accepted inventory %q", sent.Inventory)
		require.True(t, n >= 0 && n <= MaxInventory, "accepted inventory %d", n)
		require.Equal(t, []any{InventoryChanged{ProductID: ids.product, Inventory: int(n)}}, events)
	})
}

// FuzzChangePriceBody: POST /changeprice/{product_id}. An accepted body
// stored the two prices it holds, neither negative.
func FuzzChangePriceBody(f *testing.F) {
	for _, seed := range []string{
		`{"product_id":"$PRODUCT","old_price":"1.50","new_price":2}`, `{"old_price":0,"new_price":"0"}`,
		`{"old_price":-1,"new_price":1}`, `{"old_price":1,"new_price":"-0"}`, `{"old_price":"1e400","new_price":1}`,
		`{"old_price":1,"new_price":999999999999999.99999999}`, `{"old_price":1,"new_price":"0.000000001"}`,
		`{"old_price":1,"new_price":null}`, `{"old_price":true,"new_price":1}`, `{"old_price":"1 ","new_price":" 1"}`,
		`{"product_id":"$ITEM","old_price":1,"new_price":2}`, `{"old_price":1}`, `{}`, ``,
	} {
		f.Add(seed)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, input string) {
		ids := newFuzzIDs()
		body := ids.fill(input)
		events, ok := a.send(t, "/changeprice/", "product_id", ids.product, body, badInput)
		if !ok {
			return
		}
		var sent struct {
			OldPrice json.RawMessage `json:"old_price"`
			NewPrice json.RawMessage `json:"new_price"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &sent), body)
		require.Len(t, events, 1)
		got := events[0].(PriceChanged)
		require.True(t, plainMoney(t, sent.OldPrice).Equal(got.OldPrice) && !got.OldPrice.IsNegative(), "old_price %s stored as %s", sent.OldPrice, got.OldPrice)
		require.True(t, plainMoney(t, sent.NewPrice).Equal(got.NewPrice) && !got.NewPrice.IsNegative(), "new_price %s stored as %s", sent.NewPrice, got.NewPrice)
	})
}

// FuzzMoney: an amount is accepted only within the documented range and
// precision, and what it prints reads back as the same amount, from a
// string and from a JSON number.
func FuzzMoney(f *testing.F) {
	for _, seed := range []string{`12.5`, `"12.50"`, `0`, `-0`, `"-1"`, `1e3`, `1e400`, `"1E-8"`, `0.000000001`,
		`999999999999999.99999999`, `1000000000000000`, `null`, `"null"`, `""`, `"1 "`, `true`, `[1]`, `"\u0031"`, `.5`, `0x10`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := parseMoney(raw)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.GreaterOrEqual(t, m.Exponent(), int32(-8), "accepted %s", raw)
		require.True(t, m.Abs().LessThan(maxMoney), "accepted %s", raw)
		for _, back := range []string{m.String(), `"` + m.String() + `"`} {
			again, err := parseMoney([]byte(back))
			require.NoError(t, err, "%s printed as %s", raw, back)
			require.True(t, again.Equal(m), "%s printed as %s read back as %s", raw, back, again)
		}
	})
}

// FuzzInventoryMessage: the translator of the topic "inventories". A
// message is translated into the InventoryChanged it describes (fields the
// spec does not name ignored), or rejected with a reason and nothing
// appended; never another error, which would stop the partition.
func FuzzInventoryMessage(f *testing.F) {
	for _, seed := range []string{
		`{"product_uuid":"$PRODUCT","inventory":7}`, `{"product_uuid":"$PRODUCT","inventory":7,"warehouse":"north"}`,
		`{"product_uuid":"$PRODUCT","inventory":-1}`, `{"product_uuid":"$PRODUCT","inventory":1.5}`, `{"product_uuid":"$PRODUCT"}`,
		`{"product_uuid":"$PRODUCT","inventory":9223372036854775808}`, `{"product_uuid":"$PRODUCT","inventory":"7"}`,
		`{"product_uuid":"0b8e5f2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b","inventory":1}`, `{"product_uuid":"$PRODUCT","inventory":1,"inventory":2}`,
		"{\"product_uuid\":\"\xff\",\"inventory\":1}", `not json`, `[]`, `null`, ``, `{"product_uuid":"$PRODUCT","inventory":1} trailing`,
	} {
		f.Add(seed)
	}
	s := &Service{Store: eventstoretest.SharedStore(f)}
	f.Fuzz(func(t *testing.T, input string) {
		ids := newFuzzIDs()
		value := ids.fill(input)
		got := translate(t, s, "inventories", value, s.TranslateInventory)
		if got == nil {
			return
		}
		var sent struct {
			ProductUUID string      `json:"product_uuid"`
			Inventory   json.Number `json:"inventory"`
		}
		dec := json.NewDecoder(strings.NewReader(value))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&sent), value)
		n, err := sent.Inventory.Int64()
		require.NoError(t, err, "accepted inventory %q", sent.Inventory)
		require.Equal(t, InventoryChanged{ProductID: uuid.MustParse(sent.ProductUUID), Inventory: int(n)}, got)
		require.True(t, n >= 0 && n <= MaxInventory, "accepted inventory %d", n)
	})
}

// FuzzPriceChangeMessage: the translator of the topic "price-changes", with
// the same properties.
func FuzzPriceChangeMessage(f *testing.F) {
	for _, seed := range []string{
		`{"product_uuid":"$PRODUCT","old_price":"7.25","new_price":"8.00"}`, `{"product_uuid":"$PRODUCT","old_price":1,"new_price":2,"currency":"EUR"}`,
		`{"product_uuid":"$PRODUCT","old_price":"1","new_price":"-1"}`, `{"product_uuid":"$PRODUCT","new_price":"1"}`,
		`{"product_uuid":"$PRODUCT","old_price":1e400,"new_price":1}`, `{"product_uuid":"$PRODUCT","old_price":null,"new_price":1}`,
		`{"product_uuid":"$ITEM ","old_price":1,"new_price":1}`, `{"product_uuid":7,"old_price":1,"new_price":1}`, `[]`, `{}`, ``,
	} {
		f.Add(seed)
	}
	s := &Service{Store: eventstoretest.SharedStore(f)}
	f.Fuzz(func(t *testing.T, input string) {
		ids := newFuzzIDs()
		value := ids.fill(input)
		got := translate(t, s, "price-changes", value, s.TranslatePriceChange)
		if got == nil {
			return
		}
		var sent struct {
			ProductUUID string          `json:"product_uuid"`
			OldPrice    json.RawMessage `json:"old_price"`
			NewPrice    json.RawMessage `json:"new_price"`
		}
		require.NoError(t, json.Unmarshal([]byte(value), &sent), value)
		changed := got.(PriceChanged)
		require.Equal(t, uuid.MustParse(sent.ProductUUID), changed.ProductID)
		require.True(t, plainMoney(t, sent.OldPrice).Equal(changed.OldPrice) && !changed.OldPrice.IsNegative(), "old_price %s stored as %s", sent.OldPrice, changed.OldPrice)
		require.True(t, plainMoney(t, sent.NewPrice).Equal(changed.NewPrice) && !changed.NewPrice.IsNegative(), "new_price %s stored as %s", sent.NewPrice, changed.NewPrice)
	})
}

// translate runs a translator on a message in a transaction it rolls back,
// and returns the event it appended, or nil when it rejected the message
// (having checked that the rejection appended nothing).
func translate(t *testing.T, s *Service, topic, value string, translator func(context.Context, pgx.Tx, kafkabridge.Record) error) any {
	t.Helper()
	ctx := context.Background()
	tx, err := s.Store.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	last := func() int64 {
		var p int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM events`).Scan(&p))
		return p
	}
	before := last()
	err = translator(ctx, tx, kafkabridge.Record{Topic: topic, Partition: 0, Offset: 1, Value: []byte(value)})
	if err != nil {
		require.True(t, errors.Is(err, kafkabridge.ErrReject), "an error other than a rejection stops the consumer: %v (%q)", err, value)
		require.Greater(t, len(err.Error()), len(kafkabridge.ErrReject.Error()), "a rejection without a reason")
		require.Equal(t, before, last(), "a rejected message appended events: %q", value)
		return nil
	}
	appended, err := s.Store.ReadTx(ctx, tx, eventstore.Query{}, eventstore.ReadOptions{From: before + 1})
	require.NoError(t, err)
	require.Len(t, appended, 1, "one message, one event")
	v, err := Events.Decode(appended[0])
	require.NoError(t, err)
	return v
}

// givenCart appends a cart holding the item ids.item of product ids.product.
func givenCart(t *testing.T, store *eventstore.Store, ids fuzzIDs) {
	t.Helper()
	it := item(ids.cart, ids.product, "1")
	it.ItemID = ids.item
	events, err := Events.EncodeAll([]any{CartCreated{CartID: ids.cart}, it})
	require.NoError(t, err)
	_, err = store.Append(context.Background(), events, nil)
	require.NoError(t, err)
}

// withCodes is allowed plus more codes for status.
func withCodes(allowed map[int][]string, status int, codes ...string) map[int][]string {
	out := map[int][]string{}
	for s, c := range allowed {
		out[s] = slices.Clone(c)
	}
	out[status] = append(out[status], codes...)
	return out
}
