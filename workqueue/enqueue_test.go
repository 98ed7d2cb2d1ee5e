package workqueue_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/workqueue"
)

// Guarantee 1: a job enqueued in a transaction exists iff it commits.
func TestEnqueueTxExistsIffCommitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	ran := make(chan string, 10)
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: func(_ context.Context, job workqueue.Job[echo]) error {
		ran <- job.Args.Name
		return nil
	}})
	start(t, q)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	inserted, err := q.EnqueueTx(ctx, tx, echo{Name: "rolled back"}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	require.True(t, inserted)
	require.NoError(t, tx.Rollback(ctx))

	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	inserted, err = q.EnqueueTx(ctx, tx, echo{Name: "committed"}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	require.True(t, inserted)
	require.NoError(t, tx.Commit(ctx))

	require.Equal(t, "committed", receive(t, ran, "the committed job"))
	waitForState(t, pool, onlyJobID(t, pool, "test_echo"), "completed")
	// onlyJobID proved the rolled-back job does not exist: it can never run.
	select {
	case name := <-ran:
		t.Fatalf("unexpected run of %q", name)
	default:
	}
}

// Guarantee 2, one caller at a time: a key blocks its kind's duplicates in
// every state, including after the job completed; other kinds and jobs
// without a key are not affected.
func TestUniqueKeySequential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	done := make(chan string, 10)
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: func(_ context.Context, job workqueue.Job[echo]) error {
		done <- job.Args.Name
		return nil
	}})
	workqueue.Register(q, workqueue.KindConfig[other]{Work: func(context.Context, workqueue.Job[other]) error { return nil }})

	key := workqueue.EnqueueOptions{UniqueKey: "cart:" + uuid.NewString()}
	inserted, err := q.Enqueue(ctx, echo{Name: "first"}, key)
	require.NoError(t, err)
	require.True(t, inserted)
	inserted, err = q.Enqueue(ctx, echo{Name: "second, same key"}, key)
	require.NoError(t, err)
	require.False(t, inserted, "same kind, same key, first job waiting")

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	inserted, err = q.EnqueueTx(ctx, tx, echo{Name: "third, same key, in a tx"}, key)
	require.NoError(t, err)
	require.False(t, inserted)
	require.NoError(t, tx.Commit(ctx))

	inserted, err = q.Enqueue(ctx, other{Name: "same key, other kind"}, key)
	require.NoError(t, err)
	require.True(t, inserted, "keys are per kind")
	for range 2 {
		inserted, err = q.Enqueue(ctx, echo{Name: "no key"}, workqueue.EnqueueOptions{})
		require.NoError(t, err)
		require.True(t, inserted, "no key, no uniqueness")
	}
	require.Equal(t, 3, countJobs(t, pool, "kind = 'test_echo'"))

	start(t, q)
	seen := map[string]int{}
	for range 3 {
		seen[receive(t, done, "echo jobs")]++
	}
	require.Equal(t, map[string]int{"first": 1, "no key": 2}, seen)
	waitFor(t, "echo jobs completed", func() bool {
		return countJobs(t, pool, "kind = 'test_echo' AND state = 'completed'") == 3
	})

	inserted, err = q.Enqueue(ctx, echo{Name: "after completion"}, key)
	require.NoError(t, err)
	require.False(t, inserted, "a completed job still holds its key")
	require.Equal(t, 3, countJobs(t, pool, "kind = 'test_echo'"))
}

// Guarantee 2 under contention: 16 transactions racing to enqueue the same
// key store exactly one job, and exactly one of them is told it inserted it.
func TestUniqueKeyConcurrent(t *testing.T) {
	t.Parallel()
	const (
		writers = 16
		rounds  = 20
	)
	ctx := context.Background()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: func(context.Context, workqueue.Job[echo]) error { return nil }})

	for round := range rounds {
		key := fmt.Sprintf("round-%d-%s", round, uuid.NewString())
		var (
			winners atomic.Int32
			ready   sync.WaitGroup
			wg      sync.WaitGroup
			gate    = make(chan struct{})
			errs    = make(chan error, writers)
		)
		ready.Add(writers)
		for w := range writers {
			wg.Go(func() {
				tx, err := pool.Begin(ctx)
				ready.Done()
				if err != nil {
					errs <- err
					return
				}
				defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
				<-gate
				inserted, err := q.EnqueueTx(ctx, tx, echo{Name: fmt.Sprintf("writer %d", w)}, workqueue.EnqueueOptions{UniqueKey: key})
				if err != nil {
					errs <- err
					return
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
				if inserted {
					winners.Add(1)
				}
			})
		}
		ready.Wait()
		close(gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, winners.Load(), "round %d: writers told they inserted", round)
	}
	require.Equal(t, rounds, countJobs(t, pool, "kind = 'test_echo'"), "one job per key")
}

func TestEnqueueUnknownKind(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
	require.ErrorIs(t, err, workqueue.ErrUnknownKind)
}

func TestRegisterWiringMistakesPanic(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	work := func(context.Context, workqueue.Job[echo]) error { return nil }
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: work})
	require.PanicsWithValue(t, `workqueue: kind "test_echo" registered twice`, func() {
		workqueue.Register(q, workqueue.KindConfig[echo]{Work: work})
	})
	require.Panics(t, func() { workqueue.Register(q, workqueue.KindConfig[other]{}) }, "no Work")

	start(t, q)
	require.PanicsWithValue(t, `workqueue: kind "test_other" registered after the queue was started or used`, func() {
		workqueue.Register(q, workqueue.KindConfig[other]{Work: func(context.Context, workqueue.Job[other]) error { return nil }})
	})
}

// ScheduledAt holds a job back; the job is in River's scheduled state.
func TestScheduledAt(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: func(context.Context, workqueue.Job[echo]) error { return nil }})
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, "scheduled", readJob(t, pool, onlyJobID(t, pool, "test_echo")).State)
}
