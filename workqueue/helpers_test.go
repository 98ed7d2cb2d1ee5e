package workqueue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/workqueue"
)

// pollInterval keeps retries with short backoffs close to their schedule.
const pollInterval = 10 * time.Millisecond

// waitTimeout bounds every wait: generous, since -race on two cores is slow.
const waitTimeout = 15 * time.Second

var errBroken = errors.New("downstream broken")

type echo struct {
	Name string `json:"name"`
}

func (echo) Kind() string { return "test_echo" }

type other struct {
	Name string `json:"name"`
}

func (other) Kind() string { return "test_other" }

// newQueue returns a queue on pool that logs to t (warnings and up) and is
// stopped, if started, when t ends.
func newQueue(t *testing.T, pool *pgxpool.Pool) *workqueue.Queue {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(w.close) // registered first, so it runs after Stop
	q := workqueue.New(pool, workqueue.Options{
		Logger:       slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})),
		PollInterval: pollInterval,
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return q
}

func start(t *testing.T, q *workqueue.Queue) {
	t.Helper()
	require.NoError(t, q.Start(t.Context()))
}

// testWriter sends log lines to t until the test's cleanup has stopped the
// queue; River may log from its goroutines up to then, never after.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// receive waits for a value on ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jobRow is what the tests read back from River's table.
type jobRow struct {
	State       string
	Attempt     int
	MaxAttempts int
	Errors      int
	Metadata    string
}

func readJob(t *testing.T, pool *pgxpool.Pool, id int64) jobRow {
	t.Helper()
	var j jobRow
	err := pool.QueryRow(context.Background(), `
		SELECT state::text, attempt, max_attempts, coalesce(array_length(errors, 1), 0), metadata::text
		FROM river_job WHERE id = $1`, id).Scan(&j.State, &j.Attempt, &j.MaxAttempts, &j.Errors, &j.Metadata)
	require.NoError(t, err, "job %d", id)
	return j
}

func waitForState(t *testing.T, pool *pgxpool.Pool, id int64, state string) jobRow {
	t.Helper()
	var j jobRow
	waitFor(t, fmt.Sprintf("job %d %s", id, state), func() bool {
		j = readJob(t, pool, id)
		return j.State == state
	})
	return j
}

// onlyJobID returns the id of the single job of kind in the database.
func onlyJobID(t *testing.T, pool *pgxpool.Pool, kind string) int64 {
	t.Helper()
	var ids []int64
	rows, err := pool.Query(context.Background(), `SELECT id FROM river_job WHERE kind = $1`, kind)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 1, "jobs of kind %s", kind)
	return ids[0]
}

func countJobs(t *testing.T, pool *pgxpool.Pool, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE `+where, args...).Scan(&n))
	return n
}

// attempts records what a worker saw, safely across goroutines.
type attempts struct {
	mu   sync.Mutex
	list []attemptRecord
}

type attemptRecord struct {
	attempt    int
	start, end time.Time
}

func (a *attempts) add(r attemptRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, r)
}

func (a *attempts) get() []attemptRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attemptRecord(nil), a.list...)
}

func constant(d time.Duration) func(int) time.Duration {
	return func(int) time.Duration { return d }
}
