package identity

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

// ChangePassword replaces a user's password; the new one has passed the
// policy. The current password is verified first and the new one hashed
// only then, so that a wrong guess costs one hash, not two. A wrong guess
// is a failed login: it counts towards the lock-out of /login (by the
// user's email), and the user's failed logins lock out password changes
// the same way, so that a stolen token does not give unlimited guesses.
//
//	given 5 UserLoginFailed of the user in the last 15 minutes  → *TooManyAttemptsError, nothing verified or recorded
//	given no UserRegistered, or UserDeactivated                 → ErrInvalidCredentials, the new password not hashed
//	given a wrong current password                              → UserLoginFailed{reason: wrong_current_password}, the new password not hashed
//	given the right current password                            → UserPasswordChanged{TokenID}
type ChangePassword struct {
	UserID uuid.UUID
	// TokenID is the jti of the token that makes the change: it stays
	// valid, the user's other tokens issued before the change do not.
	TokenID string
	// Verify checks the current password; NewHash hashes the new one.
	// Their errors (no hash slot) are the decision's.
	Verify  func(passwordHash string) (bool, error)
	NewHash func() (string, error)
	At      time.Time
}

func changePasswordQuery(c ChangePassword) eventstore.Query {
	return eventstore.Query{Items: []eventstore.QueryItem{
		userQuery(c.UserID),
		{Types: Events.TypesOf(UserLoginFailed{}), Tags: []string{userTag(c.UserID)}},
	}}
}

func decideChangePassword(s loginState, c ChangePassword) ([]any, error) {
	if wait := lockedOut(s.failures, c.At); wait > 0 {
		return nil, &TooManyAttemptsError{RetryAfter: wait}
	}
	u := s.user
	ok, err := c.Verify(u.passwordHash)
	switch {
	case err != nil:
		return nil, err
	case !u.registered || !u.active:
		return nil, ErrInvalidCredentials
	case !ok:
		return []any{UserLoginFailed{UserID: c.UserID, EmailHash: EmailHash(u.email), At: c.At, Reason: "wrong_current_password"}}, nil
	}
	hash, err := c.NewHash()
	if err != nil {
		return nil, err
	}
	return []any{UserPasswordChanged{UserID: c.UserID, PasswordHash: hash, At: c.At, TokenID: c.TokenID}}, nil
}

var changePassword = decide.Decider[loginState, ChangePassword]{
	Events: Events, Query: changePasswordQuery, Evolve: evolveLogin, Decide: decideChangePassword,
}

// POST /users/me/password (Bearer)
func (s *Service) changePasswordHandler(c *gin.Context) {
	token, ok := s.authenticateToken(c)
	if !ok {
		return
	}
	var req struct {
		Current *string `json:"current_password"`
		New     *string `json:"new_password"`
	}
	if !httpapi.Decode(c, &req) {
		return
	}
	if req.Current == nil || req.New == nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", "current_password and new_password are required")
		return
	}
	if err := s.Policy.Check(*req.New); err != nil {
		httpapi.Error(c, http.StatusBadRequest, "weak_password", err.Error())
		return
	}
	ctx := c.Request.Context()
	check := s.passwordCheck(ctx, *req.Current)
	cmd := ChangePassword{UserID: token.UserID, TokenID: token.ID, At: s.now(), Verify: check.verify, NewHash: s.hashOnce(ctx, *req.New)}
	res, err := decide.Run(ctx, s.Store, changePassword, cmd)
	var tooMany *TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		s.tooMany(c, tooMany.RetryAfter)
	case errors.Is(err, ErrInvalidCredentials):
		s.invalidCredentials(c)
	case err != nil:
		s.fail(c, err)
	default:
		if _, failed := res.Events[0].(UserLoginFailed); failed {
			s.invalidCredentials(c)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// hashOnce returns a function that hashes password on its first call and
// returns that hash on the later ones: a decision that lost a race and runs
// again does not pay for it twice. It is not safe for concurrent use.
func (s *Service) hashOnce(ctx context.Context, password string) func() (string, error) {
	var hash string
	return func() (string, error) {
		if hash == "" {
			h, err := s.hasher.hash(ctx, password)
			if err != nil {
				return "", err
			}
			hash = h
		}
		return hash, nil
	}
}
