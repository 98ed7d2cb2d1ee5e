package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestKeyRunsAnswerLikeOneRowPerEvent: the lookup keys that consecutive
// events of one append share are stored as one row per run of positions
// (migrations/00010_event_keys_runs.sql). Reads from every position, with
// every limit, in both directions, and conditions after every position,
// answer exactly what Query.Matches says of the log, so runs that begin
// before, end after or straddle a boundary are cut where they must be.
func TestKeyRunsAnswerLikeOneRowPerEvent(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	tagged := func(typ string, i int, tags ...string) eventstore.Event {
		if i%2 == 0 {
			tags = append(tags, "even")
		} else {
			tags = append(tags, "odd")
		}
		return ev(typ, append(tags, fmt.Sprintf("own:%d", i))...)
	}
	var appends [][]eventstore.Event
	var batch []eventstore.Event
	for i := range 8 { // one type, one tag throughout, a run inside, one event apart
		tags := []string{"b1"}
		if i >= 2 && i <= 5 {
			tags = append(tags, "mid")
		}
		if i == 4 {
			tags = append(tags, "x")
		}
		batch = append(batch, tagged("A", i, tags...))
	}
	appends = append(appends, batch)
	for i := range 3 { // single appends: runs of one, the same keys as around them
		appends = append(appends, []eventstore.Event{tagged("B", i, "mid", "b1")})
	}
	batch = nil
	for i := range 6 { // alternating types, a tag for the first half
		tags := []string{"mid"}
		if i < 3 {
			tags = append(tags, "b1")
		}
		batch = append(batch, tagged([]string{"A", "B"}[i%2], i, tags...))
	}
	appends = append(appends, batch)

	var log []eventstore.Event
	var pos []int64
	for _, events := range appends {
		res, err := s.Append(ctx, events, nil)
		require.NoError(t, err)
		for i := range events {
			pos = append(pos, res.Position-int64(len(events)-1-i))
		}
		log = append(log, events...)
	}
	var rows, keys int
	require.NoError(t, s.Pool().QueryRow(ctx, "SELECT count(*), sum(span) FROM event_keys").Scan(&rows, &keys))
	require.Less(t, rows, keys, "no key was stored as a run")

	queries := []eventstore.Query{
		query(item{Tags: []string{"b1"}}),
		query(item{Tags: []string{"mid"}}),
		query(item{Tags: []string{"odd"}}),
		query(item{Tags: []string{"x"}}),
		query(item{Types: []string{"A"}}),
		query(item{Types: []string{"B"}}),
		query(item{Types: []string{"A"}, Tags: []string{"mid"}}),
		query(item{Tags: []string{"mid", "b1"}}),
		query(item{Types: []string{"B"}, Tags: []string{"b1", "mid"}}),
		query(item{Tags: []string{"even"}}, item{Types: []string{"B"}, Tags: []string{"mid"}}),
	}
	head := pos[len(pos)-1]
	for qi, q := range queries {
		var matching []int64
		for i, e := range log {
			if q.Matches(e.Type, e.Tags) {
				matching = append(matching, pos[i])
			}
		}
		for from := int64(0); from <= head+1; from++ {
			for _, limit := range []int{0, 1, 2, 3, 5} {
				for _, backwards := range []bool{false, true} {
					opts := eventstore.ReadOptions{From: from, Limit: limit, Backwards: backwards}
					got, err := s.Read(ctx, q, opts)
					require.NoError(t, err)
					require.Equal(t, expectedPage(matching, opts), positionsOf(got), "query %d, %+v", qi, opts)
				}
			}
		}
		for after := int64(0); after <= head; after++ {
			err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
				_, err := s.AppendTx(ctx, tx, []eventstore.Event{ev("Probe")}, cond(q, after))
				if err == nil {
					err = errRolledBack
				}
				return err
			})
			wantFail := len(matching) > 0 && matching[len(matching)-1] > after
			require.Equal(t, wantFail, errorsIsCondition(err), "query %d after %d: %v", qi, after, err)
		}
	}
}

var errRolledBack = errors.New("rolled back")

// expectedPage is what Read must return of the matching positions (in
// ascending order) for opts.
func expectedPage(matching []int64, opts eventstore.ReadOptions) []int64 {
	var page []int64
	for i := range matching {
		p := matching[i]
		if opts.Backwards {
			p = matching[len(matching)-1-i]
			if opts.From > 0 && p > opts.From {
				continue
			}
		} else if p < opts.From {
			continue
		}
		if opts.Limit > 0 && len(page) == opts.Limit {
			break
		}
		page = append(page, p)
	}
	return page
}

func positionsOf(events []eventstore.StoredEvent) []int64 {
	var out []int64
	for _, e := range events {
		out = append(out, e.Position)
	}
	return out
}

// TestCallersFromBeforeKeyRuns: dcb_append still takes the arguments of
// migration 00009 (a server not yet upgraded, during a rolling deploy); its
// key rows are then runs of one. (One event: its arguments are the same as
// they were then but for the new last one.)
func TestCallersFromBeforeKeyRuns(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	tag := fresh("t")
	args, err := s.AppendArgs([]eventstore.Event{ev("A", tag)}, nil)
	require.NoError(t, err)
	old := fmt.Sprintf("SELECT last_positions FROM dcb_append(%s)", placeholders(len(args)-1))
	var last []int64
	require.NoError(t, s.Pool().QueryRow(ctx, old, args[:len(args)-1]...).Scan(&last))

	var rows, spans int
	require.NoError(t, s.Pool().QueryRow(ctx, "SELECT count(*), max(span) FROM event_keys").Scan(&rows, &spans))
	require.Equal(t, 3, rows)
	require.Equal(t, 1, spans)
	got, err := s.Read(ctx, query(item{Types: []string{"A"}, Tags: []string{tag}}), eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Equal(t, last, positionsOf(got))
}

// placeholders returns "$1, $2, …, $n".
func placeholders(n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("$%d", i+1)
	}
	return strings.Join(ps, ", ")
}
