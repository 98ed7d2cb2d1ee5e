package eventstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestSeveralTagsCostFollowsTheRarestTag is guarantee 6 for items of several
// tags (migrations/00011_dcb_leap.sql): a tag on thousands of events, listed
// first beside a rare one, must not make a read or a condition read those
// thousands. PostgreSQL's own counters of index entries read, on a database
// of the test's own, tell what the statements read: a handful of probes,
// where looking up the first tag alone reads one entry per event that has it.
func TestSeveralTagsCostFollowsTheRarestTag(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	// 4,000 events, every other one tagged common (so that no run of the
	// key stands for several of them), four others rare. None has both.
	const n = 4000
	for first := 0; first < n; first += 1000 {
		events := make([]eventstore.Event, 1000)
		for i := range events {
			switch j := first + i; {
			case j%1000 == 501:
				events[i] = ev("E", "rare")
			case j%2 == 0:
				events[i] = ev("E", "common")
			default:
				events[i] = ev("E", "filler")
			}
		}
		_, err := s.Append(ctx, events, nil)
		require.NoError(t, err)
	}
	var commonRows int
	require.NoError(t, s.Pool().QueryRow(ctx, "SELECT count(*) FROM event_keys WHERE key = $1",
		eventstore.TagKey("common")).Scan(&commonRows))
	require.Equal(t, n/2, commonRows)

	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	// indexReads returns how many index entries of the log's tables this
	// session has read so far, its own included (flushed by the first
	// statement, read by the second).
	indexReads := func() int64 {
		_, err := conn.Exec(ctx, "SELECT pg_stat_force_next_flush()")
		require.NoError(t, err)
		var reads int64
		require.NoError(t, conn.QueryRow(ctx, `SELECT coalesce(sum(idx_tup_read), 0)::bigint
			FROM pg_stat_user_indexes WHERE relname IN ('events', 'event_keys')`).Scan(&reads))
		return reads
	}
	read := func(q eventstore.Query, opts eventstore.ReadOptions) func() {
		return func() {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				got, err := s.ReadTx(ctx, tx, q, opts)
				require.Empty(t, got)
				return err
			})
			require.NoError(t, err)
		}
	}
	appendOn := func(q eventstore.Query) func() {
		return func() {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := s.AppendTx(ctx, tx, []eventstore.Event{ev("Decided", "common", "rare")}, cond(q, 0))
				require.NoError(t, err, "nothing has both tags")
				return errRolledBack
			})
			require.ErrorIs(t, err, errRolledBack)
		}
	}
	commonFirst := query(item{Tags: []string{"common", "rare"}})
	typed := query(item{Types: []string{"E", "F"}, Tags: []string{"common", "filler", "rare"}})
	for _, op := range []struct {
		name string
		run  func()
	}{
		{"Read", read(commonFirst, eventstore.ReadOptions{})},
		{"ReadTyped", read(typed, eventstore.ReadOptions{})},
		{"ReadLimited", read(commonFirst, eventstore.ReadOptions{From: 100, Limit: 10})},
		{"ReadBackwards", read(commonFirst, eventstore.ReadOptions{Backwards: true})},
		{"ReadBackwardsLimited", read(typed, eventstore.ReadOptions{From: 3000, Limit: 10, Backwards: true})},
		{"Condition", appendOn(commonFirst)},
		{"ConditionTyped", appendOn(typed)},
	} {
		op.run() // plans made and cached
		before := indexReads()
		op.run()
		reads := indexReads() - before
		t.Logf("%s: %d index entries read", op.name, reads)
		require.Less(t, reads, int64(50), "%s reads through the common tag (%d events)", op.name, commonRows)
	}
}

// TestSeveralTagsAnswerLikeMatches: random logs (single appends and batches,
// whose shared tags are stored as runs) and random items of two and three
// tags, with and without types, beside items of one tag or none: every read,
// from every position, with limits, in both directions, and every condition
// answers what Query.Matches says of the log.
func TestSeveralTagsAnswerLikeMatches(t *testing.T) {
	t.Parallel()
	tags := []string{"a", "b", "c", "d", "rare"}
	types := []string{"A", "B", "C"}
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("Seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 0x1ea9))
			s := eventstoretest.NewStore(t, eventstore.Options{})
			ctx := context.Background()
			some := func(from []string, p float64) []string {
				var out []string
				for _, x := range from {
					if rng.Float64() < p {
						out = append(out, x)
					}
				}
				return out
			}
			var log []eventstore.StoredEvent
			for len(log) < 40 {
				shared := some(tags[:4], 0.5) // a batch's events share these
				batch := make([]eventstore.Event, 1+rng.IntN(6))
				for i := range batch {
					own := some(tags[:4], 0.3)
					if rng.IntN(8) == 0 {
						own = append(own, "rare")
					}
					batch[i] = ev(types[rng.IntN(len(types))], append(slices.Clone(shared), own...)...)
				}
				res, err := s.Append(ctx, batch, nil)
				require.NoError(t, err)
				for i, e := range batch {
					log = append(log, eventstore.StoredEvent{Event: e, Position: res.Position - int64(len(batch)-1-i)})
				}
			}
			randomItem := func(ntags int) item {
				perm := rng.Perm(len(tags))
				it := item{}
				for _, i := range perm[:ntags] {
					it.Tags = append(it.Tags, tags[i])
				}
				if rng.IntN(2) == 0 {
					it.Types = some(types, 0.5)
				}
				return it
			}
			var queries []eventstore.Query
			for range 10 {
				q := query(randomItem(2 + rng.IntN(2)))
				if rng.IntN(3) == 0 {
					other := randomItem(rng.IntN(3))
					if len(other.Types)+len(other.Tags) == 0 {
						other.Types = types[:1]
					}
					q.Items = append(q.Items, other)
				}
				queries = append(queries, q)
			}
			requireAnswersOf(t, s, log, queries)
		})
	}
}

// TestCallersFromBeforeLeap: dcb_read and dcb_append still take the
// arguments of migration 00010 (a server not yet upgraded, during a rolling
// deploy), and then answer items of several tags through their first tag's
// key, as before.
func TestCallersFromBeforeLeap(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	a, b := fresh("a"), fresh("b")
	res, err := s.Append(ctx, []eventstore.Event{ev("A", a), ev("A", a, b), ev("B", b, a)}, nil)
	require.NoError(t, err)
	q := query(item{Types: []string{"A"}, Tags: []string{a, b}})

	args := eventstore.ReadArgs(q, eventstore.ReadOptions{})
	old := fmt.Sprintf("SELECT position FROM dcb_read(%s)", placeholders(len(args)-3))
	rows, err := s.Pool().Query(ctx, old, args[:len(args)-3]...)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{res.Position - 1}, got)

	for after, wantFail := range map[int64]bool{res.Position - 2: true, res.Position - 1: false} {
		args, err := s.AppendArgs([]eventstore.Event{ev("Probe")}, cond(q, after))
		require.NoError(t, err)
		old := fmt.Sprintf("SELECT conditions_failed FROM dcb_append(%s)", placeholders(len(args)-3))
		var failed []bool
		err = pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, old, args[:len(args)-3]...).Scan(&failed); err != nil {
				return err
			}
			return errRolledBack
		})
		require.ErrorIs(t, err, errRolledBack)
		require.Equal(t, []bool{wantFail}, failed, "after %d", after)
	}
}
