package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/slices/cart"
)

// The decision measured by scenario 4 and used as the store-level baseline
// of scenario 6: the shape of the cart's Add Item (slices/cart/add_item.go),
// whose decider is not exported. Its boundary is the cart's events and the
// product's inventory changes; a cart holds at most three items. Where Add
// Item refuses a full cart, this one removes the oldest item instead, so
// that a cart can be decided on again and again at the same size.

// toggleItem adds Item to Cart, or removes the cart's oldest item when the
// cart is full.
type toggleItem struct {
	Cart, Item, Product uuid.UUID
}

type toggleState struct {
	exists, submitted bool
	items             []uuid.UUID
	inventory         *int
}

var errSubmitted = errors.New("cart submitted")

var toggle = decide.Decider[toggleState, toggleItem]{
	Events: cart.Events,
	Query: func(c toggleItem) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{
			{Tags: []string{eventstore.Tag("cart_id", c.Cart)}},
			{Types: cart.Events.TypesOf(cart.InventoryChanged{}), Tags: []string{eventstore.Tag("product_id", c.Product)}},
		}}
	},
	Evolve: func(s toggleState, e any) toggleState {
		switch e := e.(type) {
		case cart.CartCreated:
			s.exists = true
		case cart.CartItemAdded:
			s.exists = true
			s.items = append(s.items, e.ItemID)
		case cart.CartItemRemoved:
			s.items = without(s.items, e.ItemID)
		case cart.ItemArchived:
			s.items = without(s.items, e.ItemID)
		case cart.CartCleared:
			s.items = nil
		case cart.CartSubmitted:
			s.submitted = true
		case cart.InventoryChanged:
			s.inventory = &e.Inventory
		}
		return s
	},
	Decide: func(s toggleState, c toggleItem) ([]any, error) {
		switch {
		case s.submitted:
			return nil, errSubmitted
		case len(s.items) >= cart.MaxItems:
			return []any{cart.CartItemRemoved{CartID: c.Cart, ItemID: s.items[0]}}, nil
		case s.inventory != nil && *s.inventory <= 0:
			return nil, cart.ErrOutOfStock
		}
		added := cart.CartItemAdded{CartID: c.Cart, ItemID: c.Item, ProductID: c.Product,
			Description: "benchmark item", Image: "https://example.invalid/item.png",
			Price: decimal.New(999, -2), Fingerprint: uuid.NewString()}
		if !s.exists {
			return []any{cart.CartCreated{CartID: c.Cart}, added}, nil
		}
		return []any{added}, nil
	},
}

func without(ids []uuid.UUID, id uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// story returns the events of one background cart: created, two items added,
// one removed, then submitted or cleared; now and then an inventory or price
// change of one of the products. All are encoded by cart.Events.
func story(products []uuid.UUID) []any {
	c, i1, i2 := newID(), newID(), newID()
	p1, p2 := products[rand.IntN(len(products))], products[rand.IntN(len(products))]
	price := decimal.New(int64(100+rand.IntN(9900)), -2)
	added := func(item, product uuid.UUID) cart.CartItemAdded {
		return cart.CartItemAdded{CartID: c, ItemID: item, ProductID: product, Description: "background item",
			Image: "https://example.invalid/item.png", Price: price, Fingerprint: uuid.NewString()}
	}
	events := []any{cart.CartCreated{CartID: c}, added(i1, p1), added(i2, p2), cart.CartItemRemoved{CartID: c, ItemID: i1}}
	if rand.IntN(2) == 0 {
		events = append(events, cart.CartSubmitted{CartID: c, TotalPrice: price,
			OrderedProducts: []cart.OrderedProduct{{ItemID: i2, ProductID: p2, Price: price}}})
	} else {
		events = append(events, cart.CartCleared{CartID: c})
	}
	switch rand.IntN(10) {
	case 0:
		events = append(events, cart.InventoryChanged{ProductID: p1, Inventory: rand.IntN(100)})
	case 1:
		events = append(events, cart.PriceChanged{ProductID: p2, OldPrice: price, NewPrice: price.Add(decimal.New(1, 0))})
	}
	return events
}

// fill appends background carts until the log holds about n events (it
// counts what it appends on top of have), from four goroutines, in appends
// of up to 1,000 events, and returns the new count. It reports progress
// every few seconds.
func (b *bench) fill(ctx context.Context, db *database, have, n int) (int, error) {
	if have >= n {
		return have, nil
	}
	products := make([]uuid.UUID, 1000)
	for i := range products {
		products[i] = newID()
	}
	start := time.Now()
	var appended atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	todo := int64(n - have)
	var claimed atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				// Claim up to 1,000 events' worth of the remaining work.
				prev := claimed.Add(1000) - 1000
				if prev >= todo {
					return
				}
				size := min(1000, int(todo-prev))
				events := make([]eventstore.Event, 0, 1000)
				for len(events) < size {
					encoded, err := cart.Events.EncodeAll(story(products))
					if err != nil {
						errc <- err
						cancel()
						return
					}
					if len(events)+len(encoded) > 1000 {
						break
					}
					events = append(events, encoded...)
				}
				if _, err := db.store.Append(ctx, events, nil); err != nil {
					errc <- fmt.Errorf("fill: %w", err)
					cancel()
					return
				}
				appended.Add(int64(len(events)))
			}
		})
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				a := appended.Load()
				rate := float64(a) / time.Since(start).Seconds()
				eta := time.Duration(float64(todo-a)/rate) * time.Second
				b.progress.printf("  filling: %d / %d events (%.0f/s, about %s left)", have+int(a), n, rate, eta.Round(time.Second))
			}
		}
	}()
	wg.Wait()
	close(done)
	select {
	case err := <-errc:
		return have + int(appended.Load()), err
	default:
	}
	total := have + int(appended.Load())
	if todo > 50_000 {
		b.progress.printf("  filled %d events in %s (%.0f/s)", appended.Load(), time.Since(start).Round(time.Second),
			float64(appended.Load())/time.Since(start).Seconds())
	}
	return total, nil
}

// vacuum brings the tables' statistics and visibility map up to date, so that
// autovacuum does not start in the middle of a measured phase.
func (b *bench) vacuum(ctx context.Context, db *database) error {
	start := time.Now()
	for _, table := range []string{"events", "event_keys"} {
		if _, err := db.pool.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
			return fmt.Errorf("vacuum %s: %w", table, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		b.progress.printf("  VACUUM ANALYZE took %s", d.Round(time.Second))
	}
	return nil
}

// seeded are carts stored with a history of four events (created, two items
// added, one removed) and a product with a known inventory: deciding on one
// reads five events.
type seeded struct {
	carts, products []uuid.UUID
}

func (b *bench) seed(ctx context.Context, db *database, n int) (seeded, int, error) {
	s := seeded{carts: make([]uuid.UUID, n), products: make([]uuid.UUID, n)}
	var events []eventstore.Event
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		_, err := db.store.Append(ctx, events, nil)
		events = events[:0]
		return err
	}
	total := 0
	for i := range n {
		c, p, i1, i2 := newID(), newID(), newID(), newID()
		s.carts[i], s.products[i] = c, p
		added := func(item uuid.UUID) cart.CartItemAdded {
			return cart.CartItemAdded{CartID: c, ItemID: item, ProductID: p, Description: "seeded item",
				Image: "https://example.invalid/item.png", Price: decimal.New(999, -2), Fingerprint: uuid.NewString()}
		}
		encoded, err := cart.Events.EncodeAll([]any{cart.InventoryChanged{ProductID: p, Inventory: 1_000_000},
			cart.CartCreated{CartID: c}, added(i1), added(i2), cart.CartItemRemoved{CartID: c, ItemID: i1}})
		if err != nil {
			return s, 0, err
		}
		events = append(events, encoded...)
		total += len(encoded)
		if len(events) >= 995 {
			if err := flush(); err != nil {
				return s, 0, err
			}
		}
	}
	return s, total, flush()
}

// decideOn runs the toggle decision on cart i of s.
func decideOn(ctx context.Context, store *eventstore.Store, s seeded, i int) error {
	k := i % len(s.carts)
	_, err := decide.Run(ctx, store, toggle, toggleItem{Cart: s.carts[k], Item: newID(), Product: s.products[k]})
	return err
}

// addItems measures add-item decisions on fresh carts from workers
// goroutines for d, each worker filling its own carts with three items, one
// after the other: what scenario 6's load generator does over HTTP.
func addItems(ctx context.Context, store *eventstore.Store, workers int, d time.Duration) (phase, error) {
	carts := make([]uuid.UUID, workers)
	done := make([]int, workers)
	return measure(ctx, workers, d, 0, func(w, i int) error {
		if done[w]%cart.MaxItems == 0 {
			carts[w] = newID()
		}
		done[w]++
		_, err := decide.Run(ctx, store, toggle, toggleItem{Cart: carts[w], Item: newID(), Product: newID()})
		return err
	})
}
