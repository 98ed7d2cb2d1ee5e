package listeners_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/listeners"
)

func nop(context.Context, pgx.Tx, []eventstore.StoredEvent) error { return nil }

// TestNewRefusesWiringMistakes: names are checkpoint keys, so they must be
// present, unique and not "all"; a listener needs a handler and a valid query.
func TestNewRefusesWiringMistakes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := listeners.Listener{Name: "ok", Handle: nop}
	for name, ls := range map[string][]listeners.Listener{
		"EmptyName":    {{Handle: nop}},
		"ReservedName": {{Name: "all", Handle: nop}},
		"Duplicate":    {ok, ok},
		"NoHandle":     {{Name: "x"}},
		"BadQuery":     {{Name: "x", Handle: nop, Query: tagQuery("")}},
	} {
		t.Run(name, func(t *testing.T) {
			require.Panics(t, func() { listeners.New(e.pool, e.store, listeners.Options{}, ls...) })
		})
	}
	rt := listeners.New(e.pool, e.store, listeners.Options{}, ok, listeners.Listener{Name: "other", Handle: nop})
	require.Equal(t, []string{"ok", "other"}, rt.Names())
}

// TestBatchesInPositionOrder: the handler gets the matching events in
// position order, in batches of at most BatchSize, each once; and when the
// listener is caught up its checkpoint is the head, even when the last events
// do not match its query.
func TestBatchesInPositionOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	q := tagQuery(b)
	for i := range 10 {
		e.append(t, ev("Match", b), ev("Other", fresh("o")))
		if i%3 == 0 {
			e.append(t, ev("Other", fresh("o")))
		}
	}

	var mu sync.Mutex
	var batches [][]int64
	opts := options(t, "r")
	opts.BatchSize = 3
	rt, _ := e.start(t, opts, listeners.Listener{Name: "batches", Query: q,
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			batch := make([]int64, len(events))
			for i, ev := range events {
				batch[i] = ev.Position
			}
			mu.Lock()
			batches = append(batches, batch)
			mu.Unlock()
			return record("batches", "r")(ctx, tx, events)
		}})
	head := e.head(t)
	require.Equal(t, head, waitFor(t, rt, "batches", head), "caught up means at the head")

	mu.Lock()
	var flat []int64
	for _, batch := range batches {
		require.NotEmpty(t, batch)
		require.LessOrEqual(t, len(batch), 3)
		flat = append(flat, batch...)
	}
	n := len(batches)
	mu.Unlock()
	require.Equal(t, e.positions(t, q), flat, "every matching event once, in position order")
	require.Equal(t, flat, e.handled(t, "batches"))

	// Events the listener does not match still move its checkpoint, without
	// calling the handler: a reader waiting for their position is not stuck.
	last := e.append(t, ev("Other", fresh("o")), ev("Other", fresh("o")))
	require.Equal(t, last, waitFor(t, rt, "batches", last))
	st := status(t, rt, "batches")
	require.Equal(t, last, st.Checkpoint)
	require.Zero(t, st.Lag)
	mu.Lock()
	require.Len(t, batches, n, "nothing to handle")
	mu.Unlock()
}

// TestNeverSkipsPastAnOpenAppend is guarantee 1 with commits held back: an
// append holds the append lock in an open transaction while other appends
// queue behind it. The listener keeps polling meanwhile; it must reach the
// last committed position and not pass the open one, and in the end it
// handles every event once, in order, whether the open append committed or
// rolled back (a gap).
func TestNeverSkipsPastAnOpenAppend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := fresh("b")
	q := tagQuery(b)
	opts := options(t, "r")
	opts.PollInterval = 2 * time.Millisecond
	opts.BatchSize = 4
	rt, _ := e.start(t, opts, recorder("open", "r", q))

	for round := range 15 {
		before := e.append(t, ev("Before", b), ev("Other", fresh("o")))
		tx, err := e.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) // a no-op once done; frees the queued appends if the test fails
		held, err := e.store.AppendTx(ctx, tx, []eventstore.Event{ev("Held", b)}, nil)
		require.NoError(t, err)

		var queued sync.WaitGroup
		for i := range 3 {
			queued.Go(func() {
				_, err := e.store.Append(ctx, []eventstore.Event{ev("Queued", b), ev("Other", fresh("o"))}, nil)
				if err != nil {
					t.Errorf("queued append %d: %v", i, err)
				}
			})
		}
		waitForLockWaiter(t, e.pool)
		waitFor(t, rt, "open", before)
		// Two more batches begun: at least one ran entirely, from there,
		// while the append was open.
		n := listeners.Attempts(rt, "open")
		waitUntil(t, "the listener polls twice", func() bool { return listeners.Attempts(rt, "open") >= n+2 })
		st := status(t, rt, "open")
		require.Equal(t, before, st.Checkpoint, "round %d: at the last committed position, short of the open one (%d)", round, held.Position)

		if round%2 == 0 {
			require.NoError(t, tx.Commit(ctx))
		} else {
			require.NoError(t, tx.Rollback(ctx))
		}
		queued.Wait()
	}
	waitFor(t, rt, "open", e.head(t))
	require.Equal(t, e.positions(t, q), e.handled(t, "open"))
}

// TestNeverSkipsUnderConcurrentWriters: writers on several stores append,
// commit in their own transactions and roll back (leaving gaps) while two
// listeners of different query shapes run in small batches. Each ends with
// exactly the events of the log that match it, in order, each once.
func TestNeverSkipsUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := fresh("b")
	q := tagQuery(b)
	opts := options(t, "r")
	opts.PollInterval = 2 * time.Millisecond
	opts.BatchSize = 5
	rt, _ := e.start(t, opts, recorder("tagged", "r", q), recorder("everything", "r", eventstore.All))

	var writers sync.WaitGroup
	for w := range 6 {
		s := eventstore.New(e.pool, eventstore.Options{})
		t.Cleanup(s.Close)
		writers.Go(func() {
			for i := range 30 {
				var err error
				switch (w + i) % 4 {
				case 0:
					_, err = s.Append(ctx, []eventstore.Event{ev("E", b)}, nil)
				case 1: // commits
					err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
						_, err := s.AppendTx(ctx, tx, []eventstore.Event{ev("E", b), ev("Other", fresh("o"))}, nil)
						return err
					})
				case 2: // rolls back, leaving a gap
					var tx pgx.Tx
					if tx, err = e.pool.Begin(ctx); err == nil {
						if _, err = s.AppendTx(ctx, tx, []eventstore.Event{ev("E", b)}, nil); err == nil {
							err = tx.Rollback(ctx)
						}
					}
				case 3:
					_, err = s.Append(ctx, []eventstore.Event{ev("Other", fresh("o"))}, nil)
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	writers.Wait()
	head := e.head(t)
	waitFor(t, rt, "tagged", head)
	waitFor(t, rt, "everything", head)
	require.Equal(t, e.positions(t, q), e.handled(t, "tagged"))
	require.Equal(t, e.positions(t, eventstore.All), e.handled(t, "everything"))
}

// TestEffectsCommitWithCheckpoint is guarantee 3: a batch whose effect was
// written but whose checkpoint did not commit (the handler failed after
// writing, or the commit itself failed) leaves no effect and is handed again
// (after a handler error, in parts: see TestHandlerErrorStopsAtTheFailingEventOfABatch);
// in the end every effect exists exactly once.
func TestEffectsCommitWithCheckpoint(t *testing.T) {
	t.Parallel()
	for name, breakFirstAttempt := range map[string]func(context.Context, pgx.Tx) error{
		"HandlerFailsAfterWriting": func(context.Context, pgx.Tx) error {
			return errors.New("failed after writing")
		},
		// A deferred constraint is checked at COMMIT: the handler and the
		// checkpoint update succeed, the commit fails, as if the process
		// died between them.
		"CommitFails": func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO commit_gate VALUES (1)`)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			_, err := e.pool.Exec(ctx, `
				CREATE TABLE effects (position bigint NOT NULL); -- no key: a duplicate would show
				CREATE TABLE commit_gate (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED);
				INSERT INTO commit_gate VALUES (1)`)
			require.NoError(t, err)
			b := fresh("b")
			q := tagQuery(b)
			for range 23 {
				e.append(t, ev("E", b), ev("Other", fresh("o")))
			}

			var mu sync.Mutex
			deliveries := map[string]int{} // per batch content
			opts := options(t, "r")
			opts.BatchSize = 5
			rt, _ := e.start(t, opts, listeners.Listener{Name: "effects", Query: q,
				Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
					positions := make([]int64, len(events))
					for i, ev := range events {
						positions[i] = ev.Position
					}
					if _, err := tx.Exec(ctx, `INSERT INTO effects SELECT unnest($1::bigint[])`, positions); err != nil {
						return err
					}
					key := fmt.Sprint(positions)
					mu.Lock()
					deliveries[key]++
					first := deliveries[key] == 1
					mu.Unlock()
					if first {
						return breakFirstAttempt(ctx, tx)
					}
					return nil
				}})
			waitFor(t, rt, "effects", e.head(t))

			require.Equal(t, e.positions(t, q), e.column(t, `SELECT position FROM effects ORDER BY position`),
				"every effect exactly once")
			if name == "HandlerFailsAfterWriting" {
				return // the failed batches were handed again in parts, each part failing once
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, deliveries, 5, "23 events in batches of 5")
			for batch, n := range deliveries {
				require.Equal(t, 2, n, "batch %s: broken once, then handed again", batch)
			}
		})
	}
}

// TestHandlerErrorStopsAndRetries is guarantee 5: a handler failing at one
// event stops the listener there; it retries with backoff, every replica sees
// the error in Status meanwhile, nothing after the event is handled before
// it, and once the handler succeeds everything is delivered and the error is
// cleared.
func TestHandlerErrorStopsAndRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, position bigint NOT NULL)`)
	require.NoError(t, err)
	b := fresh("b")
	q := tagQuery(b)
	for range 6 {
		e.append(t, ev("E", b))
	}
	positions := e.positions(t, q)
	failing := positions[2]

	allow := make(chan struct{})
	var failures atomic.Int64
	opts := options(t, "r")
	opts.BatchSize = 2
	rt, _ := e.start(t, opts, listeners.Listener{Name: "failing", Query: q,
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			for _, ev := range events {
				if ev.Position == failing {
					select {
					case <-allow:
					default:
						failures.Add(1)
						return fmt.Errorf("boom at %d", failing)
					}
				}
				if _, err := tx.Exec(ctx, `INSERT INTO effects (position) VALUES ($1)`, ev.Position); err != nil {
					return err
				}
			}
			return nil
		}})
	replica := listeners.New(e.pool, e.store, options(t, "other"), listeners.Listener{Name: "failing", Query: q, Handle: nop})

	waitUntil(t, "the error is visible and retried", func() bool {
		return failures.Load() >= 3 && strings.Contains(status(t, replica, "failing").LastError, "boom")
	})
	st := status(t, rt, "failing")
	require.Contains(t, st.LastError, fmt.Sprintf("boom at %d", failing))
	require.False(t, st.LastErrorAt.IsZero())
	require.Equal(t, failing-1, st.Checkpoint, "stopped just before the failing event")
	require.True(t, st.Running)
	require.Equal(t, positions[:2], e.column(t, `SELECT position FROM effects ORDER BY seq`), "nothing after it was handled")

	close(allow)
	waitFor(t, rt, "failing", e.head(t))
	require.Equal(t, positions, e.column(t, `SELECT position FROM effects ORDER BY seq`))
	st = status(t, replica, "failing")
	require.Empty(t, st.LastError, "cleared by the successful batch")
	require.True(t, st.LastErrorAt.IsZero())
}

// TestHandlerErrorStopsAtTheFailingEventOfABatch is guarantee 5 with the
// failing event in the middle of a batch (default BatchSize): the events
// before it commit, the checkpoint is exactly the position before it (past
// the events the listener does not read), the error names it, and once the
// fault clears every event is handled exactly once, in order.
func TestHandlerErrorStopsAtTheFailingEventOfABatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, position bigint NOT NULL)`)
	require.NoError(t, err)
	b := fresh("b")
	q := tagQuery(b)
	for range 6 {
		e.append(t, ev("Other", fresh("o")), ev("E", b)) // the listener does not read the one before each of its own
	}
	positions := e.positions(t, q)
	failing := positions[4]

	allow := make(chan struct{})
	var failures atomic.Int64
	opts := options(t, "r")
	rt, _ := e.start(t, opts, listeners.Listener{Name: "failing", Query: q,
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			for _, ev := range events {
				if _, err := tx.Exec(ctx, `INSERT INTO effects (position) VALUES ($1)`, ev.Position); err != nil {
					return err
				}
				if ev.Position == failing {
					select {
					case <-allow:
					default:
						failures.Add(1)
						return errors.New("boom")
					}
				}
			}
			return nil
		}})

	waitUntil(t, "the error is visible and retried", func() bool {
		return failures.Load() >= 3 && status(t, rt, "failing").LastError != ""
	})
	st := status(t, rt, "failing")
	require.Equal(t, failing-1, st.Checkpoint, "stopped just before the failing event")
	require.Contains(t, st.LastError, fmt.Sprintf("handle event %d (type E): boom", failing))
	require.Equal(t, positions[:4], e.column(t, `SELECT position FROM effects ORDER BY seq`),
		"the events before it are handled once; its effects and those after it are rolled back")
	waitFor(t, rt, "failing", failing-1)

	close(allow)
	waitFor(t, rt, "failing", e.head(t))
	require.Equal(t, positions, e.column(t, `SELECT position FROM effects ORDER BY seq`), "each once, in order")
	require.Empty(t, status(t, rt, "failing").LastError)
}

// TestBatchFailingOnlyWholeSucceedsInParts: a handler that fails on a whole
// batch but not on its parts (here: on more than three events) has every
// event handled exactly once, in order, and the listener reaches the head.
func TestBatchFailingOnlyWholeSucceedsInParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	q := tagQuery(b)
	for range 11 {
		e.append(t, ev("E", b))
	}
	rec := record("picky", "r")
	rt, _ := e.start(t, options(t, "r"), listeners.Listener{Name: "picky", Query: q,
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			if err := rec(ctx, tx, events); err != nil {
				return err
			}
			if len(events) > 3 {
				return errors.New("too many at once")
			}
			return nil
		}})
	waitFor(t, rt, "picky", e.head(t))
	require.Equal(t, e.positions(t, q), e.handled(t, "picky"))
}

// TestErrorTextIsAlwaysRecorded: an error whose text PostgreSQL cannot store
// as it is (a NUL byte, invalid UTF-8), short or long, is still recorded as
// the last error, cleaned, so that a failing listener never looks healthy.
func TestErrorTextIsAlwaysRecorded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, text, want string }{
		{"NUL", "bad\x00byte", "badbyte"},
		{"InvalidUTF8", "bad\xffbyte", "bad\uFFFDbyte"},
		{"LongWithNULAndInvalidUTF8", "\x00\xff" + strings.Repeat("é", 1500), "\uFFFD" + strings.Repeat("é", 900)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := fresh("b")
			q := tagQuery(b)
			e.append(t, ev("E", b))
			var failures atomic.Int64
			rt, _ := e.start(t, options(t, "r"), listeners.Listener{Name: "dirty", Query: q,
				Handle: func(context.Context, pgx.Tx, []eventstore.StoredEvent) error {
					failures.Add(1)
					return errors.New(tc.text)
				}})
			waitUntil(t, "the error is recorded", func() bool {
				return failures.Load() >= 2 && status(t, rt, "dirty").LastError != ""
			})
			st := status(t, rt, "dirty")
			require.Contains(t, st.LastError, tc.want)
			require.NotContains(t, st.LastError, "\x00")
			require.True(t, utf8.ValidString(st.LastError))
			require.LessOrEqual(t, len(st.LastError), 2000+len("…"))
			require.False(t, st.LastErrorAt.IsZero())
		})
	}
}

// TestHandlerPanicIsAFailedBatch: a panicking handler stops its listener at
// the batch and is retried like an error, the process goes on.
func TestHandlerPanicIsAFailedBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	q := tagQuery(b)
	var panicked atomic.Bool
	rec := record("panicky", "r")
	rt, _ := e.start(t, options(t, "r"), listeners.Listener{Name: "panicky", Query: q,
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			if panicked.CompareAndSwap(false, true) {
				panic("handler bug")
			}
			return rec(ctx, tx, events)
		}})
	pos := e.append(t, ev("E", b))
	waitFor(t, rt, "panicky", pos)
	require.True(t, panicked.Load())
	require.Equal(t, []int64{pos}, e.handled(t, "panicky"))
}

// truncating is a listener whose read model is the table proj (one row per
// event handled) and whose Reset truncates it.
func truncating(name, table string, q eventstore.Query) listeners.Listener {
	return listeners.Listener{
		Name:  name,
		Query: q,
		Handle: func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
			positions := make([]int64, len(events))
			for i, ev := range events {
				positions[i] = ev.Position
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+table+` (position) SELECT unnest($1::bigint[])`, positions)
			return err
		},
		Reset: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `TRUNCATE `+table)
			return err
		},
	}
}

// TestResetOnFreshDatabase: Reset works where the listeners never ran,
// creating their checkpoints at 0 and emptying their read models; "all"
// names every listener; an unknown name changes nothing and says which
// names exist.
func TestResetOnFreshDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `CREATE TABLE proj (position bigint NOT NULL); INSERT INTO proj VALUES (42)`)
	require.NoError(t, err)
	rt := listeners.New(e.pool, e.store, options(t, "r"),
		truncating("projection", "proj", eventstore.All),
		listeners.Listener{Name: "automation", Handle: nop})
	checkpoints := func() []int64 {
		return e.column(t, `SELECT position FROM listener_checkpoints ORDER BY name`)
	}

	err = rt.Reset(ctx, "projection", "nope")
	require.ErrorIs(t, err, listeners.ErrUnknownListener)
	require.ErrorContains(t, err, `"nope"`)
	require.ErrorContains(t, err, "projection, automation")
	require.Equal(t, []int64{42}, e.column(t, `SELECT position FROM proj`), "nothing reset")
	require.Empty(t, checkpoints())

	require.NoError(t, rt.Reset(ctx, "projection"))
	require.Empty(t, e.column(t, `SELECT position FROM proj`))
	require.Equal(t, []int64{0}, checkpoints())

	require.NoError(t, rt.Reset(ctx, "all"))
	require.Equal(t, []int64{0, 0}, checkpoints())
	require.NoError(t, rt.Reset(ctx), "no names, nothing to do")
}

// TestResetIsOneTransaction: when one listener's Reset fails, no read model
// is emptied and no checkpoint moves.
func TestResetIsOneTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `CREATE TABLE proj (position bigint NOT NULL)`)
	require.NoError(t, err)
	good := truncating("good", "proj", eventstore.All)
	bad := listeners.Listener{Name: "bad", Handle: nop, Reset: func(context.Context, pgx.Tx) error {
		return errors.New("cannot empty")
	}}
	for range 3 {
		e.append(t, ev("E"))
	}
	head := e.head(t)
	rt, stop := e.start(t, options(t, "r"), good, bad)
	waitFor(t, rt, "good", head)
	waitFor(t, rt, "bad", head)
	stop()

	err = rt.Reset(ctx, "all")
	require.ErrorContains(t, err, "cannot empty")
	require.Equal(t, e.positions(t, eventstore.All), e.column(t, `SELECT position FROM proj ORDER BY position`))
	require.Equal(t, []int64{head, head}, e.column(t, `SELECT position FROM listener_checkpoints ORDER BY name`))
}

// TestResetWhileRunning: resets, from the running replica and from another
// one, while writers append and the listener runs. Each reset empties the
// read model and the runner continues from 0; a batch in flight never
// survives a reset, so in the end the read model holds every event exactly
// once.
func TestResetWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `CREATE TABLE proj (position bigint NOT NULL)`)
	require.NoError(t, err)
	b := fresh("b")
	q := tagQuery(b)
	opts := options(t, "r")
	opts.PollInterval = 5 * time.Millisecond
	opts.BatchSize = 7
	rt, _ := e.start(t, opts, truncating("proj", "proj", q))
	other := listeners.New(e.pool, e.store, options(t, "other"), truncating("proj", "proj", q))

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for range 2 {
		writers.Go(func() {
			for range 300 { // bounded, so that replays after a reset stay short
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.store.Append(ctx, []eventstore.Event{ev("E", b), ev("Other", fresh("o"))}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 10 {
		// Let it make some progress first, so that the reset has work to undo.
		waitFor(t, rt, "proj", e.head(t))
		by := rt
		if i%2 == 1 {
			by = other
		}
		require.NoError(t, by.Reset(ctx, "proj"), "reset %d", i)
	}
	close(stop)
	writers.Wait()
	waitFor(t, rt, "proj", e.head(t))
	require.Equal(t, e.positions(t, q), e.column(t, `SELECT position FROM proj ORDER BY position`))
}

// TestWaitFor: it returns the checkpoint once the listener has reached the
// position, also through a replica that does not run the listener; it gives
// up with the context, returning the checkpoint it last saw.
func TestWaitFor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := fresh("b")
	q := tagQuery(b)
	rt, _ := e.start(t, options(t, "r"), recorder("waited", "r", q))
	replica := listeners.New(e.pool, e.store, options(t, "other"),
		recorder("waited", "other", q), recorder("never-runs", "other", q))

	for range 3 {
		pos := e.append(t, ev("E", b))
		require.GreaterOrEqual(t, waitFor(t, rt, "waited", pos), pos)
		require.GreaterOrEqual(t, waitFor(t, replica, "waited", pos), pos)
	}

	head := e.head(t)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	checkpoint, err := rt.WaitFor(short, "waited", head+1000)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, head, checkpoint, "caught up: the checkpoint is the head")

	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	checkpoint, err = replica.WaitFor(short, "never-runs", 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, checkpoint, "no checkpoint yet")

	checkpoint, err = replica.WaitFor(ctx, "never-runs", 0)
	require.NoError(t, err, "position 0 is always reached")
	require.Zero(t, checkpoint)

	_, err = rt.WaitFor(ctx, "nope", 1)
	require.ErrorIs(t, err, listeners.ErrUnknownListener)
}

// TestStatus: checkpoint, head, lag, lease holder and expiry, as stored, and
// whether this Runtime runs the listener.
func TestStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	for range 4 {
		e.append(t, ev("E", b), ev("Other", fresh("o")))
	}
	head := e.head(t)
	ls := []listeners.Listener{recorder("matching", "r", tagQuery(b)), recorder("nothing", "r", tagQuery(fresh("none")))}
	replica := listeners.New(e.pool, e.store, options(t, "other"), ls...)

	all, err := replica.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, []listeners.Status{
		{Name: "matching", Head: head, Lag: head},
		{Name: "nothing", Head: head, Lag: head},
	}, all, "never ran")

	rt, stop := e.start(t, options(t, "r"), ls...)
	for _, name := range rt.Names() {
		waitFor(t, rt, name, head)
		st := status(t, rt, name)
		require.Equal(t, head, st.Checkpoint)
		require.Equal(t, head, st.Head)
		require.Zero(t, st.Lag)
		require.Equal(t, "r", st.Holder)
		require.True(t, st.LeaseUntil.After(time.Now()), "leased")
		require.Empty(t, st.LastError)
		require.True(t, st.Running)

		st = status(t, replica, name)
		require.Equal(t, "r", st.Holder, "every replica sees the holder")
		require.False(t, st.Running, "but does not run it")
	}

	done, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, rt.Run(done), "Run is already running")

	stop()
	for _, name := range rt.Names() {
		st := status(t, rt, name)
		require.False(t, st.Running)
		require.False(t, st.LeaseUntil.After(time.Now()), "released on stop")
	}
}
