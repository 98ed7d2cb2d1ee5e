package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

const (
	writers = 16
	rounds  = 50
)

// A shape is one query shape of eventstore.md, guarantee 1: for a round it
// gives each writer its condition query and the event it appends. Overlapping
// rounds give every writer a query that matches every other writer's event;
// disjoint rounds give each writer a boundary of its own.
type shape struct {
	name        string
	overlapping func(w int, r roundIDs) (eventstore.Query, eventstore.Event)
	disjoint    func(w int, r roundIDs) (eventstore.Query, eventstore.Event)
	ownStore    bool // match-all conditions see every event in the database
}

type roundIDs struct{ a, b, c string }

func newRound() roundIDs {
	return roundIDs{uuid.NewString(), uuid.NewString(), uuid.NewString()}
}

func perWriter(r roundIDs, w int) string { return fmt.Sprintf("%s-w%d", r.c, w) }

var shapes = []shape{
	{
		name: "TagsOnly",
		overlapping: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Tags: []string{r.a}}), ev("E", r.a, perWriter(r, w))
		},
		disjoint: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Tags: []string{perWriter(r, w)}}), ev("E", r.a, perWriter(r, w))
		},
	},
	{
		name: "TypesOnly",
		overlapping: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Types: []string{"T" + r.a}}), ev("T"+r.a, perWriter(r, w))
		},
		disjoint: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Types: []string{"T" + perWriter(r, w)}}), ev("T"+perWriter(r, w), r.a)
		},
	},
	{
		name: "TypesAndTags",
		overlapping: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			typ := []string{"X", "Y"}[w%2]
			return query(item{Types: []string{"X", "Y"}, Tags: []string{r.a}}), ev(typ, r.a, perWriter(r, w))
		},
		disjoint: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Types: []string{"X"}, Tags: []string{perWriter(r, w)}}), ev("X", r.a, perWriter(r, w))
		},
	},
	{
		name: "SeveralTagsAnded",
		overlapping: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Tags: []string{r.a, r.b}}), ev("E", r.b, perWriter(r, w), r.a)
		},
		// Every writer's first tag is the same; only the second tells them
		// apart, so this also proves that both tags' keys are intersected.
		disjoint: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Tags: []string{r.a, perWriter(r, w)}}), ev("E", r.a, perWriter(r, w))
		},
	},
	{
		name: "TypesAndSeveralTags",
		overlapping: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			typ := []string{"X", "Y"}[w%2]
			return query(item{Types: []string{"X", "Y"}, Tags: []string{r.a, r.b, r.c}}), ev(typ, r.c, r.b, perWriter(r, w), r.a)
		},
		// Two tags shared by all, the third a writer's own: only the
		// intersection of the three tells the writers apart.
		disjoint: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(item{Types: []string{"X"}, Tags: []string{r.a, r.b, perWriter(r, w)}}), ev("X", r.a, r.b, perWriter(r, w))
		},
	},
	{
		name: "SeveralItems",
		overlapping: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			q := query(item{Types: []string{"A"}, Tags: []string{r.a}}, item{Tags: []string{r.b, r.c}})
			if w%2 == 0 {
				return q, ev("A", r.a, perWriter(r, w))
			}
			return q, ev("B", r.c, r.b, perWriter(r, w))
		},
		disjoint: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			q := query(item{Types: []string{"A"}, Tags: []string{perWriter(r, w)}}, item{Tags: []string{r.b, perWriter(r, w)}})
			return q, ev("A", r.a, r.b, perWriter(r, w))
		},
	},
	{
		name:     "MatchAll",
		ownStore: true,
		overlapping: func(w int, r roundIDs) (eventstore.Query, eventstore.Event) {
			return query(), ev("E", perWriter(r, w))
		},
	},
}

// appender is one way of appending: group commit on the pool, one append per
// transaction, or inside the caller's transaction. Writers are spread over
// several stores on one database, as over several server replicas, so that
// no in-process serialisation can hide a race that only the database can stop.
type appender struct {
	name string
	opts eventstore.Options
	inTx bool
}

var appenders = []appender{
	{name: "GroupCommit"},
	{name: "OnePerCommit", opts: eventstore.Options{MaxBatch: 1}},
	{name: "CallerTx", inTx: true},
}

func (a appender) append(ctx context.Context, s *eventstore.Store, e eventstore.Event, c *eventstore.AppendCondition) error {
	if !a.inTx {
		_, err := s.Append(ctx, []eventstore.Event{e}, c)
		return err
	}
	return pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		_, err := s.AppendTx(ctx, tx, []eventstore.Event{e}, c)
		return err
	})
}

// race runs one round: every writer reads its query, all wait until everyone
// has read, then all append on condition of what they read. It returns the
// number of appends that succeeded; any error but a failed condition fails t.
func race(t *testing.T, stores []*eventstore.Store, a appender, sh func(int, roundIDs) (eventstore.Query, eventstore.Event)) int {
	ctx := context.Background()
	s := stores[0]
	r := newRound()
	// Seed each boundary so that conditions carry a non-zero after.
	seeds := make([]eventstore.Event, writers)
	for w := range writers {
		_, seeds[w] = sh(w, r)
	}
	_, err := s.Append(ctx, seeds, nil)
	require.NoError(t, err)
	var read, done sync.WaitGroup
	read.Add(writers)
	var won atomic.Int64
	errs := make(chan error, writers)
	for w := range writers {
		done.Go(func() {
			q, e := sh(w, r)
			events, err := s.Read(ctx, q, eventstore.ReadOptions{})
			read.Done()
			if err != nil {
				errs <- err
				return
			}
			read.Wait()
			after := events[len(events)-1].Position
			switch err := a.append(ctx, stores[w%len(stores)], e, cond(q, after)); {
			case err == nil:
				won.Add(1)
			case !errorsIsCondition(err):
				errs <- err
			}
		})
	}
	done.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return int(won.Load())
}

// TestExactlyOneWinner: for every query shape and every way of appending, N
// writers whose conditions overlap race, round after round: exactly one
// commits. Writers whose conditions are disjoint never fail each other.
func TestExactlyOneWinner(t *testing.T) {
	t.Parallel()
	for _, a := range appenders {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			shared := replicas(t, a.opts)
			for _, sh := range shapes {
				t.Run(sh.name, func(t *testing.T) {
					s := shared
					if sh.ownStore {
						s = replicas(t, a.opts)
					}
					for round := range rounds {
						require.Equal(t, 1, race(t, s, a, sh.overlapping), "overlapping round %d", round)
					}
					if sh.disjoint == nil {
						return
					}
					for round := range rounds / 5 {
						require.Equal(t, writers, race(t, s, a, sh.disjoint), "disjoint round %d", round)
					}
				})
			}
		})
	}
}

// replicas returns four stores on one fresh database.
func replicas(t *testing.T, opts eventstore.Options) []*eventstore.Store {
	pool := eventstoretest.NewPool(t)
	stores := make([]*eventstore.Store, 4)
	for i := range stores {
		stores[i] = eventstore.New(pool, opts)
		t.Cleanup(stores[i].Close)
	}
	return stores
}

// TestWriteSkew: two decisions over different boundaries that both match the
// event the other appends (a type-only boundary against a tag boundary). Each
// read an empty boundary; only one may commit, or the log would hold two
// events each decided as if the other did not exist.
func TestWriteSkew(t *testing.T) {
	t.Parallel()
	for _, a := range appenders {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			stores := replicas(t, a.opts)
			ctx := context.Background()
			for round := range rounds {
				typ, tag := "T"+uuid.NewString(), fresh("g")
				other := fresh("h")
				pairs := []struct {
					q eventstore.Query
					e eventstore.Event
				}{
					{query(item{Types: []string{typ}}), ev(typ, tag)},
					{query(item{Tags: []string{tag}}), ev(typ, tag)},
					{query(item{Tags: []string{other}}), ev("U", tag, other)},
					{query(item{Types: []string{typ}, Tags: []string{tag}}), ev(typ, tag, other)},
				}
				var wg sync.WaitGroup
				var won atomic.Int64
				start := make(chan struct{})
				for i, p := range pairs[:2] {
					wg.Go(func() {
						<-start
						err := a.append(ctx, stores[i], p.e, cond(p.q, 0))
						if err == nil {
							won.Add(1)
						} else if !errorsIsCondition(err) {
							t.Errorf("writer %d: %v", i, err)
						}
					})
				}
				close(start)
				wg.Wait()
				require.Equal(t, int64(1), won.Load(), "type-only against tag-only, round %d", round)

				won.Store(0)
				start = make(chan struct{})
				for i, p := range pairs[2:] {
					wg.Go(func() {
						<-start
						err := a.append(ctx, stores[i], p.e, cond(p.q, 0))
						if err == nil {
							won.Add(1)
						} else if !errorsIsCondition(err) {
							t.Errorf("writer %d: %v", i, err)
						}
					})
				}
				close(start)
				wg.Wait()
				// The tag boundary already holds the first pair's event, so
				// the type-and-tag writer always fails; the other boundary is
				// new, so its writer wins only if the fourth did not first.
				require.Equal(t, int64(1), won.Load(), "tag against type-and-tag, round %d", round)
			}
		})
	}
}

func errorsIsCondition(err error) bool { return errors.Is(err, eventstore.ErrAppendConditionFailed) }

// TestNoLostUpdateThroughGaps is eventstore.md guarantee 2. Writer A holds an
// uncommitted matching event; writer B appends a later one; a reader reads
// and decides. Whatever the reader was handed, its append must fail once A
// commits: A's event is news to it.
func TestNoLostUpdateThroughGaps(t *testing.T) {
	t.Parallel()
	for _, a := range appenders[:2] {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			s := eventstoretest.NewStore(t, a.opts)
			ctx := context.Background()
			for round := range 10 {
				b := fresh("b")
				q := query(item{Tags: []string{b}})

				txA, err := s.Pool().Begin(ctx)
				require.NoError(t, err)
				defer txA.Rollback(ctx) // no-op after commit; releases the connection if the test fails
				_, err = s.AppendTx(ctx, txA, []eventstore.Event{ev("Low", b)}, nil)
				require.NoError(t, err)

				bDone := make(chan error, 1)
				go func() {
					_, err := s.Append(ctx, []eventstore.Event{ev("High", b)}, nil)
					bDone <- err
				}()
				waitForLockWaiter(t, s)

				seen, err := s.Read(ctx, q, eventstore.ReadOptions{})
				require.NoError(t, err)
				require.Empty(t, seen, "round %d: nothing is committed yet", round)
				var after int64
				if len(seen) > 0 {
					after = seen[len(seen)-1].Position
				}

				require.NoError(t, txA.Commit(ctx))
				require.NoError(t, <-bDone)

				err = a.append(ctx, s, ev("Decided", b), cond(q, after))
				require.ErrorIs(t, err, eventstore.ErrAppendConditionFailed, "round %d: the reader's state is stale", round)

				// And the read made after both commits sees both, in order.
				seen, err = s.Read(ctx, q, eventstore.ReadOptions{})
				require.NoError(t, err)
				require.Len(t, seen, 2)
				require.Equal(t, []string{"Low", "High"}, []string{seen[0].Type, seen[1].Type})
			}
		})
	}
}

// waitForLockWaiter waits until some session of the store's database waits
// for the append lock.
func waitForLockWaiter(t *testing.T, s *eventstore.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		err := s.Pool().QueryRow(context.Background(), `
			SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting)
		require.NoError(t, err)
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no append waits for the lock")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPositionsBecomeVisibleInOrder is what makes guarantee 3 possible: a
// reader that polls "after the last position I saw" while writers commit
// concurrently (some rolling back, leaving gaps) ends with exactly the events
// of the log, none skipped.
func TestPositionsBecomeVisibleInOrder(t *testing.T) {
	t.Parallel()
	stores := replicas(t, eventstore.Options{})
	s := stores[0]
	ctx := context.Background()
	b := fresh("b")
	q := query(item{Tags: []string{b}})

	stop := make(chan struct{})
	var writersDone sync.WaitGroup
	for w := range 8 {
		writersDone.Go(func() {
			s := stores[w%len(stores)]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch (w + i) % 3 {
				case 0:
					_, err = s.Append(ctx, []eventstore.Event{ev("E", b)}, nil)
				case 1: // commits
					err = pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
						_, err := s.AppendTx(ctx, tx, []eventstore.Event{ev("E", b), ev("E", b)}, nil)
						return err
					})
				case 2: // rolls back, leaving a gap
					tx, berr := s.Pool().Begin(ctx)
					require.NoError(t, berr)
					_, err = s.AppendTx(ctx, tx, []eventstore.Event{ev("E", b)}, nil)
					require.NoError(t, tx.Rollback(ctx))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}

	var seen []int64
	poll := func() {
		var from int64
		if len(seen) > 0 {
			from = seen[len(seen)-1] + 1
		}
		events, err := s.Read(ctx, q, eventstore.ReadOptions{From: from})
		require.NoError(t, err)
		for _, e := range events {
			seen = append(seen, e.Position)
		}
	}
	for len(seen) < 2000 {
		poll()
	}
	close(stop)
	writersDone.Wait()
	poll()

	all, err := s.Read(ctx, q, eventstore.ReadOptions{})
	require.NoError(t, err)
	want := make([]int64, len(all))
	for i, e := range all {
		want[i] = e.Position
	}
	require.Equal(t, want, seen, "the poller skipped an event")
}

// TestGroupCommitDecidesInOrder fills one batch with appends whose conditions
// overlap, deterministically: the append lock is held by a transaction while
// a first, unrelated append blocks the committer and the others queue. The
// queued appends are then committed together, and exactly one of them may
// win: the first of the batch, by its own condition; the others fail against
// it, inside the batch, not against the log.
func TestGroupCommitDecidesInOrder(t *testing.T) {
	t.Parallel()
	s := eventstoretest.NewStore(t, eventstore.Options{})
	ctx := context.Background()
	for round := range 10 {
		b, other := fresh("b"), fresh("other")
		q := query(item{Tags: []string{b}})

		holder, err := s.Pool().Begin(ctx)
		require.NoError(t, err)
		_, err = s.AppendTx(ctx, holder, []eventstore.Event{ev("Holder", other)}, nil)
		require.NoError(t, err)

		blocked := make(chan error, 1)
		go func() {
			_, err := s.Append(ctx, []eventstore.Event{ev("Unrelated", other)}, nil)
			blocked <- err
		}()
		waitForLockWaiter(t, s)

		const n = writers
		results := make(chan error, n)
		for w := range n {
			go func() {
				_, err := s.Append(ctx, []eventstore.Event{ev("Contender", b, fmt.Sprint(w))}, cond(q, 0))
				results <- err
			}()
		}
		require.Eventually(t, func() bool { return s.Queued() == n }, 10*time.Second, time.Millisecond)
		require.NoError(t, holder.Commit(ctx))
		require.NoError(t, <-blocked)

		won := 0
		for range n {
			switch err := <-results; {
			case err == nil:
				won++
			case !errorsIsCondition(err):
				t.Fatal(err)
			}
		}
		require.Equal(t, 1, won, "round %d", round)
		stored, err := s.Read(ctx, q, eventstore.ReadOptions{})
		require.NoError(t, err)
		require.Len(t, stored, 1, "round %d", round)
	}
}
