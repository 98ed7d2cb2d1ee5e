package workqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Args is a job's arguments: a struct, JSON-encoded with encoding/json, whose
// Kind names the job's kind. The kind is stored with every job, so it must
// stay stable across releases, and so must the JSON shape of the struct (add
// fields, never rename them). Kind must work on the zero value, because the
// kind of a registered type is read from it; a value receiver does.
//
// It has the same shape as river.JobArgs on purpose, so values pass through.
type Args interface {
	Kind() string
}

// EnqueueOptions tune one enqueued job. The zero value enqueues a job that runs
// as soon as a worker is free.
type EnqueueOptions struct {
	// UniqueKey, when not empty, allows at most one job of this kind with this
	// key, ever and in any state (running, completed, given up, cancelled):
	// enqueueing it again inserts nothing and reports inserted=false. This is
	// how a trigger that may be delivered twice (a replayed event, a retried
	// request) enqueues its job once. Finished jobs are never deleted, which is
	// what makes "ever" true.
	UniqueKey string
	// ScheduledAt, when in the future, is the earliest time the job runs. The
	// job's MaxDuration budget still counts from when it was enqueued.
	ScheduledAt time.Time
}

// Options configure a Queue. The zero value is ready to use.
type Options struct {
	// Logger receives the queue's and River's logs. Default slog.Default().
	Logger *slog.Logger
	// Workers is how many jobs run at once in this process. Default 10.
	Workers int
	// PollInterval is how often the queue looks for jobs when no notification
	// says one is there (a retry whose backoff has elapsed, a job whose
	// notification was missed). Default 1s; tests use a few milliseconds.
	PollInterval time.Duration
	// ID names this process among those working the same database; it must be
	// unique among them. Default: generated.
	ID string
}

// ErrUnknownKind is returned by Enqueue and EnqueueTx for a kind that was
// never registered with Register on this Queue.
var ErrUnknownKind = errors.New("workqueue: unknown job kind")

const (
	defaultWorkers      = 10
	defaultPollInterval = time.Second
	// maxFetchCooldown is River's default minimum time between fetches; a
	// shorter PollInterval shortens it too, so short backoffs are respected
	// closely in tests.
	maxFetchCooldown = 100 * time.Millisecond
	// hardStopWait bounds how long Stop waits for jobs to return once it has
	// cancelled them.
	hardStopWait = 15 * time.Second
	// rescueMargin is added to the longest attempt (Timeout plus the GiveUp
	// time) to decide when a job still marked running belongs to a process
	// that died, so that River rescues it.
	rescueMargin = time.Minute
)

// Queue runs background jobs on PostgreSQL, with River. It is safe for
// concurrent use. Register every kind, then Start; Enqueue and EnqueueTx work
// before Start too (jobs wait until some process works them).
type Queue struct {
	pool   *pgxpool.Pool
	opts   Options
	logger *slog.Logger

	mu      sync.Mutex
	workers *river.Workers
	kinds   map[string]kindInfo
	client  *river.Client[pgx.Tx] // built on first use; Register panics after that
}

// kindInfo is what Enqueue needs to know about a registered kind.
type kindInfo struct {
	maxAttempts int // River's max_attempts: our MaxAttempts plus crashAllowance
	timeout     time.Duration
}

// New returns a Queue on pool, whose database must be migrated (package
// migrations applies River's migrations). It starts nothing: no goroutine
// runs and no connection is used until Start or the first Enqueue.
func New(pool *pgxpool.Pool, opts Options) *Queue {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	return &Queue{
		pool:    pool,
		opts:    opts,
		logger:  opts.Logger,
		workers: river.NewWorkers(),
		kinds:   map[string]kindInfo{},
	}
}

// riverClient returns the River client, building it on first use from the
// kinds registered so far.
func (q *Queue) riverClient() (*river.Client[pgx.Tx], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client != nil {
		return q.client, nil
	}
	longest := time.Duration(0)
	for _, k := range q.kinds {
		longest = max(longest, k.timeout)
	}
	client, err := river.NewClient(riverpgxv5.New(q.pool), &river.Config{
		ID:     q.opts.ID,
		Logger: q.logger,
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: q.opts.Workers},
		},
		Workers:           q.workers,
		FetchPollInterval: q.opts.PollInterval,
		FetchCooldown:     min(q.opts.PollInterval, maxFetchCooldown),
		// Finished jobs are kept forever: a unique key must keep blocking
		// duplicates after its job has finished (EnqueueOptions.UniqueKey).
		CompletedJobRetentionPeriod: -1,
		CancelledJobRetentionPeriod: -1,
		DiscardedJobRetentionPeriod: -1,
		// A job still running after its longest possible attempt belongs to a
		// process that died: River makes it available again.
		RescueStuckJobsAfter: longest + rescueMargin,
	})
	if err != nil {
		return nil, fmt.Errorf("workqueue: %w", err)
	}
	q.client = client
	return client, nil
}

// Start begins working jobs in the background and returns. ctx bounds the
// start only: cancelling it later does not stop the queue; call Stop. Start
// returns an error when the database cannot be used (for instance when River's
// migrations were not applied).
func (q *Queue) Start(ctx context.Context) error {
	client, err := q.riverClient()
	if err != nil {
		return err
	}
	// River would hard-stop when its Start context ends; Stop is the only way
	// to end the queue, so that shutdown is always graceful first.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("workqueue: start: %w", err)
	}
	return nil
}

// Stop stops the queue gracefully: it stops taking new jobs and waits for the
// running ones to return. If ctx ends first, it cancels the contexts of the
// jobs still running, waits a little more for them to return (they go back to
// the queue without using up an attempt, and run again later) and returns an
// error wrapping ctx's. It returns nil when every running job finished. Stop
// on a queue that was never started does nothing.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	client := q.client
	q.mu.Unlock()
	if client == nil {
		return nil
	}
	err := client.Stop(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return fmt.Errorf("workqueue: stop: %w", err)
	}
	q.logger.WarnContext(ctx, "workqueue: stop deadline reached; cancelling running jobs")
	hardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hardStopWait)
	defer cancel()
	if err := client.StopAndCancel(hardCtx); err != nil {
		return fmt.Errorf("workqueue: stop: jobs did not return %s after cancellation: %w", hardStopWait, err)
	}
	return fmt.Errorf("workqueue: stop: running jobs cancelled: %w", ctx.Err())
}

// EnqueueTx enqueues a job inside tx, which the caller owns: the job exists if
// and only if tx commits, and no worker sees it before. inserted is false when
// opts.UniqueKey names a job that already exists (or that a concurrent
// transaction has inserted and then commits: EnqueueTx waits for it). The kind
// must be registered (ErrUnknownKind otherwise).
func (q *Queue) EnqueueTx(ctx context.Context, tx pgx.Tx, args Args, opts EnqueueOptions) (inserted bool, err error) {
	client, riverArgs, riverOpts, err := q.prepare(args, opts)
	if err != nil {
		return false, err
	}
	res, err := client.InsertTx(ctx, tx, riverArgs, riverOpts)
	if err != nil {
		return false, fmt.Errorf("workqueue: enqueue %s: %w", args.Kind(), err)
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

// Enqueue enqueues a job in a transaction of its own; see EnqueueTx.
func (q *Queue) Enqueue(ctx context.Context, args Args, opts EnqueueOptions) (bool, error) {
	client, riverArgs, riverOpts, err := q.prepare(args, opts)
	if err != nil {
		return false, err
	}
	res, err := client.Insert(ctx, riverArgs, riverOpts)
	if err != nil {
		return false, fmt.Errorf("workqueue: enqueue %s: %w", args.Kind(), err)
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

func (q *Queue) prepare(args Args, opts EnqueueOptions) (*river.Client[pgx.Tx], insertArgs, *river.InsertOpts, error) {
	if args == nil {
		return nil, insertArgs{}, nil, fmt.Errorf("%w: nil args", ErrUnknownKind)
	}
	kind := args.Kind()
	q.mu.Lock()
	info, ok := q.kinds[kind]
	q.mu.Unlock()
	if !ok {
		return nil, insertArgs{}, nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	client, err := q.riverClient()
	if err != nil {
		return nil, insertArgs{}, nil, err
	}
	riverOpts := &river.InsertOpts{MaxAttempts: info.maxAttempts, ScheduledAt: opts.ScheduledAt}
	if opts.UniqueKey != "" {
		riverOpts.UniqueOpts = river.UniqueOpts{
			// Only the field tagged river:"unique" (the key) counts, with the
			// kind; every state counts, so a finished job blocks a duplicate.
			ByArgs:  true,
			ByState: rivertype.JobStates(),
		}
	}
	return client, insertArgs{kind: kind, Args: args, UniqueKey: opts.UniqueKey}, riverOpts, nil
}

// insertArgs is what River stores for a job: the caller's args under "args"
// and the unique key beside them. River hashes only the field tagged
// river:"unique" (Args is an interface, which River does not look into), so
// the key alone decides uniqueness, and it is visible in River's UI.
type insertArgs struct {
	kind      string
	Args      Args   `json:"args"`
	UniqueKey string `json:"unique_key,omitempty" river:"unique"`
}

func (a insertArgs) Kind() string { return a.kind }

// jobArgs is insertArgs as a worker decodes it, with the caller's type.
type jobArgs[T Args] struct {
	Args      T      `json:"args"`
	UniqueKey string `json:"unique_key,omitempty"`
}

func (jobArgs[T]) Kind() string {
	var zero T
	return zero.Kind()
}
