package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// cartWithProduct is a row of GET /cartswithproducts/{product_id}.
type cartWithProduct struct {
	CartID    uuid.UUID `json:"cart_id"`
	ItemID    uuid.UUID `json:"item_id"`
	ProductID uuid.UUID `json:"product_id"`
}

func sortRows(rows []cartWithProduct) {
	slices.SortFunc(rows, func(a, b cartWithProduct) int {
		if c := strings.Compare(a.CartID.String(), b.CartID.String()); c != 0 {
			return c
		}
		return strings.Compare(a.ItemID.String(), b.ItemID.String())
	})
}

// cartsWithProduct reads GET /cartswithproducts/{product}?min_position.
func (s *Server) cartsWithProduct(t testing.TB, product uuid.UUID, minPosition int64) []cartWithProduct {
	t.Helper()
	var rows []cartWithProduct
	s.readModel(t, "/cartswithproducts/"+product.String(), minPosition).Decode(t, &rows)
	return rows
}

// add adds a new item of product to cart and returns its id.
func (s *Server) add(t testing.TB, cart, product uuid.UUID, price string) uuid.UUID {
	t.Helper()
	item := newID()
	s.addItem(t, cart, item, product, price)
	return item
}

// requireSameCartItems checks that the live and the stored cart items views
// answer the same for every cart, the stored one caught up with at.
func requireSameCartItems(t testing.TB, s *Server, carts []uuid.UUID, at int64) map[uuid.UUID]string {
	t.Helper()
	answers := map[uuid.UUID]string{}
	for _, c := range carts {
		live := s.Get(t, "/"+c.String()+"/cartitems")
		require.Equal(t, http.StatusOK, live.Status, "%s", live)
		stored := s.readModel(t, "/"+c.String()+"/cartitemsfromdb", at)
		require.JSONEq(t, string(live.Body), string(stored.Body), "cart %s: live and stored views differ", c)
		answers[c] = string(stored.Body)
	}
	return answers
}

// itemIDs lists the item ids of a cart items answer.
func itemIDs(t testing.TB, r Response) []uuid.UUID {
	t.Helper()
	var v struct {
		Items []struct {
			ItemID uuid.UUID `json:"item_id"`
		} `json:"items"`
	}
	r.Decode(t, &v)
	ids := make([]uuid.UUID, len(v.Items))
	for i, it := range v.Items {
		ids[i] = it.ItemID
	}
	return ids
}

// TestPriceChangeArchivesItemsInFiveCarts: a price-changes message archives
// every item of the product in five carts, both items of it in the cart
// that holds two (the earlier implementation archived only the first), and
// in two carts that hold items with the same id; items
// of other products and submitted carts are untouched; the live and stored
// cart views agree; carts with products lists exactly the unarchived items
// before and none after; every item is archived exactly once.
func TestPriceChangeArchivesItemsInFiveCarts(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	p, q := newID(), newID()
	carts := []uuid.UUID{newID(), newID(), newID(), newID(), newID()}
	var want []cartWithProduct
	for i, c := range carts {
		switch i {
		case 0: // two items of p in the first cart
			want = append(want, cartWithProduct{c, s.add(t, c, p, "10.00"), p})
			want = append(want, cartWithProduct{c, s.add(t, c, p, "10.00"), p})
		case 4: // the item id of the fourth cart's item of p, again: ids are the client's
			shared := want[len(want)-1].ItemID
			s.addItem(t, c, shared, p, "10.00")
			want = append(want, cartWithProduct{c, shared, p})
		default:
			want = append(want, cartWithProduct{c, s.add(t, c, p, "10.00"), p})
		}
		s.add(t, c, q, "3.50")
	}
	submitted := newID()
	submittedItem := s.add(t, submitted, p, "10.00")
	s.add(t, submitted, q, "3.50")
	s.submit(t, submitted)
	sortRows(want)

	head := s.Head(t)
	require.Equal(t, want, s.cartsWithProduct(t, p, head), "every unarchived item of p, sorted by cart then item, not the submitted cart")
	require.Len(t, s.cartsWithProduct(t, q, head), len(carts), "one item of q per unsubmitted cart")

	produce(t, s.Broker, "price-changes", -1, p.String(),
		`{"product_uuid":"`+p.String()+`","old_price":"10.00","new_price":12.5}`)

	// The PriceChanged event, then one ItemArchived per listed item.
	var priceChanged Event
	eventually(t, kafkaWait, func() error {
		got := s.Events(t, []string{"PriceChanged"}, "product_id:"+p.String())
		if len(got) != 1 {
			return fmt.Errorf("%d PriceChanged", len(got))
		}
		priceChanged = got[0]
		return nil
	})
	require.Equal(t, map[string]any{"product_id": p.String(), "old_price": "10", "new_price": "12.5"}, priceChanged.Data)
	var archived []Event
	eventually(t, 30*time.Second, func() error {
		archived = s.Events(t, []string{"ItemArchived"})
		if len(archived) < len(want) {
			return fmt.Errorf("%d of %d items archived", len(archived), len(want))
		}
		return nil
	})
	// Every archive job has ended: nothing more can come.
	eventually(t, 30*time.Second, func() error {
		rows := s.SQL(t, `SELECT state FROM river_job WHERE kind = 'cart.archive_item'`)
		for _, r := range rows {
			if r["state"] != "completed" {
				return fmt.Errorf("archive job %v", r["state"])
			}
		}
		if len(rows) != len(want) {
			return fmt.Errorf("%d archive jobs, want %d", len(rows), len(want))
		}
		return nil
	})
	archived = s.Events(t, []string{"ItemArchived"})
	var gotArchived []cartWithProduct
	for _, e := range archived {
		require.Equal(t, float64(priceChanged.Position), e.Data["price_changed_position"], "archived at the price change's position")
		require.Greater(t, e.Position, priceChanged.Position)
		gotArchived = append(gotArchived, cartWithProduct{uuid.MustParse(e.Data["cart_id"].(string)), uuid.MustParse(e.Data["item_id"].(string)), p})
		require.ElementsMatch(t, []string{"cart_id:" + e.Data["cart_id"].(string), "item_id:" + e.Data["item_id"].(string)}, e.Tags)
	}
	sortRows(gotArchived)
	require.Equal(t, want, gotArchived, "each item of p in an unsubmitted cart archived exactly once")

	head = s.Head(t)
	require.Empty(t, s.cartsWithProduct(t, p, head), "no item of p left in an unsubmitted cart")
	require.Len(t, s.cartsWithProduct(t, q, head), len(carts), "items of q untouched")

	answers := requireSameCartItems(t, s, append(slices.Clone(carts), submitted), head)
	for _, c := range carts {
		var v struct {
			TotalPrice string `json:"total_price"`
			Items      []struct {
				ProductID uuid.UUID `json:"product_id"`
			} `json:"items"`
		}
		require.NoError(t, json.Unmarshal([]byte(answers[c]), &v))
		require.Len(t, v.Items, 1, "cart %s keeps only its item of q", c)
		require.Equal(t, q, v.Items[0].ProductID)
		require.Equal(t, "3.5", v.TotalPrice)
	}
	require.Contains(t, itemIDs(t, s.Get(t, "/"+submitted.String()+"/cartitems")), submittedItem, "the submitted cart is untouched")
	require.Empty(t, ofType(s.CartEvents(t, submitted), "ItemArchived"))
}
