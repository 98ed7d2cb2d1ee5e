package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dcbkit/dcbkit/eventstore"
)

// rawTableSQL makes the baseline table: the events table's shape (columns,
// identity, defaults, constraints, indexes), without lookup keys, function
// or lock.
const rawTableSQL = `CREATE TABLE IF NOT EXISTS raw_events (LIKE events INCLUDING ALL)`

const rawInsertSQL = `INSERT INTO raw_events (id, type, tags, data, metadata) VALUES ($1, $2, $3, $4, $5)`

func tagOf(kind string) string { return eventstore.Tag(kind, uuid.Must(uuid.NewV7())) }

func itemQuery(tags ...string) eventstore.Query {
	return eventstore.Query{Items: []eventstore.QueryItem{{Tags: tags}}}
}

// scenarioAppend is scenario 1: single-event conditional appends, each
// writer in a boundary of its own, against single-row INSERTs into a table
// of the same shape, at the same concurrency, in alternating rounds.
func (b *bench) scenarioAppend(ctx context.Context, db *database) error {
	if _, err := db.pool.Exec(ctx, rawTableSQL); err != nil {
		return err
	}
	data := []byte(`{"n":1}`)
	for _, writers := range []int{1, 8, 32} {
		// Each writer has a boundary of its own: the same tags in both variants.
		tags := make([]string, writers)
		last := make([]int64, writers)
		for w := range tags {
			tags[w] = tagOf("writer")
		}
		insert := func(w, i int) error {
			_, err := db.pool.Exec(ctx, rawInsertSQL, uuid.Must(uuid.NewV7()), "Measured", []string{tags[w]}, data, nil)
			return err
		}
		appendOne := func(w, i int) error {
			q := itemQuery(tags[w])
			res, err := db.store.Append(ctx, []eventstore.Event{{Type: "Measured", Tags: []string{tags[w]}, Data: data}},
				&eventstore.AppendCondition{FailIfEventsMatch: q, After: last[w]})
			last[w] = res.Position
			return err
		}
		if err := settle(ctx, db.pool); err != nil {
			return err
		}
		b.progress.printf("1 conditional append vs raw INSERT, %d writers: %d alternating rounds, %s each", writers, b.rounds, b.phase/time.Duration(b.rounds))
		if _, err := b.warmUp(ctx, writers, insert); err != nil {
			return fmt.Errorf("raw insert: %w", err)
		}
		if _, err := b.warmUp(ctx, writers, appendOne); err != nil {
			return fmt.Errorf("conditional append: %w", err)
		}
		var rawWAL, oursWAL wal
		ps, ratios, err := compare(b.rounds, b.phase,
			rawWAL.meter(ctx, db, writers, insert), oursWAL.meter(ctx, db, writers, appendOne))
		if err != nil {
			return fmt.Errorf("scenario 1 at %d writers: %w", writers, err)
		}
		raw, ours, ratio := ps[0], ps[1], ratios[1]
		base := b.res.add(phaseRow("1", "raw single-row INSERT", writers, "insert", raw))
		base.Verdict = "baseline"
		base.Notes = fmt.Sprintf("WAL %s/insert", bytesOf(rawWAL.per(raw)))
		x := b.res.add(phaseRow("1", "conditional append, disjoint", writers, "append", ours))
		switch writers {
		case 1:
			x.judgeRounds("raw INSERT, same concurrency", ratio, "≥ 0.50", atLeast(0.5))
		case 32:
			x.judgeRounds("raw INSERT, same concurrency", ratio, "≥ 0.70", atLeast(0.7))
		default:
			x.judgeRounds("raw INSERT, same concurrency", ratio, "", nil)
		}
		x.Notes = fmt.Sprintf("WAL %s/append", bytesOf(oursWAL.per(ours)))
		b.progress.printf("  raw %.0f/s, ours %.0f/s: ratio %s", raw.perSecond(), ours.perSecond(), ratio)
	}
	return nil
}

// wal adds up the WAL written during the rounds of one variant (by the
// whole server: other databases' writes count too).
type wal struct{ bytes int64 }

// meter returns a variant that runs op from workers goroutines and counts
// the WAL it writes.
func (m *wal) meter(ctx context.Context, db *database, workers int, op func(w, i int) error) variant {
	return func(d time.Duration) (phase, error) {
		before, err := walPosition(ctx, db.pool)
		if err != nil {
			return phase{}, err
		}
		p, err := measure(ctx, workers, d, 0, op)
		if err != nil {
			return p, err
		}
		after, err := walPosition(ctx, db.pool)
		m.bytes += after - before
		return p, err
	}
}

func (m *wal) per(p phase) float64 { return float64(m.bytes) / float64(max(p.ops, 1)) }

// counted is the data of the events of scenario 2: the n-th event of its
// boundary, as decided by its writer from what it read.
type counted struct {
	Seq int `json:"seq"`
}

// scenarioContended is scenario 2: 32 writers deciding over 20 boundaries.
// Each decision reads the last event of a boundary and appends the next
// sequence number on condition that nothing was appended to the boundary
// since. The stored log must then hold, per boundary, exactly 1, 2, 3, … in
// position order: a lost update would store a number twice.
func (b *bench) scenarioContended(ctx context.Context, db *database) error {
	const writers, boundaries = 32, 20
	tags := make([]string, boundaries)
	for i := range tags {
		tags[i] = tagOf("counter")
	}
	if err := settle(ctx, db.pool); err != nil {
		return err
	}
	b.progress.printf("2 contended: %d writers over %d boundaries, %s", writers, boundaries, b.phase)
	decideNext := func(w, i int) error {
		tag := tags[rand.IntN(boundaries)]
		q := itemQuery(tag)
		lastEvents, err := db.store.Read(ctx, q, eventstore.ReadOptions{Backwards: true, Limit: 1})
		if err != nil {
			return err
		}
		var last counted
		var after int64
		if len(lastEvents) == 1 {
			if err := json.Unmarshal(lastEvents[0].Data, &last); err != nil {
				return err
			}
			after = lastEvents[0].Position
		}
		data, _ := json.Marshal(counted{Seq: last.Seq + 1})
		_, err = db.store.Append(ctx, []eventstore.Event{{Type: "Counted", Tags: []string{tag}, Data: data}},
			&eventstore.AppendCondition{FailIfEventsMatch: q, After: after})
		if errors.Is(err, eventstore.ErrAppendConditionFailed) {
			return errCounted
		}
		return err
	}
	warmed, err := b.warmUp(ctx, writers, decideNext)
	if err != nil {
		return fmt.Errorf("contended: %w", err)
	}
	p, err := measure(ctx, writers, b.phase, 0, decideNext)
	if err != nil {
		return fmt.Errorf("contended: %w", err)
	}
	b.progress.printf("  verifying the stored log")
	stored, violations, err := verifyCounters(ctx, db.store, tags)
	if err != nil {
		return err
	}
	if stored != warmed+p.ops {
		violations = append(violations, fmt.Sprintf("%d appends succeeded but %d events are stored", warmed+p.ops, stored))
	}
	x := b.res.add(phaseRow("2", "contended decisions, 20 boundaries", writers, "successful decision", p))
	attempts := p.ops + p.failed
	conflictRate := float64(p.failed) / float64(max(attempts, 1))
	x.Target = "0 violations"
	x.Verdict = "PASS"
	if len(violations) > 0 {
		x.Verdict = "MISS"
	}
	x.Notes = fmt.Sprintf("%d attempts (%.0f/s), conflict rate %.1f%%, %d events verified, %d violations",
		attempts, float64(attempts)/p.elapsed.Seconds(), 100*conflictRate, stored, len(violations))
	x.Extra = map[string]any{"attempts": attempts, "conflicts": p.failed, "conflict_rate": conflictRate,
		"stored_events": stored, "violations": violations}
	for _, v := range violations {
		b.progress.printf("  VIOLATION: %s", v)
	}
	b.progress.printf("  %s", x.Notes)
	return nil
}

// verifyCounters reads every boundary back and checks that its sequence
// numbers are 1, 2, 3, … in position order. It returns the number of events
// read and one line per violation.
func verifyCounters(ctx context.Context, store *eventstore.Store, tags []string) (int, []string, error) {
	var stored int
	var violations []string
	for _, tag := range tags {
		want := 1
		for e, err := range store.Stream(ctx, itemQuery(tag), eventstore.ReadOptions{}) {
			if err != nil {
				return 0, nil, err
			}
			var c counted
			if err := json.Unmarshal(e.Data, &c); err != nil {
				return 0, nil, err
			}
			if c.Seq != want {
				violations = append(violations, fmt.Sprintf("%s: event at %d holds %d, want %d", tag, e.Position, c.Seq, want))
			}
			want = c.Seq + 1
			stored++
		}
	}
	return stored, violations, nil
}

// scenarioBatch is scenario 3: appends of 100 events with a condition,
// against one multi-row INSERT of the same rows into the raw table.
func (b *bench) scenarioBatch(ctx context.Context, db *database) error {
	const size = 100
	if _, err := db.pool.Exec(ctx, rawTableSQL); err != nil {
		return err
	}
	var sql strings.Builder
	sql.WriteString("INSERT INTO raw_events (id, type, tags, data, metadata) VALUES ")
	for i := range size {
		if i > 0 {
			sql.WriteString(", ")
		}
		fmt.Fprintf(&sql, "($%d, $%d, $%d, $%d, $%d)", 5*i+1, 5*i+2, 5*i+3, 5*i+4, 5*i+5)
	}
	batchTag := tagOf("batch")
	batch := func() []eventstore.Event {
		events := make([]eventstore.Event, size)
		for i := range events {
			// No ids: the store draws them, as for most appends (given ids
			// add the idempotency probe; see BENCHMARKS.md).
			events[i] = eventstore.Event{Type: "Batched",
				Tags: []string{batchTag, fmt.Sprintf("item:%d", i)}, Data: []byte(fmt.Sprintf(`{"item":%d,"qty":%d}`, i, rand.IntN(10)))}
		}
		return events
	}

	if _, err := db.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS raw_event_keys (LIKE event_keys INCLUDING ALL)`); err != nil {
		return err
	}
	insert := func(w, i int) error {
		args := make([]any, 0, 5*size)
		for _, e := range batch() {
			args = append(args, uuid.Must(uuid.NewV7()), e.Type, e.Tags, e.Data, nil)
		}
		_, err := db.pool.Exec(ctx, sql.String(), args...)
		return err
	}
	// A reference, not a target: the same multi-row INSERT plus, in the same
	// transaction, the lookup rows the store writes for these events, into a
	// table shaped like event_keys. Every batch has the same types and tags,
	// so its rows are those the store wrote for the first batch (read back
	// after the warm-up); only their positions move on.
	var batchKeys []int64 // per key row
	var keyEvent []int64  // its run's last event, 0-based within the batch
	var keySpan []int32   // its run's length
	var nextPosition int64
	insertWithKeys := func(w, i int) error {
		return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			args := make([]any, 0, 5*size)
			for _, e := range batch() {
				args = append(args, uuid.Must(uuid.NewV7()), e.Type, e.Tags, e.Data, nil)
			}
			if _, err := tx.Exec(ctx, sql.String(), args...); err != nil {
				return err
			}
			positions := make([]int64, len(keyEvent))
			for k, e := range keyEvent {
				positions[k] = nextPosition + e
			}
			nextPosition += size
			_, err := tx.Exec(ctx, `INSERT INTO raw_event_keys (key, position, span) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[])`,
				batchKeys, positions, keySpan)
			return err
		})
	}
	var last int64
	appendBatch := func(w, i int) error {
		res, err := db.store.Append(ctx, batch(), &eventstore.AppendCondition{FailIfEventsMatch: itemQuery(batchTag), After: last})
		last = res.Position
		return err
	}

	if err := settle(ctx, db.pool); err != nil {
		return err
	}
	b.progress.printf("3 batch of %d, 1 writer: multi-row INSERT, with key rows, conditional append: %d alternating rounds, %s each", size, b.rounds, b.phase/time.Duration(b.rounds))
	for _, op := range []func(w, i int) error{insert, appendBatch} {
		if _, err := b.warmUp(ctx, 1, op); err != nil {
			return fmt.Errorf("scenario 3 warm-up: %w", err)
		}
	}
	err := db.pool.QueryRow(ctx, `SELECT array_agg(key ORDER BY position, key), array_agg(position - $1 ORDER BY position, key),
			array_agg(span ORDER BY position, key)
		FROM event_keys WHERE position BETWEEN $1 AND $2`, last-size+1, last).Scan(&batchKeys, &keyEvent, &keySpan)
	if err != nil {
		return fmt.Errorf("scenario 3: read the store's keys: %w", err)
	}
	// Each event's own tag has two keys (the tag, the type and the tag); the
	// batch's tag, its type and both together are runs of the whole batch.
	if want := 2*size + 3; len(batchKeys) != want {
		return fmt.Errorf("scenario 3: read %d key rows of the store's last batch, want %d", len(batchKeys), want)
	}
	if _, err := b.warmUp(ctx, 1, insertWithKeys); err != nil {
		return fmt.Errorf("scenario 3 warm-up: %w", err)
	}
	var rawWAL, keysWAL, oursWAL wal
	ps, ratios, err := compare(b.rounds, b.phase,
		rawWAL.meter(ctx, db, 1, insert), keysWAL.meter(ctx, db, 1, insertWithKeys), oursWAL.meter(ctx, db, 1, appendBatch))
	if err != nil {
		return fmt.Errorf("scenario 3: %w", err)
	}
	raw, withKeys, ours := ps[0], ps[1], ps[2]
	base := b.res.add(phaseRow("3", "raw multi-row INSERT of 100", 1, "batch", raw))
	base.Verdict = "baseline"
	base.Notes = fmt.Sprintf("%.0f events/s; WAL %s/batch", 100*raw.perSecond(), bytesOf(rawWAL.per(raw)))
	ref := b.res.add(phaseRow("3", fmt.Sprintf("raw multi-row INSERT of 100 + its %d key rows (reference)", len(batchKeys)), 1, "batch", withKeys))
	ref.judgeRounds("multi-row INSERT", ratios[1], "", nil)
	ref.Notes = fmt.Sprintf("%.0f events/s; WAL %s/batch; the store's index writes without the store", 100*withKeys.perSecond(), bytesOf(keysWAL.per(withKeys)))
	x := b.res.add(phaseRow("3", "conditional append of 100", 1, "batch", ours))
	x.judgeRounds("multi-row INSERT", ratios[2], "≥ 0.50", atLeast(0.5))
	x.Notes = fmt.Sprintf("%.0f events/s; WAL %s/batch; %.2f× the reference with key rows", 100*ours.perSecond(), bytesOf(oursWAL.per(ours)), ratios[2].median/ratios[1].median)
	b.progress.printf("  raw %.0f batches/s, raw with key rows %.0f/s, ours %.0f/s: ratio %s", raw.perSecond(), withKeys.perSecond(), ours.perSecond(), ratios[2])
	return nil
}

func bytesOf(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
