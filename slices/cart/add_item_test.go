package cart

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/gwt"
)

func TestAddItemRules(t *testing.T) {
	t.Parallel()
	bothWays(t, addItem, func(t *testing.T, spec gwt.Scenario[addItemState, AddItem]) {
		t.Run("RejectsSubmittedCart", func(t *testing.T) {
			c, p := newID(), newID()
			first := item(c, p, "1.00")
			spec.Given(CartCreated{c}, first, CartSubmitted{CartID: c, TotalPrice: money("1.00"),
				OrderedProducts: []OrderedProduct{{first.ItemID, p, first.Price}}}).
				When(add(c, p)).ThenError(t, ErrCartSubmitted)
		})
		t.Run("RejectsFourthItem", func(t *testing.T) {
			c, p := newID(), newID()
			spec.Given(CartCreated{c}, item(c, p, "1"), item(c, p, "2"), item(c, p, "3")).
				When(add(c, p)).ThenError(t, ErrCartFull)
		})
		t.Run("RejectsItemAlreadyInCart", func(t *testing.T) {
			c, p := newID(), newID()
			it := item(c, p, "1")
			cmd := add(c, p)
			cmd.ItemID = it.ItemID
			spec.Given(CartCreated{c}, it).When(cmd).ThenError(t, ErrItemAlreadyInCart)
		})
		t.Run("RejectsProductOutOfStock", func(t *testing.T) {
			c, p := newID(), newID()
			spec.Given(InventoryChanged{p, 5}, InventoryChanged{p, 0}).When(add(c, p)).ThenError(t, ErrOutOfStock)
		})
		t.Run("UnknownInventoryDoesNotBlock", func(t *testing.T) {
			c, p := newID(), newID()
			cmd := add(c, p)
			spec.Given(InventoryChanged{newID(), 0}).When(cmd).Then(t, CartCreated{c}, added(cmd))
		})
		t.Run("CreatesCartWithFirstItem", func(t *testing.T) {
			c, p := newID(), newID()
			cmd := add(c, p)
			spec.Given(InventoryChanged{p, 1}).When(cmd).Then(t, CartCreated{c}, added(cmd))
		})
		t.Run("AddsToExistingCart", func(t *testing.T) {
			c, p := newID(), newID()
			cmd := add(c, p)
			spec.Given(CartCreated{c}, item(c, p, "1"), item(c, p, "2")).When(cmd).Then(t, added(cmd))
		})
		t.Run("RemovedArchivedAndClearedItemsFreeTheirPlace", func(t *testing.T) {
			c, p := newID(), newID()
			a, b, d := item(c, p, "1"), item(c, p, "2"), item(c, p, "3")
			cmd := add(c, p)
			spec.Given(CartCreated{c}, a, b, d, CartItemRemoved{c, a.ItemID}, ItemArchived{c, b.ItemID, 7}).
				When(cmd).Then(t, added(cmd))
			c = newID()
			cmd = add(c, p)
			spec.Given(CartCreated{c}, item(c, p, "1"), item(c, p, "2"), item(c, p, "3"), CartCleared{c}).
				When(cmd).Then(t, added(cmd))
		})
	})
}

func add(c, p [16]byte) AddItem {
	return AddItem{CartID: c, ItemID: newID(), ProductID: p, Description: "d", Image: "i.png", Price: money("9.99"), Fingerprint: "fp"}
}

func added(c AddItem) CartItemAdded {
	return CartItemAdded{CartID: c.CartID, ItemID: c.ItemID, ProductID: c.ProductID, Description: c.Description,
		Image: c.Image, Price: c.Price, Fingerprint: c.Fingerprint}
}

func TestAddItemHTTP(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	api := newClient(t, &Service{Store: store})
	c, i, p := newID(), newID(), newID()
	status, body := api.do("POST", "/additem/"+c.String(), map[string]any{
		"cart_id": c, "item_id": i, "product_id": p, "description": "Tea", "image": "tea.png", "price": 12.34,
	})
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, c.String(), body["cart_id"])
	pos := int64(body["position"].(float64))

	stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c)}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 2)
	require.Equal(t, pos, stored[1].Position, "the position answered is the last event's")
	v, err := Events.Decode(stored[1])
	require.NoError(t, err)
	got := v.(CartItemAdded)
	require.Equal(t, "12.34", got.Price.String())
	require.NotEmpty(t, got.Fingerprint, "the server sets the fingerprint")
	require.Equal(t, []string{cartTag(c), "item_id:" + i.String(), productTag(p)}, stored[1].Tags)

	status, body = api.do("POST", "/additem/"+c.String(), map[string]any{
		"cart_id": c, "item_id": i, "product_id": p, "description": "Tea", "image": "tea.png", "price": "12.34",
	})
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "item_already_in_cart", body["code"])
}

// TestConcurrentAddItems: 50 concurrent requests with distinct items for one
// empty cart: exactly 3 accepted, 47 answered cart_full, and the log agrees.
func TestConcurrentAddItems(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	api := newClient(t, &Service{Store: store})
	for round := range 5 {
		c, p := newID(), newID()
		statuses := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				status, body := api.do("POST", "/additem/"+c.String(), map[string]any{
					"cart_id": c, "item_id": newID(), "product_id": p, "description": "d", "image": "i", "price": "1",
				})
				mu.Lock()
				defer mu.Unlock()
				statuses[fmt.Sprintf("%d %v", status, body["code"])]++
			})
		}
		wg.Wait()
		require.Equal(t, map[string]int{"200 <nil>": 3, "409 cart_full": 47}, statuses, "round %d", round)
		stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c)}}, eventstore.ReadOptions{})
		require.NoError(t, err)
		types := map[string]int{}
		for _, e := range stored {
			types[e.Type]++
		}
		require.Equal(t, map[string]int{"CartCreated": 1, "CartItemAdded": 3}, types, "round %d", round)
	}
}
