package eventstoretest_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

func TestFreshDatabasesAreMigratedAndIsolated(t *testing.T) {
	a, b := eventstoretest.NewPool(t), eventstoretest.NewPool(t)
	ctx := context.Background()
	var nameA, nameB string
	require.NoError(t, a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA))
	require.NoError(t, b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB))
	require.NotEqual(t, nameA, nameB)
	for _, table := range []string{"events", "event_keys", "river_job"} {
		var exists bool
		require.NoError(t, a.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
		require.True(t, exists, table)
	}
}

// TestNoServerFailsClearly: without PostgreSQL, the helper fails the test
// with a message that says what to do.
func TestNoServerFailsClearly(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://postgres:secret@127.0.0.1:1/none?connect_timeout=2")
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventstoretest.DatabaseURL(r)
	}()
	<-done
	require.True(t, r.failed)
	require.Contains(t, r.msg, "no PostgreSQL answers at postgres://postgres:xxxxx@127.0.0.1:1/none")
	require.Contains(t, r.msg, "./init_dev.sh")
	require.NotContains(t, r.msg, "secret", "passwords are redacted")
}

type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.msg += fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
