package identity

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestActivateRules(t *testing.T) {
	t.Parallel()
	bothWays(t, activateUser, func(t *testing.T, spec gwt.Scenario[user, ActivateUser]) {
		t.Run("ActivatesDeactivatedUser", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "h"), UserDeactivated{id, now.Add(-time.Minute), "operator"}).
				When(ActivateUser{id, "operator", now}).Then(t, UserActivated{UserID: id, At: now, By: "operator"})
		})
		t.Run("RejectsActiveUser", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "h")).When(ActivateUser{id, "operator", now}).ThenError(t, ErrAlreadyActive)
		})
		t.Run("RejectsUnknownUser", func(t *testing.T) {
			spec.Given().When(ActivateUser{newID(), "operator", now}).ThenError(t, ErrUserNotFound)
		})
	})
}

// TestActivateUserHTTP: POST /users/{id}/activate, operator only, through
// the real engine and store.
func TestActivateUserHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	activate := func(id, token string) response {
		return a.send(request{method: "POST", path: "/users/" + id + "/activate", token: token})
	}
	id, email, token := a.newUser()

	res := activate(id.String(), testAdminToken)
	require.Equal(t, http.StatusConflict, res.status, "already active")
	require.Equal(t, "already_active", res.code())
	res = activate(id.String(), token)
	require.Equal(t, http.StatusForbidden, res.status, "a user is not the operator")
	require.Equal(t, "forbidden", res.code())
	res = activate(id.String(), "")
	require.Equal(t, http.StatusUnauthorized, res.status, "no token")
	require.Equal(t, "invalid_token", res.code())

	require.Equal(t, http.StatusNoContent, a.send(request{method: "POST", path: "/users/" + id.String() + "/deactivate", token: token}).status)
	require.Equal(t, http.StatusUnauthorized, a.login(email, goodPassword).status)
	res = activate(id.String(), testAdminToken)
	require.Equal(t, http.StatusNoContent, res.status, string(res.raw))
	events := userEvents(t, a.svc.Store, id)
	require.Equal(t, UserActivated{UserID: id, At: events[len(events)-1].(UserActivated).At, By: "operator"}, events[len(events)-1])
	require.Equal(t, http.StatusOK, a.login(email, goodPassword).status, "an activated user logs in again")

	res = activate(newID().String(), testAdminToken)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "user_not_found", res.code())

	// Without an operator token configured, nobody is the operator, not even
	// with an empty token.
	closed := newAPIWith(t, apiOptions{config: Config{AdminToken: ""}})
	closed.svc.AdminToken = ""
	res = closed.send(request{method: "POST", path: "/users/" + id.String() + "/activate"})
	require.Equal(t, http.StatusUnauthorized, res.status)
}
