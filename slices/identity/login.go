package identity

import (
	"context"
	"errors"
	"fmt"
	"math"
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
// the same time: every path but the lock-out verifies one password hash, with
// the current parameters when there is no user (a dummy hash), and records
// one event. An unknown email is locked out like a known one, so that the
// lock-out does not tell which emails are registered either.
//
//	given 5 failed logins for the email in the last 15 minutes    → *TooManyAttemptsError, nothing recorded, nothing verified
//	given no UserRegistered for the email (or not the handler's)  → LoginFailedForUnknownEmail, a dummy hash verified
//	given UserDeactivated                                         → UserLoginFailed{reason: deactivated}
//	given a wrong password                                        → UserLoginFailed{reason: wrong_password}
//	given the right password                                      → UserLoggedIn
//
// A failed login for the email is a UserLoginFailed (of this or any user;
// a wrong current password at a password change is one too) or a
// LoginFailedForUnknownEmail, made before the email was registered or not.
//
// "Not the handler's": a user registered between the handler's look-up and
// the decision counts as unknown, since the decision's state lacks the
// events tagged only with that user (a deactivation); the next attempt
// finds them.
type Login struct {
	EmailHash string
	// UserID is the user registered with the email, found by the handler
	// (a registration never changes); uuid.Nil when there is none.
	UserID uuid.UUID
	At     time.Time
	// Verify checks the password against a PHC hash; "" stands for the
	// dummy hash of an unknown user. Its error (no hash slot) is the
	// decision's.
	Verify func(passwordHash string) (bool, error)
}

// Lock-out: MaxFailures failed logins for one email within FailureWindow.
const (
	MaxFailures   = 5
	FailureWindow = 15 * time.Minute
)

// ErrInvalidCredentials is every failed check of a password, whatever the
// reason: the caller must not learn which.
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

// loginState is a user and the failed attempts that count towards their
// lock-out: for a login, those with the email; for a password change, the
// user's.
type loginState struct {
	user     user
	failures []time.Time
}

func evolveLogin(s loginState, e any) loginState {
	switch f := e.(type) {
	case UserLoginFailed:
		s.failures = append(s.failures, f.At)
	case LoginFailedForUnknownEmail:
		s.failures = append(s.failures, f.At)
	}
	s.user = evolveUser(s.user, e)
	return s
}

// lockedOut returns how long after at the failed attempts at the times
// failures lock out another attempt, 0 when they do not: MaxFailures of
// them within FailureWindow lock until the oldest of the last MaxFailures
// leaves the window.
func lockedOut(failures []time.Time, at time.Time) time.Duration {
	var recent []time.Time
	for _, f := range failures {
		if f.After(at.Add(-FailureWindow)) {
			recent = append(recent, f)
		}
	}
	if len(recent) < MaxFailures {
		return 0
	}
	return recent[len(recent)-MaxFailures].Add(FailureWindow).Sub(at)
}

func decideLogin(s loginState, c Login) ([]any, error) {
	if wait := lockedOut(s.failures, c.At); wait > 0 {
		return nil, &TooManyAttemptsError{RetryAfter: wait}
	}
	known := s.user.registered && s.user.id == c.UserID
	hash := ""
	if known {
		hash = s.user.passwordHash
	}
	ok, err := c.Verify(hash) // on every path, so that they all take as long
	switch {
	case err != nil:
		return nil, err
	case !known:
		return []any{LoginFailedForUnknownEmail{EmailHash: c.EmailHash, At: c.At}}, nil
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
//
// The attempt is counted for its client address first, and committed,
// before anything else: a client over its limit spends no hash, even when
// its attempts arrive all at once. The password is then verified outside
// any transaction, so that no connection or lock is held during the hash
// (which may wait for a slot: 503 server_busy), and the decision records
// the outcome: UserLoggedIn, UserLoginFailed or LoginFailedForUnknownEmail
// (each an append, so that the three failures cost the same commit), or
// nothing for a lock-out.
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
	if wait, err := s.throttle(ctx, throttleKey(c.ClientIP())); err != nil {
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
	check := s.passwordCheck(ctx, *req.Password)
	cmd := Login{EmailHash: hash, UserID: userID, At: s.now(), Verify: check.verify}
	if err := s.verifyAhead(ctx, cmd); err != nil {
		s.fail(c, err)
		return
	}
	res, err := decide.Run(ctx, s.Store, login, cmd)
	var tooMany *TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		s.tooMany(c, tooMany.RetryAfter)
		return
	case err != nil:
		s.fail(c, err)
		return
	}
	loggedIn, ok := res.Events[0].(UserLoggedIn)
	if !ok {
		s.invalidCredentials(c)
		return
	}
	if check.stale {
		s.rehash(ctx, loggedIn.UserID, check.phc, *req.Password)
	}
	token, expires, err := s.Tokens.IssueForLogin(loggedIn.UserID, cmd.At, res.Position)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"token": token, "token_type": "Bearer", "expires_at": expires, "position": res.Position})
}

// verifyAhead runs the login decision once on the state as it is now,
// appending nothing, for its effect on cmd.Verify: the hash is computed
// (or skipped, when the email is locked out) and remembered, and the
// decision in the transaction finds the answer without hashing again,
// unless the password hash changed in between. It returns the decision's
// error only when the hash could not be computed (no slot, or ctx ended).
func (s *Service) verifyAhead(ctx context.Context, cmd Login) error {
	stored, err := s.Store.Read(ctx, loginQuery(cmd), eventstore.ReadOptions{})
	if err != nil {
		return err
	}
	state, _, err := decide.Fold(login, stored)
	if err != nil {
		return err
	}
	var tooMany *TooManyAttemptsError
	if _, err := login.Decide(state, cmd); err != nil && !errors.As(err, &tooMany) {
		return err
	}
	return nil
}

// invalidCredentials is the one answer to every failed login.
func (s *Service) invalidCredentials(c *gin.Context) {
	httpapi.Error(c, http.StatusUnauthorized, "invalid_credentials", "invalid email or password")
}

// tooMany answers 429 with Retry-After: the wait in whole seconds, rounded
// up, at least 1.
func (s *Service) tooMany(c *gin.Context, wait time.Duration) {
	c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
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
//	given it still is                            → UserPasswordChanged{NewHash, Rehash}
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
		return []any{UserPasswordChanged{UserID: c.UserID, PasswordHash: c.NewHash, At: c.At, Rehash: true}}, nil
	},
}

// rehash is best effort: the login succeeded whatever happens here, and the
// next login tries again.
func (s *Service) rehash(ctx context.Context, id uuid.UUID, oldHash, password string) {
	newHash, err := s.hasher.hash(ctx, password)
	if err == nil {
		_, err = decide.Run(ctx, s.Store, rehash, Rehash{UserID: id, OldHash: oldHash, NewHash: newHash, At: s.now()})
	}
	if err != nil {
		s.Logger.WarnContext(ctx, "re-hashing a stale password hash failed", "user_id", id, "error", err)
	}
}
