package identity

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// lockedBuffer is a log sink that the engine, the service and the listener
// runtime may write to at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNoSecretsInLogs: the log of a register, logins that succeed and
// fail, a change of password, a refused weak password and a re-hash holds
// no password, no PHC hash and no token, at any level.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := newAPIWith(t, apiOptions{logger: logger})
	const newPassword = "the third unusual phrase here"

	email := freshEmail()
	id := a.register(email, goodPassword)
	login := a.login(email, goodPassword)
	require.Equal(t, http.StatusOK, login.status)
	token := login.body["token"].(string)
	require.Equal(t, http.StatusUnauthorized, a.login(email, otherPassword).status)
	require.Equal(t, http.StatusUnauthorized, a.login(freshEmail(), otherPassword).status)
	require.Equal(t, http.StatusBadRequest, a.send(request{method: "POST", path: "/users/me/password", token: token,
		body: map[string]string{"current_password": goodPassword, "new_password": "weak one"}}).status)
	require.Equal(t, http.StatusNoContent, a.send(request{method: "POST", path: "/users/me/password", token: token,
		body: map[string]string{"current_password": goodPassword, "new_password": newPassword}}).status)
	// The change revoked token (unless it came in the same second).
	fresh := a.token(email, newPassword)
	require.Equal(t, http.StatusOK, a.send(request{method: "GET", path: "/users/me", token: fresh}).status)
	// A login through a service with other hash parameters re-hashes.
	other := newAPIWith(t, apiOptions{logger: logger, config: Config{Hashing: HashParams{MemoryKiB: 2048, Iterations: 1, Parallelism: 1}}})
	second := other.login(email, newPassword)
	require.Equal(t, http.StatusOK, second.status)
	require.Equal(t, http.StatusUnauthorized, a.send(request{method: "GET", path: "/users/me", token: token + "x"}).status)

	var changes int
	secrets := []string{goodPassword, otherPassword, newPassword, "weak one", "$argon2id$", "argon2id", token, fresh, second.body["token"].(string)}
	for _, e := range userEvents(t, a.svc.Store, id) {
		switch e := e.(type) {
		case UserRegistered:
			secrets = append(secrets, e.PasswordHash, strings.Split(e.PasswordHash, "$")[5])
		case UserPasswordChanged:
			changes++
			secrets = append(secrets, e.PasswordHash, strings.Split(e.PasswordHash, "$")[5])
		}
	}
	require.Equal(t, 2, changes, "the change and the re-hash")
	for _, tok := range []string{token, fresh, second.body["token"].(string)} {
		secrets = append(secrets, strings.Split(tok, ".")[2]) // the signature alone
	}
	out := logs.String()
	require.Contains(t, out, `"msg":"http request"`, "the requests were logged")
	require.GreaterOrEqual(t, strings.Count(out, `"msg":"http request"`), 9)
	for _, s := range secrets {
		require.NotContains(t, out, s)
	}
}
