package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

// Config is what the identity context is configured with.
type Config struct {
	Hashing HashParams
	// HashConcurrency bounds the password hashes computed at once (default
	// GOMAXPROCS): each holds Hashing.MemoryKiB while it runs, so the
	// hashes never hold more than HashConcurrency times that.
	HashConcurrency int
	// HashWait is how long a request waits for a hash slot before it is
	// answered 503 server_busy (default 5 seconds).
	HashWait time.Duration
	Policy   PasswordPolicy
	Tokens   Tokens
	// AdminToken is the operator's bearer token; empty disables operator actions.
	AdminToken string
	// AttemptsPerMinute limits login attempts per client address (default
	// 30): an IPv4 address, or the /64 network of an IPv6 address.
	AttemptsPerMinute int
	// Now is the clock of events and tokens (default time.Now). The
	// per-client throttle uses PostgreSQL's clock, the one every replica
	// shares.
	Now func() time.Time
}

// Service is the identity context's HTTP face and its dependencies.
type Service struct {
	Config
	Store      *eventstore.Store
	Pool       *pgxpool.Pool
	Logger     *slog.Logger
	ReadModels httpapi.ReadModels
	hasher     *hasher
	dummy      string
}

// NewService returns the identity service. It computes the dummy hash that
// unknown users are verified against, so it costs one hash. It panics on
// wiring mistakes: no store or pool, no token secret (anybody could sign
// tokens), or hash parameters that HashParams.Validate refuses (nobody
// could log in).
func NewService(cfg Config, store *eventstore.Store, pool *pgxpool.Pool, logger *slog.Logger, rm httpapi.ReadModels) *Service {
	if store == nil || pool == nil {
		panic("identity: NewService needs a store and a pool")
	}
	if len(cfg.Tokens.Secret) == 0 {
		panic("identity: NewService needs a token secret")
	}
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Hashing == (HashParams{}) {
		cfg.Hashing = DefaultHashParams
	}
	if err := cfg.Hashing.Validate(); err != nil {
		panic("identity: NewService: hash parameters: " + err.Error())
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = runtime.GOMAXPROCS(0)
	}
	if cfg.HashWait <= 0 {
		cfg.HashWait = 5 * time.Second
	}
	if cfg.Policy.MinLength == 0 {
		cfg.Policy.MinLength = 15
	}
	if cfg.Policy.MaxLength == 0 {
		cfg.Policy.MaxLength = 128
	}
	if cfg.AttemptsPerMinute == 0 {
		cfg.AttemptsPerMinute = 30
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{Config: cfg, Store: store, Pool: pool, Logger: logger, ReadModels: rm,
		hasher: newHasher(cfg.Hashing, cfg.HashConcurrency, cfg.HashWait), dummy: cfg.Hashing.dummyHash()}
}

// now is the time of events and tokens, to the microsecond: the precision
// of PostgreSQL, so that the read model shows the times the events hold.
func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// Routes adds the identity API to r.
func (s *Service) Routes(r gin.IRoutes) {
	r.POST("/users", s.registerHandler)
	r.POST("/login", s.loginHandler)
	r.GET("/users/me", s.meHandler)
	r.POST("/users/me/password", s.changePasswordHandler)
	r.POST("/users/:user_id/deactivate", s.deactivateHandler)
	r.POST("/users/:user_id/activate", s.activateHandler)
}

// fail answers for a decision's error.
func (s *Service) fail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, ErrEmailTaken):
		httpapi.Error(c, http.StatusConflict, "email_taken", "this email is already registered")
	case errors.Is(err, ErrUserNotFound):
		httpapi.Error(c, http.StatusNotFound, "user_not_found", "user not found")
	case errors.Is(err, ErrAlreadyDeactivated):
		httpapi.Error(c, http.StatusConflict, "already_deactivated", "the user is already deactivated")
	case errors.Is(err, ErrAlreadyActive):
		httpapi.Error(c, http.StatusConflict, "already_active", "the user is already active")
	case errors.Is(err, decide.ErrConflict):
		httpapi.Error(c, http.StatusConflict, "concurrency_conflict", "too many concurrent changes; try again")
	case errors.Is(err, ErrBusy):
		c.Header("Retry-After", "1")
		httpapi.Error(c, http.StatusServiceUnavailable, "server_busy", "too many passwords are being checked at once; try again shortly")
	default:
		httpapi.StoreError(c, s.Logger, err)
	}
}

// bearer returns the request's bearer token; the scheme is case-insensitive
// (RFC 9110).
func bearer(c *gin.Context) string {
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// sameSecret compares two secrets in constant time, also when their lengths
// differ (subtle.ConstantTimeCompare returns at once for different lengths,
// which would tell the length of the operator token).
func sameSecret(a, b string) bool {
	x, y := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

func (s *Service) unauthorized(c *gin.Context) {
	c.Header("WWW-Authenticate", `Bearer realm="dcbkit"`)
	httpapi.Error(c, http.StatusUnauthorized, "invalid_token", "a valid bearer token is required")
}

// authenticate returns the user of the request's token, checked against the
// user's current state; see authenticateToken.
func (s *Service) authenticate(c *gin.Context) (uuid.UUID, bool) {
	claims, ok := s.authenticateToken(c)
	return claims.UserID, ok
}

// authenticateToken returns the claims of the request's token, checked
// against the user's current state: a deactivated user's token no longer
// works, nor does one issued before the user last changed their password,
// but the token that made the change. "Before" is by position for a token
// from /login: its login is stored before the change exactly when it
// checked the old password (a login that read the old hash and appends
// after the change fails its condition, and checks again against the new
// one). Other tokens compare by time, in whole seconds: one issued in the
// second of the change, before it, still works.
func (s *Service) authenticateToken(c *gin.Context) (TokenClaims, bool) {
	claims, err := s.Tokens.VerifyClaims(bearer(c), s.now())
	if err != nil {
		s.unauthorized(c)
		return TokenClaims{}, false
	}
	u, _, err := s.readUser(c.Request.Context(), claims.UserID)
	if err != nil {
		s.fail(c, err)
		return TokenClaims{}, false
	}
	before := claims.IssuedAt.Before(u.passwordChangedAt.Truncate(time.Second))
	if claims.Position > 0 {
		before = claims.Position < u.passwordChangedPosition
	}
	revoked := before && (u.keptToken == "" || claims.ID != u.keptToken)
	if !u.registered || !u.active || revoked {
		s.unauthorized(c)
		return TokenClaims{}, false
	}
	return claims, true
}

// readUser folds a user from their events, with the position of their
// last password change.
func (s *Service) readUser(ctx context.Context, id uuid.UUID) (user, int64, error) {
	stored, err := s.Store.Read(ctx, eventstore.Query{Items: []eventstore.QueryItem{userQuery(id)}}, eventstore.ReadOptions{})
	if err != nil {
		return user{}, 0, err
	}
	var u user
	var after int64
	for _, e := range stored {
		v, err := userView.Events.Decode(e)
		if err != nil {
			return user{}, 0, fmt.Errorf("identity: event at position %d: %w", e.Position, err)
		}
		u = userView.Evolve(u, v)
		if c, ok := v.(UserPasswordChanged); ok && !c.Rehash {
			u.passwordChangedPosition = e.Position
		}
		after = e.Position
	}
	return u, after, nil
}

var userView = decide.Decider[user, struct{}]{Events: Events, Evolve: evolveUser}

// authorizeUserAction checks that the caller is the operator (ADMIN_TOKEN)
// or, when selfAllowed, the user of the path's user id, and returns that id
// and who acts, for the event's "by". It answers 401 without a valid token
// of an active user or the operator's, 403 when the caller may not act on
// that user, 400 for a malformed id.
func (s *Service) authorizeUserAction(c *gin.Context, selfAllowed bool) (uuid.UUID, string, bool) {
	var self uuid.UUID
	operator := s.AdminToken != "" && sameSecret(bearer(c), s.AdminToken)
	if !operator {
		var ok bool
		if self, ok = s.authenticate(c); !ok {
			return uuid.Nil, "", false
		}
		if !selfAllowed {
			httpapi.Error(c, http.StatusForbidden, "forbidden", "only the operator may do this")
			return uuid.Nil, "", false
		}
	}
	raw := c.Param("user_id")
	id, err := uuid.Parse(raw)
	if err != nil || id.String() != strings.ToLower(raw) {
		httpapi.Error(c, http.StatusBadRequest, "invalid_id", "user_id in the path: UUID required")
		return uuid.Nil, "", false
	}
	if operator {
		return id, "operator", true
	}
	if self != id {
		httpapi.Error(c, http.StatusForbidden, "forbidden", "only the operator or the user themself may do this")
		return uuid.Nil, "", false
	}
	return id, self.String(), true
}

// throttleKey is what a client address is counted under: an IPv4 address,
// or the /64 network of an IPv6 address, since one subscriber usually gets
// a whole /64 and could otherwise change address at every attempt.
func throttleKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if addr = addr.Unmap(); addr.Is6() {
		prefix, _ := addr.Prefix(64)
		return prefix.String()
	}
	return addr.String()
}

// throttleSQL counts an attempt of a client key in the current minute of
// PostgreSQL's clock, the one every replica shares, and returns the count
// and the seconds left in the minute. It also removes up to 100 windows
// over an hour old, skipping rows another attempt is removing, so that
// attempts never queue behind the clean-up.
const throttleSQL = `
WITH gc AS (
	DELETE FROM login_throttle WHERE ctid = ANY (ARRAY(
		SELECT ctid FROM login_throttle WHERE window_start < now() - interval '1 hour'
		LIMIT 100 FOR UPDATE SKIP LOCKED)))
INSERT INTO login_throttle (client, window_start, attempts) VALUES ($1, date_trunc('minute', now()), 1)
ON CONFLICT (client, window_start) DO UPDATE SET attempts = login_throttle.attempts + 1
RETURNING attempts, extract(epoch FROM window_start + interval '1 minute' - now())::float8`

// throttle counts an attempt of the client (a throttleKey) and returns how
// long it must wait when the attempt is over the limit, 0 when it may go
// on. The attempt is counted, and committed, before it costs anything, so
// of a burst of concurrent attempts exactly the limit go on: the increment
// is atomic. A refused attempt counts too. The count lives in PostgreSQL,
// so the limit holds across replicas.
func (s *Service) throttle(ctx context.Context, client string) (time.Duration, error) {
	var attempts int
	var left float64
	if err := s.Pool.QueryRow(ctx, throttleSQL, client).Scan(&attempts, &left); err != nil {
		return 0, fmt.Errorf("identity: throttle: %w", err)
	}
	if attempts > s.AttemptsPerMinute {
		return max(time.Duration(left*float64(time.Second)), time.Second), nil
	}
	return 0, nil
}

// passwordCheck verifies one password against hashes, the dummy hash
// standing in for "" (no user), and remembers the last answer: a decision
// that lost a race and runs again does not pay for the same hash twice. It
// waits for a hash slot under the request's context. It is not safe for
// concurrent use; a request uses its own.
type passwordCheck struct {
	ctx      context.Context
	hasher   *hasher
	dummy    string
	password string
	// The last hash verified and what came of it.
	phc       string
	ok, stale bool
}

func (s *Service) passwordCheck(ctx context.Context, password string) *passwordCheck {
	return &passwordCheck{ctx: ctx, hasher: s.hasher, dummy: s.dummy, password: password}
}

// verify reports whether the password matches phc ("" for the dummy); an
// error when no hash slot could be had (ErrBusy, or the context's error).
func (p *passwordCheck) verify(phc string) (bool, error) {
	if phc == "" {
		phc = p.dummy
	}
	if p.phc != phc {
		ok, stale, err := p.hasher.verify(p.ctx, phc, p.password)
		if err != nil {
			return false, err
		}
		p.ok, p.stale, p.phc = ok, stale, phc
	}
	return p.ok, nil
}
