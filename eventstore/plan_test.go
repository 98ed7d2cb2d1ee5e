package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestPlansUseIndexes is guarantee 6: every statement on the append and read
// paths probes indexes, whatever plan PostgreSQL picks. Prepared statements
// switch to generic plans after a few executions, and a generic plan that
// scans the log made conditional appends crawl elsewhere; so each statement is
// explained under both plan cache modes on a log with hot and cold boundaries,
// and no plan may scan events or event_keys sequentially.
func TestPlansUseIndexes(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	s := eventstore.New(pool, eventstore.Options{})
	t.Cleanup(s.Close)
	ctx := context.Background()

	// 20,000 events: a hot tag on half of them, a hot type, many cold tags.
	for chunk := range 20 {
		events := make([]eventstore.Event, 1000)
		for i := range events {
			n := chunk*1000 + i
			events[i] = eventstore.Event{Type: fmt.Sprintf("T%d", n%7), Tags: []string{fmt.Sprintf("cold:%d", n), "hot"}, Data: []byte(`{}`)}
			if n%2 == 0 {
				events[i].Tags = events[i].Tags[:1]
			}
		}
		_, err := s.Append(ctx, events, nil)
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, "ANALYZE events; ANALYZE event_keys")
	require.NoError(t, err)

	tagged := query(item{Types: []string{"T1", "T2"}, Tags: []string{"cold:17", "hot"}}, item{Tags: []string{"hot"}}, item{Types: []string{"T3"}})
	appendArgs, err := s.AppendArgs([]eventstore.Event{{ID: uuid.Must(uuid.NewV7()), Type: "T1", Tags: []string{"hot"}}}, cond(tagged, 19990))
	require.NoError(t, err)
	appendAllArgs, err := s.AppendArgs([]eventstore.Event{{ID: uuid.Must(uuid.NewV7()), Type: "T1"}}, cond(query(), 19990))
	require.NoError(t, err)
	readArgs := append(eventstore.ReadArgs(tagged), int64(19990), 100)

	statements := []struct {
		name string
		sql  string
		args []any
	}{
		{"Append", eventstore.AppendSQL, appendArgs},
		{"AppendMatchAll", eventstore.AppendSQL, appendAllArgs},
		{"Read", eventstore.ReadSQL, readArgs},
		{"ReadBackwards", eventstore.ReadBackwardsSQL, append(append([]any{}, readArgs[:7]...), int64(10), 100)},
		{"ReadAll", eventstore.ReadAllSQL, []any{int64(19990), 100}},
		{"ReadAllBackwards", eventstore.ReadAllBackwardsSQL, []any{int64(19990), 100}},
	}
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for _, st := range statements {
		for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
			_, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode)
			require.NoError(t, err)
			_, err = conn.Exec(ctx, "PREPARE p AS "+st.sql)
			require.NoError(t, err)
			lits := make([]string, len(st.args))
			for i, a := range st.args {
				lits[i] = literal(a)
			}
			rows, err := conn.Query(ctx, "EXPLAIN EXECUTE p("+strings.Join(lits, ", ")+")")
			require.NoError(t, err)
			var plan []string
			for rows.Next() {
				var line string
				require.NoError(t, rows.Scan(&line))
				plan = append(plan, line)
			}
			require.NoError(t, rows.Err())
			_, err = conn.Exec(ctx, "DEALLOCATE p")
			require.NoError(t, err)
			text := strings.Join(plan, "\n")
			require.NotContains(t, text, "Seq Scan on event", "%s (%s):\n%s", st.name, mode, text)
			require.Contains(t, text, "Index", "%s (%s):\n%s", st.name, mode, text)
			if testing.Verbose() {
				t.Logf("%s (%s):\n%s", st.name, mode, text)
			}
		}
	}
	_, err = conn.Exec(ctx, "RESET plan_cache_mode")
	require.NoError(t, err)
}

// literal renders a statement argument as SQL, for EXPLAIN EXECUTE.
func literal(a any) string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	array := func(elems []string, typ string) string {
		return "ARRAY[" + strings.Join(elems, ",") + "]::" + typ + "[]"
	}
	switch v := a.(type) {
	case int64, int, bool:
		return fmt.Sprint(v)
	case *int:
		return fmt.Sprint(*v)
	case []int64:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = fmt.Sprint(x)
		}
		return array(out, "bigint")
	case []int32:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = fmt.Sprint(x)
		}
		return array(out, "int")
	case []string:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = quote(x)
		}
		return array(out, "text")
	case []uuid.UUID:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = quote(x.String())
		}
		return array(out, "uuid")
	case [][]byte:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = fmt.Sprintf("'\\x%x'", x)
		}
		return array(out, "bytea")
	}
	panic(fmt.Sprintf("literal: %T", a))
}
