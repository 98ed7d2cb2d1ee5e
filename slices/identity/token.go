package identity

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Tokens issues and verifies access tokens: JWT HS256 with the claims iss,
// aud, sub (the user id), iat, exp and jti. Verification pins the algorithm,
// the issuer and the audience, and requires exp. The signature is checked
// in constant time (hmac.Equal).
type Tokens struct {
	// Secret signs the tokens (JWT_SECRET). With an empty secret anybody
	// could sign, so Tokens then issues and accepts nothing.
	Secret   []byte
	Issuer   string        // default "dcbkit"
	Audience string        // default "dcbkit-api"
	Lifetime time.Duration // default 15 minutes
}

// ErrInvalidToken is returned for a token that must not be accepted.
var ErrInvalidToken = errors.New("invalid token")

func (t Tokens) defaults() Tokens {
	if t.Issuer == "" {
		t.Issuer = "dcbkit"
	}
	if t.Audience == "" {
		t.Audience = "dcbkit-api"
	}
	if t.Lifetime <= 0 {
		t.Lifetime = 15 * time.Minute
	}
	return t
}

// errNoSecret is returned by Issue when no secret is configured.
var errNoSecret = errors.New("identity: no token secret configured")

// Issue signs a token for user, valid from now for the lifetime.
func (t Tokens) Issue(user uuid.UUID, now time.Time) (string, time.Time, error) {
	t = t.defaults()
	if len(t.Secret) == 0 {
		return "", time.Time{}, errNoSecret
	}
	expires := now.Add(t.Lifetime).Truncate(time.Second)
	claims := jwt.RegisteredClaims{
		Issuer:    t.Issuer,
		Audience:  jwt.ClaimStrings{t.Audience},
		Subject:   user.String(),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
		ID:        uuid.NewString(),
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("identity: sign token: %w", err)
	}
	return signed, expires, nil
}

// Verify returns the user a token was issued to, or ErrInvalidToken.
func (t Tokens) Verify(token string, now time.Time) (uuid.UUID, error) {
	id, _, err := t.VerifyIssued(token, now)
	return id, err
}

// VerifyIssued is Verify that also returns when the token was issued: its
// iat, in whole seconds (Issue truncates it), zero when it has none.
func (t Tokens) VerifyIssued(token string, now time.Time) (uuid.UUID, time.Time, error) {
	t = t.defaults()
	if len(t.Secret) == 0 || token == "" {
		return uuid.Nil, time.Time{}, ErrInvalidToken
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.Secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(t.Issuer),
		jwt.WithAudience(t.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return uuid.Nil, time.Time{}, ErrInvalidToken
	}
	id, err := uuid.Parse(claims.Subject)
	if err != nil || id.String() != claims.Subject {
		return uuid.Nil, time.Time{}, ErrInvalidToken
	}
	var issued time.Time
	if claims.IssuedAt != nil {
		issued = claims.IssuedAt.Time
	}
	return id, issued, nil
}
