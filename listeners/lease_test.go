package listeners_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/listeners"
)

// TestOneRunnerAtATime is guarantee 4 under churn: three replicas run three
// listeners while writers append; round after round the replica holding a
// listener stops, cleanly or as if killed, and a new replica joins. A
// handler of one listener never runs in two replicas at once, and each
// listener handles every event once, in order, across the handovers.
func TestOneRunnerAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := fresh("b")
	queries := map[string]eventstore.Query{
		"tagged":     tagQuery(b),
		"typed":      {Items: []eventstore.QueryItem{{Types: []string{"Typed"}}}},
		"everything": eventstore.All,
	}
	names := []string{"tagged", "typed", "everything"}
	inHandler := map[string]*atomic.Int32{}
	for _, name := range names {
		inHandler[name] = &atomic.Int32{}
	}
	var overlaps atomic.Int64
	listenersFor := func(holder string) []listeners.Listener {
		var ls []listeners.Listener
		for _, name := range names {
			rec := record(name, holder)
			ls = append(ls, listeners.Listener{Name: name, Query: queries[name],
				Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
					if inHandler[name].Add(1) != 1 {
						overlaps.Add(1)
					}
					defer inHandler[name].Add(-1)
					return rec(ctx, tx, events)
				}})
		}
		return ls
	}
	type replica struct {
		rt   *listeners.Runtime
		stop func()
	}
	startReplica := func(holder string) replica {
		opts := options(t, holder)
		opts.LeaseDuration = 300 * time.Millisecond
		opts.PollInterval = 5 * time.Millisecond
		opts.BatchSize = 5
		rt, stop := e.start(t, opts, listenersFor(holder)...)
		return replica{rt, stop}
	}
	replicas := []replica{startReplica("h0"), startReplica("h1"), startReplica("h2")}

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				events := []eventstore.Event{ev("E", b), ev("Typed", fresh("o")), ev("Other")}
				if _, err := e.store.Append(ctx, events[(w+i)%3:], nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}

	for round := range 8 {
		// The writers and every listener make progress: whoever was stopped
		// last round has been replaced.
		target := e.head(t) + 30
		waitUntil(t, "the writers write", func() bool { return e.head(t) >= target })
		for _, name := range names {
			waitFor(t, replicas[0].rt, name, target)
		}
		// Stop the replica that runs one of the listeners, cleanly or as if killed.
		name, victim := names[round%len(names)], -1
		waitUntil(t, "a replica runs "+name, func() bool {
			for i, r := range replicas {
				if status(t, r.rt, name).Running {
					victim = i
				}
			}
			return victim >= 0
		})
		if round%2 == 1 {
			listeners.SimulateCrash(replicas[victim].rt)
		}
		replicas[victim].stop()
		replicas[victim] = startReplica(fmt.Sprintf("h%d", round+len(replicas)))
	}
	close(stop)
	writers.Wait()

	head := e.head(t)
	for _, name := range names {
		waitFor(t, replicas[0].rt, name, head)
		require.Equal(t, e.positions(t, queries[name]), e.handled(t, name), "%s: every event once, in order", name)
	}
	require.Zero(t, overlaps.Load(), "two replicas ran one listener's handler at once")
	holders := e.column(t, `SELECT count(DISTINCT holder) FROM handled`)
	require.Greater(t, holders[0], int64(2), "the listeners moved between replicas")
}

// TestCleanStopHandsOverAtOnce: a replica that stops releases its leases and
// says so; a standby takes over at once although the lease and the poll
// interval are an hour long.
func TestCleanStopHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	q := tagQuery(b)
	slow := func(holder string) listeners.Options {
		opts := options(t, holder)
		opts.LeaseDuration = time.Hour
		opts.PollInterval = time.Hour
		return opts
	}
	first, stopFirst := e.start(t, slow("first"), recorder("moving", "first", q))
	waitUntil(t, "the first replica runs the listener", func() bool { return status(t, first, "moving").Running })
	second, _ := e.start(t, slow("second"), recorder("moving", "second", q))

	stopFirst()
	start := time.Now()
	waitUntil(t, "the second replica takes over", func() bool { return status(t, second, "moving").Running })
	require.Less(t, time.Since(start), 5*time.Second)

	pos := e.append(t, ev("E", b))
	waitFor(t, second, "moving", pos)
	require.Equal(t, []int64{pos}, e.column(t, `SELECT position FROM handled WHERE holder = 'second'`))
}

// TestDeadHolderIsReplacedAfterItsLease: a replica that dies without
// releasing (killed) keeps its lease until it expires; a standby takes over
// then, not before and not much later, and handles what was appended since.
func TestDeadHolderIsReplacedAfterItsLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	q := tagQuery(b)
	opts := func(holder string) listeners.Options {
		opts := options(t, holder)
		opts.LeaseDuration = time.Second
		opts.PollInterval = time.Hour // the standby wakes when the lease ends
		return opts
	}
	dead, kill := e.start(t, opts("dead"), recorder("orphan", "dead", q))
	waitUntil(t, "the first replica runs the listener", func() bool { return status(t, dead, "orphan").Running })
	standby, _ := e.start(t, opts("standby"), recorder("orphan", "standby", q))

	listeners.SimulateCrash(dead)
	kill()
	st := status(t, standby, "orphan")
	require.Equal(t, "dead", st.Holder, "the lease outlives its holder")
	leaseEnd := st.LeaseUntil

	pos := e.append(t, ev("E", b))
	waitFor(t, standby, "orphan", pos)
	var holder string
	var at time.Time
	require.NoError(t, e.pool.QueryRow(context.Background(),
		`SELECT holder, at FROM handled WHERE position = $1`, pos).Scan(&holder, &at))
	require.Equal(t, "standby", holder)
	require.False(t, at.Before(leaseEnd), "taken over at %v, before the lease ended at %v", at, leaseEnd)
	require.Less(t, at.Sub(leaseEnd), 2*time.Second, "taken over promptly once the lease ended")
}

// TestStalledHolderIsFencedOut: the holder stalls in the middle of a batch
// (a pause, a partition) with its effects written but not committed.
// PostgreSQL ends its session once it has sat idle in the transaction for
// the lease duration, the standby takes over when the lease expires and
// handles the batch, and when the stalled replica wakes up its work is gone
// and it runs nothing more: each event is handled once, by the standby.
func TestStalledHolderIsFencedOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	q := tagQuery(b)
	opts := func(holder string) listeners.Options {
		opts := options(t, holder)
		opts.LeaseDuration = time.Second
		return opts
	}
	stall := e.append(t, ev("Before", b)) + 1 // the next event's position
	stalled, wake := make(chan struct{}), make(chan struct{})
	defer close(wake)
	var stalledOnce sync.Once
	rec := record("stalling", "stalled")
	stalling, _ := e.start(t, opts("stalled"), listeners.Listener{Name: "stalling", Query: q,
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			if err := rec(ctx, tx, events); err != nil {
				return err
			}
			for _, ev := range events {
				if ev.Position == stall {
					stalledOnce.Do(func() {
						close(stalled)
						select {
						case <-wake:
						case <-ctx.Done():
						}
					})
				}
			}
			return nil
		}})
	waitFor(t, stalling, "stalling", stall-1)
	standby, _ := e.start(t, opts("standby"), recorder("stalling", "standby", q))

	require.Equal(t, stall, e.append(t, ev("Stall", b)))
	<-stalled
	require.True(t, status(t, stalling, "stalling").Running)
	waitFor(t, standby, "stalling", stall)
	wake <- struct{}{}
	waitUntil(t, "the stalled replica notices it lost the lease", func() bool {
		return !status(t, stalling, "stalling").Running
	})

	pos := e.append(t, ev("After", b))
	waitFor(t, standby, "stalling", pos)
	require.Equal(t, e.positions(t, q), e.handled(t, "stalling"))
	require.Equal(t, []int64{stall, pos}, e.column(t, `SELECT position FROM handled WHERE holder = 'standby' ORDER BY seq`))
	require.True(t, status(t, standby, "stalling").Running)
}
