package identity

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestDeactivateRules(t *testing.T) {
	t.Parallel()
	bothWays(t, deactivateUser, func(t *testing.T, spec gwt.Scenario[user, DeactivateUser]) {
		t.Run("DeactivatesActiveUser", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "h")).When(DeactivateUser{id, "operator", now}).
				Then(t, UserDeactivated{UserID: id, At: now, By: "operator"})
		})
		t.Run("DeactivatesReactivatedUser", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "h"), UserDeactivated{id, now.Add(-2 * time.Minute), "operator"}, UserActivated{id, now.Add(-time.Minute), "operator"}).
				When(DeactivateUser{id, id.String(), now}).Then(t, UserDeactivated{UserID: id, At: now, By: id.String()})
		})
		t.Run("RejectsDeactivatedUser", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "h"), UserDeactivated{id, now, "operator"}).
				When(DeactivateUser{id, "operator", now}).ThenError(t, ErrAlreadyDeactivated)
		})
		t.Run("RejectsUnknownUser", func(t *testing.T) {
			spec.Given().When(DeactivateUser{newID(), "operator", now}).ThenError(t, ErrUserNotFound)
		})
	})
}

// TestDeactivateUserHTTP: POST /users/{id}/deactivate by the user themself
// and by the operator, through the real engine and store.
func TestDeactivateUserHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	deactivate := func(id, token string) response {
		return a.send(request{method: "POST", path: "/users/" + id + "/deactivate", token: token})
	}

	self, email, token := a.newUser()
	other, _, otherToken := a.newUser()
	res := deactivate(other.String(), token)
	require.Equal(t, http.StatusForbidden, res.status, "a user cannot deactivate another")
	require.Equal(t, "forbidden", res.code())
	res = deactivate(self.String(), "")
	require.Equal(t, http.StatusUnauthorized, res.status, "no token")
	require.Equal(t, "invalid_token", res.code())
	res = deactivate(self.String(), "not-a-token")
	require.Equal(t, http.StatusUnauthorized, res.status)
	res = deactivate(self.String(), testAdminToken+"x")
	require.Equal(t, http.StatusUnauthorized, res.status, "almost the operator token is no token")
	res = deactivate("not-a-uuid", token)
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "invalid_id", res.code())

	res = deactivate(self.String(), token)
	require.Equal(t, http.StatusNoContent, res.status, string(res.raw))
	events := userEvents(t, a.svc.Store, self)
	require.Equal(t, self.String(), events[len(events)-1].(UserDeactivated).By, "by the user themself")
	require.Equal(t, http.StatusUnauthorized, a.login(email, goodPassword).status, "a deactivated user cannot log in")
	res = deactivate(self.String(), token)
	require.Equal(t, http.StatusUnauthorized, res.status, "their token no longer works")
	res = deactivate(self.String(), testAdminToken)
	require.Equal(t, http.StatusConflict, res.status, "already deactivated")
	require.Equal(t, "already_deactivated", res.code())

	res = a.send(request{method: "POST", path: "/users/" + strings.ToUpper(other.String()) + "/deactivate", token: testAdminToken})
	require.Equal(t, http.StatusNoContent, res.status, "the operator deactivates anybody")
	events = userEvents(t, a.svc.Store, other)
	require.Equal(t, "operator", events[len(events)-1].(UserDeactivated).By)
	res = a.send(request{method: "GET", path: "/users/me", token: otherToken})
	require.Equal(t, http.StatusUnauthorized, res.status)

	res = deactivate(newID().String(), testAdminToken)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "user_not_found", res.code())
}
