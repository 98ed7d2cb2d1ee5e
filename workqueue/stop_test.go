package workqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/workqueue"
)

// Guarantee 6: Stop waits for a running job to finish, without cancelling it,
// when its context allows.
func TestStopWaitsForRunningJob(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	started := make(chan int64, 1)
	release := make(chan struct{})
	finished := make(chan error, 1)
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: func(ctx context.Context, job workqueue.Job[echo]) error {
		started <- job.ID
		select {
		case <-release:
			finished <- ctx.Err()
			return nil
		case <-ctx.Done():
			finished <- ctx.Err()
			return ctx.Err()
		}
	}})
	start(t, q)
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	id := receive(t, started, "the job to start")

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		stopped <- q.Stop(ctx)
	}()
	// Not a wait for something to happen: a window in which Stop must not
	// return, because the job is still running.
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a job was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	require.NoError(t, receive(t, stopped, "Stop to return"))
	select {
	case err := <-finished:
		require.NoError(t, err, "the job's context was not cancelled")
	default:
		t.Fatal("Stop returned before the job finished")
	}
	require.Equal(t, "completed", readJob(t, pool, id).State, "the completion was recorded before Stop returned")
}

// Guarantee 6: when Stop's context ends first, running jobs are cancelled and
// go back to the queue without using an attempt and without giving up, even
// on their last attempt.
func TestStopCancelsJobsWhenContextEnds(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	started := make(chan int64, 1)
	cancelled := make(chan error, 1)
	workqueue.Register(q, workqueue.KindConfig[echo]{
		MaxAttempts: 1,
		Work: func(ctx context.Context, job workqueue.Job[echo]) error {
			started <- job.ID
			<-ctx.Done()
			cancelled <- ctx.Err()
			return ctx.Err()
		},
		GiveUp: func(context.Context, pgx.Tx, workqueue.Job[echo], error) error {
			t.Error("GiveUp called for a job interrupted by Stop")
			return nil
		},
	})
	start(t, q)
	_, err := q.Enqueue(context.Background(), echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	id := receive(t, started, "the job to start")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = q.Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, receive(t, cancelled, "the job to be cancelled"), context.Canceled)

	job := readJob(t, pool, id)
	require.Equal(t, "available", job.State, "back in the queue")
	require.Equal(t, 0, job.Attempt, "the interrupted attempt does not count")
	require.Equal(t, 0, job.Errors)
}
