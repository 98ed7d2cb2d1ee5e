package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/listeners"
)

// Users is the stored read model behind GET /users/me: one row per user in
// the table users, kept by the listener "users" and rebuildable with
// --reset-read-model users.
//
//	UserRegistered   → the row, active
//	UserLoggedIn     → last_login_at
//	UserDeactivated  → inactive
//	UserActivated    → active
//
// A row remembers the position of the event that last changed it, so that
// applying an event again changes nothing.
const UsersReadModel = "users"

// UsersListener is the listener that keeps the read model.
func UsersListener() listeners.Listener {
	return listeners.Listener{
		Name: UsersReadModel,
		Query: eventstore.Query{Items: []eventstore.QueryItem{{
			Types: Events.TypesOf(UserRegistered{}, UserLoggedIn{}, UserDeactivated{}, UserActivated{}),
		}}},
		Handle: applyUsers,
		Reset: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "TRUNCATE users")
			return err
		},
	}
}

func applyUsers(ctx context.Context, tx pgx.Tx, events []eventstore.StoredEvent) error {
	b := &pgx.Batch{}
	for _, e := range events {
		v, err := Events.Decode(e)
		if err != nil {
			return fmt.Errorf("users: event at %d: %w", e.Position, err)
		}
		switch v := v.(type) {
		case UserRegistered:
			b.Queue(`INSERT INTO users (user_id, email, active, registered_at, position) VALUES ($1, $2, true, $3, $4)
				ON CONFLICT (user_id) DO NOTHING`, v.UserID, v.Email, v.RegisteredAt, e.Position)
		case UserLoggedIn:
			b.Queue(`UPDATE users SET last_login_at = $2, position = $3 WHERE user_id = $1 AND position < $3`, v.UserID, v.At, e.Position)
		case UserDeactivated:
			b.Queue(`UPDATE users SET active = false, position = $2 WHERE user_id = $1 AND position < $2`, v.UserID, e.Position)
		case UserActivated:
			b.Queue(`UPDATE users SET active = true, position = $2 WHERE user_id = $1 AND position < $2`, v.UserID, e.Position)
		}
	}
	return tx.SendBatch(ctx, b).Close()
}

// Me is the answer of GET /users/me.
type Me struct {
	UserID       uuid.UUID  `json:"user_id"`
	Email        string     `json:"email"`
	Active       bool       `json:"active"`
	RegisteredAt time.Time  `json:"registered_at"`
	LastLoginAt  *time.Time `json:"last_login_at"`
}

// readMe reads a user from the users read model; ErrUserNotFound if it
// holds no such user.
func readMe(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID) (Me, error) {
	var me Me
	err := pool.QueryRow(ctx, `SELECT user_id, email, active, registered_at, last_login_at FROM users WHERE user_id = $1`, id).
		Scan(&me.UserID, &me.Email, &me.Active, &me.RegisteredAt, &me.LastLoginAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Me{}, ErrUserNotFound
	}
	return me, err
}

// GET /users/me (Bearer). The token is checked against the user's current
// state; the answer waits until the read model has caught up with the user's
// latest event, a login included (and with ?min_position).
func (s *Service) meHandler(c *gin.Context) {
	id, ok := s.authenticate(c)
	if !ok {
		return
	}
	latest, err := s.Store.Read(c.Request.Context(), eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{userTag(id)}}}},
		eventstore.ReadOptions{Backwards: true, Limit: 1})
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.ReadModels.AwaitPosition(c, UsersReadModel, latest[0].Position) {
		return
	}
	me, err := readMe(c.Request.Context(), s.Pool, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, me)
}
