package cart

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/gwt"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/workqueue"
)

// Helpers for the cart's tests: fresh ids, a store per package, both ways of
// running a scenario (pure and on the store), and an HTTP client for the
// real engine.

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func money(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestMain(m *testing.M) { eventstoretest.Main(m) }

// testStore is one store for the package's tests; tests use fresh ids, so
// they share it safely.
func testStore(t *testing.T) *eventstore.Store { return eventstoretest.SharedStore(t) }

// bothWays runs a scenario as a pure function and against the store.
func bothWays[S, C any](t *testing.T, d decide.Decider[S, C], run func(t *testing.T, spec gwt.Scenario[S, C])) {
	t.Helper()
	t.Run("Pure", func(t *testing.T) { t.Parallel(); run(t, gwt.For(d)) })
	t.Run("Store", func(t *testing.T) { t.Parallel(); run(t, gwt.For(d).On(testStore(t))) })
}

// serviceWithJobs is a Service on the package's store whose jobs are
// enqueued but never worked.
func serviceWithJobs(t *testing.T) *Service {
	pool := eventstoretest.SharedPool(t)
	jobs := workqueue.New(pool, workqueue.Options{Logger: slog.New(slog.DiscardHandler)})
	s := &Service{Store: testStore(t), Pool: pool, Jobs: jobs}
	s.RegisterJobs(jobs, 0)
	return s
}

// history is a log made up for a projector's test: the events emitted, as
// a read would return them, at the positions after the one it starts at.
type history struct {
	t        *testing.T
	events   []eventstore.StoredEvent
	position int64 // of the last event emitted
}

func (h *history) emit(v any) {
	h.t.Helper()
	e, err := Events.Encode(v)
	require.NoError(h.t, err)
	h.position++
	h.events = append(h.events, eventstore.StoredEvent{Event: e, Position: h.position})
}

func item(cartID uuid.UUID, product uuid.UUID, price string) CartItemAdded {
	return CartItemAdded{CartID: cartID, ItemID: newID(), ProductID: product, Description: "a thing",
		Image: "thing.png", Price: money(price), Fingerprint: uuid.NewString()}
}

// client drives the real engine with the cart's routes.
type client struct {
	t      *testing.T
	engine *gin.Engine
}

func newClient(t *testing.T, s *Service) *client {
	e := httpapi.NewEngine(httpapi.Options{})
	s.Routes(e)
	return &client{t: t, engine: e}
}

func (c *client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(c.t, err)
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, r)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	c.engine.ServeHTTP(rec, req)
	var out map[string]any
	if rec.Body.Len() > 0 {
		require.NoError(c.t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
	}
	return rec.Code, out
}

func (c *client) raw(method, path string) (int, []byte, http.Header) {
	c.t.Helper()
	rec := httptest.NewRecorder()
	c.engine.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.Bytes(), rec.Header()
}
