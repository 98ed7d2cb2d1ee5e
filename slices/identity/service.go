package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	Policy  PasswordPolicy
	Tokens  Tokens
	// AdminToken is the operator's bearer token; empty disables operator actions.
	AdminToken string
	// AttemptsPerMinute limits login attempts per client address (default 30).
	AttemptsPerMinute int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service is the identity context's HTTP face and its dependencies.
type Service struct {
	Config
	Store      *eventstore.Store
	Pool       *pgxpool.Pool
	Logger     *slog.Logger
	ReadModels httpapi.ReadModels
	dummy      string
}

// NewService returns the identity service. It computes the dummy hash that
// unknown users are verified against, so it costs one hash.
func NewService(cfg Config, store *eventstore.Store, pool *pgxpool.Pool, logger *slog.Logger, rm httpapi.ReadModels) *Service {
	if cfg.Hashing == (HashParams{}) {
		cfg.Hashing = DefaultHashParams
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
	return &Service{Config: cfg, Store: store, Pool: pool, Logger: logger, ReadModels: rm, dummy: cfg.Hashing.dummyHash()}
}

func (s *Service) now() time.Time { return s.Now().UTC() }

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
	default:
		httpapi.StoreError(c, s.Logger, err)
	}
}

func bearer(c *gin.Context) string {
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(token)
}

func (s *Service) unauthorized(c *gin.Context) {
	c.Header("WWW-Authenticate", `Bearer realm="dcbkit"`)
	httpapi.Error(c, http.StatusUnauthorized, "invalid_token", "a valid bearer token is required")
}

// authenticate returns the user of the request's token, checked against the
// user's current state: a deactivated user's token no longer works. It also
// returns the position that state was read at.
func (s *Service) authenticate(c *gin.Context) (uuid.UUID, bool) {
	id, _, ok := s.authenticateAt(c)
	return id, ok
}

func (s *Service) authenticateAt(c *gin.Context) (uuid.UUID, int64, bool) {
	id, err := s.Tokens.Verify(bearer(c), s.now())
	if err != nil {
		s.unauthorized(c)
		return uuid.Nil, 0, false
	}
	u, pos, err := s.readUser(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return uuid.Nil, 0, false
	}
	if !u.registered || !u.active {
		s.unauthorized(c)
		return uuid.Nil, 0, false
	}
	return id, pos, true
}

// readUser folds a user from their events.
func (s *Service) readUser(ctx context.Context, id uuid.UUID) (user, int64, error) {
	stored, err := s.Store.Read(ctx, eventstore.Query{Items: []eventstore.QueryItem{userQuery(id)}}, eventstore.ReadOptions{})
	if err != nil {
		return user{}, 0, err
	}
	return decide.Fold(userView, stored)
}

var userView = decide.Decider[user, struct{}]{Events: Events, Evolve: evolveUser}

// authorizeUserAction reads the path's user id and checks that the caller is
// the operator (ADMIN_TOKEN) or, when selfAllowed, that user. It returns who
// acts, for the event's "by".
func (s *Service) authorizeUserAction(c *gin.Context, selfAllowed bool) (uuid.UUID, string, bool) {
	id, err := uuid.Parse(c.Param("user_id"))
	if err != nil || len(c.Param("user_id")) != 36 {
		httpapi.Error(c, http.StatusBadRequest, "invalid_id", "user_id in the path: UUID required")
		return uuid.Nil, "", false
	}
	token := bearer(c)
	if s.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.AdminToken)) == 1 {
		return id, "operator", true
	}
	if !selfAllowed {
		if token == "" {
			s.unauthorized(c)
		} else {
			httpapi.Error(c, http.StatusForbidden, "forbidden", "only the operator may do this")
		}
		return uuid.Nil, "", false
	}
	self, ok := s.authenticate(c)
	if !ok {
		return uuid.Nil, "", false
	}
	if self != id {
		httpapi.Error(c, http.StatusForbidden, "forbidden", "only the operator or the user themself may do this")
		return uuid.Nil, "", false
	}
	return id, self.String(), true
}

// throttle counts a login attempt of a client address and returns how long
// it must wait when over the limit. The count lives in PostgreSQL, so the
// limit holds across replicas.
func (s *Service) throttle(ctx context.Context, client string) (time.Duration, error) {
	now := s.now()
	window := now.Truncate(time.Minute)
	var attempts int
	err := s.Pool.QueryRow(ctx, `
		WITH gc AS (DELETE FROM login_throttle WHERE window_start < $2::timestamptz - interval '1 hour')
		INSERT INTO login_throttle (client, window_start, attempts) VALUES ($1, $2, 1)
		ON CONFLICT (client, window_start) DO UPDATE SET attempts = login_throttle.attempts + 1
		RETURNING attempts`, client, window).Scan(&attempts)
	if err != nil {
		return 0, fmt.Errorf("identity: throttle: %w", err)
	}
	if attempts > s.AttemptsPerMinute {
		return window.Add(time.Minute).Sub(now), nil
	}
	return 0, nil
}
