package listeners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
)

// Listener is a stable name, a query, and a handler that applies a batch of
// matching events inside the runtime's transaction.
type Listener struct {
	// Name is the listener's checkpoint key: stable across releases, unique
	// within a Runtime, not "all".
	Name string
	// Query selects the events the listener handles.
	Query eventstore.Query
	// Handle applies events (in position order, never empty) inside tx; its
	// side effects and the new checkpoint commit together. Returning an error
	// rolls the batch back; the runtime then hands the same events again in
	// parts, in a new transaction, each part in a savepoint rolled back if
	// Handle fails on it, to find the first event Handle fails on. It
	// commits the events before that one, stops the listener just before it
	// and retries from there with backoff. Handle may thus see the same
	// events more than once, but its effects in tx commit once per event.
	// The runtime owns tx: Handle must not commit or roll it back. It must
	// not stall for LeaseDuration without talking to the database, or
	// PostgreSQL ends its session (see the package doc).
	Handle func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error
	// Reset empties the listener's read model (e.g. TRUNCATE its tables)
	// inside tx; nil when there is nothing to empty.
	Reset func(ctx context.Context, tx pgx.Tx) error
}

// Options configure a Runtime. The zero value is ready to use.
type Options struct {
	// Holder is this replica's identity in leases (default:
	// hostname-pid-random). Two runtimes must not share one.
	Holder string
	// BatchSize is the most events handed to one Handle call (default 5000):
	// bigger batches make a replay faster (one commit per batch), smaller
	// ones shorter transactions.
	BatchSize int
	// PollInterval is how often a listener looks for new events without being
	// notified (default 1s): a lost notification costs at most this.
	PollInterval time.Duration
	// LeaseDuration is how long a lease lasts unless renewed (default 15s);
	// it is renewed every LeaseDuration/3 and by every committed batch. A
	// replica that dies holding a lease is replaced within this long.
	LeaseDuration time.Duration
	// RetryMin and RetryMax bound the exponential backoff, with jitter, after
	// a failed batch and after losing the notification connection (default
	// 100ms and 30s).
	RetryMin, RetryMax time.Duration
	// Coalesce is how long a listener woken by a notification waits for more
	// before it reads (default 5ms; negative: not at all). Under a steady
	// stream of commits, each a notification, it turns one transaction per
	// commit per listener into one per Coalesce, in bigger batches, for a
	// read model at most this much later. A listener notified of events none
	// of whose types it reads waits 20 times as long (100ms by default): it
	// only has to move its checkpoint past them, and WaitFor on the replica
	// that runs it cuts the wait back to Coalesce.
	Coalesce time.Duration
	// NoListen turns notifications off: listeners then wake only by polling.
	// For connection poolers that cannot LISTEN (PgBouncer in transaction mode).
	NoListen bool
	// Logger receives one line per error, where it stops, and lease changes
	// (default slog.Default()). Event payloads are never logged.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Holder == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "host"
		}
		o.Holder = fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.LeaseDuration < 3*time.Millisecond {
		o.LeaseDuration = 3 * time.Millisecond // renewals every LeaseDuration/3 need a positive period
	}
	if o.Coalesce == 0 {
		o.Coalesce = 5 * time.Millisecond
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// backoff is the wait before retry number attempt (1-based): RetryMin
// doubled per attempt up to RetryMax, then jittered down by up to half, so
// that replicas failing together do not retry together.
func (o Options) backoff(attempt int) time.Duration {
	d := o.RetryMin
	for i := 1; i < attempt && d < o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, o.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// ErrUnknownListener is matched (errors.Is) by the error Reset and WaitFor
// return for a name the Runtime does not have.
var ErrUnknownListener = errors.New("listeners: unknown listener")

// Runtime runs listeners: each in one replica at a time, in batches, from its
// checkpoint. Its methods are safe for concurrent use; Status, WaitFor and
// Reset work whether or not Run is running, and see every replica's work.
type Runtime struct {
	pool    *pgxpool.Pool
	store   *eventstore.Store
	opts    Options
	log     *slog.Logger
	runners []*runner // in registration order
	byName  map[string]*runner

	running atomic.Bool
	crashed atomic.Bool // test hook: stop without releasing leases
}

// runner is one listener's state in this Runtime.
type runner struct {
	rt *Runtime
	l  Listener
	// wake says events of types the listener reads were appended (or types
	// unknown); stir says events were appended that it does not read, so
	// that all it has to do is move its checkpoint past them, which can
	// wait; hurry says WaitFor is waiting, so that it should not; control
	// says the listener's row changed elsewhere (its holder released it, or
	// it was reset). All are buffered by one and sent to without blocking.
	wake, stir, hurry, control chan struct{}
	// types are the event types the listener reads; nil when its query
	// matches events of any type.
	types    map[string]bool
	active   atomic.Bool  // this Runtime holds the lease and runs the listener
	attempts atomic.Int64 // batch transactions begun, for tests
	progress broadcast    // a batch committed
}

// New returns a Runtime for listeners on pool, whose database must have been
// migrated (package migrations), reading through store. It panics on wiring
// mistakes: no pool or store, an empty, duplicate or reserved ("all") name, a
// nil Handle, or a query the store would refuse.
func New(pool *pgxpool.Pool, store *eventstore.Store, opts Options, listeners ...Listener) *Runtime {
	if pool == nil || store == nil {
		panic("listeners: New needs a pool and a store")
	}
	opts = opts.withDefaults()
	r := &Runtime{pool: pool, store: store, opts: opts, log: opts.Logger, byName: map[string]*runner{}}
	for _, l := range listeners {
		switch {
		case l.Name == "":
			panic("listeners: a listener has no name")
		case l.Name == allName:
			panic(`listeners: "all" is reserved for Reset and cannot name a listener`)
		case r.byName[l.Name] != nil:
			panic(fmt.Sprintf("listeners: two listeners are named %q", l.Name))
		case l.Handle == nil:
			panic(fmt.Sprintf("listeners: listener %q has no Handle", l.Name))
		}
		if err := store.Limits().ValidateQuery("listener "+l.Name+" query", l.Query); err != nil {
			panic(fmt.Sprintf("listeners: %v", err))
		}
		rn := &runner{rt: r, l: l, types: typesOf(l.Query), wake: make(chan struct{}, 1),
			stir: make(chan struct{}, 1), hurry: make(chan struct{}, 1), control: make(chan struct{}, 1)}
		r.runners = append(r.runners, rn)
		r.byName[l.Name] = rn
	}
	return r
}

// allName names every listener in Reset.
const allName = "all"

// Names returns the listeners' names in the order given to New.
func (r *Runtime) Names() []string {
	names := make([]string, len(r.runners))
	for i, rn := range r.runners {
		names[i] = rn.l.Name
	}
	return names
}

// Run runs every listener until ctx is done, then releases the leases it
// holds so that another replica takes over at once, and returns nil. Errors
// along the way (handler failures, PostgreSQL away) are logged and retried,
// never returned. It returns an error only if Run is already running.
func (r *Runtime) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("listeners: Run is already running")
	}
	defer r.running.Store(false)
	var wg sync.WaitGroup
	if !r.opts.NoListen {
		wg.Go(func() { r.listen(ctx) })
	}
	for _, rn := range r.runners {
		wg.Go(func() { rn.run(ctx) })
	}
	wg.Wait()
	return nil
}

func (r *Runtime) lookup(name string) (*runner, error) {
	if rn := r.byName[name]; rn != nil {
		return rn, nil
	}
	return nil, fmt.Errorf("%w %q; known: %s", ErrUnknownListener, name, strings.Join(r.Names(), ", "))
}

// resetSQL sets a listener's checkpoint to 0, creating its row if needed,
// and notifies the runtime that runs it. Taking the row lock first orders the
// reset with batches, which also lock the row before touching a read model.
const resetSQL = `
WITH reset AS (
	INSERT INTO listener_checkpoints (name, position, updated_at) VALUES ($1, 0, now())
	ON CONFLICT (name) DO UPDATE
	SET position = 0, last_error = NULL, last_error_at = NULL, updated_at = now()
	RETURNING name)
SELECT pg_notify('` + controlChannel + `', name) FROM reset`

// Reset empties the read models of the named listeners ("all" for every
// one) and sets their checkpoints to 0, in one transaction: all of them, or
// none when any step fails. It works on a database where the listeners never
// ran. A batch in flight, here or in another replica, commits first (the
// reset waits for it) and is emptied with the rest; the runtime running the
// listener continues from position 0 with its next batch. An unknown name is
// an error matching ErrUnknownListener that lists the known ones; no names
// is a no-op.
//
// Resetting a listener without a Reset function (an automation) replays its
// triggers: its effects must be idempotent.
func (r *Runtime) Reset(ctx context.Context, names ...string) error {
	var targets []*runner
	for _, name := range names {
		if name == allName {
			targets = append(targets, r.runners...)
			continue
		}
		rn, err := r.lookup(name)
		if err != nil {
			return err
		}
		targets = append(targets, rn)
	}
	// One lock order for every caller, so that concurrent resets never deadlock.
	slices.SortFunc(targets, func(a, b *runner) int { return strings.Compare(a.l.Name, b.l.Name) })
	targets = slices.Compact(targets)
	if len(targets) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		for _, rn := range targets {
			if _, err := tx.Exec(ctx, resetSQL, rn.l.Name); err != nil {
				return fmt.Errorf("checkpoint of %s: %w", rn.l.Name, err)
			}
		}
		for _, rn := range targets {
			if rn.l.Reset == nil {
				continue
			}
			if err := rn.l.Reset(ctx, tx); err != nil {
				return fmt.Errorf("read model of %s: %w", rn.l.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listeners: reset: %w", err)
	}
	for _, rn := range targets {
		poke(rn.control) // the notification does it too, unless NoListen
	}
	return nil
}

// Status describes one listener, as every replica sees it.
type Status struct {
	Name string
	// Checkpoint is the position up to which the listener has handled every
	// matching event; Head is the log's last position; Lag is Head -
	// Checkpoint, never negative.
	Checkpoint, Head, Lag int64
	// Holder is the replica that holds or last held the lease, until
	// LeaseUntil.
	Holder     string
	LeaseUntil time.Time
	// LastError is the error of the latest failed batch, cleared by the next
	// successful one; LastErrorAt is when it happened. Its text is stored
	// without NUL bytes, as valid UTF-8, and cut at about 2000 bytes.
	LastError   string
	LastErrorAt time.Time
	// Running is whether this Runtime holds the lease and runs the listener.
	Running bool
}

const statusSQL = `
SELECT name, position, holder, lease_until, last_error, last_error_at
FROM listener_checkpoints WHERE name = ANY ($1)`

// Status returns the state of every listener, in the order given to New. A
// listener that never ran nor was reset has checkpoint 0 and no holder.
func (r *Runtime) Status(ctx context.Context) ([]Status, error) {
	rows, err := r.pool.Query(ctx, statusSQL, r.Names())
	if err != nil {
		return nil, fmt.Errorf("listeners: status: %w", err)
	}
	stored := map[string]Status{}
	var (
		st                 Status
		holder, lastError  *string
		leaseUntil, lastAt *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&st.Name, &st.Checkpoint, &holder, &leaseUntil, &lastError, &lastAt}, func() error {
		s := Status{Name: st.Name, Checkpoint: st.Checkpoint}
		if holder != nil {
			s.Holder = *holder
		}
		if leaseUntil != nil {
			s.LeaseUntil = *leaseUntil
		}
		if lastError != nil {
			s.LastError = *lastError
		}
		if lastAt != nil {
			s.LastErrorAt = *lastAt
		}
		stored[s.Name] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listeners: status: %w", err)
	}
	// Read after the checkpoints, so that the lag is never understated.
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("listeners: status: %w", err)
	}
	out := make([]Status, len(r.runners))
	for i, rn := range r.runners {
		s := stored[rn.l.Name]
		s.Name = rn.l.Name
		s.Head = head
		s.Lag = max(head-s.Checkpoint, 0)
		s.Running = rn.active.Load()
		out[i] = s
	}
	return out, nil
}

const checkpointSQL = `SELECT coalesce((SELECT position FROM listener_checkpoints WHERE name = $1), 0)`

// WaitFor returns the checkpoint of the named listener as soon as it is at
// least position, wherever the listener runs: it reads the checkpoint from
// the database, wakes when this Runtime commits a batch of it and otherwise
// polls, starting at a few milliseconds. When this Runtime runs the listener
// and it is waiting out events it does not read (see Options.Coalesce),
// WaitFor cuts that wait short; it never starts a batch otherwise. When ctx
// ends first it returns the last checkpoint it read and an error wrapping
// ctx.Err(). An unknown name is an error matching ErrUnknownListener.
func (r *Runtime) WaitFor(ctx context.Context, name string, position int64) (int64, error) {
	rn, err := r.lookup(name)
	if err != nil {
		return 0, err
	}
	const firstPoll, maxPoll = 5 * time.Millisecond, 200 * time.Millisecond
	poll := firstPoll
	timer := time.NewTimer(poll)
	defer timer.Stop()
	var checkpoint int64
	for {
		progressed := rn.progress.wait() // before the read, so no commit goes unnoticed
		if err := r.pool.QueryRow(ctx, checkpointSQL, name).Scan(&checkpoint); err != nil {
			if ctx.Err() != nil {
				return checkpoint, fmt.Errorf("listeners: wait for %s to reach %d: %w", name, position, ctx.Err())
			}
			return checkpoint, fmt.Errorf("listeners: wait for %s to reach %d: %w", name, position, err)
		}
		if checkpoint >= position {
			return checkpoint, nil
		}
		if rn.active.Load() {
			poke(rn.hurry) // it may be taking its time over events it does not read
		}
		timer.Reset(poll)
		select {
		case <-ctx.Done():
			return checkpoint, fmt.Errorf("listeners: wait for %s to reach %d (at %d): %w", name, position, checkpoint, ctx.Err())
		case <-progressed:
		case <-timer.C:
			poll = min(2*poll, maxPoll)
		}
	}
}

// broadcast wakes every waiter once per signal, like a condition variable
// whose waiters can also select on a context.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed by the next signal.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// typesOf returns the set of types q reads, nil when it reads every type.
func typesOf(q eventstore.Query) map[string]bool {
	if len(q.Items) == 0 {
		return nil
	}
	types := map[string]bool{}
	for _, it := range q.Items {
		if len(it.Types) == 0 {
			return nil
		}
		for _, t := range it.Types {
			types[t] = true
		}
	}
	return types
}

// reads reports whether the listener reads any of the types appended, nil
// meaning unknown.
func (rn *runner) reads(appended []string) bool {
	return rn.types == nil || appended == nil || slices.ContainsFunc(appended, func(t string) bool { return rn.types[t] })
}

// poke sends on a channel buffered by one without blocking: a wake-up already
// pending covers this one.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
