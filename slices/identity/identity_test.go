package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/gwt"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/listeners"
)

// Helpers for the identity tests: fresh ids, the shared store, both ways of
// running a scenario (pure and on the store), and an HTTP client for the
// real engine with a running users read model.

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
func verifier(good string, calls *int) func(string) (bool, error) {
	return func(phc string) (bool, error) {
		if calls != nil {
			*calls++
		}
		return phc == good, nil
	}
}

// newHash is a NewHash function that returns hash and counts its calls.
func newHash(hash string, calls *int) func() (string, error) {
	return func() (string, error) {
		if calls != nil {
			*calls++
		}
		return hash, nil
	}
}

// testSecret signs the tests' tokens; testAdminToken is the operator's.
var (
	testSecret     = []byte("test secret of at least 32 bytes, not for production")
	testAdminToken = "operator-token-for-tests"
)

// The passwords of the HTTP tests: long enough, not common.
const (
	goodPassword  = "a long and unusual phrase"
	otherPassword = "another quite unusual phrase"
)

var clientCounter atomic.Uint32

// newClientAddr returns a client address (RemoteAddr) that no other request
// of the test binary uses, so that the per-client throttle of one test never
// counts another test's attempts.
func newClientAddr() string {
	n := clientCounter.Add(1)
	return fmt.Sprintf("10.%d.%d.%d:40000", byte(n>>16), byte(n>>8), byte(n))
}

// api drives the real engine with the identity routes, on the shared store,
// with the users read model kept by a running listeners.Runtime.
type api struct {
	t       testing.TB
	svc     *Service
	engine  *gin.Engine
	runtime *listeners.Runtime
	client  string // RemoteAddr of requests that do not choose their own
}

// apiOptions adjust a test API.
type apiOptions struct {
	config Config
	logger *slog.Logger // engine, service and runtime; discarded when nil
	pool   *pgxpool.Pool
	store  *eventstore.Store
	// noReadModel runs no listener: for tests that need no GET /users/me
	// and want no background work.
	noReadModel bool
}

// newAPI returns an API with the test defaults: fast hashing, the test
// secret and operator token, the shared database.
func newAPI(t *testing.T) *api { return newAPIWith(t, apiOptions{}) }

func newAPIWith(t testing.TB, o apiOptions) *api {
	t.Helper()
	cfg := o.config
	if cfg.Hashing == (HashParams{}) {
		cfg.Hashing = testHashing
	}
	if cfg.Tokens.Secret == nil {
		cfg.Tokens.Secret = testSecret
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = testAdminToken
	}
	if o.pool == nil {
		o.pool, o.store = eventstoretest.SharedPool(t), eventstoretest.SharedStore(t)
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var rt *listeners.Runtime
	var rm httpapi.ReadModels
	if !o.noReadModel {
		rt = startUsers(t, o.pool, o.store, logger)
		// Generous, as in the tests package: on a loaded 2-core CI machine
		// under -race the listener can lag past the server's default 5 s
		// (one CI run did); these tests are about answers, not that budget.
		rm = httpapi.ReadModels{Checkpoints: rt, Wait: 30 * time.Second}
	}
	svc := NewService(cfg, o.store, o.pool, logger, rm)
	e := httpapi.NewEngine(httpapi.Options{Logger: logger})
	svc.Routes(e)
	return &api{t: t, svc: svc, engine: e, runtime: rt, client: newClientAddr()}
}

// startUsers runs a listeners.Runtime with the users listener until the test
// ends. Tests run several on the shared database: one holds the lease, the
// others stand by, and a reader waits for the checkpoint wherever it moves.
func startUsers(t testing.TB, pool *pgxpool.Pool, store *eventstore.Store, logger *slog.Logger) *listeners.Runtime {
	t.Helper()
	rt := listeners.New(pool, store, listeners.Options{
		PollInterval: 50 * time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: logger,
	}, UsersListener())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	})
	return rt
}

// request is one HTTP request of a test.
type request struct {
	method, path  string
	body          any    // marshalled as JSON; a string or []byte is sent as is
	token         string // Authorization: Bearer
	authorization string // the whole Authorization header, instead
	client        string // RemoteAddr; the api's own when empty
	ctx           context.Context
}

// response is what came back.
type response struct {
	status  int
	raw     []byte
	header  http.Header
	body    map[string]any
	elapsed time.Duration
}

func (r response) code() string { s, _ := r.body["code"].(string); return s }

// send serves one request and decodes the JSON answer, failing the test
// when it is not JSON.
func (a *api) send(r request) response {
	a.t.Helper()
	res := a.roundTrip(r)
	if len(res.raw) > 0 {
		require.NoError(a.t, json.Unmarshal(res.raw, &res.body), string(res.raw))
	}
	return res
}

// roundTrip serves one request; it never fails the test, so goroutines may
// call it. It decodes a JSON answer when it can.
func (a *api) roundTrip(r request) response {
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = bytes.NewBufferString(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			panic(err) // a test's mistake
		}
		body = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.authorization != "" {
		req.Header.Set("Authorization", r.authorization)
	}
	if r.ctx != nil {
		req = req.WithContext(r.ctx)
	}
	req.RemoteAddr = a.client
	if r.client != "" {
		req.RemoteAddr = r.client
	}
	rec := httptest.NewRecorder()
	start := time.Now()
	a.engine.ServeHTTP(rec, req)
	out := response{status: rec.Code, raw: rec.Body.Bytes(), header: rec.Header(), elapsed: time.Since(start)}
	_ = json.Unmarshal(out.raw, &out.body)
	return out
}

// register registers a user through POST /users and returns their id.
func (a *api) register(email, password string) uuid.UUID {
	a.t.Helper()
	res := a.send(request{method: "POST", path: "/users", body: map[string]string{"email": email, "password": password}})
	require.Equal(a.t, http.StatusCreated, res.status, string(res.raw))
	return uuid.MustParse(res.body["user_id"].(string))
}

// login logs in through POST /login and returns the response.
func (a *api) login(email, password string) response {
	a.t.Helper()
	return a.send(request{method: "POST", path: "/login", body: map[string]string{"email": email, "password": password}})
}

// token logs in and returns the token, failing the test unless it gets one.
func (a *api) token(email, password string) string {
	a.t.Helper()
	res := a.login(email, password)
	require.Equal(a.t, http.StatusOK, res.status, string(res.raw))
	return res.body["token"].(string)
}

// newUser registers a fresh user with goodPassword and logs them in.
func (a *api) newUser() (id uuid.UUID, email, token string) {
	a.t.Helper()
	email = freshEmail()
	id = a.register(email, goodPassword)
	return id, email, a.token(email, goodPassword)
}

// userEvents returns every event of one user, decoded.
func userEvents(t testing.TB, store *eventstore.Store, id uuid.UUID) []any {
	t.Helper()
	stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{userTag(id)}}}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	out := make([]any, len(stored))
	for i, e := range stored {
		out[i], err = Events.Decode(e)
		require.NoError(t, err)
	}
	return out
}

// givenEvents appends events to the store, as a test's starting point.
func givenEvents(t testing.TB, store *eventstore.Store, events ...any) int64 {
	t.Helper()
	encoded, err := Events.EncodeAll(events)
	require.NoError(t, err)
	res, err := store.Append(context.Background(), encoded, nil)
	require.NoError(t, err)
	return res.Position
}

// hashProbe watches the password hashes of services: how many run at once,
// the most that ever did, and how many ran in all. With a gate, every hash
// waits inside its slot until the gate is closed.
type hashProbe struct {
	inFlight, most, total atomic.Int64
	gate                  chan struct{}
}

// probeHashes installs a probe in the services, before they serve.
func probeHashes(gate chan struct{}, svcs ...*Service) *hashProbe {
	p := &hashProbe{gate: gate}
	for _, s := range svcs {
		s.hasher.running = func() func() {
			n := p.inFlight.Add(1)
			p.total.Add(1)
			for m := p.most.Load(); n > m && !p.most.CompareAndSwap(m, n); m = p.most.Load() {
			}
			if p.gate != nil {
				<-p.gate
			}
			return func() { p.inFlight.Add(-1) }
		}
	}
	return p
}
