package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dcbkit/dcbkit/eventstore"
)

func TestPercentileIsNearestRank(t *testing.T) {
	t.Parallel()
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond // 100ms … 1ms, unsorted
	}
	for _, c := range []struct {
		q    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := percentile(ds, c.q); got != c.want {
			t.Errorf("p%d = %s, want %s", c.q, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %s, want 0", got)
	}
}

func TestSpreadIsMedianAndRangeAndJudgedByTheMedian(t *testing.T) {
	t.Parallel()
	odd := spreadOf([]float64{0.58, 0.44, 0.47, 0.61, 0.46})
	if odd != (spread{median: 0.47, low: 0.44, high: 0.61}) {
		t.Errorf("spread of 5 rounds = %+v", odd)
	}
	if even := spreadOf([]float64{0.6, 0.4, 0.5, 0.7}); even.median != 0.55 {
		t.Errorf("median of 4 rounds = %v, want 0.55", even.median)
	}

	var x row
	x.judgeRounds("raw", odd, "≥ 0.50", atLeast(0.5))
	if x.Verdict != "MISS" || !x.Straddles || *x.Ratio != 0.47 || x.RatioRange[0] != 0.44 || x.RatioRange[1] != 0.61 {
		t.Errorf("judged %+v: want MISS by the median, straddling, range 0.44–0.61", x)
	}
	if got := misses(&results{Rows: []row{x}}); len(got) != 1 || !strings.Contains(got[0], "some rounds met the target") {
		t.Errorf("misses = %q, want the straddle said", got)
	}
	x = row{}
	x.judgeRounds("raw", spread{median: 0.9, low: 0.8, high: 1}, "≥ 0.70", atLeast(0.7))
	if x.Verdict != "PASS" || x.Straddles {
		t.Errorf("judged %+v: want PASS, not straddling", x)
	}
	x = row{}
	x.judgeRounds("raw", odd, "", nil)
	if x.Verdict != "info" || x.Straddles || len(x.RatioRange) != 2 {
		t.Errorf("judged %+v: want info with a range", x)
	}
}

func TestMeasureCountsSuccessesFailuresAndStopsOnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := measure(ctx, 4, 0, 100, func(w, i int) error {
		if i%4 == 0 {
			return errCounted
		}
		return nil
	})
	if err != nil || p.ops != 75 || p.failed != 25 {
		t.Fatalf("ops %d, failed %d, err %v; want 75, 25, nil", p.ops, p.failed, err)
	}
	boom := os.ErrClosed
	if _, err := measure(ctx, 2, time.Minute, 0, func(w, i int) error { return boom }); err != boom {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

// TestVerifyCountersFindsALostUpdate stores a boundary whose sequence
// numbers repeat, as two writers deciding on the same state would, and
// checks that the verification of scenario 2 reports it.
func TestVerifyCountersFindsALostUpdate(t *testing.T) {
	ctx := context.Background()
	db := testDatabase(t)
	good, bad := tagOf("counter"), tagOf("counter")
	for _, e := range []struct {
		tag string
		seq int
	}{{good, 1}, {good, 2}, {good, 3}, {bad, 1}, {bad, 2}, {bad, 2}} {
		data, _ := json.Marshal(counted{Seq: e.seq})
		if _, err := db.store.Append(ctx, []eventstore.Event{{Type: "Counted", Tags: []string{e.tag}, Data: data}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	stored, violations, err := verifyCounters(ctx, db.store, []string{good, bad})
	if err != nil {
		t.Fatal(err)
	}
	if stored != 6 || len(violations) != 1 || !strings.Contains(violations[0], bad) {
		t.Fatalf("stored %d, violations %q; want 6 and one violation in %s", stored, violations, bad)
	}
}

// TestToggleKeepsCartsAtMostThreeItems runs the decision of scenario 4 on a
// seeded cart and checks the cart's size through the stored events.
func TestToggleKeepsCartsAtMostThreeItems(t *testing.T) {
	ctx := context.Background()
	db := testDatabase(t)
	b := &bench{progress: &progress{start: time.Now(), out: os.Stderr}}
	carts, n, err := b.seed(ctx, db, 1)
	if err != nil || n != 5 {
		t.Fatalf("seeded %d events, err %v; want 5", n, err)
	}
	for i := range 6 {
		if err := decideOn(ctx, db.store, carts, i); err != nil {
			t.Fatal(err)
		}
	}
	events, err := db.store.Read(ctx, toggle.Query(toggleItem{Cart: carts.carts[0], Product: carts.products[0]}), eventstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	// Seeded with one item: add, add (full), remove, add, remove, add.
	want := "InventoryChanged CartCreated CartItemAdded CartItemAdded CartItemRemoved " +
		"CartItemAdded CartItemAdded CartItemRemoved CartItemAdded CartItemRemoved CartItemAdded"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
}

// testDatabase creates a dedicated, migrated database for t on the server
// of DATABASE_URL, dropped when t ends.
func testDatabase(t *testing.T) *database {
	t.Helper()
	server := os.Getenv("DATABASE_URL")
	if server == "" {
		server = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	name := "dcbkit_bench_test_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	db, err := createDatabase(context.Background(), server, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.close()
		if err := dropDatabase(server, name); err != nil {
			t.Error(err)
		}
	})
	return db
}
