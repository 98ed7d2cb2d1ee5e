package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
)

// ReadOptions shape a read.
type ReadOptions struct {
	// From is the first position to consider, inclusive: the lowest when
	// reading forwards, the highest when reading backwards. 0 means the start
	// (or the end, backwards).
	From int64
	// Limit caps the number of events returned; 0 means no limit. Read
	// refuses more than math.MaxInt32 (PostgreSQL's int) with an
	// *InputError; Stream, which reads in pages, takes any.
	Limit int
	// Backwards returns events in descending position order.
	Backwards bool
}

// readSQL reads the events matching a query; the work is done by dcb_read
// (migrations/00011_dcb_leap.sql), which pins its plans.
const readSQL = `SELECT position, id, type, tags, data, metadata, recorded_at
FROM dcb_read($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`

// Read returns the events matching q in position order (descending when
// opts.Backwards), as of one snapshot. It returns an *InputError for a
// malformed query. A decision uses the position of the last event returned as
// its condition's After: since positions become visible in order, no event
// matching q can later appear at or below it.
func (s *Store) Read(ctx context.Context, q Query, opts ReadOptions) ([]StoredEvent, error) {
	return s.read(ctx, s.pool, q, opts)
}

// ReadTx is Read inside the caller's transaction: it also sees the events the
// transaction has appended but not yet committed.
func (s *Store) ReadTx(ctx context.Context, tx pgx.Tx, q Query, opts ReadOptions) ([]StoredEvent, error) {
	return s.read(ctx, tx, q, opts)
}

// Stream returns the events matching q, like Read, fetched in pages so that
// memory stays bounded however many there are. Each page is its own snapshot;
// because positions become visible in order, the pages still form one
// gap-free sequence. Iteration stops at the first error, which is yielded.
func (s *Store) Stream(ctx context.Context, q Query, opts ReadOptions) iter.Seq2[StoredEvent, error] {
	return func(yield func(StoredEvent, error) bool) {
		remaining := opts.Limit
		page := opts
		for {
			page.Limit = s.pageSize
			if remaining > 0 && remaining < page.Limit {
				page.Limit = remaining
			}
			events, err := s.read(ctx, s.pool, q, page)
			if err != nil {
				yield(StoredEvent{}, err)
				return
			}
			for _, e := range events {
				if !yield(e, nil) {
					return
				}
			}
			if remaining > 0 {
				if remaining -= len(events); remaining == 0 {
					return
				}
			}
			if len(events) < page.Limit {
				return
			}
			last := events[len(events)-1].Position
			if page.From = last + 1; opts.Backwards {
				if page.From = last - 1; page.From < 1 {
					return
				}
			}
		}
	}
}

// Head returns the position of the last event in the log, 0 when it is empty.
func (s *Store) Head(ctx context.Context) (int64, error) {
	var head int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(position), 0) FROM events").Scan(&head)
	return head, translate("head", err)
}

func (s *Store) read(ctx context.Context, db querier, q Query, opts ReadOptions) ([]StoredEvent, error) {
	if err := s.limits.ValidateQuery("query", q); err != nil {
		return nil, err
	}
	switch {
	case opts.From < 0:
		return nil, invalid("options.from", "must not be negative")
	case opts.Limit < 0:
		return nil, invalid("options.limit", "must not be negative")
	case opts.Limit > math.MaxInt32:
		return nil, invalid("options.limit", "is %d, the largest is %d (0: no limit)", opts.Limit, math.MaxInt32)
	}
	var events []StoredEvent
	for {
		rows, err := db.Query(ctx, readSQL, readArgs(q, opts)...)
		if err != nil {
			return nil, translate("read", err)
		}
		page, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return nil, translate("read", err)
		}
		// Items of at most one tag are answered from their 64-bit lookup
		// key alone: a collision must not hand over a wrong event. Nor may
		// it shorten a limited page, which callers read as "no more": the
		// page is then completed from where it stopped, as Stream would.
		kept := slices.DeleteFunc(slices.Clone(page), func(e StoredEvent) bool { return !q.Matches(e.Type, e.Tags) })
		events = append(events, kept...)
		if opts.Limit == 0 || len(page) < opts.Limit || len(kept) == len(page) {
			return events, nil
		}
		last := page[len(page)-1].Position
		if opts.Limit -= len(kept); opts.Backwards {
			if opts.From = last - 1; opts.From < 1 {
				return events, nil
			}
		} else {
			opts.From = last + 1
		}
	}
}

func scanEvent(row pgx.CollectableRow) (StoredEvent, error) {
	var e StoredEvent
	var meta []byte
	if err := row.Scan(&e.Position, &e.ID, &e.Type, &e.Tags, &e.Data, &meta, &e.RecordedAt); err != nil {
		return e, err
	}
	if meta != nil {
		if err := json.Unmarshal(meta, &e.Metadata); err != nil {
			return e, fmt.Errorf("decode metadata of event %d: %w", e.Position, err)
		}
	}
	return e, nil
}

func readArgs(q Query, opts ReadOptions) []any {
	from := opts.From
	if opts.Backwards && from == 0 {
		from = math.MaxInt64
	}
	var limit *int // NULL: no limit
	if opts.Limit > 0 {
		limit = &opts.Limit
	}
	var p probes
	all := q.matchesAll()
	if !all {
		p = probesOf(q)
	}
	return []any{all, nonNil(p.Keys), nonNil(p.TypesLo), nonNil(p.TypesHi),
		nonNil(p.TagsLo), nonNil(p.TagsHi), nonNil(p.Types), nonNil(p.Tags), from, limit, opts.Backwards,
		nonNil(p.MoreKeys), nonNil(p.MoreLo), nonNil(p.MoreHi)}
}
