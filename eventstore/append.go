package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AppendCondition makes an append fail with ErrAppendConditionFailed when an
// event matching FailIfEventsMatch exists with a position greater than After.
// After 0 means "at all". FailIfEventsMatch with no items matches every event.
type AppendCondition struct {
	FailIfEventsMatch Query
	After             int64
}

// AppendResult is the answer to a successful append.
type AppendResult struct {
	// Position is the position of the last event appended. An idempotent retry
	// answers with the position of the events stored by the first attempt.
	Position int64
}

// Append stores events atomically, or none of them, when cond (nil for none)
// holds. It returns ErrAppendConditionFailed when it does not, an *InputError
// for input refused before writing, and otherwise translated database errors
// (ErrUnavailable when PostgreSQL is away: the outcome is then unknown, and
// retrying with the same event ids is safe).
//
// Appends are serialised: positions become visible in increasing order, so
// that a reader can never be handed a position above one that is still being
// written (eventstore.md, guarantee 2). Append is safe for concurrent use and
// group-commits concurrent calls.
func (s *Store) Append(ctx context.Context, events []Event, cond *AppendCondition) (AppendResult, error) {
	start := time.Now()
	stmt, err := s.prepare(ctx, events, cond)
	if err != nil {
		return AppendResult{}, err
	}
	res, err := s.submit(ctx, stmt)
	s.observe(len(events), start, err)
	return res, err
}

// AppendTx is Append inside the caller's transaction, which must be READ
// COMMITTED (the default). The events become visible when the caller commits,
// and vanish if it rolls back. The transaction holds the append lock from this
// call until it ends, so every other append waits for it: keep it short.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, events []Event, cond *AppendCondition) (AppendResult, error) {
	start := time.Now()
	stmt, err := s.prepare(ctx, events, cond)
	if err != nil {
		return AppendResult{}, err
	}
	outs, err := execAppends(ctx, tx, []*appendStatement{stmt})
	if err == nil {
		err = outs[0].err
	}
	s.observe(len(events), start, err)
	return outs[0].res, translate("append", err)
}

func (s *Store) observe(n int, start time.Time, err error) {
	if s.onAppend != nil {
		s.onAppend(AppendStats{Events: n, Duration: time.Since(start), Err: err})
	}
}

// appendStatement holds the arguments of appendSQL for one append.
type appendStatement struct {
	args []any
}

// appendSQL appends one batch of events under the append lock, which an earlier
// statement of the same transaction took. In one statement it
//
//   - finds events already stored under the given ids (idempotent retry),
//   - checks the condition: a probe of the lookup keys per query item, each
//     candidate verified against the whole item; a match-all condition
//     compares with the head of the log (max, an index probe, where EXISTS
//     would let a generic plan scan the table),
//   - inserts the events in order (positions from the sequence) and their keys,
//     unless either of the above says not to.
const appendSQL = `
WITH existing AS (
	SELECT position FROM events WHERE id = ANY ($1::uuid[])
), conflict AS (
	SELECT EXISTS (
		SELECT FROM unnest($12::bigint[], $13::int[], $14::int[], $15::int[], $16::int[])
			AS p(key, types_lo, types_hi, tags_lo, tags_hi)
		CROSS JOIN LATERAL (
			SELECT FROM event_keys k JOIN events e ON e.position = k.position
			WHERE k.key = p.key AND k.position > $10
				AND (p.types_lo > p.types_hi OR e.type = ANY (($17::text[])[p.types_lo:p.types_hi]))
				AND e.tags @> ($18::text[])[p.tags_lo:p.tags_hi]
			LIMIT 1
		) AS match
	) OR ($11::boolean AND (SELECT max(position) FROM events) > $10) AS failed
), inserted AS (
	INSERT INTO events (id, type, tags, data, metadata)
	SELECT i.id, i.type, ($5::text[])[i.tags_lo:i.tags_hi], i.data, NULLIF(i.metadata, '')::jsonb
	FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $6::bytea[], $7::text[])
		WITH ORDINALITY AS i(id, type, tags_lo, tags_hi, data, metadata, ord)
	WHERE NOT EXISTS (SELECT FROM existing) AND NOT (SELECT failed FROM conflict)
	ORDER BY i.ord
	RETURNING position, id
), keys AS (
	INSERT INTO event_keys (key, position)
	SELECT k.key, inserted.position
	FROM unnest($8::uuid[], $9::bigint[]) AS k(id, key) JOIN inserted ON inserted.id = k.id
)
SELECT (SELECT count(*) FROM existing), (SELECT max(position) FROM existing),
	(SELECT failed FROM conflict), (SELECT max(position) FROM inserted)`

// prepare validates the input and turns it into appendSQL's arguments: ids
// generated, tags deduplicated, metadata defaulted from ctx.
func (s *Store) prepare(ctx context.Context, events []Event, cond *AppendCondition) (*appendStatement, error) {
	if err := s.limits.ValidateEvents(events); err != nil {
		return nil, err
	}
	if cond != nil {
		if err := s.limits.ValidateQuery("condition.failIfEventsMatch", cond.FailIfEventsMatch); err != nil {
			return nil, err
		}
		if cond.After < 0 {
			return nil, invalid("condition.after", "must not be negative")
		}
	}
	ctxMeta := MetadataFrom(ctx)
	if err := checkMetadata("context metadata", ctxMeta, s.limits.MaxTagBytes); err != nil {
		return nil, err
	}

	n := len(events)
	ids := make([]uuid.UUID, n)
	types := make([]string, n)
	tagsLo, tagsHi := make([]int32, n), make([]int32, n)
	var tags []string
	data := make([][]byte, n)
	meta := make([]string, n)
	var keyIDs []uuid.UUID
	var keys []int64
	for i, e := range events {
		ids[i] = e.ID
		if ids[i] == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("eventstore: generate event id: %w", err)
			}
			ids[i] = id
		}
		types[i] = e.Type
		tagsLo[i] = int32(len(tags) + 1)
		for _, tag := range e.Tags {
			if !slices.Contains(tags[tagsLo[i]-1:], tag) {
				tags = append(tags, tag)
			}
		}
		tagsHi[i] = int32(len(tags))
		data[i] = e.Data
		if data[i] == nil {
			data[i] = []byte{}
		}
		m := e.Metadata
		if m.isZero() {
			m = ctxMeta
		}
		if !m.isZero() {
			b, err := json.Marshal(m)
			if err != nil {
				return nil, fmt.Errorf("eventstore: encode metadata: %w", err)
			}
			meta[i] = string(b)
		}
		for _, k := range eventKeys(e.Type, tags[tagsLo[i]-1:tagsHi[i]]) {
			keyIDs = append(keyIDs, ids[i])
			keys = append(keys, k)
		}
	}

	var after int64
	var condAll bool
	var p probes
	if cond != nil {
		after = cond.After
		if cond.FailIfEventsMatch.matchesAll() {
			condAll = true
		} else {
			p = probesOf(cond.FailIfEventsMatch)
		}
	}
	return &appendStatement{args: []any{
		ids, types, tagsLo, tagsHi, nonNil(tags), data, meta, keyIDs, keys,
		after, condAll,
		nonNil(p.Keys), nonNil(p.TypesLo), nonNil(p.TypesHi), nonNil(p.TagsLo), nonNil(p.TagsHi),
		nonNil(p.Types), nonNil(p.Tags),
	}}, nil
}

// nonNil keeps empty arrays from being sent as SQL NULL.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type outcome struct {
	res AppendResult
	err error // nil, ErrAppendConditionFailed or ErrIDReused
}

// execAppends runs stmts in order in one transaction: the pool's implicit
// transaction of a pipeline, or the caller's. The returned error is a database
// error that aborted the transaction; per-append outcomes are in the slice.
func execAppends(ctx context.Context, q querier, stmts []*appendStatement) ([]outcome, error) {
	b := &pgx.Batch{}
	b.Queue("SELECT dcb_lock_appends()")
	for _, st := range stmts {
		b.Queue(appendSQL, st.args...)
	}
	// Wakes listeners (see package listeners) when the transaction commits.
	b.Queue("SELECT pg_notify('dcb_events', '')")
	br := q.SendBatch(ctx, b)
	outs, err := readOutcomes(br, stmts)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return make([]outcome, len(stmts)), err
	}
	return outs, nil
}

func readOutcomes(br pgx.BatchResults, stmts []*appendStatement) ([]outcome, error) {
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	outs := make([]outcome, len(stmts))
	for i, st := range stmts {
		var existing int64
		var existingLast, last *int64
		var failed bool
		if err := br.QueryRow().Scan(&existing, &existingLast, &failed, &last); err != nil {
			return nil, err
		}
		wanted := int64(len(st.args[0].([]uuid.UUID)))
		switch {
		case existing == wanted:
			outs[i].res.Position = *existingLast
		case existing > 0:
			outs[i].err = ErrIDReused
		case failed:
			outs[i].err = ErrAppendConditionFailed
		default:
			outs[i].res.Position = *last
		}
	}
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	return outs, nil
}

// pending is an append waiting for the group-commit goroutine.
type pending struct {
	ctx  context.Context
	stmt *appendStatement
	done chan outcome // buffered: the committer never blocks on a caller
}

func (s *Store) submit(ctx context.Context, stmt *appendStatement) (AppendResult, error) {
	p := &pending{ctx: ctx, stmt: stmt, done: make(chan outcome, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return AppendResult{}, ErrClosed
	}
	s.senders.Add(1)
	s.mu.RUnlock()
	select {
	case s.queue <- p:
		s.senders.Done()
	case <-ctx.Done():
		s.senders.Done()
		return AppendResult{}, fmt.Errorf("eventstore: append: %w", ctx.Err())
	}
	select {
	case out := <-p.done:
		return out.res, out.err
	case <-ctx.Done():
		// The append may still commit; a retry with the same ids is safe.
		return AppendResult{}, fmt.Errorf("eventstore: append: outcome unknown: %w", ctx.Err())
	}
}

// commitLoop is the group-commit goroutine: it takes the first waiting append
// and every other one already queued, up to maxBatch, and commits them in one
// transaction. Batches form on their own while a commit is in flight; no
// append waits for a timer.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	batch := make([]*pending, 0, s.maxBatch)
	for first := range s.queue {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < s.maxBatch {
			select {
			case p, ok := <-s.queue:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*pending) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- outcome{err: fmt.Errorf("eventstore: append: %w", err)}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	stmts := make([]*appendStatement, len(live))
	for i, p := range live {
		stmts[i] = p.stmt
	}
	outs, err := execAppends(ctx, s.pool, stmts)
	if err != nil && len(live) > 1 {
		// One append's failure must not fail its neighbours: commit each on its
		// own. Safe even if the batch did commit, because ids are fixed and a
		// repeated append is idempotent.
		for _, p := range live {
			s.commit([]*pending{p})
		}
		return
	}
	for i, p := range live {
		out := outs[i]
		if err != nil {
			out.err = translate("append", err)
		}
		p.done <- out
	}
}
