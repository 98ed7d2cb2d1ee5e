package tests

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// requireError checks an error answer: status and code, and that the
// message contains msg.
func requireError(t testing.TB, r Response, status int, code, msg string) {
	t.Helper()
	require.Equal(t, status, r.Status, "%s", r)
	body := r.JSON(t)
	require.Equal(t, code, body["code"], "%s", r)
	require.Contains(t, body["message"], msg, "%s", r)
	require.Len(t, body, 2, "only code and message: %s", r)
}

// requireCommand checks a command's answer: 200 {"<idKey>": id, "position": p}
// with p the position of the last event it stored, and returns p.
func requireCommand(t testing.TB, s *Server, r Response, idKey string, id uuid.UUID) int64 {
	t.Helper()
	p := position(t, r)
	require.JSONEq(t, `{"`+idKey+`":"`+id.String()+`","position":`+strconv.FormatInt(p, 10)+`}`, string(r.Body))
	return p
}

// lastEvents returns the events of the log after position after.
func (s *Server) eventsAfter(t testing.TB, after int64) []Event {
	t.Helper()
	return s.readEvents(t, map[string]any{"items": []any{}}, map[string]any{"from": after + 1})
}

// TestEverySliceThroughHTTP drives each slice once through the real server:
// status, body and the events it stored (or that it stored none).
func TestEverySliceThroughHTTP(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	c, p, q := newID(), newID(), newID()
	a, b := newID(), newID()
	cs, ps, qs := c.String(), p.String(), q.String()

	t.Run("additem", func(t *testing.T) {
		before := s.Head(t)
		r := s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": a, "product_id": p,
			"description": "A pair of socks", "image": "socks.png", "price": "12.34"})
		at := requireCommand(t, s, r, "cart_id", c)
		events := s.eventsAfter(t, before)
		require.Equal(t, []string{"CartCreated", "CartItemAdded"}, types(events))
		require.Equal(t, at, events[1].Position, "position of the last event written")
		require.Equal(t, map[string]any{"cart_id": cs}, events[0].Data)
		require.Equal(t, []string{"cart_id:" + cs}, events[0].Tags)
		added := events[1]
		fingerprint, _ := added.Data["fingerprint"].(string)
		_, err := uuid.Parse(fingerprint)
		require.NoError(t, err, "the server sets a random UUID as fingerprint")
		require.Equal(t, map[string]any{"cart_id": cs, "item_id": a.String(), "product_id": ps, "description": "A pair of socks",
			"image": "socks.png", "price": "12.34", "fingerprint": fingerprint}, added.Data)
		require.ElementsMatch(t, []string{"cart_id:" + cs, "item_id:" + a.String(), "product_id:" + ps}, added.Tags)

		before = s.Head(t)
		requireCommand(t, s, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": b, "product_id": q,
			"description": "A hat", "image": "hat.png", "price": 5}), "cart_id", c)
		require.Equal(t, []string{"CartItemAdded"}, types(s.eventsAfter(t, before)), "no second CartCreated")

		before = s.Head(t)
		requireError(t, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": a, "product_id": p,
			"description": "d", "image": "i", "price": "1"}), 409, "item_already_in_cart", "")
		requireError(t, s.Post(t, "/additem/"+uuid.NewString(), map[string]any{"cart_id": cs, "item_id": newID(), "product_id": p,
			"description": "d", "image": "i", "price": "1"}), 400, "invalid_id", "version 7 UUID required")
		requireError(t, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": newID(), "item_id": newID(), "product_id": p,
			"description": "d", "image": "i", "price": "1"}), 400, "id_mismatch", "")
		requireError(t, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": newID(), "product_id": p,
			"description": "d", "image": "i", "price": "-0.01"}), 400, "invalid_request", "must not be negative")
		requireError(t, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": newID(), "product_id": p,
			"description": "d", "image": "i", "price": 1.5, "extra": true}), 400, "invalid_request", "unknown field")
		requireError(t, Request(t, "POST", s.HTTP, "/additem/"+cs, "text/plain", `{"cart_id":"`+cs+`"}`),
			415, "unsupported_media_type", "")
		requireError(t, s.Post(t, "/additem/"+cs, `{"cart_id":"`+cs+`","description":"`+strings.Repeat("x", 1<<20)+`"}`),
			413, "body_too_large", "")
		require.Equal(t, before, s.Head(t), "refused commands store nothing")
	})

	t.Run("cartitems", func(t *testing.T) {
		r := s.Get(t, "/"+cs+"/cartitems")
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		items := r.JSON(t)["items"].([]any)
		require.Len(t, items, 2)
		fp := items[0].(map[string]any)["fingerprint"].(string)
		fq := items[1].(map[string]any)["fingerprint"].(string)
		require.JSONEq(t, `{"cart_id":"`+cs+`","total_price":"17.34","items":[
			{"item_id":"`+a.String()+`","product_id":"`+ps+`","description":"A pair of socks","image":"socks.png","price":"12.34","fingerprint":"`+fp+`"},
			{"item_id":"`+b.String()+`","product_id":"`+qs+`","description":"A hat","image":"hat.png","price":"5","fingerprint":"`+fq+`"}]}`,
			string(r.Body))
		requireError(t, s.Get(t, "/"+newID().String()+"/cartitems"), 404, "cart_not_found", "")
		requireError(t, s.Get(t, "/nope/cartitems"), 400, "invalid_id", "")
	})

	t.Run("cartitemsfromdb", func(t *testing.T) {
		head := s.Head(t)
		r := s.readModel(t, "/"+cs+"/cartitemsfromdb", head)
		require.JSONEq(t, string(s.Get(t, "/"+cs+"/cartitems").Body), string(r.Body))
		requireError(t, s.Get(t, "/"+newID().String()+"/cartitemsfromdb"), 404, "cart_not_found", "")
		requireError(t, s.Get(t, "/"+cs+"/cartitemsfromdb?min_position=-1"), 400, "invalid_request", "min_position")
	})

	t.Run("removeitem", func(t *testing.T) {
		before := s.Head(t)
		at := requireCommand(t, s, s.Post(t, "/removeitem/"+cs, map[string]any{"cart_id": cs, "item_id": a}), "cart_id", c)
		events := s.eventsAfter(t, before)
		require.Equal(t, []string{"CartItemRemoved"}, types(events))
		require.Equal(t, at, events[0].Position)
		require.Equal(t, map[string]any{"cart_id": cs, "item_id": a.String()}, events[0].Data)
		require.ElementsMatch(t, []string{"cart_id:" + cs, "item_id:" + a.String()}, events[0].Tags)
		requireError(t, s.Post(t, "/removeitem/"+cs, map[string]any{"cart_id": cs, "item_id": a}), 409, "item_not_in_cart", "")
		requireError(t, s.Post(t, "/removeitem/"+newID().String(), map[string]any{"item_id": a}), 404, "cart_not_found", "")
		require.Equal(t, []uuid.UUID{b}, itemIDs(t, s.readModel(t, "/"+cs+"/cartitemsfromdb", at)))
		require.Equal(t, at, s.Head(t))
	})

	t.Run("changeinventory", func(t *testing.T) {
		before := s.Head(t)
		at := requireCommand(t, s, s.Post(t, "/changeinventory/"+ps, map[string]any{"product_id": ps, "inventory": 0}), "product_id", p)
		events := s.eventsAfter(t, before)
		require.Equal(t, []string{"InventoryChanged"}, types(events))
		require.Equal(t, map[string]any{"product_id": ps, "inventory": float64(0)}, events[0].Data)
		require.Equal(t, []string{"product_id:" + ps}, events[0].Tags)
		requireError(t, s.Post(t, "/changeinventory/"+ps, map[string]any{"product_id": ps, "inventory": -1}), 400, "invalid_request", "inventory")

		t.Run("inventories", func(t *testing.T) {
			require.JSONEq(t, `{"product_id":"`+ps+`","inventory":0}`, string(s.readModel(t, "/inventories/"+ps, at).Body))
			requireError(t, s.Get(t, "/inventories/"+newID().String()), 404, "inventory_not_found", "")
		})
		requireError(t, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": newID(), "product_id": p,
			"description": "d", "image": "i", "price": "1"}), 409, "out_of_stock", "")
		requireCommand(t, s, s.Post(t, "/changeinventory/"+ps, map[string]any{"product_id": ps, "inventory": 1}), "product_id", p)
	})

	t.Run("cartswithproducts", func(t *testing.T) {
		at := s.addItem(t, c, a, p, "12.34") // back in the cart: same item id, after its removal
		var rows []cartWithProduct
		s.readModel(t, "/cartswithproducts/"+ps, at).Decode(t, &rows)
		require.Equal(t, []cartWithProduct{{c, a, p}}, rows)
		r := s.readModel(t, "/cartswithproducts/"+newID().String(), at)
		require.JSONEq(t, `[]`, string(r.Body), "an empty list, not null")
	})

	t.Run("changeprice", func(t *testing.T) {
		before := s.Head(t)
		at := requireCommand(t, s, s.Post(t, "/changeprice/"+qs, map[string]any{"product_id": qs, "old_price": 5, "new_price": "5.50"}), "product_id", q)
		events := s.eventsAfter(t, before)
		require.Equal(t, "PriceChanged", events[0].Type)
		require.Equal(t, map[string]any{"product_id": qs, "old_price": "5", "new_price": "5.5"}, events[0].Data)
		require.Equal(t, []string{"product_id:" + qs}, events[0].Tags)
		requireError(t, s.Post(t, "/changeprice/"+qs, map[string]any{"product_id": qs, "old_price": 5, "new_price": "-5"}), 400, "invalid_request", "negative")
		eventually(t, 30*time.Second, func() error {
			archived := ofType(s.CartEvents(t, c), "ItemArchived")
			if len(archived) != 1 {
				return fmt.Errorf("%d ItemArchived", len(archived))
			}
			require.Equal(t, map[string]any{"cart_id": cs, "item_id": b.String(), "price_changed_position": float64(at)}, archived[0].Data)
			return nil
		})
		head := s.Head(t)
		require.Equal(t, []uuid.UUID{a}, itemIDs(t, s.readModel(t, "/"+cs+"/cartitemsfromdb", head)))
		require.Equal(t, []uuid.UUID{a}, itemIDs(t, s.Get(t, "/"+cs+"/cartitems")))
	})

	t.Run("clearcart", func(t *testing.T) {
		before := s.Head(t)
		at := requireCommand(t, s, s.Post(t, "/clearcart/"+cs, nil), "cart_id", c)
		events := s.eventsAfter(t, before)
		require.Equal(t, []string{"CartCleared"}, types(events))
		require.Equal(t, map[string]any{"cart_id": cs}, events[0].Data)
		requireCommand(t, s, s.Post(t, "/clearcart/"+cs, map[string]any{"cart_id": cs}), "cart_id", c) // empty: cleared again
		requireError(t, s.Post(t, "/clearcart/"+cs, map[string]any{"cart_id": newID()}), 400, "id_mismatch", "")
		requireError(t, s.Post(t, "/clearcart/"+newID().String(), nil), 404, "cart_not_found", "")
		want := `{"cart_id":"` + cs + `","total_price":"0","items":[]}`
		require.JSONEq(t, want, string(s.Get(t, "/"+cs+"/cartitems").Body))
		require.JSONEq(t, want, string(s.readModel(t, "/"+cs+"/cartitemsfromdb", at).Body))
		require.JSONEq(t, `[]`, string(s.readModel(t, "/cartswithproducts/"+ps, at).Body))
	})

	t.Run("submitcart", func(t *testing.T) {
		requireError(t, s.Post(t, "/submitcart/"+cs, map[string]any{"cart_id": cs}), 409, "cart_empty", "")
		requireError(t, s.Post(t, "/submitcart/"+newID().String(), nil), 404, "cart_not_found", "")
		x, y, z := newID(), newID(), newID()
		s.addItem(t, c, x, p, "1.25")
		s.addItem(t, c, y, q, "5.50")
		s.addItem(t, c, z, q, "5.50")
		requireError(t, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": newID(), "product_id": q,
			"description": "d", "image": "i", "price": "1"}), 409, "cart_full", "Cannot add item. Cart is full (max 3 items).")
		requireCommand(t, s, s.Post(t, "/changeinventory/"+qs, map[string]any{"product_id": qs, "inventory": 1}), "product_id", q)
		requireError(t, s.Post(t, "/submitcart/"+cs, map[string]any{"cart_id": cs}), 409, "out_of_stock", qs)
		requireCommand(t, s, s.Post(t, "/changeinventory/"+qs, map[string]any{"product_id": qs, "inventory": 2}), "product_id", q)

		before := s.Head(t)
		at := requireCommand(t, s, s.Post(t, "/submitcart/"+cs, map[string]any{"cart_id": cs}), "cart_id", c)
		events := s.eventsAfter(t, before)
		require.Equal(t, "CartSubmitted", events[0].Type)
		require.Equal(t, at, events[0].Position)
		require.Equal(t, map[string]any{"cart_id": cs, "total_price": "12.25", "ordered_products": []any{
			map[string]any{"item_id": x.String(), "product_id": ps, "price": "1.25"},
			map[string]any{"item_id": y.String(), "product_id": qs, "price": "5.5"},
			map[string]any{"item_id": z.String(), "product_id": qs, "price": "5.5"},
		}}, events[0].Data)
		require.Equal(t, []string{"cart_id:" + cs}, events[0].Tags)

		requireError(t, s.Post(t, "/submitcart/"+cs, nil), 409, "cart_already_submitted", "")
		requireError(t, s.Post(t, "/additem/"+cs, map[string]any{"cart_id": cs, "item_id": newID(), "product_id": p,
			"description": "d", "image": "i", "price": "1"}), 409, "cart_submitted", "")
		requireError(t, s.Post(t, "/removeitem/"+cs, map[string]any{"cart_id": cs, "item_id": x}), 409, "cart_submitted", "")
		requireError(t, s.Post(t, "/clearcart/"+cs, nil), 409, "cart_submitted", "")
		require.JSONEq(t, `[]`, string(s.readModel(t, "/cartswithproducts/"+qs, at).Body), "a submitted cart's items are not listed")
		events = waitStoryEnd(t, s, c, publishWait)
		require.Len(t, ofType(events, "CartPublished"), 1)
	})
}

// TestConcurrentAddsNeverFail: many clients add items to one cart at once.
// Conflicts are retried: every answer is 200 or 409 cart_full, never 500
// or concurrency_conflict here, and the cart ends with exactly three items.
func TestConcurrentAddsNeverFail(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	for range 3 {
		c := newID()
		statuses := make([]Response, 8)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Go(func() {
				statuses[i] = s.Post(t, "/additem/"+c.String(), map[string]any{"cart_id": c, "item_id": newID(),
					"product_id": newID(), "description": "d", "image": "i", "price": "1"})
			})
		}
		wg.Wait()
		ok := 0
		for _, r := range statuses {
			switch r.Status {
			case http.StatusOK:
				ok++
			default:
				requireError(t, r, 409, "cart_full", "")
			}
		}
		require.Equal(t, 3, ok)
		events := s.CartEvents(t, c)
		require.Len(t, ofType(events, "CartCreated"), 1)
		require.Len(t, ofType(events, "CartItemAdded"), 3)
	}
}
