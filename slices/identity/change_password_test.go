package identity

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestChangePasswordRules(t *testing.T) {
	t.Parallel()
	bothWays(t, changePassword, func(t *testing.T, spec gwt.Scenario[user, ChangePassword]) {
		t.Run("ChangesWithTheRightCurrentPassword", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "good")).
				When(ChangePassword{UserID: id, Verify: verifier("good", nil), NewHash: newHash("next", nil), At: now}).
				Then(t, UserPasswordChanged{UserID: id, PasswordHash: "next", At: now})
		})
		t.Run("RejectsWrongCurrentPasswordWithoutHashingTheNew", func(t *testing.T) {
			id := newID()
			hashed := 0
			spec.Given(registered(id, freshEmail(), "good")).
				When(ChangePassword{UserID: id, Verify: verifier("bad", nil), NewHash: newHash("next", &hashed), At: now}).
				ThenError(t, ErrInvalidCredentials)
			require.Zero(t, hashed, "a wrong guess costs one hash, not two")
		})
		t.Run("RejectsDeactivatedUser", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "good"), UserDeactivated{UserID: id, At: now, By: "operator"}).
				When(ChangePassword{UserID: id, Verify: verifier("good", nil), NewHash: newHash("next", nil), At: now}).
				ThenError(t, ErrInvalidCredentials)
		})
		t.Run("RejectsUnknownUser", func(t *testing.T) {
			spec.Given().When(ChangePassword{UserID: newID(), Verify: verifier("", nil), NewHash: newHash("next", nil), At: now}).
				ThenError(t, ErrInvalidCredentials)
		})
	})
}

// TestChangePasswordHTTP: POST /users/me/password through the real engine
// and store.
func TestChangePasswordHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	id, email, token := a.newUser()
	change := func(token string, body any) response {
		return a.send(request{method: "POST", path: "/users/me/password", token: token, body: body})
	}

	probe := probeHashes(nil, a.svc)
	res := change(token, map[string]string{"current_password": otherPassword, "new_password": "a third unusual phrase"})
	require.Equal(t, http.StatusUnauthorized, res.status, "wrong current password")
	require.Equal(t, "invalid_credentials", res.code())
	require.EqualValues(t, 1, probe.total.Load(), "a wrong current password costs one hash: the new one is not hashed")
	res = change(token, map[string]string{"current_password": goodPassword, "new_password": "too short"})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "weak_password", res.code())
	res = change(token, map[string]string{"current_password": goodPassword, "new_password": "passwordpassword"})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "weak_password", res.code())
	res = change(token, map[string]string{"current_password": goodPassword})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "invalid_request", res.code())
	res = change(token, `{"current_password":"`+goodPassword+`","new_password":"x","confirm":"x"}`)
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "invalid_request", res.code())
	res = change("", map[string]string{"current_password": goodPassword, "new_password": otherPassword})
	require.Equal(t, http.StatusUnauthorized, res.status, "no token")
	require.Equal(t, "invalid_token", res.code())
	require.Len(t, userEvents(t, a.svc.Store, id), 2, "registered and logged in; nothing else recorded")

	res = change(token, map[string]string{"current_password": goodPassword, "new_password": otherPassword})
	require.Equal(t, http.StatusNoContent, res.status, string(res.raw))
	events := userEvents(t, a.svc.Store, id)
	changed := events[len(events)-1].(UserPasswordChanged)
	require.True(t, strings.HasPrefix(changed.PasswordHash, "$argon2id$"))
	require.Equal(t, http.StatusOK, a.login(email, otherPassword).status, "the new password works")
	require.Equal(t, http.StatusUnauthorized, a.login(email, goodPassword).status, "the old one does not")

	// A deactivated user cannot change their password, even with a token
	// issued before.
	deactivated := a.send(request{method: "POST", path: "/users/" + id.String() + "/deactivate", token: testAdminToken})
	require.Equal(t, http.StatusNoContent, deactivated.status)
	res = change(token, map[string]string{"current_password": otherPassword, "new_password": "a third unusual phrase"})
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.Equal(t, "invalid_token", res.code())
}
