package identity

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/gwt"
)

func TestMain(m *testing.M) { eventstoretest.Main(m) }

// Test-sized hashing: the same code, fast parameters.
var testHashing = HashParams{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func freshEmail() string { return "user-" + uuid.NewString() + "@example.com" }

func registered(id uuid.UUID, email, hash string) UserRegistered {
	return UserRegistered{UserID: id, EmailHash: EmailHash(email), Email: NormalizeEmail(email), PasswordHash: hash, RegisteredAt: now.Add(-time.Hour)}
}

// bothWays runs a scenario as a pure function and against the store.
func bothWays[S, C any](t *testing.T, d decide.Decider[S, C], run func(t *testing.T, spec gwt.Scenario[S, C])) {
	t.Helper()
	t.Run("Pure", func(t *testing.T) { t.Parallel(); run(t, gwt.For(d)) })
	t.Run("Store", func(t *testing.T) { t.Parallel(); run(t, gwt.For(d).On(testStore(t))) })
}

func testStore(t *testing.T) *eventstore.Store { return eventstoretest.SharedStore(t) }

// verifier is a Verify function that accepts one hash: the pure tests need
// no real hashing to decide.
func verifier(good string, calls *int) func(string) bool {
	return func(phc string) bool {
		if calls != nil {
			*calls++
		}
		return phc == good
	}
}
