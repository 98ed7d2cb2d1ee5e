package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

// Login checks a password and records the attempt. Unknown email, wrong
// password and deactivated user are the same failure to the caller, in about
// the same time: every path but the lock-out verifies one password hash.
//
//	given 5 UserLoginFailed for the email in the last 15 minutes  → *TooManyAttemptsError, nothing recorded
//	given no UserRegistered for the email                         → ErrInvalidCredentials (a dummy hash verified)
//	given UserDeactivated                                         → UserLoginFailed{reason: deactivated}
//	given a wrong password                                        → UserLoginFailed{reason: wrong_password}
//	given the right password                                      → UserLoggedIn
type Login struct {
	EmailHash string
	// UserID is the user registered with the email, found by the handler
	// (a registration never changes); uuid.Nil when there is none.
	UserID uuid.UUID
	At     time.Time
	// Verify checks the password against a PHC hash; "" stands for the
	// dummy hash of an unknown user.
	Verify func(passwordHash string) bool
}

// Lock-out: MaxFailures failed logins for one email within FailureWindow.
const (
	MaxFailures   = 5
	FailureWindow = 15 * time.Minute
)

var ErrInvalidCredentials = errors.New("invalid credentials")

// TooManyAttemptsError says when to try again.
type TooManyAttemptsError struct{ RetryAfter time.Duration }

// Is matches a *TooManyAttemptsError with the same wait.
func (e *TooManyAttemptsError) Is(target error) bool {
	t, ok := target.(*TooManyAttemptsError)
	return ok && t.RetryAfter == e.RetryAfter
}

func (e *TooManyAttemptsError) Error() string {
	return fmt.Sprintf("too many failed logins; try again in %s", e.RetryAfter.Round(time.Second))
}

func loginQuery(c Login) eventstore.Query {
	items := []eventstore.QueryItem{emailQuery(c.EmailHash)}
	if c.UserID != uuid.Nil {
		items = append(items, userQuery(c.UserID))
	}
	return eventstore.Query{Items: items}
}

type loginState struct {
	user     user
	failures []time.Time // failed logins with this email
}

func evolveLogin(s loginState, e any) loginState {
	if f, ok := e.(UserLoginFailed); ok {
		s.failures = append(s.failures, f.At)
	}
	s.user = evolveUser(s.user, e)
	return s
}

func decideLogin(s loginState, c Login) ([]any, error) {
	var recent []time.Time
	for _, at := range s.failures {
		if at.After(c.At.Add(-FailureWindow)) {
			recent = append(recent, at)
		}
	}
	if len(recent) >= MaxFailures {
		// Locked until the oldest of the last MaxFailures leaves the window.
		until := recent[len(recent)-MaxFailures].Add(FailureWindow)
		return nil, &TooManyAttemptsError{RetryAfter: until.Sub(c.At)}
	}
	ok := c.Verify(s.user.passwordHash)
	switch {
	case !s.user.registered:
		return nil, ErrInvalidCredentials
	case !s.user.active:
		return []any{UserLoginFailed{UserID: s.user.id, EmailHash: c.EmailHash, At: c.At, Reason: "deactivated"}}, nil
	case !ok:
		return []any{UserLoginFailed{UserID: s.user.id, EmailHash: c.EmailHash, At: c.At, Reason: "wrong_password"}}, nil
	}
	return []any{UserLoggedIn{UserID: s.user.id, At: c.At}}, nil
}

var login = decide.Decider[loginState, Login]{
	Events: Events, Query: loginQuery, Evolve: evolveLogin, Decide: decideLogin,
}

// POST /login
func (s *Service) loginHandler(c *gin.Context) {
	var req credentials
	if !httpapi.Decode(c, &req) {
		return
	}
	if req.Email == nil || req.Password == nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", "email and password are required")
		return
	}
	ctx := c.Request.Context()
	if wait, err := s.throttle(ctx, c.ClientIP()); err != nil {
		s.fail(c, err)
		return
	} else if wait > 0 {
		s.tooMany(c, wait)
		return
	}
	hash := EmailHash(*req.Email)
	userID, err := s.userByEmail(ctx, hash)
	if err != nil {
		s.fail(c, err)
		return
	}
	var staleHash string
	password := *req.Password
	cmd := Login{EmailHash: hash, UserID: userID, At: s.now(), Verify: func(phc string) bool {
		if phc == "" {
			phc = s.dummy
		}
		ok, stale := s.Hashing.Verify(phc, password)
		if ok && stale {
			staleHash = phc
		}
		return ok
	}}
	res, err := decide.Run(ctx, s.Store, login, cmd)
	var tooMany *TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		s.tooMany(c, tooMany.RetryAfter)
		return
	case errors.Is(err, ErrInvalidCredentials):
		s.invalidCredentials(c)
		return
	case err != nil:
		s.fail(c, err)
		return
	}
	if _, ok := res.Events[0].(UserLoggedIn); !ok {
		s.invalidCredentials(c)
		return
	}
	if staleHash != "" {
		s.rehash(ctx, userID, staleHash, password)
	}
	token, expires, err := s.Tokens.Issue(userID, cmd.At)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"token": token, "token_type": "Bearer", "expires_at": expires, "position": res.Position})
}

// invalidCredentials is the one answer to every failed login.
func (s *Service) invalidCredentials(c *gin.Context) {
	httpapi.Error(c, http.StatusUnauthorized, "invalid_credentials", "invalid email or password")
}

func (s *Service) tooMany(c *gin.Context, wait time.Duration) {
	c.Header("Retry-After", strconv.Itoa(int(wait.Round(time.Second).Seconds())+1))
	httpapi.Error(c, http.StatusTooManyRequests, "too_many_attempts", "too many login attempts; try again later")
}

// userByEmail finds the user registered with an email hash.
func (s *Service) userByEmail(ctx context.Context, hash string) (uuid.UUID, error) {
	stored, err := s.Store.Read(ctx, eventstore.Query{Items: []eventstore.QueryItem{{
		Types: Events.TypesOf(UserRegistered{}), Tags: []string{emailTag(hash)},
	}}}, eventstore.ReadOptions{Limit: 1})
	if err != nil || len(stored) == 0 {
		return uuid.Nil, err
	}
	v, err := Events.Decode(stored[0])
	if err != nil {
		return uuid.Nil, err
	}
	return v.(UserRegistered).UserID, nil
}

// Rehash replaces a password hash made with old parameters by one made with
// the current ones, after a successful login proved the password.
//
//	given the user's hash is no longer OldHash   → nothing (changed meanwhile)
//	given it still is                            → UserPasswordChanged{NewHash}
type Rehash struct {
	UserID           uuid.UUID
	OldHash, NewHash string
	At               time.Time
}

var rehash = decide.Decider[user, Rehash]{
	Events: Events,
	Query: func(c Rehash) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{userQuery(c.UserID)}}
	},
	Evolve: evolveUser,
	Decide: func(u user, c Rehash) ([]any, error) {
		if u.passwordHash != c.OldHash {
			return nil, nil
		}
		return []any{UserPasswordChanged{UserID: c.UserID, PasswordHash: c.NewHash, At: c.At}}, nil
	},
}

// rehash is best effort: the login succeeded whatever happens here, and the
// next login tries again.
func (s *Service) rehash(ctx context.Context, id uuid.UUID, oldHash, password string) {
	newHash, err := s.Hashing.Hash(password)
	if err == nil {
		_, err = decide.Run(ctx, s.Store, rehash, Rehash{UserID: id, OldHash: oldHash, NewHash: newHash, At: s.now()})
	}
	if err != nil {
		s.Logger.WarnContext(ctx, "re-hashing a stale password hash failed", "user_id", id, "error", err)
	}
}
