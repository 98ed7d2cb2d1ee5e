package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestPlansUseIndexes is guarantee 6: every statement on the append and read
// paths probes indexes. The statements live in dcb_append and dcb_read, which
// pin generic plans; a generic plan that scans the log is what made
// conditional appends crawl elsewhere. auto_explain reports the plan of every
// statement they run, and none may scan events or event_keys sequentially or
// without an index condition (a merge join reads a whole index), fetch a
// whole key through a bitmap or sort it whole, or be JIT-compiled
// (which costs tens of milliseconds, and which PostgreSQL's default jit
// settings start from a plan cost these plans reach):
// on a brand-new database never analysed (plans made there are cached by the
// session), on a new session after 200 events and ANALYZE, then on both
// sessions after 20,000 events with hot and cold boundaries, then on a new
// session after ANALYZE.
func TestPlansUseIndexes(t *testing.T) {
	t.Parallel()
	url := eventstoretest.DatabaseURL(t)
	ctx := context.Background()
	s := eventstore.New(nil, eventstore.Options{})
	defer s.Close()

	var mu sync.Mutex
	var plans []string
	connect := func() *pgx.Conn {
		cfg, err := pgx.ParseConfig(url)
		require.NoError(t, err)
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			defer mu.Unlock()
			plans = append(plans, n.Message)
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close(ctx) })
		_, err = conn.Exec(ctx, `LOAD 'auto_explain';
			SET auto_explain.log_min_duration = 0;
			SET auto_explain.log_nested_statements = on;
			SET client_min_messages = log`)
		require.NoError(t, err)
		return conn
	}

	// A limited read stops after its page: a key's runs come in position
	// order from the index, and only the positions within each run are
	// sorted (a full Sort would read every entry of the key first).
	const keysInOrder = "Incremental Sort"
	// Items of several tags are found by dcb_leap (migrations/00011), whose
	// probes and verifications are nested statements too. In the filled
	// log, the last two items each find an event a little after and a
	// little before position 19990, where reads start.
	const leaps = "Function Scan on dcb_leap"
	tagged := query(item{Types: []string{"T1", "T2"}, Tags: []string{"cold:17", "hot"}}, item{Tags: []string{"hot"}}, item{Types: []string{"T3"}},
		item{Types: []string{"T3", "T6"}, Tags: []string{"hot", "cold:19991"}}, item{Tags: []string{"cold:19901", "hot"}})
	statements := []struct {
		name string
		sql  string
		args func() []any
		want []string // steps the plans must show, so we know the path ran
	}{
		{"AppendWithCondition", eventstore.AppendSQL, func() []any {
			args, err := s.AppendArgs([]eventstore.Event{{Type: "T1", Tags: []string{"hot"}}}, cond(tagged, 1<<40))
			require.NoError(t, err)
			return args
		}, []string{"Insert on event_keys", leaps}},
		{"AppendMatchAll", eventstore.AppendSQL, func() []any {
			args, err := s.AppendArgs([]eventstore.Event{{ID: uuid.Must(uuid.NewV7()), Type: "T1"}}, cond(query(), 1<<40))
			require.NoError(t, err)
			return args
		}, []string{"Insert on event_keys"}},
		{"Read", eventstore.ReadSQL, func() []any { return eventstore.ReadArgs(tagged, eventstore.ReadOptions{From: 19990, Limit: 100}) }, []string{"Index Only Scan using event_keys_key_position", keysInOrder, leaps}},
		{"ReadBackwards", eventstore.ReadSQL, func() []any {
			return eventstore.ReadArgs(tagged, eventstore.ReadOptions{From: 10, Limit: 100, Backwards: true})
		}, []string{"Index Only Scan Backward using event_keys_key_position", keysInOrder, leaps}},
		{"ReadBackwardsFromTheEnd", eventstore.ReadSQL, func() []any {
			return eventstore.ReadArgs(tagged, eventstore.ReadOptions{From: 19990, Limit: 100, Backwards: true})
		}, []string{"Index Only Scan Backward using event_keys_key_position", keysInOrder, leaps}},
		{"ReadAll", eventstore.ReadSQL, func() []any { return eventstore.ReadArgs(query(), eventstore.ReadOptions{From: 19990, Limit: 100}) }, []string{"Index Scan using events_pkey"}},
		{"ReadAllBackwards", eventstore.ReadSQL, func() []any {
			return eventstore.ReadArgs(query(), eventstore.ReadOptions{From: 19990, Limit: 100, Backwards: true})
		}, []string{"Index Scan Backward using events_pkey"}},
	}
	check := func(conn *pgx.Conn, phase string) {
		for _, st := range statements {
			// Several runs: a plan cache can change its mind after the fifth.
			for run := range 7 {
				mu.Lock()
				plans = plans[:0]
				mu.Unlock()
				tx, err := conn.Begin(ctx)
				require.NoError(t, err)
				rows, err := tx.Query(ctx, st.sql, st.args()...)
				require.NoError(t, err)
				rows.Close()
				require.NoError(t, rows.Err())
				require.NoError(t, tx.Rollback(ctx))

				mu.Lock()
				text := strings.Join(plans, "\n\n")
				nested := len(plans)
				mu.Unlock()
				require.Greater(t, nested, 1, "%s, %s: auto_explain reported no nested statements:\n%s", phase, st.name, text)
				require.NotContains(t, text, "Seq Scan on event", "%s, %s:\n%s", phase, st.name, text)
				require.NotContains(t, text, "Bitmap Heap Scan on event", "%s, %s:\n%s", phase, st.name, text)
				lines := strings.Split(text, "\n")
				for i, line := range lines {
					if strings.Contains(line, "Scan") && (strings.Contains(line, " on events ") || strings.Contains(line, " on event_keys ")) {
						require.True(t, i+1 < len(lines) && strings.Contains(lines[i+1], "Index Cond:"),
							"%s, %s: a scan of the log without an index condition reads it from its start:\n%s", phase, st.name, text)
					}
				}
				require.NotContains(t, text, "JIT:", "%s, %s: compiling costs more than these statements run:\n%s", phase, st.name, text)
				if phase != "empty" {
					for _, want := range st.want {
						require.Contains(t, text, want, "%s, %s:\n%s", phase, st.name, text)
					}
				}
				if testing.Verbose() && run == 0 {
					t.Logf("%s, %s:\n%s", phase, st.name, text)
				}
			}
		}
	}

	conn := connect()
	check(conn, "empty")
	n := 0
	fill := func(count int) {
		for count > 0 {
			events := make([]eventstore.Event, min(count, 1000))
			for i := range events {
				events[i] = eventstore.Event{Type: fmt.Sprintf("T%d", n%7), Tags: []string{fmt.Sprintf("cold:%d", n), "hot"}, Data: []byte(`{}`)}
				if n%2 == 0 {
					events[i].Tags = events[i].Tags[:1]
				}
				n++
			}
			args, err := s.AppendArgs(events, nil)
			require.NoError(t, err)
			_, err = conn.Exec(ctx, eventstore.AppendSQL, args...)
			require.NoError(t, err)
			count -= len(events)
		}
	}
	analyse := func() {
		_, err := conn.Exec(ctx, "ANALYZE events; ANALYZE event_keys")
		require.NoError(t, err)
	}
	fill(200)
	analyse()
	small := connect()
	check(small, "small, analysed")
	fill(19800)
	check(conn, "filled, plans made when empty")
	check(small, "filled, plans made when small")
	analyse()
	check(connect(), "analysed, new session")
}
