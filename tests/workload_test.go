package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The workload of the reliability tests: concurrent clients that drive one
// or more servers with cart and identity commands over HTTP, and a producer
// of inventory and price messages on Kafka. It records every command
// answered 2xx (with the ids it used) and every message the broker
// acknowledged, which the invariant checker then looks for in the log.

// longRun reports whether the long form of the reliability tests was asked
// for (make reliability sets RELIABILITY_LONG=1).
func longRun() bool { return os.Getenv("RELIABILITY_LONG") != "" }

// short picks the short or the long value of a reliability figure.
func short[T any](s, long T) T {
	if longRun() {
		return long
	}
	return s
}

// reliabilityEnv is the server environment of the reliability tests: every
// client is 127.0.0.1, so the per-address login limit must not bite.
func reliabilityEnv(extra map[string]string) map[string]string {
	env := map[string]string{"LOGIN_ATTEMPTS_PER_MINUTE": "1000000000", "PUBLISH_BUDGET": "30m"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// Ack is a command answered 2xx: what it was, the ids it used and the
// position of its last event.
type Ack struct {
	Kind     string
	Cart     uuid.UUID
	Item     uuid.UUID
	User     uuid.UUID
	Position int64
}

// Produced is a Kafka message the broker acknowledged, with its coordinates.
type Produced struct {
	Topic      string
	Partition  int32
	Offset     int64
	Timestamp  time.Time
	Key, Value []byte
	Product    uuid.UUID
}

// kindStats are the figures of one kind of request.
type kindStats struct {
	sent, acked, rejected, unavailable, failed, unknown int
	latencies                                           []time.Duration
}

// Targets are the base URLs the clients spread their requests over; a test
// replaces them when a server restarts on new ports.
type Targets struct {
	mu   sync.Mutex
	urls []string
}

// Set replaces the targets.
func (ts *Targets) Set(urls ...string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.urls = slices.Clone(urls)
}

func (ts *Targets) pick(n int) string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.urls[n%len(ts.urls)]
}

// WorkloadOptions shape a workload.
type WorkloadOptions struct {
	Clients  int           // HTTP clients, each with its own carts
	Interval time.Duration // between two requests of one client
	Products int           // products the carts and messages use
	// KafkaInterval is the time between two produced messages; 0 produces
	// none.
	KafkaInterval time.Duration
	Broker        string // where to produce
}

// Workload runs clients and a producer until Stop, recording what was
// acknowledged. Its methods are safe for concurrent use.
type Workload struct {
	opts     WorkloadOptions
	targets  *Targets
	products []uuid.UUID
	http     *http.Client
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	acks     []Ack
	produced []Produced
	unsent   int // messages whose produce failed (they may still be stored)
	stats    map[string]*kindStats
}

// StartWorkload starts the clients and the producer.
func StartWorkload(t testing.TB, targets *Targets, opts WorkloadOptions) *Workload {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workload{
		opts: opts, targets: targets, cancel: cancel, stats: map[string]*kindStats{},
		// Short timeouts: a request to a dead server fails at once, one to
		// a stalled server gives up and counts as unknown.
		http: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: opts.Clients,
		}},
	}
	for range opts.Products {
		w.products = append(w.products, newID())
	}
	for i := range opts.Clients {
		w.wg.Go(func() { w.client(ctx, i) })
	}
	if opts.KafkaInterval > 0 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(opts.Broker), kgo.RecordRetries(3))
		if err != nil {
			t.Fatalf("workload producer: %v", err)
		}
		w.wg.Go(func() {
			defer cl.Close()
			w.producer(ctx, cl)
		})
	}
	t.Cleanup(w.Stop)
	return w
}

// Stop ends the workload and waits for its requests in flight.
func (w *Workload) Stop() {
	w.cancel()
	w.wg.Wait()
}

// every calls f every interval until ctx is done: a steady request rate.
func every(ctx context.Context, interval time.Duration, f func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

// client is one shopper: it fills a cart (sometimes removing an item or
// clearing it), submits it and starts another; now and then it registers
// a user and logs in. Whatever the answers, it carries on: a command
// without a 2xx answer is unknown, not acknowledged.
func (w *Workload) client(ctx context.Context, n int) {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))
	cart, items := newID(), []uuid.UUID(nil)
	var email string
	var user uuid.UUID
	every(ctx, w.opts.Interval, func() {
		base := w.targets.pick(n)
		switch r := rng.IntN(100); {
		case r < 5 || (r < 10 && email == ""):
			email = fmt.Sprintf("u-%s@example.com", newID())
			body := map[string]any{"email": email, "password": "a long and unusual phrase"}
			if res, ok := w.send(ctx, base, "register", "/users", body, Ack{}); ok {
				user = uuid.MustParse(res["user_id"].(string))
			} else {
				// Unanswered, it may still be stored, under a user id the
				// client never learnt: a login would be recorded under the
				// previous user's. Register another next time instead.
				email, user = "", uuid.Nil
			}
		case r < 10:
			body := map[string]any{"email": email, "password": "a long and unusual phrase"}
			w.send(ctx, base, "login", "/login", body, Ack{User: user})
		case r < 15 && len(items) > 0:
			item := items[rng.IntN(len(items))]
			body := map[string]any{"cart_id": cart, "item_id": item}
			if _, ok := w.send(ctx, base, "removeitem", "/removeitem/"+cart.String(), body, Ack{Cart: cart, Item: item}); ok {
				items = slices.DeleteFunc(items, func(i uuid.UUID) bool { return i == item })
			}
		case r < 18 && len(items) > 0:
			if _, ok := w.send(ctx, base, "clearcart", "/clearcart/"+cart.String(), nil, Ack{Cart: cart}); ok {
				items = nil
			}
		case r < 70 && len(items) < 3:
			item, product := newID(), w.products[rng.IntN(len(w.products))]
			body := map[string]any{"cart_id": cart, "item_id": item, "product_id": product,
				"description": "product", "image": "p.png", "price": fmt.Sprintf("%d.%02d", 1+rng.IntN(50), rng.IntN(100))}
			if _, ok := w.send(ctx, base, "additem", "/additem/"+cart.String(), body, Ack{Cart: cart, Item: item}); ok {
				items = append(items, item)
			} else {
				cart, items = newID(), nil // full, out of stock, or unknown: a new cart
			}
		case len(items) > 0:
			w.send(ctx, base, "submitcart", "/submitcart/"+cart.String(), map[string]any{"cart_id": cart}, Ack{Cart: cart})
			cart, items = newID(), nil
		}
	})
}

// send posts body and records the outcome under kind; on 2xx it records ack
// with the answer's position and returns the answer.
func (w *Workload) send(ctx context.Context, base, kind, path string, body any, ack Ack) (map[string]any, bool) {
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = strings.NewReader(string(raw))
	}
	// Not ctx: Stop lets the requests in flight finish rather than cut
	// them (the server would log each cut as a failed request).
	req, _ := http.NewRequest(http.MethodPost, base+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := w.http.Do(req)
	var answer map[string]any
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNoContent {
			err = nil
		}
	}
	took := time.Since(start)

	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats[kind]
	if st == nil {
		st = &kindStats{}
		w.stats[kind] = st
	}
	st.sent++
	switch {
	case err != nil:
		st.unknown++
		return nil, false
	case resp.StatusCode/100 == 2:
		st.acked++
		st.latencies = append(st.latencies, took)
		if p, ok := answer["position"].(float64); ok {
			ack.Position = int64(p)
		}
		if id, ok := answer["user_id"].(string); ok {
			ack.User = uuid.MustParse(id)
		}
		ack.Kind = kind
		w.acks = append(w.acks, ack)
		return answer, true
	case resp.StatusCode == http.StatusServiceUnavailable:
		st.unavailable++
	case resp.StatusCode/100 == 4:
		st.rejected++ // a business answer (409, 404): nothing stored
		st.latencies = append(st.latencies, took)
	default:
		st.failed++
	}
	return nil, false
}

// producer produces inventory changes (mostly) and price changes for the
// workload's products, keyed by product, and records those acknowledged.
func (w *Workload) producer(ctx context.Context, cl *kgo.Client) {
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	every(ctx, w.opts.KafkaInterval, func() {
		product := w.products[rng.IntN(len(w.products))]
		rec := &kgo.Record{Topic: "inventories", Key: []byte(product.String()),
			Value: fmt.Appendf(nil, `{"product_uuid":%q,"inventory":%d}`, product, rng.IntN(40))}
		if rng.IntN(4) == 0 {
			rec.Topic = "price-changes"
			rec.Value = fmt.Appendf(nil, `{"product_uuid":%q,"old_price":"%d","new_price":"%d.5"}`, product, rng.IntN(50), rng.IntN(50))
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cl.ProduceSync(pctx, rec).FirstErr()
		cancel()
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
				w.unsent++
			}
			return
		}
		w.produced = append(w.produced, Produced{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
			Timestamp: rec.Timestamp, Key: rec.Key, Value: rec.Value, Product: product})
	})
}

// Acks returns the commands acknowledged so far.
func (w *Workload) Acks() []Ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

// Produced returns the messages acknowledged by the broker so far.
func (w *Workload) Produced() []Produced {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.produced)
}

// Report logs the figures of the workload, per kind of request, and
// returns the totals: requests sent and acknowledged.
func (w *Workload) Report(t testing.TB) (sent, acked int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	kinds := make([]string, 0, len(w.stats))
	for k := range w.stats {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		st := w.stats[k]
		sent, acked = sent+st.sent, acked+st.acked
		p50, p95, p99 := percentiles(st.latencies)
		t.Logf("%-10s sent %5d  2xx %5d  4xx %4d  503 %4d  5xx %3d  unknown %4d  error rate %5.1f%%  p50 %6.1fms  p95 %6.1fms  p99 %6.1fms",
			k, st.sent, st.acked, st.rejected, st.unavailable, st.failed, st.unknown, st.errorRate()*100, ms(p50), ms(p95), ms(p99))
	}
	t.Logf("requests sent %d, acknowledged %d; Kafka messages acknowledged %d, unacknowledged %d", sent, acked, len(w.produced), w.unsent)
	return sent, acked
}

// errorRate is the share of requests answered neither 2xx nor 4xx.
func (st *kindStats) errorRate() float64 {
	if st.sent == 0 {
		return 0
	}
	return float64(st.unavailable+st.failed+st.unknown) / float64(st.sent)
}

// percentiles returns the 50th, 95th and 99th percentiles of ds (nearest
// rank).
func percentiles(ds []time.Duration) (p50, p95, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return at(0.50), at(0.95), at(0.99)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
