package eventstore

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Limits bound events and queries; zero fields take DefaultLimits.
	Limits Limits
	// MaxBatch is the largest number of appends committed together by group
	// commit (default 256). 1 commits every append on its own.
	MaxBatch int
	// BatchWait is how long group commit waits for the writers of the
	// previous batch to send their next appends (default 200µs; see
	// commitLoop). A lone writer never waits; one left alone by the others
	// waits once.
	BatchWait time.Duration
	// BatchTimeout bounds one group commit (default 30s). Its appends then
	// fail with ErrUnavailable: whether they committed is unknown.
	BatchTimeout time.Duration
	// PageSize is the number of events Stream fetches per query (default
	// 1000, at most math.MaxInt32: New panics above).
	PageSize int
	// OnAppend, when set, is called after every Append and AppendTx with what
	// happened, for metrics, except those refused with an *InputError, which
	// never reached the database. It must be quick and safe for concurrent
	// use.
	OnAppend func(AppendStats)
}

// AppendStats describes one append, for metrics.
type AppendStats struct {
	Events   int
	Duration time.Duration
	// Err is nil, ErrAppendConditionFailed, or whatever else the append returned.
	Err error
}

// Store is the event store. It is safe for concurrent use. Appends on the pool
// are group-committed: appends that arrive while a commit is in progress are
// written together in the next transaction, each checked against its own
// condition in arrival order, so throughput does not stop at one commit per
// append. Call Close when done.
type Store struct {
	pool      *pgxpool.Pool
	limits    Limits
	maxBatch  int
	batchWait time.Duration
	timeout   time.Duration
	pageSize  int
	onAppend  func(AppendStats)

	queue   chan *pending
	mu      sync.RWMutex // guards closed against senders
	closed  bool
	senders sync.WaitGroup
	stopped chan struct{}
}

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// New returns a Store on pool, whose database must have been migrated (see
// package migrations). It starts the group-commit goroutine; Close stops it.
func New(pool *pgxpool.Pool, opts Options) *Store {
	s := &Store{
		pool:      pool,
		limits:    opts.Limits.withDefaults(),
		maxBatch:  opts.MaxBatch,
		batchWait: opts.BatchWait,
		timeout:   opts.BatchTimeout,
		pageSize:  opts.PageSize,
		onAppend:  opts.OnAppend,
		stopped:   make(chan struct{}),
	}
	if s.maxBatch <= 0 {
		s.maxBatch = 256
	}
	if s.batchWait <= 0 {
		s.batchWait = 200 * time.Microsecond
	}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	if s.pageSize <= 0 {
		s.pageSize = 1000
	}
	if s.pageSize > math.MaxInt32 {
		panic(fmt.Sprintf("eventstore: Options.PageSize is %d, the largest is %d", s.pageSize, math.MaxInt32))
	}
	s.queue = make(chan *pending, 4*s.maxBatch)
	go s.commitLoop()
	return s
}

// Close stops accepting appends, commits those already queued, and returns when
// the group-commit goroutine has stopped. It does not close the pool.
func (s *Store) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.stopped
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.senders.Wait()
	close(s.queue)
	<-s.stopped
}

// Limits returns the limits the store enforces.
func (s *Store) Limits() Limits { return s.limits }

// Pool returns the pool the store was created with.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
