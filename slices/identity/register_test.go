package identity

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/gwt"
)

func TestRegisterRules(t *testing.T) {
	t.Parallel()
	bothWays(t, register, func(t *testing.T, spec gwt.Scenario[bool, Register]) {
		t.Run("RegistersNewEmail", func(t *testing.T) {
			cmd := Register{UserID: newID(), Email: NormalizeEmail(freshEmail()), PasswordHash: "h", At: now}
			spec.Given().When(cmd).Then(t, UserRegistered{UserID: cmd.UserID, EmailHash: EmailHash(cmd.Email),
				Email: cmd.Email, PasswordHash: "h", RegisteredAt: now})
		})
		t.Run("RejectsSameNormalisedEmail", func(t *testing.T) {
			email := freshEmail()
			spec.Given(registered(newID(), email, "h")).
				When(Register{UserID: newID(), Email: NormalizeEmail("  " + strings.ToUpper(email) + " "), PasswordHash: "h2", At: now}).
				ThenError(t, ErrEmailTaken)
		})
		t.Run("OtherEmailsDoNotMatter", func(t *testing.T) {
			cmd := Register{UserID: newID(), Email: NormalizeEmail(freshEmail()), PasswordHash: "h", At: now}
			spec.Given(registered(newID(), freshEmail(), "h")).When(cmd).Then(t, UserRegistered{UserID: cmd.UserID,
				EmailHash: EmailHash(cmd.Email), Email: cmd.Email, PasswordHash: "h", RegisteredAt: now})
		})
	})
}

func TestValidEmail(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a@example.com", "first.last+tag@sub.example.org", "x@b.co"} {
		require.True(t, ValidEmail(ok), ok)
	}
	for _, bad := range []string{"", "a", "a@", "@b.com", "a@b", "A <a@b.com>", "a b@c.com", "a@b.com\n",
		strings.Repeat("a", 65) + "@b.com", "a@" + strings.Repeat("b", 250) + ".com", "a@b.com'; DROP TABLE users;--"} {
		require.False(t, ValidEmail(bad), bad)
	}
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	p := PasswordPolicy{MinLength: 15, MaxLength: 128}
	require.NoError(t, p.Check("a long and unusual phrase"))
	require.NoError(t, p.Check("ééééééééééééééé"), "15 code points, more bytes")
	require.ErrorIs(t, p.Check("short one"), ErrWeakPassword)
	require.ErrorContains(t, p.Check("ﬀﬀﬀﬀﬀﬀﬀ"), "at least 15", "NFKC turns each ligature into two letters: 14")
	require.ErrorContains(t, p.Check(strings.Repeat("x", 129)), "at most 128")
	require.ErrorContains(t, p.Check("PasswordPassword"), "common")
	require.ErrorContains(t, p.Check("correct horse battery staple"), "common")
	require.ErrorIs(t, p.Check("\xff\xfe invalid utf8 bytes"), ErrWeakPassword)
}

func TestHashing(t *testing.T) {
	t.Parallel()
	h, err := testHashing.Hash("a long and unusual phrase")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$"))
	ok, stale := testHashing.Verify(h, "a long and unusual phrase")
	require.True(t, ok)
	require.False(t, stale)
	ok, _ = testHashing.Verify(h, "a long and unusual phrasE")
	require.False(t, ok)
	ok, stale = DefaultHashParams.Verify(h, "a long and unusual phrase")
	require.True(t, ok, "an old hash still verifies")
	require.True(t, stale, "and is known to be stale")
	h2, err := testHashing.Hash("a long and unusual phrase")
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salted")
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=x$c2FsdA$a2V5", "$argon2id$v=19$m=1024,t=1,p=1$!!$a2V5"} {
		ok, _ := testHashing.Verify(bad, "x")
		require.False(t, ok, bad)
	}
}
