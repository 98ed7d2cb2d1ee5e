package identity

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestLoginRules(t *testing.T) {
	t.Parallel()
	bothWays(t, login, func(t *testing.T, spec gwt.Scenario[loginState, Login]) {
		t.Run("LogsIn", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "good")).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
		t.Run("WrongPasswordRecordsFailure", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "good")).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("other", nil)}).
				Then(t, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now, Reason: "wrong_password"})
		})
		t.Run("DeactivatedUserFails", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "good"), UserDeactivated{UserID: id, At: now.Add(-time.Minute), By: "operator"}).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now, Reason: "deactivated"})
		})
		t.Run("ChangedPasswordCounts", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "old"), UserPasswordChanged{UserID: id, PasswordHash: "new", At: now.Add(-time.Minute)}).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("new", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
		t.Run("UnknownEmailVerifiesADummy", func(t *testing.T) {
			calls := 0
			spec.Given().When(Login{EmailHash: EmailHash(freshEmail()), At: now, Verify: verifier("", &calls)}).
				ThenError(t, ErrInvalidCredentials)
			require.Equal(t, 1, calls, "one hash verified, as for a known user")
		})
		t.Run("LockedAfterFiveRecentFailuresEvenWithTheRightPassword", func(t *testing.T) {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, "good")}
			for i := range 5 {
				given = append(given, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-time.Duration(10-i) * time.Minute), Reason: "wrong_password"})
			}
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				ThenError(t, &TooManyAttemptsError{RetryAfter: 5 * time.Minute})
		})
		t.Run("OldFailuresDoNotLock", func(t *testing.T) {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, "good")}
			for i := range 5 {
				given = append(given, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-time.Duration(16+i) * time.Minute), Reason: "wrong_password"})
			}
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
	})
}
