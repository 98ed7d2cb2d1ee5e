package eventstore_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

var (
	benchDuration = flag.Duration("bench.duration", 5*time.Second, "how long each measured phase of a benchmark runs")
	benchLarge    = flag.Int("bench.large", 1_000_000, "events in the table for the large case of BenchmarkDecisionLatency")
)

// measurement is what a phase of a benchmark saw.
type measurement struct {
	ops      int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (m measurement) perSecond() float64 { return float64(m.ops) / m.elapsed.Seconds() }

// measure runs op from the given number of goroutines for d and records the
// latency of every call. op gets the goroutine's index and its call count.
func measure(b *testing.B, writers int, d time.Duration, op func(w, i int) error) measurement {
	b.Helper()
	var wg sync.WaitGroup
	latencies := make([][]time.Duration, writers)
	errs := make([]error, writers)
	start := time.Now()
	deadline := start.Add(d)
	for w := range writers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					errs[w] = err
					return
				}
				latencies[w] = append(latencies[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		require.NoError(b, err)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	m := measurement{ops: len(all), elapsed: elapsed}
	if len(all) > 0 {
		m.p50, m.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return m
}

// BenchmarkConditionalAppend compares single-event conditional appends, each
// writer in a boundary of its own, with single-row INSERTs into a table of the
// same shape (same columns, constraints and indexes as events) at the same
// concurrency, on the same database, in the same run. Run it with
// -benchtime 1x: each phase runs for -bench.duration whatever b.N is.
func BenchmarkConditionalAppend(b *testing.B) {
	pool := eventstoretest.NewPool(b)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `CREATE TABLE raw_events (LIKE events INCLUDING ALL)`)
	require.NoError(b, err)
	store := eventstore.New(pool, eventstore.Options{})
	b.Cleanup(store.Close)

	b.Logf("%-8s %12s %12s %8s %10s %10s %10s %10s", "writers", "raw/s", "append/s", "ratio", "raw p50", "raw p99", "app p50", "app p99")
	for _, writers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			raw := measure(b, writers, *benchDuration, func(w, i int) error {
				_, err := pool.Exec(ctx, `INSERT INTO raw_events (id, type, tags, data, metadata) VALUES ($1, $2, $3, $4, $5)`,
					uuid.Must(uuid.NewV7()), "Measured", []string{fmt.Sprintf("writer:%d", w)}, []byte(`{"n":1}`), nil)
				return err
			})
			last := make([]int64, writers)
			tags := make([]string, writers)
			for w := range tags {
				tags[w] = fresh("writer")
			}
			ours := measure(b, writers, *benchDuration, func(w, i int) error {
				q := query(item{Tags: []string{tags[w]}})
				res, err := store.Append(ctx, []eventstore.Event{ev("Measured", tags[w])}, cond(q, last[w]))
				last[w] = res.Position
				return err
			})
			ratio := ours.perSecond() / raw.perSecond()
			b.ReportMetric(raw.perSecond(), "raw-inserts/s")
			b.ReportMetric(ours.perSecond(), "appends/s")
			b.ReportMetric(ratio, "ratio")
			b.Logf("%-8d %12.0f %12.0f %8.2f %10s %10s %10s %10s", writers, raw.perSecond(), ours.perSecond(), ratio,
				raw.p50, raw.p99, ours.p50, ours.p99)
		})
	}
}

// BenchmarkDecisionLatency measures a decision, read of a boundary of about
// five events plus a conditional append, with 10 thousand and then with
// -bench.large events in the table, and prints the ratio of the latencies:
// guarantee 6 says it stays close to 1.
func BenchmarkDecisionLatency(b *testing.B) {
	pool := eventstoretest.NewPool(b)
	ctx := context.Background()
	store := eventstore.New(pool, eventstore.Options{})
	b.Cleanup(store.Close)

	// 1,000 cart-like boundaries of four events, decided on in both phases.
	const boundaries = 1000
	carts := make([]string, boundaries)
	for i := range carts {
		carts[i] = fresh("cart_id")
	}
	seed := make([]eventstore.Event, 0, 4*boundaries)
	for _, c := range carts {
		for range 4 {
			seed = append(seed, ev("ItemAdded", c, productTag(rand.IntN(1000))))
		}
	}
	for chunk := range slices.Chunk(seed, 1000) {
		_, err := store.Append(ctx, chunk, nil)
		require.NoError(b, err)
	}

	decide := func(w, i int) error {
		c := carts[rand.IntN(boundaries)]
		q := query(item{Tags: []string{c}})
		events, err := store.Read(ctx, q, eventstore.ReadOptions{})
		if err != nil {
			return err
		}
		_, err = store.Append(ctx, []eventstore.Event{ev("ItemRemoved", c)}, cond(q, events[len(events)-1].Position))
		return err
	}
	fill(b, pool, store, 10_000)
	small := measure(b, 1, *benchDuration, decide)
	fill(b, pool, store, *benchLarge)
	large := measure(b, 1, *benchDuration, decide)

	b.ReportMetric(float64(small.p50.Microseconds()), "p50-10k-µs")
	b.ReportMetric(float64(large.p50.Microseconds()), "p50-large-µs")
	b.ReportMetric(float64(large.p50)/float64(small.p50), "p50-ratio")
	b.ReportMetric(float64(large.p99)/float64(small.p99), "p99-ratio")
	b.Logf("%-10s %10s %10s %10s", "events", "decisions/s", "p50", "p99")
	b.Logf("%-10d %10.0f %10s %10s", 10_000, small.perSecond(), small.p50, small.p99)
	b.Logf("%-10d %10.0f %10s %10s", *benchLarge, large.perSecond(), large.p50, large.p99)
	b.Logf("ratio %d/10k: p50 %.2f, p99 %.2f", *benchLarge, float64(large.p50)/float64(small.p50), float64(large.p99)/float64(small.p99))
}

func productTag(n int) string { return fmt.Sprintf("product_id:%d", n) }

// fill appends background events, cart-shaped (a fresh cart tag and one of
// 1,000 product tags each), until the table holds n events, then analyses it.
func fill(b *testing.B, pool *pgxpool.Pool, store *eventstore.Store, n int) {
	b.Helper()
	ctx := context.Background()
	var have int
	require.NoError(b, pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&have))
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for size := range work {
				events := make([]eventstore.Event, size)
				cart := fresh("cart_id")
				for i := range events {
					if i%5 == 0 {
						cart = fresh("cart_id")
					}
					events[i] = ev([]string{"CartCreated", "ItemAdded", "ItemRemoved", "CartSubmitted"}[i%4], cart, productTag(rand.IntN(1000)))
				}
				_, err := store.Append(ctx, events, nil)
				require.NoError(b, err)
			}
		})
	}
	for todo := n - have; todo > 0; todo -= 1000 {
		work <- min(todo, 1000)
	}
	close(work)
	wg.Wait()
	for _, table := range []string{"events", "event_keys"} {
		_, err := pool.Exec(ctx, "VACUUM ANALYZE "+table)
		require.NoError(b, err)
	}
	if n-have > 100_000 {
		b.Logf("filled %d events in %s", n-have, time.Since(start).Round(time.Second))
	}
}
