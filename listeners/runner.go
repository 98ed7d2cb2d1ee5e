package listeners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dcbkit/dcbkit/eventstore"
)

// The lease statements. Durations travel as microseconds; every time is the
// database's, so the replicas' clocks do not matter.
const (
	// ensureSQL creates the listener's row; it never waits on a row lock.
	ensureSQL = `INSERT INTO listener_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`

	// acquireSQL takes the lease if it is free, expired or already ours. SKIP
	// LOCKED: a row locked by the holder's batch in flight is not free, and
	// waiting for it would only tie up a connection.
	acquireSQL = `
WITH free AS (
	SELECT name FROM listener_checkpoints
	WHERE name = $1 AND (holder IS NULL OR holder = $2 OR lease_until IS NULL OR lease_until <= now())
	FOR NO KEY UPDATE SKIP LOCKED)
UPDATE listener_checkpoints c
SET holder = $2, lease_until = now() + $3::bigint * interval '1 microsecond', updated_at = now()
FROM free WHERE c.name = free.name`

	// leaseLeftSQL says how long the current lease has to run, in seconds.
	leaseLeftSQL = `
SELECT coalesce(extract(epoch FROM lease_until - now()), 0)::float8
FROM listener_checkpoints WHERE name = $1`

	renewSQL = `
UPDATE listener_checkpoints
SET lease_until = now() + $3::bigint * interval '1 microsecond', updated_at = now()
WHERE name = $1 AND holder = $2`

	// releaseSQL ends our lease now and tells the other replicas.
	releaseSQL = `
WITH released AS (
	UPDATE listener_checkpoints SET lease_until = now(), updated_at = now()
	WHERE name = $1 AND holder = $2
	RETURNING name)
SELECT pg_notify('` + controlChannel + `', name) FROM released`

	recordErrorSQL = `
UPDATE listener_checkpoints SET last_error = $3, last_error_at = now(), updated_at = now()
WHERE name = $1 AND holder = $2`
)

// The batch statements.
const (
	// lockSQL opens a batch: it locks the listener's row if we hold the lease,
	// returns the checkpoint and the log's head, and bounds how long the
	// session may sit idle in this transaction (see the package doc). The
	// head comes from this statement's snapshot, taken before the read's.
	lockSQL = `
SELECT c.position, (SELECT coalesce(max(e.position), 0) FROM events e),
	set_config('idle_in_transaction_session_timeout', $3::text, true)
FROM listener_checkpoints c
WHERE c.name = $1 AND c.holder = $2
FOR NO KEY UPDATE OF c`

	// advanceSQL closes a batch: the fence (still our lease, still the
	// checkpoint the batch started from), the new checkpoint, a lease
	// renewed from now (clock_timestamp: the batch may have been long) and
	// the last error: none ($6 NULL), or that of the event the batch
	// stopped before, so that the listener never looks healthy meanwhile.
	advanceSQL = `
UPDATE listener_checkpoints
SET position = $4, lease_until = clock_timestamp() + $5::bigint * interval '1 microsecond',
	last_error = $6::text, last_error_at = CASE WHEN $6::text IS NULL THEN NULL ELSE now() END, updated_at = now()
WHERE name = $1 AND holder = $2 AND position = $3`
)

// idleCoalesce is how many times Coalesce a listener waits after appends of
// types it does not read (see Options.Coalesce).
const idleCoalesce = 20

// errLeaseLost means another replica holds the listener now.
var errLeaseLost = errors.New("lease lost")

// maxErrorBytes bounds the error text kept in listener_checkpoints.
const maxErrorBytes = 2000

// run runs the listener until ctx is done: it takes the lease when it can,
// runs batches while it holds it, and releases it at the end.
func (rn *runner) run(ctx context.Context) {
	o := rn.rt.opts
	log := rn.rt.log.With("listener", rn.l.Name, "holder", o.Holder)
	ensured, failures := false, 0
	for ctx.Err() == nil {
		var wait time.Duration
		held, err := rn.acquire(ctx, &ensured)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			wait = o.backoff(failures)
			log.Warn("listener: cannot take its lease", "err", err, "retry_in", wait)
		case held:
			failures = 0
			rn.active.Store(true)
			log.Info("listener: lease taken")
			lost := rn.lead(ctx, log)
			rn.active.Store(false)
			if !lost {
				rn.release(ctx, log)
				return
			}
			log.Info("listener: lease lost to another replica")
			continue
		default:
			failures = 0
			if wait, err = rn.leaseLeft(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("listener: cannot read its lease", "err", err)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-rn.control:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// acquire takes the lease if it is free, expired or ours.
func (rn *runner) acquire(ctx context.Context, ensured *bool) (bool, error) {
	o := rn.rt.opts
	if !*ensured {
		if _, err := rn.rt.pool.Exec(ctx, ensureSQL, rn.l.Name); err != nil {
			return false, err
		}
		*ensured = true
	}
	tag, err := rn.rt.pool.Exec(ctx, acquireSQL, rn.l.Name, o.Holder, o.LeaseDuration.Microseconds())
	return tag.RowsAffected() == 1, err
}

// leaseLeft returns how long a standby waits before trying again: until the
// holder's lease ends, but at most PollInterval (a release wakes it sooner
// through the control channel, unless NoListen). A lease already over means
// the holder's batch in flight has the row: look again shortly.
func (rn *runner) leaseLeft(ctx context.Context) (time.Duration, error) {
	o := rn.rt.opts
	var secs float64
	if err := rn.rt.pool.QueryRow(ctx, leaseLeftSQL, rn.l.Name).Scan(&secs); err != nil {
		return min(o.PollInterval, o.LeaseDuration/3), err
	}
	wait := time.Duration(secs*float64(time.Second)) + time.Millisecond
	if secs <= 0 {
		wait = o.LeaseDuration / 10
	}
	return min(wait, o.PollInterval), nil
}

// lead runs batches while this Runtime holds the lease: at once, then on
// every notification and poll, renewing the lease while idle. It returns
// true when the lease was lost, false when ctx is done.
func (rn *runner) lead(ctx context.Context, log *slog.Logger) bool {
	o := rn.rt.opts
	renew := time.NewTicker(o.LeaseDuration / 3)
	defer renew.Stop()
	poll := time.NewTicker(o.PollInterval)
	defer poll.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	coalesce := time.NewTimer(0)
	coalesce.Stop()
	defer coalesce.Stop()
	coalescing, idle := false, false // idle: coalescing for a stir only

	failures, due := 0, true
	for {
		if due {
			due = false
			progressed, err := rn.catchUp(ctx)
			if progressed {
				failures = 0 // attempts count the failures at one position
			}
			switch {
			case ctx.Err() != nil:
				return false
			case errors.Is(err, errLeaseLost):
				return true
			case err != nil:
				failures++
				wait := o.backoff(failures)
				args := []any{"err", err, "attempt", failures, "retry_in", wait}
				if rerr := rn.recordError(ctx, err); rerr != nil {
					args = append(args, "record_err", rerr)
				}
				log.Error("listener: batch failed", args...)
				retry.Reset(wait)
			default:
				failures = 0
			}
		}
		// While backing off, only the retry timer (and the lease) count:
		// appends must not hurry a failing listener.
		var wake, stir, hurry, control <-chan struct{}
		var polled, retried, coalesced <-chan time.Time
		if failures > 0 {
			retried = retry.C
		} else {
			wake, stir, hurry, control, polled = rn.wake, rn.stir, rn.hurry, rn.control, poll.C
			if coalescing {
				coalesced = coalesce.C
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
			switch {
			case o.Coalesce < 0:
				due = true
			case !coalescing || idle:
				// More commits are likely on their way: take them together.
				coalescing, idle = true, false
				coalesce.Reset(o.Coalesce)
			}
		case <-stir:
			switch {
			case o.Coalesce < 0:
				due = true
			case !coalescing:
				coalescing, idle = true, true
				coalesce.Reset(idleCoalesce * o.Coalesce)
			}
		case <-hurry:
			if coalescing && idle {
				idle = false
				coalesce.Reset(o.Coalesce)
			}
		case <-coalesced:
			coalescing, idle, due = false, false, true
		case <-control:
			due = true
		case <-polled:
			due = true
		case <-retried:
			due = true
		case <-renew.C:
			tag, err := rn.rt.pool.Exec(ctx, renewSQL, rn.l.Name, o.Holder, o.LeaseDuration.Microseconds())
			switch {
			case ctx.Err() != nil:
				return false
			case err != nil:
				log.Warn("listener: cannot renew its lease", "err", err)
			case tag.RowsAffected() == 0:
				return true
			}
		}
	}
}

// catchUp runs batches until one is not full or fails. It reports whether
// any batch committed.
func (rn *runner) catchUp(ctx context.Context) (progressed bool, err error) {
	for {
		committed, full, err := rn.batch(ctx)
		progressed = progressed || committed
		if err != nil || !full || ctx.Err() != nil {
			return progressed, err
		}
	}
}

// batch handles the events after the checkpoint, at most BatchSize of them,
// and moves the checkpoint, in one transaction. It reports whether it
// committed, and whether the batch was full, in which case more may follow
// at once. When Handle fails, the batch is rolled back and handed again in
// parts (see handleInParts).
func (rn *runner) batch(ctx context.Context) (committed, full bool, err error) {
	o := rn.rt.opts
	tx, checkpoint, head, err := rn.begin(ctx)
	if err != nil {
		return false, false, err
	}
	defer rn.rollback(ctx, tx)
	events, err := rn.rt.store.ReadTx(ctx, tx, rn.l.Query, eventstore.ReadOptions{From: checkpoint + 1, Limit: o.BatchSize})
	if err != nil {
		return false, false, fmt.Errorf("read after %d: %w", checkpoint, err)
	}

	// Positions become visible in increasing order (eventstore guarantee 2),
	// and head was read in a snapshot older than the read's: every event at
	// or below head was visible to the read. So when the read was not cut
	// short by the limit, nothing matching is left at or below head.
	full = len(events) == o.BatchSize
	next := checkpoint
	if len(events) > 0 {
		next = events[len(events)-1].Position
	}
	if !full {
		next = max(next, head)
	}
	if next == checkpoint {
		return false, false, nil // nothing new; the rollback unlocks the row
	}
	if len(events) > 0 {
		if herr := rn.handle(ctx, tx, events); herr != nil {
			rn.rollback(ctx, tx)
			return rn.handleInParts(ctx, checkpoint, events, next, full, herr)
		}
	}
	if err := rn.advance(ctx, tx, checkpoint, next, nil); err != nil {
		return false, false, err
	}
	return true, full, nil
}

// handleInParts runs after Handle failed on events (the batch read after
// checkpoint, rolled back), so that the listener stops at the failing event
// rather than at the start of its batch. In a new transaction, it halves
// the events until it has found the first event on which Handle fails,
// keeping every part that succeeds and rolling back (to a savepoint) every
// part that fails; then it moves the checkpoint to the position just before
// that event, committing the parts before it with it, and returns an error
// naming it. Each event's effects thus commit once, with the checkpoint
// that covers them, as in a batch. It takes about 2·log2(len(events))
// calls to Handle.
//
// The events are those of the failed batch: every event matching the query
// up to the last of them was visible to its read (guarantee 1), and the
// fence makes sure nobody moved the checkpoint since. If every part
// succeeds (a failure that does not recur), the batch commits as it would
// have, with next and full as it computed them.
func (rn *runner) handleInParts(ctx context.Context, checkpoint int64, events []eventstore.StoredEvent, next int64, full bool, batchErr error) (committed, stillFull bool, err error) {
	// Where the batch failed is unknown until the failing event is found.
	handleErr := batchErr
	batchErr = fmt.Errorf("handle events %d..%d: %w", events[0].Position, events[len(events)-1].Position, batchErr)
	tx, again, _, err := rn.begin(ctx)
	if err != nil {
		return false, false, errors.Join(batchErr, err)
	}
	defer rn.rollback(ctx, tx)
	if again != checkpoint {
		return false, false, fmt.Errorf("%w (the checkpoint moved from %d to %d since)", batchErr, checkpoint, again)
	}

	// events[:lo] are handled in tx. When failErr is set, Handle failed
	// with it on events[lo:hi]; when it is not, events[lo:hi] are yet to be
	// tried.
	lo, hi, failErr := 0, len(events), handleErr
	for lo < len(events) {
		if lo == hi { // what failed together succeeded in parts: go on with the rest
			hi = len(events)
		}
		if hi-lo == 1 && failErr != nil {
			break // found
		}
		mid := lo + max((hi-lo)/2, 1)
		perr, err := rn.handlePart(ctx, tx, events[lo:mid])
		switch {
		case err != nil:
			return false, false, errors.Join(batchErr, err)
		case perr == nil:
			lo, failErr = mid, nil
		default:
			hi, failErr = mid, perr
		}
	}
	if lo == len(events) {
		rn.rt.log.Warn("listener: a batch failed but succeeded in parts", "listener", rn.l.Name,
			"events", fmt.Sprintf("%d..%d", events[0].Position, events[len(events)-1].Position), "err", batchErr)
		if err := rn.advance(ctx, tx, checkpoint, next, nil); err != nil {
			return false, false, err
		}
		return true, full, nil
	}

	// Every event matching the query below the failing one is in events[:lo],
	// handled: the checkpoint may move to the position just before it, past
	// the events the listener does not read too.
	ferr := fmt.Errorf("handle event %d (type %s): %w", events[lo].Position, events[lo].Type, failErr)
	before := events[lo].Position - 1
	if before == checkpoint {
		return false, false, ferr
	}
	text := errorText(ferr.Error())
	if err := rn.advance(ctx, tx, checkpoint, before, &text); err != nil {
		return false, false, errors.Join(ferr, err)
	}
	return true, false, ferr
}

// handlePart calls Handle on part inside a savepoint of tx, released if it
// succeeds, rolled back to if it fails. It returns Handle's error as perr,
// and as err a failure to set, release or roll back to the savepoint,
// after which tx is unusable.
func (rn *runner) handlePart(ctx context.Context, tx pgx.Tx, part []eventstore.StoredEvent) (perr, err error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	if perr = rn.handle(ctx, sp, part); perr != nil {
		if err := sp.Rollback(ctx); err != nil {
			return perr, fmt.Errorf("roll back to savepoint: %w", err)
		}
		return perr, nil
	}
	if err := sp.Commit(ctx); err != nil {
		return nil, fmt.Errorf("release savepoint: %w", err)
	}
	return nil, nil
}

// begin opens a batch transaction: it locks the listener's row if this
// Runtime holds the lease (errLeaseLost if not) and returns the checkpoint
// and the log's head.
func (rn *runner) begin(ctx context.Context) (tx pgx.Tx, checkpoint, head int64, err error) {
	o := rn.rt.opts
	rn.attempts.Add(1)
	tx, err = rn.rt.pool.Begin(ctx)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("begin: %w", err)
	}
	idleMillis := strconv.FormatInt(max(o.LeaseDuration.Milliseconds(), 1), 10)
	var setting string
	err = tx.QueryRow(ctx, lockSQL, rn.l.Name, o.Holder, idleMillis).Scan(&checkpoint, &head, &setting)
	if err != nil {
		rn.rollback(ctx, tx)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, 0, 0, errLeaseLost
		}
		return nil, 0, 0, fmt.Errorf("lock checkpoint: %w", err)
	}
	return tx, checkpoint, head, nil
}

// advance moves the checkpoint from checkpoint to next behind the fence,
// records lastError (nil: none), and commits.
func (rn *runner) advance(ctx context.Context, tx pgx.Tx, checkpoint, next int64, lastError *string) error {
	o := rn.rt.opts
	tag, err := tx.Exec(ctx, advanceSQL, rn.l.Name, o.Holder, checkpoint, next, o.LeaseDuration.Microseconds(), lastError)
	if err != nil {
		return fmt.Errorf("advance checkpoint to %d: %w", next, err)
	}
	if tag.RowsAffected() != 1 {
		return errLeaseLost // cannot happen while the row is locked; the fence holds anyway
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit checkpoint %d: %w", next, err)
	}
	rn.progress.signal()
	return nil
}

// rollback ends tx; a no-op after Commit or an earlier Rollback. Not bound to
// ctx, so that a cancelled batch still hands its connection back cleanly;
// bounded all the same.
func (rn *runner) rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// handle calls Handle, turning a panic into an error so that a bug in one
// handler stops its listener, not the process.
func (rn *runner) handle(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return rn.l.Handle(ctx, tx, events)
}

// recordError stores err as the listener's last error, if we still hold it.
func (rn *runner) recordError(ctx context.Context, err error) error {
	_, rerr := rn.rt.pool.Exec(ctx, recordErrorSQL, rn.l.Name, rn.rt.opts.Holder, errorText(err.Error()))
	return rerr
}

// errorText makes msg storable as PostgreSQL text, whatever a handler put in
// it: without NUL bytes, valid UTF-8 (invalid bytes become U+FFFD), and at
// most maxErrorBytes plus an ellipsis, cut at a character boundary. An error
// text that failed to store would leave a failing listener looking healthy.
func errorText(msg string) string {
	msg = strings.ToValidUTF8(strings.ReplaceAll(msg, "\x00", ""), "\uFFFD")
	if len(msg) > maxErrorBytes {
		msg = strings.ToValidUTF8(msg[:maxErrorBytes], "") + "…"
	}
	return msg
}

// release ends our lease at once, so that a standby takes over without
// waiting for it to expire. A crashed process does not get to do this.
func (rn *runner) release(ctx context.Context, log *slog.Logger) {
	if rn.rt.crashed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := rn.rt.pool.Exec(ctx, releaseSQL, rn.l.Name, rn.rt.opts.Holder); err != nil {
		log.Warn("listener: cannot release its lease; it expires on its own", "err", err)
	}
}
