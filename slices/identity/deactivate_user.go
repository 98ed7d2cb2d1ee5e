package identity

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
)

// DeactivateUser stops a user from logging in; their existing tokens stop
// working too. The operator or the user themself may do it.
//
//	given no UserRegistered        → ErrUserNotFound
//	given UserDeactivated          → ErrAlreadyDeactivated
//	given an active user           → UserDeactivated{by}
type DeactivateUser struct {
	UserID uuid.UUID
	By     string // "operator" or the user's own id
	At     time.Time
}

var (
	ErrUserNotFound       = errors.New("user not found")
	ErrAlreadyDeactivated = errors.New("user already deactivated")
)

func decideDeactivate(u user, c DeactivateUser) ([]any, error) {
	switch {
	case !u.registered:
		return nil, ErrUserNotFound
	case !u.active:
		return nil, ErrAlreadyDeactivated
	}
	return []any{UserDeactivated{UserID: c.UserID, At: c.At, By: c.By}}, nil
}

var deactivateUser = decide.Decider[user, DeactivateUser]{
	Events: Events,
	Query: func(c DeactivateUser) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{userQuery(c.UserID)}}
	},
	Evolve: evolveUser,
	Decide: decideDeactivate,
}

// POST /users/{user_id}/deactivate (operator token, or the user's own token)
func (s *Service) deactivateHandler(c *gin.Context) {
	id, by, ok := s.authorizeUserAction(c, true)
	if !ok {
		return
	}
	_, err := decide.Run(c.Request.Context(), s.Store, deactivateUser, DeactivateUser{UserID: id, By: by, At: s.now()})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
