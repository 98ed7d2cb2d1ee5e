package listeners_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/listeners"
)

// fresh returns a tag no other test uses.
func fresh(prefix string) string { return prefix + ":" + uuid.NewString() }

func ev(typ string, tags ...string) eventstore.Event {
	return eventstore.Event{Type: typ, Tags: tags, Data: []byte(`{"n":1}`)}
}

func tagQuery(tag string) eventstore.Query {
	return eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{tag}}}}
}

// env is a fresh database with a store and the table handled, in which
// recording listeners write what they handle, in handling order.
type env struct {
	pool  *pgxpool.Pool
	store *eventstore.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := eventstoretest.NewPool(t)
	store := eventstore.New(pool, eventstore.Options{})
	t.Cleanup(store.Close)
	_, err := pool.Exec(context.Background(), `
		CREATE TABLE handled (
			seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			listener text NOT NULL,
			position bigint NOT NULL,
			holder   text NOT NULL,
			at       timestamptz NOT NULL DEFAULT clock_timestamp()
		)`)
	require.NoError(t, err)
	return &env{pool: pool, store: store}
}

// options are quick to react, for tests; holder names the replica.
func options(t *testing.T, holder string) listeners.Options {
	return listeners.Options{
		Holder:        holder,
		PollInterval:  20 * time.Millisecond,
		LeaseDuration: 2 * time.Second,
		RetryMin:      5 * time.Millisecond,
		RetryMax:      50 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// record is a handler that writes every event it handles to handled, in its
// transaction, with the holder it runs in.
func record(name, holder string) func(context.Context, pgx.Tx, []eventstore.StoredEvent) error {
	return func(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
		positions := make([]int64, len(events))
		for i, e := range events {
			positions[i] = e.Position
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO handled (listener, position, holder)
			SELECT $1, u.p, $2 FROM unnest($3::bigint[]) WITH ORDINALITY AS u(p, i) ORDER BY u.i`,
			name, holder, positions)
		return err
	}
}

func recorder(name, holder string, q eventstore.Query) listeners.Listener {
	return listeners.Listener{Name: name, Query: q, Handle: record(name, holder)}
}

// start runs a Runtime until the returned stop is called (or the test ends).
func (e *env) start(t *testing.T, opts listeners.Options, ls ...listeners.Listener) (*listeners.Runtime, func()) {
	t.Helper()
	rt := listeners.New(e.pool, e.store, opts, ls...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return rt, stop
}

// append stores events and returns the position of the last.
func (e *env) append(t *testing.T, events ...eventstore.Event) int64 {
	t.Helper()
	res, err := e.store.Append(context.Background(), events, nil)
	require.NoError(t, err)
	return res.Position
}

func (e *env) head(t *testing.T) int64 {
	t.Helper()
	head, err := e.store.Head(context.Background())
	require.NoError(t, err)
	return head
}

// positions returns the positions of the events matching q.
func (e *env) positions(t *testing.T, q eventstore.Query) []int64 {
	t.Helper()
	events, err := e.store.Read(context.Background(), q, eventstore.ReadOptions{})
	require.NoError(t, err)
	out := make([]int64, len(events))
	for i, ev := range events {
		out[i] = ev.Position
	}
	return out
}

// handled returns the positions a listener handled, in handling order.
func (e *env) handled(t *testing.T, name string) []int64 {
	t.Helper()
	return e.column(t, `SELECT position FROM handled WHERE listener = $1 ORDER BY seq`, name)
}

func (e *env) column(t *testing.T, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	if out == nil {
		out = []int64{}
	}
	return out
}

// waitFor waits, at most 10s, for the listener to reach position.
func waitFor(t *testing.T, rt *listeners.Runtime, name string, position int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	checkpoint, err := rt.WaitFor(ctx, name, position)
	require.NoError(t, err, "%s did not reach %d", name, position)
	require.GreaterOrEqual(t, checkpoint, position)
	return checkpoint
}

// waitUntil polls cond until it holds, failing t after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// status returns the Status of one listener.
func status(t *testing.T, rt *listeners.Runtime, name string) listeners.Status {
	t.Helper()
	all, err := rt.Status(context.Background())
	require.NoError(t, err)
	for _, st := range all {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for %s", name)
	return listeners.Status{}
}

// waitForLockWaiter waits until some session of the database waits for an
// advisory lock (the event store's append lock).
func waitForLockWaiter(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	waitUntil(t, "an append waits for the lock", func() bool {
		var waiting bool
		err := pool.QueryRow(context.Background(), `
			SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting)
		require.NoError(t, err)
		return waiting
	})
}
