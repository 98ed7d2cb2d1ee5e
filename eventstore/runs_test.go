package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

	var log []eventstore.StoredEvent
	for _, events := range appends {
		res, err := s.Append(ctx, events, nil)
		require.NoError(t, err)
		for i, e := range events {
			log = append(log, eventstore.StoredEvent{Event: e, Position: res.Position - int64(len(events)-1-i)})
		}
	}
	var rows, keys int
	require.NoError(t, s.Pool().QueryRow(ctx, "SELECT count(*), sum(span) FROM event_keys").Scan(&rows, &keys))
	require.Less(t, rows, keys, "no key was stored as a run")

	requireAnswersOf(t, s, log, []eventstore.Query{
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
		// Several tags: their keys' runs intersected (dcb_leap).
		query(item{Tags: []string{"b1", "mid", "even"}}),
		query(item{Tags: []string{"odd", "mid"}}),
		query(item{Types: []string{"A", "B"}, Tags: []string{"mid", "b1", "odd"}}),
		query(item{Tags: []string{"x", "mid"}}, item{Types: []string{"B"}, Tags: []string{"b1", "even"}}),
	})
}

// requireAnswersOf checks every read of each query from every position up to
// the head of log (the whole log, in order), with limits 0, 1, 2, 3 and 5,
// in both directions, and a condition after every position, against what
// Query.Matches says of log.
func requireAnswersOf(t *testing.T, s *eventstore.Store, log []eventstore.StoredEvent, queries []eventstore.Query) {
	t.Helper()
	ctx := context.Background()
	head := log[len(log)-1].Position
	for qi, q := range queries {
		var matching []int64
		for _, e := range log {
			if q.Matches(e.Type, e.Tags) {
				matching = append(matching, e.Position)
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

// TestKeyRunsOfABatchOfAppends: appends committed together (one dcb_append
// call, as group commit makes them) each store their own runs, and appends
// rejected in the batch, by an earlier one of it or by the log, leave none
// behind: the accepted appends' events are stored in order, the key rows
// stand for exactly their keys, and every read and condition answers like
// Query.Matches. One event repeats a tag inside a run.
func TestKeyRunsOfABatchOfAppends(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	_, err := s.Append(ctx, []eventstore.Event{ev("Seed", "taken")}, nil)
	require.NoError(t, err)

	own := func(typ string, app, i int, tags ...string) eventstore.Event {
		return ev(typ, append(tags, fmt.Sprintf("own:%d.%d", app, i))...)
	}
	var appends [][]eventstore.Event
	var conds []*eventstore.AppendCondition
	add := func(c *eventstore.AppendCondition, events ...eventstore.Event) {
		appends, conds = append(appends, events), append(conds, c)
	}
	add(nil, own("A", 0, 0, "b"), own("A", 0, 1, "b", "b"), own("A", 0, 2, "b"), own("A", 0, 3, "b"))
	// Fails against the first append, in the batch: against its second
	// event, inside the run of tag b (dependencies expands runs).
	add(cond(query(item{Tags: []string{"b", "own:0.1"}}), 0),
		own("A", 1, 0, "c"), own("A", 1, 1, "c"), own("A", 1, 2, "c"))
	add(cond(query(item{Tags: []string{"taken"}}), 0), // fails against the log
		own("B", 2, 0, "c"), own("B", 2, 1, "c"), own("B", 2, 2, "c"))
	add(cond(query(item{Tags: []string{"nothing"}}), 0),
		own("A", 3, 0, "c", "b"), own("A", 3, 1, "c", "b"), own("B", 3, 2, "c", "b"), own("B", 3, 3, "c"), own("A", 3, 4, "c"))
	add(nil, own("A", 4, 0, "b"), own("A", 4, 1, "b"))
	accepted := []bool{true, false, false, true, true}

	args, err := s.BatchArgs(appends, conds)
	require.NoError(t, err)
	var existing []int64
	var failed []bool
	var last []*int64
	require.NoError(t, s.Pool().QueryRow(ctx, eventstore.AppendSQL, args...).Scan(&existing, &failed, &last))
	var want []eventstore.Event
	wantKeys := 0
	for i, events := range appends {
		require.Equal(t, !accepted[i], failed[i], "append %d", i)
		require.Equal(t, accepted[i], last[i] != nil, "append %d", i)
		if accepted[i] {
			want = append(want, events...)
			for _, e := range events {
				wantKeys += 1 + 2*len(slices.Compact(slices.Sorted(slices.Values(e.Tags))))
			}
		}
	}

	log, err := s.Read(ctx, eventstore.All, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, log, 1+len(want))
	for i, e := range want {
		got := log[1+i]
		require.Equal(t, e.Type, got.Type, "event %d", i)
		require.Equal(t, slices.Compact(slices.Clone(e.Tags)), got.Tags, "event %d", i)
		require.Equal(t, log[1].Position+int64(i), got.Position, "event %d: the batch's positions are consecutive", i)
	}
	var rows, keys int
	require.NoError(t, s.Pool().QueryRow(ctx, "SELECT count(*), sum(span) FROM event_keys WHERE position > $1",
		log[0].Position).Scan(&rows, &keys))
	require.Equal(t, wantKeys, keys, "the key rows do not stand for the stored events' keys")
	require.Less(t, rows, keys, "no key was stored as a run")

	requireAnswersOf(t, s, log, []eventstore.Query{
		query(item{Tags: []string{"b"}}),
		query(item{Tags: []string{"c"}}),
		query(item{Types: []string{"A"}}),
		query(item{Types: []string{"B"}}),
		query(item{Types: []string{"A"}, Tags: []string{"b"}}),
		query(item{Tags: []string{"b", "c"}}),
		query(item{Types: []string{"B"}, Tags: []string{"c"}}),
		query(item{Tags: []string{"own:3.2"}}),
		query(item{Types: []string{"A"}, Tags: []string{"c", "b"}}),
		query(item{Tags: []string{"b", "c", "own:3.1"}}, item{Types: []string{"B"}, Tags: []string{"own:3.3", "c"}}),
	})
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
