package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ReadOptions shape a read.
type ReadOptions struct {
	// From is the first position to consider, inclusive: the lowest when
	// reading forwards, the highest when reading backwards. 0 means the start
	// (or the end, backwards).
	From int64
	// Limit caps the number of events returned; 0 means no limit.
	Limit int
	// Backwards returns events in descending position order.
	Backwards bool
}

// readSQL reads the events matching a query: for every lookup key one ordered,
// limited range scan of event_keys (candidates verified against their item),
// merged, de-duplicated and limited again. Its cost depends on the number of
// matching events, not on the size of the log.
var readSQL, readBackwardsSQL = readStatement(">=", "ASC"), readStatement("<=", "DESC")

func readStatement(cmp, dir string) string {
	return strings.NewReplacer("{cmp}", cmp, "{dir}", dir).Replace(`
SELECT DISTINCT ON (c.position) c.position, c.id, c.type, c.tags, c.data, c.metadata, c.recorded_at
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[])
	AS p(key, types_lo, types_hi, tags_lo, tags_hi)
CROSS JOIN LATERAL (
	SELECT e.* FROM event_keys k JOIN events e ON e.position = k.position
	WHERE k.key = p.key AND k.position {cmp} $8
		AND (p.types_lo > p.types_hi OR e.type = ANY (($6::text[])[p.types_lo:p.types_hi]))
		AND e.tags @> ($7::text[])[p.tags_lo:p.tags_hi]
	ORDER BY k.position {dir}
	LIMIT $9
) AS c
ORDER BY c.position {dir}
LIMIT $9`)
}

const (
	readAllSQL = `
SELECT position, id, type, tags, data, metadata, recorded_at FROM events
WHERE position >= $1 ORDER BY position LIMIT $2`
	readAllBackwardsSQL = `
SELECT position, id, type, tags, data, metadata, recorded_at FROM events
WHERE position <= $1 ORDER BY position DESC LIMIT $2`
)

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
	}
	from := opts.From
	if opts.Backwards && from == 0 {
		from = math.MaxInt64
	}
	var limit *int // NULL: no limit
	if opts.Limit > 0 {
		limit = &opts.Limit
	}

	var rows pgx.Rows
	var err error
	if q.matchesAll() {
		sql := readAllSQL
		if opts.Backwards {
			sql = readAllBackwardsSQL
		}
		rows, err = db.Query(ctx, sql, from, limit)
	} else {
		p := probesOf(q)
		sql := readSQL
		if opts.Backwards {
			sql = readBackwardsSQL
		}
		rows, err = db.Query(ctx, sql, p.Keys, p.TypesLo, p.TypesHi, p.TagsLo, p.TagsHi,
			nonNil(p.Types), nonNil(p.Tags), from, limit)
	}
	if err != nil {
		return nil, translate("read", err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, translate("read", err)
	}
	return events, nil
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
