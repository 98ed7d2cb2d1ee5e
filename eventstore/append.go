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
// (ErrUnavailable when PostgreSQL is away or the commit ran out of
// BatchTimeout: the outcome is then unknown, and retrying with the same event
// ids is safe). When ctx ends first, the error wraps ctx.Err(), and the
// outcome is unknown too.
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
// Calling Append while such a transaction is open waits for it too, up to
// BatchTimeout, and then fails with ErrUnavailable, because the group
// committer needs the append lock that transaction holds.
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

// appendStatement is one append, validated and flattened for dcb_append:
// ids generated, tags deduplicated, metadata defaulted, lookup keys computed.
// Tag ranges and key_event indexes are 1-based within this append; batchArgs
// shifts them when appends are committed together. The lookup keys are
// already in runs (keyRuns): a row of event_keys each.
type appendStatement struct {
	ids            []uuid.UUID
	types          []string
	tagsLo, tagsHi []int32
	tags           []string
	data           [][]byte
	meta           []string
	keyEvent       []int32 // the last event of each key's run
	keys           []int64
	keySpans       []int32 // the run's length
	idsGiven       bool
	cond           *Query // nil: no condition
	after          int64
	matchAll       bool
	probes         probes
}

// appendSQL commits a batch of appends; the work is done by dcb_append
// (migrations/00011_dcb_leap.sql), one row per append comes back, in
// order.
const appendSQL = `SELECT existing_counts, conditions_failed, last_positions
FROM dcb_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)`

// prepare validates an append and flattens it; see appendStatement.
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
	st := &appendStatement{
		ids: make([]uuid.UUID, n), types: make([]string, n),
		tagsLo: make([]int32, n), tagsHi: make([]int32, n),
		data: make([][]byte, n), meta: make([]string, n),
	}
	for i, e := range events {
		st.ids[i] = e.ID
		st.idsGiven = st.idsGiven || e.ID != uuid.Nil
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("eventstore: generate event id: %w", err)
			}
			st.ids[i] = id
		}
		st.types[i] = e.Type
		first := len(st.tags)
		for _, tag := range e.Tags {
			if !slices.Contains(st.tags[first:], tag) {
				st.tags = append(st.tags, tag)
			}
		}
		st.tagsLo[i], st.tagsHi[i] = int32(first+1), int32(len(st.tags))
		st.data[i] = e.Data
		if st.data[i] == nil {
			st.data[i] = []byte{}
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
			st.meta[i] = string(b)
		}
		for _, k := range eventKeys(e.Type, st.tags[first:]) {
			st.keyEvent = append(st.keyEvent, int32(i+1))
			st.keys = append(st.keys, k)
		}
	}
	st.keyEvent, st.keys, st.keySpans = keyRuns(st.keyEvent, st.keys)
	if cond != nil {
		st.cond = &cond.FailIfEventsMatch
		st.after = cond.After
		if cond.FailIfEventsMatch.matchesAll() {
			st.matchAll = true
		} else {
			st.probes = probesOf(cond.FailIfEventsMatch)
		}
	}
	return st, nil
}

// batchArgs concatenates appends into the arguments of appendSQL.
func batchArgs(stmts []*appendStatement) []any {
	var (
		evAppend, tagsLo, tagsHi, keyEvent, keySpans  []int32
		ids                                           []uuid.UUID
		types, tags, meta                             []string
		data                                          [][]byte
		keys                                          []int64
		after                                         []int64
		matchAll, idsGiven                            []bool
		pAppend, pTypesLo, pTypesHi, pTagsLo, pTagsHi []int32
		pMoreLo, pMoreHi                              []int32
		pKeys, pMoreKeys                              []int64
		pTypes, pTags                                 []string
	)
	shift := func(dst []int32, src []int32, by int) []int32 {
		for _, v := range src {
			dst = append(dst, v+int32(by))
		}
		return dst
	}
	for a, st := range stmts {
		events, tagBase := len(ids), len(tags)
		for range st.ids {
			evAppend = append(evAppend, int32(a+1))
		}
		ids = append(ids, st.ids...)
		types = append(types, st.types...)
		tagsLo, tagsHi = shift(tagsLo, st.tagsLo, tagBase), shift(tagsHi, st.tagsHi, tagBase)
		tags = append(tags, st.tags...)
		data = append(data, st.data...)
		meta = append(meta, st.meta...)
		keyEvent = shift(keyEvent, st.keyEvent, events)
		keys = append(keys, st.keys...)
		keySpans = append(keySpans, st.keySpans...)
		after = append(after, st.after)
		matchAll = append(matchAll, st.matchAll)
		idsGiven = append(idsGiven, st.idsGiven)

		p := st.probes
		typeBase, ptagBase, moreBase := len(pTypes), len(pTags), len(pMoreKeys)
		for range p.Keys {
			pAppend = append(pAppend, int32(a+1))
		}
		pKeys = append(pKeys, p.Keys...)
		pTypesLo, pTypesHi = shift(pTypesLo, p.TypesLo, typeBase), shift(pTypesHi, p.TypesHi, typeBase)
		pTagsLo, pTagsHi = shift(pTagsLo, p.TagsLo, ptagBase), shift(pTagsHi, p.TagsHi, ptagBase)
		pTypes = append(pTypes, p.Types...)
		pTags = append(pTags, p.Tags...)
		pMoreLo, pMoreHi = shift(pMoreLo, p.MoreLo, moreBase), shift(pMoreHi, p.MoreHi, moreBase)
		pMoreKeys = append(pMoreKeys, p.MoreKeys...)
	}
	later, earlier := dependencies(stmts)
	return []any{
		evAppend, uuidArray(ids), types, tagsLo, tagsHi, nonNil(tags), data, meta,
		keyEvent, keys, after, matchAll, idsGiven,
		nonNil(pAppend), nonNil(pKeys), nonNil(pTypesLo), nonNil(pTypesHi),
		nonNil(pTagsLo), nonNil(pTagsHi), nonNil(pTypes), nonNil(pTags),
		nonNil(later), nonNil(earlier), keySpans,
		nonNil(pMoreKeys), nonNil(pMoreLo), nonNil(pMoreHi),
	}
}

// keyRuns turns the lookup keys of an append's events, each with its event
// (1-based, in order), into the rows of event_keys: one per key and run of
// consecutive events that have it, with the run's last event and its length.
// The events of a batch mostly share their type and a tag or two, which then
// cost one row instead of one per event.
func keyRuns(keyEvent []int32, perEvent []int64) (events []int32, keys []int64, spans []int32) {
	open := make(map[int64]int, len(perEvent)) // key -> its latest row
	for k, key := range perEvent {
		ev := keyEvent[k]
		if r, ok := open[key]; ok && events[r] >= ev-1 {
			if events[r] == ev-1 { // the run goes on; else the event has the key twice
				events[r], spans[r] = ev, spans[r]+1
			}
			continue
		}
		open[key] = len(keys)
		events, keys, spans = append(events, ev), append(keys, key), append(spans, 1)
	}
	return events, keys, spans
}

// dependencies returns the pairs (later, earlier), 1-based and sorted by
// later, of appends of one batch where an event of the earlier one matches
// the condition of the later one: if the earlier is inserted, the later
// fails, as if they had run one after the other. Candidates are found
// through the lookup keys, like in the database, and checked with
// Query.Matches. Match-all conditions are left to dcb_append.
func dependencies(stmts []*appendStatement) (later, earlier []int32) {
	if len(stmts) < 2 {
		return nil, nil
	}
	type eventRef struct{ app, ev int }
	byKey := map[int64][]eventRef{}
	for j, st := range stmts {
		if st.cond != nil && !st.matchAll {
			seen := map[int]bool{}
			for _, key := range st.probes.Keys {
				for _, ref := range byKey[key] {
					e := stmts[ref.app]
					tags := e.tags[e.tagsLo[ref.ev]-1 : e.tagsHi[ref.ev]]
					if !seen[ref.app] && st.cond.Matches(e.types[ref.ev], tags) {
						seen[ref.app] = true
					}
				}
			}
			for i := range j {
				if seen[i] {
					later, earlier = append(later, int32(j+1)), append(earlier, int32(i+1))
				}
			}
		}
		for k, key := range st.keys {
			for ev := st.keyEvent[k] - st.keySpans[k]; ev < st.keyEvent[k]; ev++ {
				byKey[key] = append(byKey[key], eventRef{app: j, ev: int(ev)})
			}
		}
	}
	return later, earlier
}

// uuidArray passes ids to pgx as plain 16-byte arrays: uuid.UUID implements
// driver.Valuer, which pgx prefers, and which turns every id into a string
// and back.
func uuidArray(ids []uuid.UUID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
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

// execAppends commits stmts in order with one call of dcb_append, in one
// transaction: its own on the pool, or the caller's. The returned error is a
// database error that aborted the transaction; per-append outcomes are in
// the slice.
func execAppends(ctx context.Context, q querier, stmts []*appendStatement) ([]outcome, error) {
	var existing []int64
	var failed []bool
	var last []*int64
	err := q.QueryRow(ctx, appendSQL, batchArgs(stmts)...).Scan(&existing, &failed, &last)
	if err == nil && (len(existing) != len(stmts) || len(failed) != len(stmts) || len(last) != len(stmts)) {
		err = fmt.Errorf("dcb_append answered for %d appends of %d", len(existing), len(stmts))
	}
	if err != nil {
		return make([]outcome, len(stmts)), err
	}
	outs := make([]outcome, len(stmts))
	for i, st := range stmts {
		switch {
		case existing[i] == int64(len(st.ids)):
			outs[i].res.Position = *last[i]
		case existing[i] > 0:
			outs[i].err = ErrIDReused
		case failed[i]:
			outs[i].err = ErrAppendConditionFailed
		default:
			outs[i].res.Position = *last[i]
		}
	}
	return outs, nil
}

// commitEach commits the appends of a failed batch one by one, so that one
// append's failure does not fail its neighbours. The batch may have
// committed all the same (the answer lost with the connection): its ids are
// fixed since prepare, so each append first looks for its own events and,
// finding them all, answers their position instead of appending again or
// failing its condition on its own events.
func (s *Store) commitEach(batch []*pending) {
	for _, p := range batch {
		p.stmt.idsGiven = true
		s.commit([]*pending{p})
	}
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

// commitLoop is the group-commit goroutine: it takes the first waiting
// append, gathers the others, up to maxBatch, and commits them in one
// transaction. While a commit is in flight the next batch forms on its own.
// When the previous batch held k appends, their writers are likely about to
// send their next ones, so it waits up to batchWait for k appends before
// committing (PostgreSQL's commit_delay idea, with the siblings counted in
// the previous batch). When they do not all come, the batch goes with those
// that did, and their number is the next k: writers that stop cost one wait.
// A lone writer (k = 1) never waits.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	batch := make([]*pending, 0, s.maxBatch)
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	expect := 1
	for first := range s.queue {
		batch = append(batch[:0], first)
		if expect > 1 {
			wait.Reset(s.batchWait)
		}
	gather:
		for len(batch) < s.maxBatch {
			select {
			case p, ok := <-s.queue:
				if !ok {
					break gather
				}
				batch = append(batch, p)
				continue
			default:
			}
			if len(batch) >= expect {
				break
			}
			select {
			case p, ok := <-s.queue:
				if !ok {
					break gather
				}
				batch = append(batch, p)
			case <-wait.C:
				break gather
			}
		}
		wait.Stop()
		expect = len(batch) // after a wait that ran out: those that came
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
		s.commitEach(live)
		return
	}
	if err != nil && ctx.Err() != nil {
		// Whether the batch committed before the timeout struck is unknown:
		// ErrUnavailable says so, and that a retry with the same ids is safe.
		err = fmt.Errorf("eventstore: append: outcome unknown, BatchTimeout (%s) reached: %w: %w", s.timeout, ErrUnavailable, err)
	} else if err != nil {
		err = translate("append", err)
	}
	for i, p := range live {
		out := outs[i]
		if err != nil {
			out.err = err
		}
		p.done <- out
	}
}
