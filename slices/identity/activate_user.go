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

// ActivateUser lets a deactivated user log in again. Only the operator may.
//
//	given no UserRegistered        → ErrUserNotFound
//	given an active user           → ErrAlreadyActive
//	given UserDeactivated          → UserActivated{by}
type ActivateUser struct {
	UserID uuid.UUID
	By     string
	At     time.Time
}

var ErrAlreadyActive = errors.New("user already active")

func decideActivate(u user, c ActivateUser) ([]any, error) {
	switch {
	case !u.registered:
		return nil, ErrUserNotFound
	case u.active:
		return nil, ErrAlreadyActive
	}
	return []any{UserActivated{UserID: c.UserID, At: c.At, By: c.By}}, nil
}

var activateUser = decide.Decider[user, ActivateUser]{
	Events: Events,
	Query: func(c ActivateUser) eventstore.Query {
		return eventstore.Query{Items: []eventstore.QueryItem{userQuery(c.UserID)}}
	},
	Evolve: evolveUser,
	Decide: decideActivate,
}

// POST /users/{user_id}/activate (operator token only)
func (s *Service) activateHandler(c *gin.Context) {
	id, by, ok := s.authorizeUserAction(c, false)
	if !ok {
		return
	}
	_, err := decide.Run(c.Request.Context(), s.Store, activateUser, ActivateUser{UserID: id, By: by, At: s.now()})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
