package workqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/workqueue"
)

// Guarantee 4: a failing job is retried after its backoff, never earlier, and
// completes when an attempt succeeds.
func TestRetriesWithBackoffThenCompletes(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	backoff := func(attempt int) time.Duration { return time.Duration(attempt) * 25 * time.Millisecond }
	var seen attempts
	done := make(chan int64, 1)
	workqueue.Register(q, workqueue.KindConfig[echo]{
		Backoff: backoff,
		Work: func(_ context.Context, job workqueue.Job[echo]) error {
			r := attemptRecord{attempt: job.Attempt, start: time.Now()}
			defer func() { r.end = time.Now(); seen.add(r) }()
			if job.Attempt < 3 {
				return fmt.Errorf("attempt %d: %w", job.Attempt, errBroken)
			}
			done <- job.ID
			return nil
		},
		GiveUp: func(context.Context, pgx.Tx, workqueue.Job[echo], error) error {
			t.Error("GiveUp called for a job that succeeded")
			return nil
		},
	})
	start(t, q)
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)

	id := receive(t, done, "the third attempt")
	job := waitForState(t, pool, id, "completed")
	require.Equal(t, 3, job.Attempt)
	require.Equal(t, 2, job.Errors, "each failed attempt's error is kept")

	got := seen.get()
	require.Len(t, got, 3)
	for i, r := range got {
		require.Equal(t, i+1, r.attempt)
		if i > 0 {
			gap := r.start.Sub(got[i-1].end)
			require.GreaterOrEqual(t, gap, backoff(i), "wait before attempt %d", r.attempt)
		}
	}
}

// giveUpRecorder is a GiveUp that appends a JobGaveUp event with the store's
// AppendTx, as a slice records CartPublicationFailed. failFirst makes its
// first calls fail after appending, to prove the append is rolled back.
type giveUpRecorder struct {
	store *eventstore.Store

	mu        sync.Mutex
	calls     []giveUpCall
	failFirst int
	panic     bool
}

type giveUpCall struct {
	job     workqueue.Job[echo]
	lastErr error
	at      time.Time
}

func (g *giveUpRecorder) giveUp(ctx context.Context, tx pgx.Tx, job workqueue.Job[echo], lastErr error) error {
	g.mu.Lock()
	g.calls = append(g.calls, giveUpCall{job: job, lastErr: lastErr, at: time.Now()})
	n := len(g.calls)
	g.mu.Unlock()
	data, err := json.Marshal(map[string]any{"job_id": job.ID, "reason": lastErr.Error()})
	if err != nil {
		return err
	}
	_, err = g.store.AppendTx(ctx, tx, []eventstore.Event{{
		Type: "JobGaveUp", Tags: []string{fmt.Sprintf("job:%d", job.ID)}, Data: data,
	}}, nil)
	if err != nil {
		return err
	}
	if n <= g.failFirst {
		if g.panic {
			panic("recording failed")
		}
		return errors.New("recording failed")
	}
	return nil
}

func (g *giveUpRecorder) get() []giveUpCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]giveUpCall(nil), g.calls...)
}

func (g *giveUpRecorder) events(t *testing.T) []eventstore.StoredEvent {
	t.Helper()
	events, err := g.store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{{Types: []string{"JobGaveUp"}}}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	return events
}

func newRecorder(t *testing.T, pool *pgxpool.Pool) *giveUpRecorder {
	store := eventstore.New(pool, eventstore.Options{})
	t.Cleanup(store.Close)
	return &giveUpRecorder{store: store}
}

// Guarantees 4 and 5: after MaxAttempts failures the job gives up: GiveUp
// runs once, with the last attempt's error, and the job is finished
// (discarded, with the error kept) in the same transaction, so it never runs
// again and still holds its unique key.
func TestGiveUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	rec := newRecorder(t, pool)
	var seen attempts
	workqueue.Register(q, workqueue.KindConfig[echo]{
		MaxAttempts: 3,
		Backoff:     constant(5 * time.Millisecond),
		Work: func(_ context.Context, job workqueue.Job[echo]) error {
			seen.add(attemptRecord{attempt: job.Attempt})
			return fmt.Errorf("attempt %d: %w", job.Attempt, errBroken)
		},
		GiveUp: rec.giveUp,
	})
	start(t, q)
	inserted, err := q.Enqueue(ctx, echo{}, workqueue.EnqueueOptions{UniqueKey: "k"})
	require.NoError(t, err)
	require.True(t, inserted)

	id := onlyJobID(t, pool, "test_echo")
	job := waitForState(t, pool, id, "discarded")
	require.Equal(t, 3, job.Attempt)
	require.Equal(t, 3, job.Errors, "two retried errors and the last one, kept by the give-up")
	require.Contains(t, job.Metadata, `"workqueue_gave_up": true`)

	calls := rec.get()
	require.Len(t, calls, 1)
	require.ErrorIs(t, calls[0].lastErr, errBroken)
	require.EqualError(t, calls[0].lastErr, "attempt 3: downstream broken")
	require.Equal(t, id, calls[0].job.ID)
	require.Len(t, rec.events(t), 1)
	require.Equal(t, []attemptRecord{{attempt: 1}, {attempt: 2}, {attempt: 3}}, seen.get())

	inserted, err = q.Enqueue(ctx, echo{}, workqueue.EnqueueOptions{UniqueKey: "k"})
	require.NoError(t, err)
	require.False(t, inserted, "a given-up job still holds its key")
}

// Guarantees 4 and 5 by time: with a 300ms budget and 50ms backoff, the job
// retries while the next retry can start within the budget, then gives up
// once.
func TestGiveUpAfterMaxDuration(t *testing.T) {
	t.Parallel()
	const (
		budget  = 300 * time.Millisecond
		backoff = 50 * time.Millisecond
	)
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	rec := newRecorder(t, pool)
	var seen attempts
	workqueue.Register(q, workqueue.KindConfig[echo]{
		MaxAttempts: 1000,
		MaxDuration: budget,
		Backoff:     constant(backoff),
		Work: func(_ context.Context, job workqueue.Job[echo]) error {
			r := attemptRecord{attempt: job.Attempt, start: time.Now()}
			defer func() { r.end = time.Now(); seen.add(r) }()
			return fmt.Errorf("attempt %d: %w", job.Attempt, errBroken)
		},
		GiveUp: rec.giveUp,
	})
	start(t, q)
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)

	id := onlyJobID(t, pool, "test_echo")
	job := waitForState(t, pool, id, "discarded")
	calls := rec.get()
	require.Len(t, calls, 1)
	require.Len(t, rec.events(t), 1)

	got := seen.get()
	require.GreaterOrEqual(t, len(got), 2, "the first failure, well within the budget, is retried")
	require.Equal(t, len(got), job.Attempt)
	deadline := calls[0].job.CreatedAt.Add(budget)
	last := got[len(got)-1]
	require.True(t, last.end.Add(backoff).After(deadline), "gave up only when a retry would start after the deadline")
	for i := 1; i < len(got); i++ {
		require.GreaterOrEqual(t, got[i].start.Sub(got[i-1].end), backoff, "wait before attempt %d", got[i].attempt)
		require.True(t, got[i-1].end.Add(backoff).Before(deadline) || got[i-1].end.Add(backoff).Equal(deadline),
			"attempt %d was retried although its retry could not start within the budget", got[i-1].attempt)
	}
	require.EqualError(t, calls[0].lastErr, fmt.Sprintf("attempt %d: downstream broken", last.attempt))
	for _, r := range got {
		t.Logf("attempt %d start %v end %v", r.attempt, r.start.Sub(calls[0].job.CreatedAt), r.end.Sub(calls[0].job.CreatedAt))
	}
	t.Logf("gave up at %v", calls[0].at.Sub(calls[0].job.CreatedAt))
}

// Guarantee 5 when GiveUp fails (returns an error or panics): what it wrote is
// rolled back and the job is not finished; its last attempt runs again and
// gives up again, so the failure is recorded exactly once.
func TestGiveUpFailureRecordsNothingAndGivesUpAgain(t *testing.T) {
	t.Parallel()
	for _, panics := range []bool{false, true} {
		t.Run(map[bool]string{false: "Error", true: "Panic"}[panics], func(t *testing.T) {
			t.Parallel()
			pool := eventstoretest.NewPool(t)
			q := newQueue(t, pool)
			rec := newRecorder(t, pool)
			rec.failFirst, rec.panic = 1, panics
			var seen attempts
			workqueue.Register(q, workqueue.KindConfig[echo]{
				MaxAttempts: 2,
				Backoff:     constant(5 * time.Millisecond),
				Work: func(_ context.Context, job workqueue.Job[echo]) error {
					seen.add(attemptRecord{attempt: job.Attempt})
					return fmt.Errorf("attempt %d: %w", job.Attempt, errBroken)
				},
				GiveUp: rec.giveUp,
			})
			start(t, q)
			_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
			require.NoError(t, err)

			job := waitForState(t, pool, onlyJobID(t, pool, "test_echo"), "discarded")
			calls := rec.get()
			require.Len(t, calls, 2, "GiveUp failed once, then succeeded")
			for _, c := range calls {
				require.EqualError(t, c.lastErr, "attempt 2: downstream broken")
			}
			require.Len(t, rec.events(t), 1, "the failed GiveUp's append was rolled back")
			require.Equal(t, []attemptRecord{{attempt: 1}, {attempt: 2}, {attempt: 2}}, seen.get(),
				"the last attempt ran again, under the same number")
			require.Equal(t, 2, job.Attempt)
			require.Equal(t, 2, job.Errors)
		})
	}
}

// Guarantees 3 and 4: when the last counted attempt is lost to a crash, River
// rescues the job with its attempt count unchanged (here set by hand, as the
// rescuer leaves it). The job runs once more and, failing, gives up through
// GiveUp rather than being discarded by River.
func TestAttemptLostToCrashStillGivesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	rec := newRecorder(t, pool)
	var seen attempts
	workqueue.Register(q, workqueue.KindConfig[echo]{
		MaxAttempts: 2,
		Backoff:     constant(5 * time.Millisecond),
		Work: func(_ context.Context, job workqueue.Job[echo]) error {
			seen.add(attemptRecord{attempt: job.Attempt})
			return errBroken
		},
		GiveUp: rec.giveUp,
	})
	_, err := q.Enqueue(ctx, echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	id := onlyJobID(t, pool, "test_echo")
	_, err = pool.Exec(ctx, `UPDATE river_job SET attempt = 2 WHERE id = $1`, id)
	require.NoError(t, err)

	start(t, q)
	job := waitForState(t, pool, id, "discarded")
	require.Equal(t, []attemptRecord{{attempt: 3}}, seen.get())
	require.Len(t, rec.get(), 1)
	require.Len(t, rec.events(t), 1)
	require.Greater(t, job.MaxAttempts, 3, "River's own limit leaves room for lost attempts")
}

// A panicking worker fails its attempt like an error does; the job gives up
// through GiveUp.
func TestWorkPanicCountsAsFailure(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	rec := newRecorder(t, pool)
	workqueue.Register(q, workqueue.KindConfig[echo]{
		MaxAttempts: 1,
		Work:        func(context.Context, workqueue.Job[echo]) error { panic("boom") },
		GiveUp:      rec.giveUp,
	})
	start(t, q)
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	waitForState(t, pool, onlyJobID(t, pool, "test_echo"), "discarded")
	calls := rec.get()
	require.Len(t, calls, 1)
	require.ErrorContains(t, calls[0].lastErr, "panicked: boom")
}

// An attempt that overruns Timeout gets a cancelled context; its failure is an
// ordinary one.
func TestTimeoutPerAttempt(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	rec := newRecorder(t, pool)
	workqueue.Register(q, workqueue.KindConfig[echo]{
		MaxAttempts: 1,
		Timeout:     20 * time.Millisecond,
		Work: func(ctx context.Context, _ workqueue.Job[echo]) error {
			<-ctx.Done()
			return ctx.Err()
		},
		GiveUp: rec.giveUp,
	})
	start(t, q)
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	waitForState(t, pool, onlyJobID(t, pool, "test_echo"), "discarded")
	calls := rec.get()
	require.Len(t, calls, 1)
	require.ErrorIs(t, calls[0].lastErr, context.DeadlineExceeded)
}
