package identity

import (
	"testing"
	"time"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestChangePasswordRules(t *testing.T) {
	t.Parallel()
	bothWays(t, changePassword, func(t *testing.T, spec gwt.Scenario[user, ChangePassword]) {
		t.Run("ChangesWithTheRightCurrentPassword", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "good")).
				When(ChangePassword{UserID: id, Verify: verifier("good", nil), NewHash: "next", At: now}).
				Then(t, UserPasswordChanged{UserID: id, PasswordHash: "next", At: now})
		})
		t.Run("RejectsWrongCurrentPassword", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "good")).
				When(ChangePassword{UserID: id, Verify: verifier("bad", nil), NewHash: "next", At: now}).
				ThenError(t, ErrInvalidCredentials)
		})
		t.Run("RejectsDeactivatedUser", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "good"), UserDeactivated{UserID: id, At: now, By: "operator"}).
				When(ChangePassword{UserID: id, Verify: verifier("good", nil), NewHash: "next", At: now}).
				ThenError(t, ErrInvalidCredentials)
		})
		t.Run("RejectsUnknownUser", func(t *testing.T) {
			spec.Given().When(ChangePassword{UserID: newID(), Verify: verifier("", nil), NewHash: "next", At: now}).
				ThenError(t, ErrInvalidCredentials)
		})
	})
}

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
