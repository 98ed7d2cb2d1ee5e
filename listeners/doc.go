// Package listeners runs checkpointed listeners on the event store: the
// projections that keep read models and the automations that react to
// events.
//
// # Model
//
// A Listener has a stable name, a query and a handler. It reads the events
// matching its query after its checkpoint, in position order, in batches, and
// its handler applies each batch inside a transaction that the Runtime owns
// and that also moves the checkpoint. The checkpoints live in the table
// listener_checkpoints (migrations/00002_listeners.sql), one row per
// listener, with its lease and its last error.
//
// # Guarantees
//
//  1. Never skips. A listener whose checkpoint is N has handled every
//     matching event with a position at or below N, even when appends commit
//     out of order. Each batch reads from checkpoint+1 in position order; the
//     event store serialises appends, so positions become visible in strictly
//     increasing order (eventstore guarantee 2, proven by eventstore's
//     TestPositionsBecomeVisibleInOrder): an event that commits later always
//     has a higher position than every event a read has seen, and a read
//     from checkpoint+1 can miss nothing below what it returns.
//  2. The checkpoint reaches the head. Each batch reads the log's head
//     before its read; when the read is not cut short by the batch size,
//     every matching event at or below that head was visible to it, so the
//     checkpoint moves to the head even if the last events do not match. A
//     reader waiting for position N (WaitFor) therefore never waits for an
//     event the listener does not handle to be handled, only for the
//     checkpoint to move past it (see 6 for when).
//  3. Exactly once in effect. What Handle writes through its tx commits
//     together with the new checkpoint, or not at all. If the commit fails
//     or the process dies, the batch is rolled back and handed again from
//     the same position; if Handle fails, see 5. Effects outside the
//     transaction (a call to another system) may happen more than once;
//     automations therefore enqueue jobs in tx instead of calling out.
//  4. One replica at a time. A listener runs where its lease is held: the
//     holder renews it every LeaseDuration/3 and with every batch, and
//     releases it when Run returns, so that a standby replica takes over at
//     once (it is notified); if the holder dies, a standby takes over once
//     the lease has expired, within LeaseDuration. Every batch starts by
//     locking the listener's row on condition that it still holds the
//     lease, and ends by moving the checkpoint on condition that the lease
//     and the checkpoint are still those it started from (the fence). While
//     a batch runs, nobody else can take the lease or reset the listener;
//     a replica that lost its lease starts no batch. So the handlers of one
//     listener never run concurrently, and every batch continues exactly
//     where the previous committed one ended. A batch also sets
//     PostgreSQL's idle_in_transaction_session_timeout to LeaseDuration, so
//     that a holder stalled in the middle of a batch (paused, or cut off
//     from the database) loses its session, its row lock and its
//     uncommitted effects instead of holding the listener up: Handle must
//     not spend LeaseDuration without talking to the database.
//  5. Errors stop, never drop. When Handle fails on a batch (a panic
//     counts as a failure), the batch is rolled back and its events are
//     handed again in parts, halving them, in one new transaction in which
//     every part Handle fails on is rolled back to a savepoint: that finds
//     the first failing event in about 2·log2(BatchSize) calls. The events
//     before it commit with the checkpoint just before it, and the error,
//     naming the event's position and type, becomes the listener's last
//     error, which every replica sees in Status until a batch succeeds. The
//     listener retries from there with exponential backoff and jitter
//     (RetryMin to RetryMax), logging once per attempt. Events after the
//     failing one wait; nothing is skipped. (If no part fails, the batch
//     commits as a whole.)
//  6. Wake-ups. The event store notifies the channel dcb_events when an
//     append commits, naming the types it stored; each Runtime listens on
//     one dedicated connection and wakes its listeners: within Coalesce
//     those that read one of the types, within 20 × Coalesce the others,
//     which only have to move their checkpoints (WaitFor on the replica
//     running one cuts that back to Coalesce).
//     Listeners also poll every PollInterval, so a lost notification costs
//     at most that. A lost connection is re-established with backoff, and
//     every listener looks again once it is back.
//  7. Resets are atomic. Reset empties read models and sets their
//     checkpoints to 0 in one transaction, also on a database where the
//     listeners never ran. Reset and batches both lock the listener's row
//     before touching its read model, so a batch in flight commits first
//     and is then emptied by the reset, and the next batch starts from 0,
//     wherever the listener runs.
//
// # Operations
//
// Status reports each listener's checkpoint, the head, the lag, the lease
// and the last error, as stored, so any replica can serve it; the server
// builds metrics from it. WaitFor lets a read wait until a listener has
// reached a position (read-your-writes with min_position).
package listeners
