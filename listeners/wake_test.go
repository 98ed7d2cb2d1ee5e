package listeners_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
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
		// Not WaitFor, which may itself hurry the listener.
		pos := e.append(t, ev("E", tag))
		waitUntil(t, fmt.Sprintf("position %d delivered", pos), func() bool { return status(t, rt, name).Checkpoint >= pos })
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

// TestWhichNotificationsWake: a notification wakes a listener at once when
// it names a type the listener reads, or cannot say (an empty payload, from
// a store before migration 00009, or an unreadable one), and always a
// listener that reads every type; otherwise it only stirs it.
func TestWhichNotificationsWake(t *testing.T) {
	t.Parallel()
	typed := eventstore.Query{Items: []eventstore.QueryItem{{Types: []string{"A", "B"}, Tags: []string{"x:1"}}, {Types: []string{"C"}}}}
	for _, c := range []struct {
		name    string
		q       eventstore.Query
		payload string
		wakes   bool
	}{
		{"OneOfItsTypes", typed, `["Z","C"]`, true},
		{"NoneOfItsTypes", typed, `["Z","Y"]`, false},
		{"EmptyList", typed, `[]`, false},
		{"TypesUnknown", typed, ``, true},
		{"UnreadablePayload", typed, `{"A"`, true},
		{"AnItemOfAnyType", eventstore.Query{Items: []eventstore.QueryItem{{Types: []string{"A"}}, {Tags: []string{"x:1"}}}}, `["Z"]`, true},
		{"EveryEvent", eventstore.All, `["Z"]`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.wakes, listeners.Wakes(c.q, c.payload))
		})
	}
}

// TestUnreadTypesMoveTheCheckpointLater: appends of types a listener does
// not read (no polling) still move its checkpoint past them, but after 20
// times Coalesce rather than at once; WaitFor hurries it; and an append of
// its own type is delivered within Coalesce by its notification.
func TestUnreadTypesMoveTheCheckpointLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tag := fresh("u")
	opts := options(t, "r")
	opts.PollInterval, opts.Coalesce = time.Hour, 50*time.Millisecond
	const idle = 20 * 50 * time.Millisecond
	q := eventstore.Query{Items: []eventstore.QueryItem{{Types: []string{"Read"}}}}
	rt, _ := e.start(t, opts, recorder("typed", "r", q))
	checkpoint := func() int64 { return status(t, rt, "typed").Checkpoint }
	waitUntil(t, "listening", func() bool { return len(e.listenBackends(t)) == 1 })
	first := e.append(t, ev("Read", tag))
	waitUntil(t, "the first event handled", func() bool { return checkpoint() >= first })
	// Wake-ups still pending (the one after connecting) run a batch within
	// a Coalesce: settled once a few Coalesces pass without one.
	deadline := time.Now().Add(10 * time.Second)
	for before := listeners.Attempts(rt, "typed"); ; {
		time.Sleep(3 * opts.Coalesce)
		now := listeners.Attempts(rt, "typed")
		if now == before {
			break
		}
		require.True(t, time.Now().Before(deadline), "batches keep coming without appends")
		before = now
	}

	start := time.Now()
	unread := e.append(t, ev("Unread", tag))
	waitUntil(t, "past the unread event", func() bool { return checkpoint() >= unread })
	require.GreaterOrEqual(t, time.Since(start), idle, "moved before 20 × Coalesce")

	start = time.Now()
	waitFor(t, rt, "typed", e.append(t, ev("Unread", tag)))
	require.Less(t, time.Since(start), idle, "WaitFor did not hurry it")

	start = time.Now()
	read := e.append(t, ev("Read", tag))
	waitUntil(t, "the read event handled", func() bool { return checkpoint() >= read })
	require.Less(t, time.Since(start), idle, "its own type waited like the others")
	require.Equal(t, e.positions(t, q), e.handled(t, "typed"))
}
