package identity

import (
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
// policy and been hashed by the handler.
//
//	given no UserRegistered, or UserDeactivated     → ErrInvalidCredentials
//	given a wrong current password                  → ErrInvalidCredentials
//	given the right current password                → UserPasswordChanged
type ChangePassword struct {
	UserID  uuid.UUID
	Verify  func(passwordHash string) bool // checks the current password
	NewHash string
	At      time.Time
}

func decideChangePassword(u user, c ChangePassword) ([]any, error) {
	ok := c.Verify(u.passwordHash)
	if !u.registered || !u.active || !ok {
		return nil, ErrInvalidCredentials
	}
	return []any{UserPasswordChanged{UserID: c.UserID, PasswordHash: c.NewHash, At: c.At}}, nil
}

var changePassword = decide.Decider[user, ChangePassword]{
	Events: Events,
	Query: func(c ChangePassword) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{userQuery(c.UserID)}}
	},
	Evolve: evolveUser,
	Decide: decideChangePassword,
}

// POST /users/me/password (Bearer)
func (s *Service) changePasswordHandler(c *gin.Context) {
	id, ok := s.authenticate(c)
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
	newHash, err := s.Hashing.Hash(*req.New)
	if err != nil {
		s.fail(c, err)
		return
	}
	check := s.passwordCheck(*req.Current)
	cmd := ChangePassword{UserID: id, NewHash: newHash, At: s.now(), Verify: check.verify}
	_, err = decide.Run(c.Request.Context(), s.Store, changePassword, cmd)
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		s.invalidCredentials(c)
	case err != nil:
		s.fail(c, err)
	default:
		c.Status(http.StatusNoContent)
	}
}
