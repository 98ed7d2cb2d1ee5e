package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/listeners"
	"github.com/dcbkit/dcbkit/slices/cart"
)

// scenarioDecisions is scenario 4, and scenario 5 on the way: decisions (read
// a cart of five events, fold, decide, append on condition) by one decider,
// with b.sizes[0], [1] and [2] events in the table. Each size gets fresh
// seeded carts, and every cart gets the same number of decisions, so the
// boundaries read are the same size at every size of the log. At the
// smallest size it also measures add-item decisions at 32 deciders, the
// baseline of scenario 6; at the middle size (1 million) it replays the
// cart_items listener over the log (scenario 5).
func (b *bench) scenarioDecisions(ctx context.Context, db *database, replay bool) error {
	have := 0
	var first phase
	for n, size := range b.sizes {
		b.progress.printf("4 decisions: filling to %d events", size)
		var err error
		if have, err = b.fill(ctx, db, have, size-b.seedCarts*5); err != nil {
			return err
		}
		carts, seededEvents, err := b.seed(ctx, db, b.seedCarts)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		have += seededEvents
		if err := b.vacuum(ctx, db); err != nil {
			return err
		}
		if err := settle(ctx, db.pool); err != nil {
			return err
		}
		count := b.decisionsPerCart * b.seedCarts
		b.progress.printf("4 decisions with %d events in the log: %d decisions, 1 decider, after one per cart to warm up", have, count)
		warmed, err := measure(ctx, 1, 0, b.seedCarts, func(w, i int) error { return decideOn(ctx, db.store, carts, i) })
		if err != nil {
			return fmt.Errorf("decisions at %d: %w", size, err)
		}
		var meter wal
		walBefore, err := walPosition(ctx, db.pool)
		if err != nil {
			return err
		}
		p, err := measure(ctx, 1, 0, count, func(w, i int) error { return decideOn(ctx, db.store, carts, i) })
		if err != nil {
			return fmt.Errorf("decisions at %d: %w", size, err)
		}
		walAfter, err := walPosition(ctx, db.pool)
		if err != nil {
			return err
		}
		meter.bytes = walAfter - walBefore
		have += warmed.ops + p.ops // one event per decision: removals, and additions to existing carts
		x := b.res.add(phaseRow("4", "decision, "+humanCount(size)+" events", 1, "decision", p))
		x.Extra = map[string]any{"events_in_log": have, "wal_bytes_per_decision": meter.per(p)}
		if n == 0 {
			first = p
			x.Verdict = "baseline"
			x.Notes = fmt.Sprintf("%d events in the log; WAL %s/decision", have, bytesOf(meter.per(p)))
		} else {
			ratio := float64(p.p50) / float64(first.p50)
			p99 := float64(p.p99) / float64(first.p99)
			x.judge("p50 at "+humanCount(b.sizes[0]), ratio, "p50 ≤ 1.25", ratio <= 1.25)
			x.Notes = fmt.Sprintf("p99 ratio %.2f; %d events in the log; WAL %s/decision", p99, have, bytesOf(meter.per(p)))
			x.Extra["p99_ratio"] = p99
		}
		b.progress.printf("  %.0f decisions/s, p50 %s, p99 %s", p.perSecond(), p.p50, p.p99)

		if n == 0 {
			if err := b.addItemBaseline(ctx, db); err != nil {
				return err
			}
			have += b.addItemEvents
		}
		if n == 1 && replay {
			if err := b.scenarioReplay(ctx, db); err != nil {
				return err
			}
		}
	}
	return nil
}

// addItemBaseline measures add-item decisions at 32 deciders, each filling
// fresh carts with three items: scenario 6 without HTTP.
func (b *bench) addItemBaseline(ctx context.Context, db *database) error {
	if err := settle(ctx, db.pool); err != nil {
		return err
	}
	b.progress.printf("4 add-item decisions on fresh carts, 32 deciders, %s", b.phase)
	if _, err := addItems(ctx, db.store, 32, b.warm()); err != nil {
		return fmt.Errorf("add-item decisions: %w", err)
	}
	p, err := addItems(ctx, db.store, 32, b.phase)
	if err != nil {
		return fmt.Errorf("add-item decisions: %w", err)
	}
	x := b.res.add(phaseRow("4", "add-item decision, fresh carts (store level)", 32, "decision", p))
	x.Verdict = "baseline"
	x.Notes = "baseline of 6"
	b.addItemRate = p.perSecond()
	b.addItemEvents = p.ops * 4 / 3 // a cart's first decision appends two events
	b.progress.printf("  %.0f decisions/s, p50 %s, p99 %s", p.perSecond(), p.p50, p.p99)
	return nil
}

// scenarioReplay is scenario 5: the cart_items listener replayed from
// checkpoint 0 to the head of the log, against reading and decoding the same
// events (store.Stream with the listener's query, cart.Events.Decode) with no
// projection.
func (b *bench) scenarioReplay(ctx context.Context, db *database) error {
	l := cart.CartItemsListener()
	head, err := db.store.Head(ctx)
	if err != nil {
		return err
	}
	if err := settle(ctx, db.pool); err != nil {
		return err
	}
	b.progress.printf("5 replay baseline: stream and decode the cart_items events of %d", head)
	start := time.Now()
	events := 0
	for e, err := range db.store.Stream(ctx, l.Query, eventstore.ReadOptions{}) {
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		if _, err := cart.Events.Decode(e); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		events++
	}
	base := phase{ops: events, elapsed: time.Since(start)}
	x := b.res.add(phaseRow("5", "read + decode, no projection", 1, "event", base))
	x.Verdict = "baseline"
	x.Notes = fmt.Sprintf("%d events of %d in %s", events, head, base.elapsed.Round(time.Millisecond))
	b.progress.printf("  %d events in %s (%.0f/s)", events, base.elapsed.Round(time.Millisecond), base.perSecond())

	if err := settle(ctx, db.pool); err != nil {
		return err
	}
	b.progress.printf("5 replay: cart_items listener from checkpoint 0 to %d", head)
	rt := listeners.New(db.pool, db.store, listeners.Options{Holder: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, l)
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	start = time.Now()
	go func() {
		defer close(ran)
		_ = rt.Run(runCtx)
	}()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	reached := make(chan error, 1)
	go func() {
		_, err := rt.WaitFor(waitCtx, l.Name, head)
		reached <- err
	}()
wait:
	for {
		select {
		case err = <-reached:
			break wait
		case <-tick.C:
			if st, err := rt.Status(ctx); err == nil && len(st) == 1 {
				b.progress.printf("  cart_items at %d of %d", st[0].Checkpoint, head)
			}
		}
	}
	elapsed := time.Since(start)
	stop()
	<-ran
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	p := phase{ops: events, elapsed: elapsed}
	x = b.res.add(phaseRow("5", "cart_items listener replay", 1, "event", p))
	ratio := p.perSecond() / base.perSecond()
	x.judge("read + decode", ratio, "≥ 0.30", ratio >= 0.3)
	x.Notes = fmt.Sprintf("%d events in %s", events, elapsed.Round(time.Millisecond))
	b.progress.printf("  %d events in %s (%.0f/s): ratio %.2f", events, elapsed.Round(time.Millisecond), p.perSecond(), ratio)
	return nil
}

func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
