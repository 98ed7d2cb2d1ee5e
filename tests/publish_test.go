package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// publishWait bounds how long a submitted cart takes to be published.
const publishWait = 45 * time.Second

// waitStoryEnd waits until CartPublished or CartPublicationFailed ends the
// cart's story, and returns the cart's events then.
func waitStoryEnd(t *testing.T, s *Server, cart uuid.UUID, within time.Duration) []Event {
	t.Helper()
	var events []Event
	eventually(t, within, func() error {
		events = s.CartEvents(t, cart)
		if len(ofType(events, "CartPublished"))+len(ofType(events, "CartPublicationFailed")) == 0 {
			return fmt.Errorf("cart %s: %v", cart, types(events))
		}
		return nil
	})
	return events
}

// TestSubmitPublishesCart: a submitted cart is published on published-carts
// (key = cart id, value = the submission) by a transactional producer, read
// back by a read_committed consumer, then CartPublished is stored exactly
// once, and the cart's one publication job is done.
func TestSubmitPublishesCart(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	p, q := newID(), newID()
	type ordered struct {
		ItemID    uuid.UUID `json:"item_id"`
		ProductID uuid.UUID `json:"product_id"`
		Price     string    `json:"price"`
	}
	type message struct {
		CartID          uuid.UUID `json:"cart_id"`
		OrderedProducts []ordered `json:"ordered_products"`
		TotalPrice      string    `json:"total_price"`
	}
	want := map[string]message{}
	for range 2 {
		c := newID()
		a, b, d := newID(), newID(), newID()
		s.addItem(t, c, a, p, "1.10")
		s.addItem(t, c, b, p, "2.25") // a second item of the same product
		s.addItem(t, c, d, q, 7)
		require.Equal(t, http.StatusOK, s.Post(t, "/removeitem/"+c.String(), map[string]any{"cart_id": c, "item_id": a}).Status)
		s.submit(t, c)
		want[c.String()] = message{CartID: c, TotalPrice: "9.25", OrderedProducts: []ordered{{b, p, "2.25"}, {d, q, "7"}}}
	}

	recs := consume(t, s.Broker, "published-carts", publishWait, func(recs []*kgo.Record) bool {
		seen := map[string]bool{}
		for _, r := range recs {
			seen[string(r.Key)] = true
		}
		return len(seen) == len(want)
	})
	for _, r := range recs {
		require.True(t, r.Attrs.IsTransactional(), "produced in a transaction")
		w, ok := want[string(r.Key)]
		require.True(t, ok, "unexpected key %q", r.Key)
		var got message
		dec := json.NewDecoder(strings.NewReader(string(r.Value)))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&got), "%s", r.Value)
		require.Equal(t, w, got)
	}

	for key := range want {
		c := uuid.MustParse(key)
		events := waitStoryEnd(t, s, c, publishWait)
		require.Len(t, ofType(events, "CartPublished"), 1)
		require.Empty(t, ofType(events, "CartPublicationFailed"))
		submitted := ofType(events, "CartSubmitted")
		require.Len(t, submitted, 1)
		require.Greater(t, ofType(events, "CartPublished")[0].Position, submitted[0].Position)
		require.Equal(t, map[string]any{"cart_id": key}, ofType(events, "CartPublished")[0].Data)
		// One job per cart, done: nothing will publish again.
		eventually(t, 10*time.Second, func() error {
			jobs := s.SQL(t, `SELECT state FROM river_job WHERE kind = 'cart.publish' AND args->'args'->>'cart_id' = $1`, key)
			if len(jobs) != 1 || jobs[0]["state"] != "completed" {
				return fmt.Errorf("publish jobs %v", jobs)
			}
			return nil
		})
	}
}
