package identity

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestChangePasswordRules(t *testing.T) {
	t.Parallel()
	bothWays(t, changePassword, func(t *testing.T, spec gwt.Scenario[loginState, ChangePassword]) {
		failures := func(id uuid.UUID, email string, n int, ago time.Duration) []any {
			var out []any
			for i := range n {
				out = append(out, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-ago + time.Duration(i)*time.Minute), Reason: "wrong_password"})
			}
			return out
		}
		t.Run("LockedAfterFiveRecentFailuresEvenWithTheRightPassword", func(t *testing.T) {
			id, email := newID(), freshEmail()
			verified, hashed := 0, 0
			spec.Given(append([]any{registered(id, email, "good")}, failures(id, email, MaxFailures, 10*time.Minute)...)...).
				When(ChangePassword{UserID: id, Verify: verifier("good", &verified), NewHash: newHash("next", &hashed), At: now}).
				ThenError(t, &TooManyAttemptsError{RetryAfter: 5 * time.Minute})
			require.Zero(t, verified+hashed, "a locked change hashes nothing")
		})
		t.Run("FourRecentFailuresDoNotLock", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(append([]any{registered(id, email, "good")}, failures(id, email, MaxFailures-1, 10*time.Minute)...)...).
				When(ChangePassword{UserID: id, Verify: verifier("good", nil), NewHash: newHash("next", nil), At: now}).
				Then(t, UserPasswordChanged{UserID: id, PasswordHash: "next", At: now})
		})
		t.Run("OldFailuresDoNotLock", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(append([]any{registered(id, email, "good")}, failures(id, email, MaxFailures, 20*time.Minute)...)...).
				When(ChangePassword{UserID: id, Verify: verifier("good", nil), NewHash: newHash("next", nil), At: now}).
				Then(t, UserPasswordChanged{UserID: id, PasswordHash: "next", At: now})
		})
		t.Run("RejectsUnknownUser", func(t *testing.T) {
			hashed := 0
			spec.Given().When(ChangePassword{UserID: newID(), Verify: verifier("", nil), NewHash: newHash("next", &hashed), At: now}).
				ThenError(t, ErrInvalidCredentials)
			require.Zero(t, hashed)
		})
		t.Run("RejectsDeactivatedUser", func(t *testing.T) {
			id := newID()
			hashed := 0
			spec.Given(registered(id, freshEmail(), "good"), UserDeactivated{UserID: id, At: now, By: "operator"}).
				When(ChangePassword{UserID: id, Verify: verifier("good", nil), NewHash: newHash("next", &hashed), At: now}).
				ThenError(t, ErrInvalidCredentials)
			require.Zero(t, hashed)
		})
		t.Run("RecordsAWrongCurrentPasswordWithoutHashingTheNew", func(t *testing.T) {
			id, email := newID(), freshEmail()
			hashed := 0
			spec.Given(registered(id, email, "good")).
				When(ChangePassword{UserID: id, Verify: verifier("bad", nil), NewHash: newHash("next", &hashed), At: now}).
				Then(t, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now, Reason: "wrong_current_password"})
			require.Zero(t, hashed, "a wrong guess costs one hash, not two")
		})
		t.Run("ChangesWithTheRightCurrentPassword", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "good")).
				When(ChangePassword{UserID: id, TokenID: "the-jti", Verify: verifier("good", nil), NewHash: newHash("next", nil), At: now}).
				Then(t, UserPasswordChanged{UserID: id, PasswordHash: "next", At: now, TokenID: "the-jti"})
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
	failed := userEvents(t, a.svc.Store, id)[2].(UserLoginFailed)
	require.Equal(t, "wrong_current_password", failed.Reason, "a wrong guess is recorded as a failed login")
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
	require.Len(t, userEvents(t, a.svc.Store, id), 3, "registered, logged in, one wrong guess; nothing else recorded")

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

// TestChangePasswordRevokesEarlierTokens: after a password change, the
// user's tokens issued before it stop working (a token thief loses access
// when the user changes their password), but the one that made the change;
// one from a login with the new password works.
func TestChangePasswordRevokesEarlierTokens(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	email := freshEmail()
	id := a.register(email, goodPassword)
	// Token times are whole seconds: one issued two seconds ago is from
	// before the change, whatever the clock's fraction.
	changer, _, err := a.svc.Tokens.Issue(id, time.Now().Add(-2*time.Second))
	require.NoError(t, err)
	earlier, _, err := a.svc.Tokens.Issue(id, time.Now().Add(-2*time.Second))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, a.send(request{method: "GET", path: "/users/me", token: earlier}).status)

	res := a.send(request{method: "POST", path: "/users/me/password", token: changer,
		body: map[string]string{"current_password": goodPassword, "new_password": otherPassword}})
	require.Equal(t, http.StatusNoContent, res.status, string(res.raw))
	res = a.send(request{method: "GET", path: "/users/me", token: changer})
	require.Equal(t, http.StatusOK, res.status, "the token that made the change still works: %s", res.raw)
	for _, r := range []request{
		{method: "GET", path: "/users/me"},
		{method: "POST", path: "/users/me/password", body: map[string]string{"current_password": otherPassword, "new_password": "a third unusual phrase"}},
		{method: "POST", path: "/users/" + id.String() + "/deactivate"},
	} {
		r.token = earlier
		res := a.send(r)
		require.Equal(t, http.StatusUnauthorized, res.status, "%s %s: %s", r.method, r.path, res.raw)
		require.Equal(t, "invalid_token", res.code())
	}

	fresh := a.token(email, otherPassword)
	res = a.send(request{method: "GET", path: "/users/me", token: fresh})
	require.Equal(t, http.StatusOK, res.status, "a token issued after the change works: %s", res.raw)
}

// TestChangePasswordLockOutHTTP: wrong guesses of the current password are
// failed logins. After 5 within 15 minutes even the right one gets 429
// too_many_attempts with Retry-After, as /login does, and so does /login,
// whichever of the two the failures came from; nothing more is recorded.
func TestChangePasswordLockOutHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	id, email, token := a.newUser()
	change := func(current string) response {
		return a.send(request{method: "POST", path: "/users/me/password", token: token,
			body: map[string]string{"current_password": current, "new_password": "a third unusual phrase"}})
	}
	require.Equal(t, http.StatusUnauthorized, a.login(email, otherPassword).status, "one failure at /login")
	for i := range MaxFailures - 1 {
		res := change("guess number " + strconv.Itoa(i) + " of the password")
		require.Equal(t, http.StatusUnauthorized, res.status, "guess %d: %s", i+1, res.raw)
		require.Equal(t, "invalid_credentials", res.code())
	}
	recorded := len(userEvents(t, a.svc.Store, id))

	for _, res := range []response{change(goodPassword), a.login(email, goodPassword)} {
		require.Equal(t, http.StatusTooManyRequests, res.status, string(res.raw))
		require.Equal(t, "too_many_attempts", res.code())
		retry, err := strconv.Atoi(res.header.Get("Retry-After"))
		require.NoError(t, err)
		require.InDelta(t, FailureWindow.Seconds(), retry, 10, "until the first failure leaves the window")
	}
	require.Len(t, userEvents(t, a.svc.Store, id), recorded, "a locked attempt records nothing")
	require.Equal(t, http.StatusTooManyRequests, change(otherPassword).status)
}

// TestChangePasswordRevokesALoginDuringIt: a login that checks the old
// password while a change is being decided (here: while the change hashes
// the new password) gets a token, and the change then commits; that token
// is revoked all the same, because its login is stored before the change.
// By time it was not: the login came after the change's request.
func TestChangePasswordRevokesALoginDuringIt(t *testing.T) {
	a := newAPI(t)
	email := freshEmail()
	id := a.register(email, goodPassword)
	changer, _, err := a.svc.Tokens.Issue(id, time.Now().Add(-2*time.Second))
	require.NoError(t, err)

	var calls atomic.Int64
	gate, blocked := make(chan struct{}), make(chan struct{})
	a.svc.hasher.running = func() func() {
		if calls.Add(1) == 2 { // the change's hash of the new password
			close(blocked)
			<-gate
		}
		return func() {}
	}
	done := make(chan response, 1)
	go func() {
		done <- a.roundTrip(request{method: "POST", path: "/users/me/password", token: changer,
			body: map[string]string{"current_password": goodPassword, "new_password": otherPassword}})
	}()
	<-blocked
	during := a.token(email, goodPassword)
	close(gate)
	res := <-done
	require.Equal(t, http.StatusNoContent, res.status, string(res.raw))
	require.Equal(t, http.StatusUnauthorized, a.login(email, goodPassword).status, "the old password no longer logs in")
	require.Equal(t, http.StatusUnauthorized, a.send(request{method: "GET", path: "/users/me", token: during}).status,
		"the token of a login that checked the old password is revoked")
	require.Equal(t, http.StatusOK, a.send(request{method: "GET", path: "/users/me", token: changer}).status,
		"the token that made the change goes on")
	after := a.token(email, otherPassword)
	require.Equal(t, http.StatusOK, a.send(request{method: "GET", path: "/users/me", token: after}).status,
		"a login with the new password is after the change")
}
