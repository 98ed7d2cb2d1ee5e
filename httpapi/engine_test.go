package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

type body struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func do(t *testing.T, h http.Handler, req *http.Request) (*httptest.ResponseRecorder, body) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var b body
	_ = json.Unmarshal(rec.Body.Bytes(), &b)
	return rec, b
}

func jsonReq(method, path, payload string) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	return req
}

type echo struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func testEngine(logs *bytes.Buffer) *gin.Engine {
	e := httpapi.NewEngine(httpapi.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	e.POST("/echo", func(c *gin.Context) {
		var in echo
		if !httpapi.Decode(c, &in) {
			return
		}
		c.JSON(http.StatusOK, gin.H{"in": in, "correlation": eventstore.MetadataFrom(c.Request.Context()).CorrelationID})
	})
	e.GET("/panic", func(c *gin.Context) { panic("secret internals") })
	return e
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := testEngine(&logs)

	rec, _ := do(t, e, jsonReq("POST", "/echo", `{"name":"a","count":2}`))
	require.Equal(t, http.StatusOK, rec.Code)
	id := rec.Header().Get("X-Request-ID")
	require.NotEmpty(t, id, "a request id is generated")
	require.Contains(t, rec.Body.String(), `"correlation":"`+id+`"`, "and becomes the events' correlation id")

	req := jsonReq("POST", "/echo", `{"name":"a"}`)
	req.Header.Set("X-Request-ID", "client-id-1")
	rec, _ = do(t, e, req)
	require.Equal(t, "client-id-1", rec.Header().Get("X-Request-ID"), "a well-formed client id is kept")
	req = jsonReq("POST", "/echo", `{"name":"a"}`)
	req.Header.Set("X-Request-ID", "bad id\twith spaces")
	rec, _ = do(t, e, req)
	require.NotEqual(t, "bad id\twith spaces", rec.Header().Get("X-Request-ID"))

	cases := []struct {
		name   string
		req    *http.Request
		status int
		code   string
		msg    string
	}{
		{"UnknownField", jsonReq("POST", "/echo", `{"name":"a","extra":1}`), 400, "invalid_request", `unknown field "extra"`},
		{"WrongType", jsonReq("POST", "/echo", `{"name":5}`), 400, "invalid_request", `field "name": expected a string, got JSON number`},
		{"Malformed", jsonReq("POST", "/echo", `{"name":`), 400, "invalid_request", "truncated"},
		{"Syntax", jsonReq("POST", "/echo", `{"name" "a"}`), 400, "invalid_request", "malformed JSON at byte"},
		{"TwoValues", jsonReq("POST", "/echo", `{} {}`), 400, "invalid_request", "single JSON value"},
		{"Empty", jsonReq("POST", "/echo", ``), 400, "invalid_request", "got nothing"},
		{"NotJSON", func() *http.Request {
			r := httptest.NewRequest("POST", "/echo", strings.NewReader(`name=a`))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}(), 415, "unsupported_media_type", "application/json"},
		{"NoContentType", httptest.NewRequest("POST", "/echo", strings.NewReader(`{}`)), 415, "unsupported_media_type", ""},
		{"DeclaredTooLarge", jsonReq("POST", "/echo", `{"name":"`+strings.Repeat("x", 1<<20)+`"}`), 413, "body_too_large", "1 MiB"},
		{"ChunkedTooLarge", func() *http.Request {
			r := jsonReq("POST", "/echo", "")
			r.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("x", 2<<20)), strings.NewReader(`"}`)))
			r.ContentLength = -1
			return r
		}(), 413, "body_too_large", ""},
		{"NoRoute", httptest.NewRequest("GET", "/nope", nil), 404, "not_found", ""},
		{"NoMethod", httptest.NewRequest("DELETE", "/echo", nil), 405, "method_not_allowed", ""},
		{"Panic", httptest.NewRequest("GET", "/panic", nil), 500, "internal", "internal error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, b := do(t, e, c.req)
			require.Equal(t, c.status, rec.Code, rec.Body.String())
			require.Equal(t, c.code, b.Code)
			require.Contains(t, b.Message, c.msg)
		})
	}
	require.NotContains(t, rec.Body.String(), "secret internals")
	require.Contains(t, logs.String(), `"msg":"panic in handler"`, "a panic is logged")
	require.Contains(t, logs.String(), `"msg":"http request"`)
	require.NotContains(t, logs.String(), `"name":"a"`, "bodies never reach the log")
}

type checkpoints map[string]int64

func (cp checkpoints) WaitFor(ctx context.Context, name string, pos int64) (int64, error) {
	if cp[name] >= pos {
		return cp[name], nil
	}
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestAwaitReadModel(t *testing.T) {
	t.Parallel()
	e := httpapi.NewEngine(httpapi.Options{})
	rm := httpapi.ReadModels{Checkpoints: checkpoints{"items": 7}, Wait: 50 * time.Millisecond}
	e.GET("/items", func(c *gin.Context) {
		if !rm.Await(c, "items") {
			return
		}
		c.JSON(http.StatusOK, gin.H{})
	})
	rec, _ := do(t, e, httptest.NewRequest("GET", "/items", nil))
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "7", rec.Header().Get("X-Read-Model-Position"))
	rec, _ = do(t, e, httptest.NewRequest("GET", "/items?min_position=7", nil))
	require.Equal(t, 200, rec.Code)
	rec, b := do(t, e, httptest.NewRequest("GET", "/items?min_position=x", nil))
	require.Equal(t, 400, rec.Code)
	require.Equal(t, "invalid_request", b.Code)

	start := time.Now()
	rec, b = do(t, e, httptest.NewRequest("GET", "/items?min_position=8", nil))
	require.Equal(t, 503, rec.Code)
	require.Equal(t, "read_model_lagging", b.Code)
	require.Equal(t, "1", rec.Header().Get("Retry-After"))
	require.GreaterOrEqual(t, time.Since(start), rm.Wait)
}

func TestClientAddressIsNotSpoofable(t *testing.T) {
	t.Parallel()
	e := httpapi.NewEngine(httpapi.Options{})
	e.GET("/ip", func(c *gin.Context) { c.String(http.StatusOK, c.ClientIP()) })
	req := httptest.NewRequest("GET", "/ip", nil)
	req.RemoteAddr = "192.0.2.7:1234"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	require.Equal(t, "192.0.2.7", rec.Body.String())
}

func httpapiDecode(s string, v any) error { return httpapi.DecodeJSONBytes([]byte(s), v) }

// TestClientGoneIsNoServerError: a store error caused by the client closing
// its request (context canceled) answers 499 and logs no error; the
// reliability workload found every such request logged as a failed one,
// with status 500.
func TestClientGoneIsNoServerError(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	e := httpapi.NewEngine(httpapi.Options{Logger: logger})
	e.POST("/append", func(c *gin.Context) {
		httpapi.StoreError(c, logger, fmt.Errorf("eventstore: append: outcome unknown: %w", c.Request.Context().Err()))
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec, b := do(t, e, jsonReq(http.MethodPost, "/append", "{}").WithContext(ctx))
	require.Equal(t, httpapi.StatusClientClosedRequest, rec.Code)
	require.Equal(t, "client_closed_request", b.Code)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
}
