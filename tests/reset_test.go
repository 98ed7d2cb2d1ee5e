package tests

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// buildCarts makes carts that exercise every event the cart_items read
// model handles: added, removed, cleared (and re-filled), archived by a
// price change, submitted, and an empty cart. It returns the carts and the
// products it used, once every archive has happened.
func buildCarts(t *testing.T, s *Server) (carts, products []uuid.UUID) {
	t.Helper()
	p, q, r := newID(), newID(), newID()
	full, removed, cleared, archived, submitted, empty := newID(), newID(), newID(), newID(), newID(), newID()
	s.addItem(t, full, newID(), p, "1.01")
	s.addItem(t, full, newID(), q, "2")
	s.addItem(t, full, newID(), q, 3.5)

	gone := newID()
	s.addItem(t, removed, gone, q, "4")
	s.addItem(t, removed, newID(), q, "5")
	require.Equal(t, http.StatusOK, s.Post(t, "/removeitem/"+removed.String(), map[string]any{"cart_id": removed, "item_id": gone}).Status)
	s.addItem(t, removed, gone, q, "4.50") // the same item id again, after its removal

	s.addItem(t, cleared, newID(), q, "6")
	require.Equal(t, http.StatusOK, s.Post(t, "/clearcart/"+cleared.String(), nil).Status)
	s.addItem(t, cleared, newID(), q, "7")

	s.addItem(t, archived, newID(), r, "8")
	s.addItem(t, archived, newID(), q, "9")
	s.addItem(t, archived, newID(), r, "10")

	s.addItem(t, submitted, newID(), q, "11")
	s.addItem(t, submitted, newID(), r, "12")
	s.submit(t, submitted)

	s.addItem(t, empty, newID(), q, "13")
	require.Equal(t, http.StatusOK, s.Post(t, "/clearcart/"+empty.String(), nil).Status)

	position(t, s.Post(t, "/changeprice/"+r.String(), map[string]any{"product_id": r, "old_price": "8", "new_price": "8.5"}))
	eventually(t, publishWait, func() error {
		if n := len(ofType(s.CartEvents(t, archived), "ItemArchived")); n != 2 {
			return fmt.Errorf("%d items archived", n)
		}
		return nil
	})
	waitStoryEnd(t, s, submitted, publishWait) // nothing left in flight
	return []uuid.UUID{full, removed, cleared, archived, submitted, empty}, []uuid.UUID{p, q, r}
}

// storedAnswers captures the answers of every stored read model for the
// carts and products, each caught up with the head of the log.
func storedAnswers(t *testing.T, s *Server, carts, products []uuid.UUID) map[string]string {
	t.Helper()
	head := s.Head(t)
	out := map[string]string{}
	for _, c := range carts {
		path := "/" + c.String() + "/cartitemsfromdb"
		out[path] = string(s.readModel(t, path, head).Body)
	}
	for _, p := range products {
		for _, path := range []string{"/cartswithproducts/" + p.String(), "/inventories/" + p.String()} {
			r := s.Get(t, path+"?min_position="+fmt.Sprint(head))
			out[path] = fmt.Sprint(r.Status, " ", string(r.Body))
		}
	}
	return out
}

// TestResetRebuildsCartItems: after --reset-read-model cart_items, then
// all, the stored read models answer exactly as before; the live view
// agrees with the stored one throughout.
func TestResetRebuildsCartItems(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	carts, products := buildCarts(t, s)
	for _, p := range products {
		position(t, s.Post(t, "/changeinventory/"+p.String(), map[string]any{"product_id": p, "inventory": 3}))
	}
	requireSameCartItems(t, s, carts, s.Head(t))
	before := storedAnswers(t, s, carts, products)
	require.Contains(t, before["/"+carts[5].String()+"/cartitemsfromdb"], `"items":[]`, "an empty cart answers 200 with no items")
	head := s.Head(t)
	s.Stop()

	for _, reset := range [][]string{{"cart_items"}, {"all"}, {"cart_items", "inventories"}} {
		args := []string{}
		for _, name := range reset {
			args = append(args, "--reset-read-model", name)
		}
		s = s.Restart(t, args...)
		line := s.WaitLog(t, startTimeout, "saying the read models were reset", func(l LogLine) bool {
			return l.Msg == "read models reset; they are replayed from the start"
		})
		want := reset
		if reset[0] == "all" { // every stored read model, not the automations
			want = []string{"cart_items", "inventories", "carts_with_products", "users"}
		}
		require.Equal(t, want, attrStrings(line, "read_models"))
		require.Equal(t, before, storedAnswers(t, s, carts, products), "after --reset-read-model %v", reset)
		requireSameCartItems(t, s, carts, head)
		require.Equal(t, head, s.Head(t), "a replay appends nothing")
		s.Stop()
	}
}

// checkpoint is a listener's checkpoint, from GET /listeners.
func (s *Server) checkpoint(t testing.TB, name string) int64 {
	t.Helper()
	var listeners []struct {
		Name       string `json:"name"`
		Checkpoint int64  `json:"checkpoint"`
	}
	s.AdminGet(t, "/listeners").Decode(t, &listeners)
	for _, l := range listeners {
		if l.Name == name {
			return l.Checkpoint
		}
	}
	t.Fatalf("no listener %s in /listeners", name)
	return 0
}

// attrStrings reads a log attribute that is a list of strings.
func attrStrings(l LogLine, key string) []string {
	v, _ := l.Attrs[key].([]any)
	out := make([]string, len(v))
	for i, s := range v {
		out[i], _ = s.(string)
	}
	return out
}

// TestResetOnBrandNewDatabase: --reset-read-model works on a database the
// server has never seen (not even migrated), and the server then works.
func TestResetOnBrandNewDatabase(t *testing.T) {
	t.Parallel()
	for _, reset := range []string{"cart_items", "all"} {
		t.Run(reset, func(t *testing.T) {
			t.Parallel()
			s := StartServer(t, ServerOptions{DatabaseURL: EmptyDatabaseURL(t), Args: []string{"--reset-read-model", reset}})
			s.WaitLog(t, startTimeout, "saying the read models were reset", func(l LogLine) bool {
				return l.Msg == "read models reset; they are replayed from the start"
			})
			c := newID()
			require.Equal(t, http.StatusNotFound, s.Get(t, "/"+c.String()+"/cartitemsfromdb").Status)
			item := newID()
			at := s.addItem(t, c, item, newID(), "1")
			require.Equal(t, []uuid.UUID{item}, itemIDs(t, s.readModel(t, "/"+c.String()+"/cartitemsfromdb", at)))
		})
	}
}

// TestReplayOfCartsWithProductsArchivesNothingTwice: after a price change
// archived items, replaying carts_with_products from the start (reset)
// handles that PriceChanged again, and archives nothing a second time: no
// new job, no new event.
func TestReplayOfCartsWithProductsArchivesNothingTwice(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	p := newID()
	for range 3 {
		c := newID()
		s.addItem(t, c, newID(), p, "2")
		s.addItem(t, c, newID(), p, "2")
	}
	changed := position(t, s.Post(t, "/changeprice/"+p.String(), map[string]any{"product_id": p, "old_price": "2", "new_price": "3"}))
	eventually(t, publishWait, func() error {
		if n := len(s.Events(t, []string{"ItemArchived"})); n != 6 {
			return fmt.Errorf("%d items archived", n)
		}
		if n := len(s.SQL(t, `SELECT 1 FROM river_job WHERE kind = 'cart.archive_item' AND state = 'completed'`)); n != 6 {
			return fmt.Errorf("%d archive jobs completed", n)
		}
		return nil
	})
	head := s.Head(t)
	require.Empty(t, s.cartsWithProduct(t, p, head))
	s.Stop()

	s = s.Restart(t, "--reset-read-model", "carts_with_products")
	line := s.WaitLog(t, startTimeout, "saying the read model was reset", func(l LogLine) bool {
		return l.Msg == "read models reset; they are replayed from the start"
	})
	require.Equal(t, []string{"carts_with_products"}, attrStrings(line, "read_models"))
	// Caught up past the price change, the listener has handled it again.
	require.Empty(t, s.cartsWithProduct(t, p, head))
	require.GreaterOrEqual(t, s.checkpoint(t, "carts_with_products"), changed)

	require.Len(t, s.SQL(t, `SELECT 1 FROM river_job WHERE kind = 'cart.archive_item'`), 6, "no archive job enqueued again")
	require.Len(t, s.Events(t, []string{"ItemArchived"}), 6, "no item archived again")
	require.Equal(t, head, s.Head(t), "nothing appended at all")
}
