// Package workqueue runs background jobs with retries on PostgreSQL, on top of
// River (riverqueue/river), whose types stay inside this package.
//
// A kind of job is a Go struct implementing Args, registered once with its
// worker and retry budget:
//
//	workqueue.Register(q, workqueue.KindConfig[PublishCart]{
//		Work:        publish,          // idempotent
//		MaxDuration: time.Hour,        // then give up
//		GiveUp:      recordFailure,    // appends CartPublicationFailed with tx
//	})
//	q.Start(ctx)
//	…
//	inserted, err := q.EnqueueTx(ctx, tx, PublishCart{CartID: id},
//		workqueue.EnqueueOptions{UniqueKey: id})
//
// River's tables come from package migrations, not from here.
//
// # Guarantees
//
//  1. Transactional enqueue. A job enqueued with EnqueueTx exists if and only
//     if the caller's transaction commits; no worker sees it before. An event,
//     a checkpoint or a read-model row written in the same transaction commits
//     with its job, or nothing does.
//  2. Unique keys. Of the jobs of one kind enqueued with the same
//     EnqueueOptions.UniqueKey, at most one is ever stored, whatever the
//     state of the first (waiting, running, completed, given up, cancelled)
//     and however many transactions race to insert it: the others insert
//     nothing and get inserted=false. Finished jobs are kept (not deleted
//     after a while, as River does by default) so that this holds forever.
//  3. At-least-once execution. A job runs until an attempt succeeds or it
//     gives up. A process killed mid-attempt leaves its job marked running;
//     River rescues it once the attempt's time limit (Timeout plus the
//     give-up time) and a minute have passed, and it runs again. An attempt
//     may also do its work and die before that is recorded (River records
//     outcomes in batches, up to a quarter of a second later). So Work must
//     be idempotent: check "already done?" first, or make its effects so (an
//     event id derived from the job, a Kafka transactional producer, an
//     append condition).
//  4. Retries with backoff, within a budget. A failed attempt is retried
//     after the kind's Backoff, never earlier (and, as outcomes are recorded
//     in batches, up to about a quarter of a second later), until MaxAttempts
//     attempts have failed or until the next retry would start after
//     CreatedAt+MaxDuration. Attempts lost to crashes count; if the last one
//     is lost, the job runs once more and gives up if that fails. (Only after
//     ten attempts in a row lost that way does River discard the job itself,
//     without GiveUp.)
//  5. GiveUp exactly once in effect. A job that gives up is marked finished
//     ("discarded" in River's terms, with its last error) in the same
//     transaction in which its GiveUp runs: either both commit or neither
//     does. If GiveUp fails, or the process dies before the commit, the job
//     is not finished, its last attempt runs again later, and it gives up
//     again if that attempt fails: the failure is recorded once, never lost
//     and never twice. (An operator who retries a given-up job from River's UI
//     starts a new story, which may give up again: a GiveUp that must never
//     record twice should also be idempotent in the domain, e.g. with an
//     append condition.) A job cancelled by an operator ends without GiveUp.
//  6. Graceful stop. Stop stops taking jobs and waits for the running ones to
//     return; only when its context ends does it cancel them. A job
//     interrupted that way goes back to the queue without using up an
//     attempt, and runs again later (in this or another process).
//
// Jobs of unknown kind, or whose arguments no longer decode into their Go
// type, fail and are retried with River's default policy, then discarded
// without GiveUp: keep args' JSON shape compatible across releases.
package workqueue
