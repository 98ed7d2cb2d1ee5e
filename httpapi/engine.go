// Package httpapi is what every HTTP API of the server shares: the gin engine
// and its middleware (recovery, request id, access log, body limit, JSON
// only), the error envelope {"code","message"}, strict JSON decoding, the
// mapping of store errors to statuses, read-your-writes waiting for stored
// read models (?min_position), and the DCB HTTP API.
package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/eventstore"
)

// MaxBodyBytes is the default limit of a request body: larger bodies get 413.
const MaxBodyBytes = 1 << 20

// Options configure an engine.
type Options struct {
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies (default MaxBodyBytes).
	MaxBodyBytes int64
	// Observe, when set, is called after every request, for metrics. route
	// is the matched route pattern ("" when none matched).
	Observe func(method, route string, status int, elapsed time.Duration)
	// TrustedProxies are the proxies whose X-Forwarded-For is believed for
	// the client address (rate limits, logs). None by default: a client
	// cannot choose its own address.
	TrustedProxies []string
}

// NewEngine returns a gin engine with the middleware every API shares, in
// order: request id, access log, recovery, body limit, JSON only. Unknown
// routes and methods answer with the error envelope.
func NewEngine(opts Options) *gin.Engine {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = MaxBodyBytes
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	if err := e.SetTrustedProxies(opts.TrustedProxies); err != nil {
		panic(fmt.Sprintf("httpapi: trusted proxies: %v", err)) // validated by the config loader
	}
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true // c.Done/c.Value reach the request's context
	e.Use(requestID(), accessLog(opts), recovery(opts.Logger), limitBody(opts.MaxBodyBytes), jsonOnly())
	e.NoRoute(func(c *gin.Context) { Error(c, http.StatusNotFound, "not_found", "no such route") })
	e.NoMethod(func(c *gin.Context) {
		Error(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route")
	})
	return e
}

// Error aborts the request with status and the envelope {"code","message"}.
func Error(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, gin.H{"code": code, "message": message})
}

// RequestIDHeader carries the request id, taken from the request when it is
// well-formed, generated otherwise, and echoed in the response.
const RequestIDHeader = "X-Request-ID"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID sets the request id and makes it the correlation and causation
// id of every event appended while handling the request.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !validRequestID.MatchString(id) {
			id = uuid.Must(uuid.NewV7()).String()
		}
		c.Header(RequestIDHeader, id)
		c.Set(RequestIDHeader, id)
		ctx := eventstore.WithMetadata(c.Request.Context(), eventstore.Metadata{CorrelationID: id, CausationID: id})
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// accessLog writes one line per request: never a body, a query string (it
// may carry a token) or a header value other than the request id.
func accessLog(opts Options) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		elapsed := time.Since(start)
		status := c.Writer.Status()
		if opts.Observe != nil {
			opts.Observe(c.Request.Method, c.FullPath(), status, elapsed)
		}
		if opts.Logger == nil {
			return
		}
		level := slog.LevelInfo
		switch {
		case status == http.StatusServiceUnavailable:
			level = slog.LevelWarn // the database or a read model is behind: expected, and retried
		case status >= 500:
			level = slog.LevelError
		}
		opts.Logger.LogAttrs(c.Request.Context(), level, "http request",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("route", c.FullPath()),
			slog.Int("status", status),
			slog.Duration("elapsed", elapsed),
			slog.Int("bytes", c.Writer.Size()),
			slog.String("client", c.ClientIP()),
			slog.String("request_id", c.GetString(RequestIDHeader)),
		)
	}
}

func recovery(logger *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		if logger != nil {
			logger.ErrorContext(c.Request.Context(), "panic in handler", "panic", err,
				"route", c.FullPath(), "request_id", c.GetString(RequestIDHeader))
		}
		Error(c, http.StatusInternalServerError, "internal", "internal error")
	})
}

// limitBody refuses declared oversized bodies at once and caps the others,
// so that reading past the limit fails (and Decode answers 413).
func limitBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			c.Header("Connection", "close")
			Error(c, http.StatusRequestEntityTooLarge, "body_too_large", "request body over the limit of 1 MiB")
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		c.Next()
	}
}

// jsonOnly refuses request bodies that are not declared as JSON.
func jsonOnly() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength == 0 || c.Request.Body == http.NoBody {
			c.Next()
			return
		}
		mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
		if err != nil || mt != "application/json" {
			Error(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "request bodies must be application/json")
			return
		}
		c.Next()
	}
}

// StatusClientClosedRequest is the status of a request whose client closed
// its connection before the answer (nginx's 499). It is logged as an
// ordinary request, not as a server error.
const StatusClientClosedRequest = 499

// StoreError answers for an error of the event store or of a decision that
// is not a business rule: 503 when PostgreSQL is away, 409 when retries of a
// decision were exhausted, 400 for refused input, 499 when the client went
// away, 500 otherwise (logged, without internals in the body).
func StoreError(c *gin.Context, logger *slog.Logger, err error) {
	var input *eventstore.InputError
	switch {
	case errors.As(err, &input):
		Error(c, http.StatusBadRequest, "invalid_request", input.Field+": "+input.Reason)
	case eventstore.IsUnavailable(err):
		c.Header("Retry-After", "1")
		Error(c, http.StatusServiceUnavailable, "unavailable", "the database is unavailable; try again shortly")
	case errors.Is(err, eventstore.ErrAppendConditionFailed):
		Error(c, http.StatusConflict, "concurrency_conflict", "too many concurrent changes; try again")
	case errors.Is(err, eventstore.ErrIDReused):
		Error(c, http.StatusConflict, "id_reused", "event ids already used by another request")
	case c.Request.Context().Err() != nil:
		// The client went away: nothing failed here, and nobody reads the
		// answer. Whether a write took effect is the client's to find out.
		Error(c, StatusClientClosedRequest, "client_closed_request", "the client closed the request")
	default:
		if logger != nil {
			logger.ErrorContext(c.Request.Context(), "request failed", "error", err,
				"route", c.FullPath(), "request_id", c.GetString(RequestIDHeader))
		}
		Error(c, http.StatusInternalServerError, "internal", "internal error")
	}
}
