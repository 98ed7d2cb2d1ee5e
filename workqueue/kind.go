package workqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Job is what a worker gets: one attempt at one job.
type Job[T Args] struct {
	ID   int64
	Args T
	// Attempt counts from 1. An attempt cut short by a crash counts too; one
	// interrupted by Stop does not (the job runs again with the same number).
	Attempt int
	// CreatedAt is when the job was enqueued; MaxDuration counts from it.
	CreatedAt time.Time
}

// KindConfig registers a worker for T with its retry budget.
type KindConfig[T Args] struct {
	// Work does the job. It returns nil when done; an error makes the job
	// retry after Backoff, or give up when the budget is spent. A panic counts
	// as an error. Work must be idempotent: a job may run again after an
	// attempt that did its work but could not be marked done (see the package
	// documentation). Its context ends after Timeout, and when the queue stops
	// or an operator cancels the job.
	Work func(ctx context.Context, job Job[T]) error
	// MaxAttempts is the number of attempts after which a failing job gives up.
	// Default 25; at most 30000.
	MaxAttempts int
	// MaxDuration is the job's total budget from its creation; 0 means none.
	// A failing job gives up when its next retry would start after
	// CreatedAt+MaxDuration.
	MaxDuration time.Duration
	// Backoff is the wait before the retry that follows failed attempt n
	// (n counts from 1). Default DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// Timeout bounds one attempt. Default 1 minute.
	Timeout time.Duration
	// GiveUp, if set, runs once when the job gives up (attempts or duration
	// spent), with the error of the last attempt, inside a transaction that
	// also marks the job as given up: both commit or neither does. Record the
	// failure there, e.g. a domain event with the event store's AppendTx, using
	// tx and nothing else. If GiveUp returns an error (or panics) nothing is
	// recorded, the job is not finished, and its last attempt runs again after
	// Backoff, then gives up again if it fails: a failure record is never lost.
	// It has 10 seconds, and is not interrupted by Stop; it must not commit or
	// roll back tx.
	GiveUp func(ctx context.Context, tx pgx.Tx, job Job[T], lastErr error) error
}

const (
	defaultMaxAttempts = 25
	defaultTimeout     = time.Minute
	// maxMaxAttempts keeps MaxAttempts plus crashAllowance within River's
	// smallint max_attempts.
	maxMaxAttempts = 30000
	// crashAllowance is added to MaxAttempts to give River's max_attempts, so
	// that River never discards a job on its own when attempts are lost to
	// crashes after the last counted one: the job runs again and, if it fails,
	// gives up through GiveUp. River's own discard is then reserved for jobs
	// whose arguments can no longer be decoded.
	crashAllowance = 10
	// giveUpTimeout bounds the give-up transaction, GiveUp included.
	giveUpTimeout = 10 * time.Second
)

// Register registers the worker of T's kind on q, with its retry budget. It
// panics on a wiring mistake: a kind registered twice, a missing Work, an
// invalid budget, or a call after q was started or used (Enqueue, EnqueueTx,
// UIHandler), since the River client is built from the kinds registered by
// then.
func Register[T Args](q *Queue, cfg KindConfig[T]) {
	kind := kindOf[T]()
	if cfg.Work == nil {
		panic(fmt.Sprintf("workqueue: kind %q registered without Work", kind))
	}
	if cfg.MaxAttempts < 0 || cfg.MaxAttempts > maxMaxAttempts || cfg.MaxDuration < 0 || cfg.Timeout < 0 {
		panic(fmt.Sprintf("workqueue: kind %q: invalid budget %+v", kind, cfg))
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = defaultMaxAttempts
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client != nil {
		panic(fmt.Sprintf("workqueue: kind %q registered after the queue was started or used", kind))
	}
	if _, dup := q.kinds[kind]; dup {
		panic(fmt.Sprintf("workqueue: kind %q registered twice", kind))
	}
	if err := river.AddWorkerSafely(q.workers, &worker[T]{q: q, kind: kind, cfg: cfg}); err != nil {
		panic(fmt.Sprintf("workqueue: kind %q: %v", kind, err))
	}
	q.kinds[kind] = kindInfo{maxAttempts: cfg.MaxAttempts + crashAllowance, timeout: cfg.Timeout + giveUpTimeout}
}

func kindOf[T Args]() (kind string) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			panic(fmt.Sprintf("workqueue: Kind() of the zero %T panicked (give it a value receiver): %v", zero, r))
		}
	}()
	var zero T
	return zero.Kind()
}

// DefaultBackoff waits 1s before the first retry and doubles the wait after
// every failed attempt, up to 1 hour, plus up to 10% of random jitter so that
// jobs that failed together do not retry together.
func DefaultBackoff(attempt int) time.Duration {
	d := time.Hour
	if attempt >= 1 && attempt <= 13 { // 2^12 s > 1 h
		d = min(time.Second<<(attempt-1), time.Hour)
	}
	return d + rand.N(d/10+1)
}

// worker adapts a KindConfig to River's worker interface.
type worker[T Args] struct {
	river.WorkerDefaults[jobArgs[T]]
	q    *Queue
	kind string
	cfg  KindConfig[T]
}

// Timeout is River's limit for the whole attempt: Work's Timeout plus the time
// the give-up transaction may need.
func (w *worker[T]) Timeout(*river.Job[jobArgs[T]]) time.Duration {
	return w.cfg.Timeout + giveUpTimeout
}

// NextRetry is called by River after Work returned an error, which it does
// only when the job retries (see Work): the retry starts after the kind's
// backoff, and never after the job's deadline.
func (w *worker[T]) NextRetry(rj *river.Job[jobArgs[T]]) time.Time {
	now := time.Now()
	next := now.Add(max(w.cfg.Backoff(rj.Attempt), 0))
	if w.cfg.MaxDuration > 0 {
		deadline := rj.CreatedAt.Add(w.cfg.MaxDuration)
		if next.After(deadline) {
			next = deadline
		}
		if next.Before(now) {
			next = now
		}
	}
	return next
}

// Work runs one attempt and decides what follows a failure: an error returned
// to River means "retry at NextRetry"; giving up is done here, so that River
// never discards a job on its own (its max_attempts is higher than ours).
func (w *worker[T]) Work(ctx context.Context, rj *river.Job[jobArgs[T]]) error {
	job := Job[T]{ID: rj.ID, Args: rj.Args.Args, Attempt: rj.Attempt, CreatedAt: rj.CreatedAt}
	started := time.Now()
	err := w.attempt(ctx, job)
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		// The queue is stopping or an operator cancelled the job: not a
		// failure of the job. Wrapping ctx's error lets River tell: a stopped
		// job goes back to the queue without using an attempt, a cancelled
		// one is cancelled. (River's own deadline, Timeout plus the give-up
		// time, is a failure like any other.)
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	if !w.exhausted(job, time.Now()) {
		return err
	}
	return w.giveUp(ctx, job, started, err)
}

// exhausted reports whether a job whose attempt just failed has spent its
// budget: its attempts, or its time if the next retry would start too late.
func (w *worker[T]) exhausted(job Job[T], now time.Time) bool {
	if job.Attempt >= w.cfg.MaxAttempts {
		return true
	}
	return w.cfg.MaxDuration > 0 &&
		now.Add(w.cfg.Backoff(job.Attempt)).After(job.CreatedAt.Add(w.cfg.MaxDuration))
}

func (w *worker[T]) attempt(ctx context.Context, job Job[T]) (err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			w.q.logger.ErrorContext(ctx, "workqueue: job panicked",
				"kind", w.kind, "job_id", job.ID, "attempt", job.Attempt, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("workqueue: %s job panicked: %v", w.kind, r)
		}
	}()
	return w.cfg.Work(ctx, job)
}

// giveUp finishes the job as given up, running GiveUp in the same transaction.
// If that transaction fails, the job is snoozed: River puts it back without
// using an attempt, so the same (last) attempt runs again later and, if it
// fails again, gives up again. Once decided, giving up is not interrupted by
// Stop: it is one short transaction, bounded by giveUpTimeout.
func (w *worker[T]) giveUp(ctx context.Context, job Job[T], started time.Time, lastErr error) error {
	log := w.q.logger.With("kind", w.kind, "job_id", job.ID, "attempt", job.Attempt)
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveUpTimeout)
	defer cancel()
	finished, err := w.finish(gctx, job, started, lastErr)
	switch {
	case err == nil && finished:
		log.WarnContext(ctx, "workqueue: job gave up", "error", lastErr)
		return nil
	case err == nil:
		// The job is no longer this attempt's: River rescued it (this
		// process was taken for dead) or an operator removed it.
		log.WarnContext(ctx, "workqueue: job to give up is no longer running here; left alone", "error", lastErr)
		return lastErr
	default:
		delay := w.cfg.Backoff(job.Attempt)
		log.ErrorContext(ctx, "workqueue: recording the give-up failed; the last attempt runs again",
			"error", err, "last_error", lastErr, "retry_in", delay)
		return river.JobSnooze(max(delay, 0))
	}
}

// discardJob marks the running attempt of a job as given up, the way River
// discards a job (state, finalized_at, the attempt's error appended), and tags
// it so that it can be told apart from a job River discarded itself. It
// matches only while this attempt still owns the job.
const discardJob = `
UPDATE river_job
SET state = 'discarded',
    finalized_at = now(),
    errors = array_append(errors, $3::jsonb),
    metadata = metadata || '{"workqueue_gave_up": true}'::jsonb
WHERE id = $1 AND attempt = $2 AND state = 'running'`

// finish runs the give-up transaction. finished is false, with a nil error,
// when the job no longer belongs to this attempt; then nothing is recorded.
// Once it commits, River's own completion of the attempt finds the job no
// longer running and leaves it as it is.
func (w *worker[T]) finish(ctx context.Context, job Job[T], started time.Time, lastErr error) (finished bool, err error) {
	errData, err := json.Marshal(rivertype.AttemptError{At: started.UTC(), Attempt: job.Attempt, Error: lastErr.Error()})
	if err != nil {
		return false, err
	}
	tx, err := w.q.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // no-op after Commit
	tag, err := tx.Exec(ctx, discardJob, job.ID, job.Attempt, errData)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if w.cfg.GiveUp != nil {
		if err := w.callGiveUp(ctx, tx, job, lastErr); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	return true, nil
}

func (w *worker[T]) callGiveUp(ctx context.Context, tx pgx.Tx, job Job[T], lastErr error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.q.logger.ErrorContext(ctx, "workqueue: GiveUp panicked",
				"kind", w.kind, "job_id", job.ID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("workqueue: %s GiveUp panicked: %v", w.kind, r)
		}
	}()
	if err := w.cfg.GiveUp(ctx, tx, job, lastErr); err != nil {
		return fmt.Errorf("GiveUp: %w", err)
	}
	return nil
}
