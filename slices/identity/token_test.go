package identity

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/httpapi"
)

// sign makes a token with any claims and method, for the tests of what
// verification refuses.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return token
}

// validClaims are the claims Issue makes, for a user, as a map to spoil.
func validClaims(user uuid.UUID) jwt.MapClaims {
	at := time.Now()
	return jwt.MapClaims{"iss": "dcbkit", "aud": []string{"dcbkit-api"}, "sub": user.String(),
		"iat": at.Unix(), "exp": at.Add(time.Minute).Unix(), "jti": uuid.NewString()}
}

func spoil(c jwt.MapClaims, key string, value any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	if value == nil {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}

// TestTokensAtUsersMe: GET /users/me accepts a token only if it is HS256,
// signed with the secret, of this issuer and audience, unexpired, with an
// exp, and of an existing, active user; otherwise 401 invalid_token.
func TestTokensAtUsersMe(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	id, _, issued := a.newUser()
	hs := jwt.SigningMethodHS256
	good := validClaims(id)
	expired, _, err := a.svc.Tokens.Issue(id, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	parts := strings.Split(issued, ".")

	require.Equal(t, http.StatusOK, a.send(request{method: "GET", path: "/users/me", token: sign(t, hs, testSecret, good)}).status,
		"the claims of the spoilt tokens below are valid as they are")
	for _, c := range []struct{ name, token string }{
		{"None", ""},
		{"Garbage", "garbage"},
		{"Expired", expired},
		{"WrongSignature", sign(t, hs, []byte("another secret of at least 32 bytes...."), good)},
		{"AlteredPayload", parts[0] + "." + strings.Split(sign(t, hs, []byte("x"), spoil(good, "sub", newID().String())), ".")[1] + "." + parts[2]},
		{"NoSignature", parts[0] + "." + parts[1] + "."},
		{"AlgNone", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)},
		{"AlgHS512", sign(t, jwt.SigningMethodHS512, testSecret, good)},
		{"WrongAudience", sign(t, hs, testSecret, spoil(good, "aud", []string{"another-api"}))},
		{"NoAudience", sign(t, hs, testSecret, spoil(good, "aud", nil))},
		{"WrongIssuer", sign(t, hs, testSecret, spoil(good, "iss", "somebody-else"))},
		{"NoIssuer", sign(t, hs, testSecret, spoil(good, "iss", nil))},
		{"NoExpiry", sign(t, hs, testSecret, spoil(good, "exp", nil))},
		{"IssuedInTheFuture", sign(t, hs, testSecret, spoil(good, "iat", time.Now().Add(time.Hour).Unix()))},
		{"SubjectNotAUUID", sign(t, hs, testSecret, spoil(good, "sub", "admin"))},
		{"SubjectInAnotherSpelling", sign(t, hs, testSecret, spoil(good, "sub", "urn:uuid:"+id.String()))},
		{"UnknownUser", sign(t, hs, testSecret, spoil(good, "sub", newID().String()))},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := a.send(request{method: "GET", path: "/users/me", token: c.token})
			require.Equal(t, http.StatusUnauthorized, res.status, string(res.raw))
			require.Equal(t, "invalid_token", res.code())
			require.Equal(t, `Bearer realm="dcbkit"`, res.header.Get("WWW-Authenticate"))
		})
	}

	// The scheme is case-insensitive; anything but Bearer is no token.
	for scheme, status := range map[string]int{"bearer": http.StatusOK, "BEARER": http.StatusOK, "Basic": http.StatusUnauthorized, "": http.StatusUnauthorized} {
		res := a.send(request{method: "GET", path: "/users/me", authorization: strings.TrimSpace(scheme + " " + issued)})
		require.Equal(t, status, res.status, "scheme %q", scheme)
	}

	// A deactivated user's token, still valid in itself, stops working.
	require.Equal(t, http.StatusNoContent, a.send(request{method: "POST", path: "/users/" + id.String() + "/deactivate", token: testAdminToken}).status)
	res := a.send(request{method: "GET", path: "/users/me", token: issued})
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.Equal(t, "invalid_token", res.code())
}

// TestTokenIssuedAt: VerifyClaims returns the token's iat, in whole
// seconds, as Issue wrote it, and its jti.
func TestTokenIssuedAt(t *testing.T) {
	t.Parallel()
	tokens := Tokens{Secret: testSecret}
	id, at := newID(), time.Date(2026, 11, 25, 12, 0, 7, 900_000_000, time.UTC)
	token, _, err := tokens.Issue(id, at)
	require.NoError(t, err)
	claims, err := tokens.VerifyClaims(token, at.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, id, claims.UserID)
	require.True(t, claims.IssuedAt.Equal(at.Truncate(time.Second)), "%v", claims.IssuedAt)
	require.NotEmpty(t, claims.ID)
}

func TestTokensRefuseAnEmptySecret(t *testing.T) {
	t.Parallel()
	_, _, err := Tokens{}.Issue(newID(), time.Now())
	require.Error(t, err)
	unsigned := sign(t, jwt.SigningMethodHS256, []byte{}, validClaims(newID()))
	_, err = Tokens{}.Verify(unsigned, time.Now())
	require.ErrorIs(t, err, ErrInvalidToken, "a token signed with the empty key is not accepted by a service without a secret")
	require.Panics(t, func() {
		NewService(Config{}, testStore(t), eventstoretest.SharedPool(t), nil, httpapi.ReadModels{})
	}, "a service without a secret is a wiring mistake")
}

// FuzzTokenVerify: no input makes verification panic, and nothing but a
// token signed with the secret is accepted.
func FuzzTokenVerify(f *testing.F) {
	tokens := Tokens{Secret: testSecret}
	issued, _, err := tokens.Issue(newID(), time.Now())
	require.NoError(f, err)
	for _, seed := range []string{issued, "", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", issued + "x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := tokens.Verify(token, time.Now())
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidToken)
			return
		}
		require.NotEqual(t, uuid.Nil, id)
		_, err = Tokens{Secret: []byte("another secret of at least 32 bytes....")}.Verify(token, time.Now())
		require.ErrorIs(t, err, ErrInvalidToken, "accepted only with the secret it was signed with")
	})
}
