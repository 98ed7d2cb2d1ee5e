package listeners_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/listeners"
)

// listenBackends returns the process ids of the sessions of this database
// that listen for the runtime.
func (e *env) listenBackends(t *testing.T) []int64 {
	t.Helper()
	return e.column(t, `
		SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'dcbkit-listeners'
			AND query LIKE 'LISTEN%dcb_listeners%'`)
}

// deliveredPromptly appends and waits at most 5s for the listener to have
// handled it, several times.
func deliveredPromptly(t *testing.T, e *env, rt *listeners.Runtime, name, tag string) {
	t.Helper()
	for range 4 {
		pos := e.append(t, ev("E", tag))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := rt.WaitFor(ctx, name, pos)
		cancel()
		require.NoError(t, err, "position %d not delivered in time", pos)
	}
	require.Equal(t, e.positions(t, tagQuery(tag)), e.handled(t, name))
}

// TestNotificationWakes: with an hour between polls, appends are delivered
// within moments: the store's notification wakes the listener. (The wake-up
// that follows connecting can explain one delivery, not four.)
func TestNotificationWakes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	opts := options(t, "r")
	opts.PollInterval = time.Hour
	rt, _ := e.start(t, opts, recorder("notified", "r", tagQuery(b)))
	waitUntil(t, "listening", func() bool { return len(e.listenBackends(t)) == 1 })
	deliveredPromptly(t, e, rt, "notified", b)
}

// TestPollingWithoutNotifications: with notifications off, polling alone
// delivers.
func TestPollingWithoutNotifications(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	opts := options(t, "r")
	opts.NoListen = true
	rt, _ := e.start(t, opts, recorder("polled", "r", tagQuery(b)))
	waitUntil(t, "running", func() bool { return status(t, rt, "polled").Running })
	deliveredPromptly(t, e, rt, "polled", b)
	require.Empty(t, e.listenBackends(t), "no LISTEN connection")
}

// TestNotificationConnectionReconnects: when the LISTEN connection is cut,
// the runtime connects again and notifications wake listeners as before.
func TestNotificationConnectionReconnects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := fresh("b")
	opts := options(t, "r")
	opts.PollInterval = time.Hour
	rt, _ := e.start(t, opts, recorder("reconnected", "r", tagQuery(b)))
	var first []int64
	waitUntil(t, "listening", func() bool { first = e.listenBackends(t); return len(first) == 1 })

	_, err := e.pool.Exec(context.Background(), `SELECT pg_terminate_backend($1::int)`, first[0])
	require.NoError(t, err)
	waitUntil(t, "listening again", func() bool {
		now := e.listenBackends(t)
		return len(now) == 1 && now[0] != first[0]
	})
	deliveredPromptly(t, e, rt, "reconnected", b)
}
