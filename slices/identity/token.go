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

// tokenClaims are the registered claims and pos, the position of the login
// that issued the token, against which a password change revokes it.
type tokenClaims struct {
	jwt.RegisteredClaims
	Position int64 `json:"pos,omitempty"`
}

// Issue signs a token for user, valid from now for the lifetime.
func (t Tokens) Issue(user uuid.UUID, now time.Time) (string, time.Time, error) {
	return t.IssueForLogin(user, now, 0)
}

// IssueForLogin is Issue for the login stored at position: a password
// change stored after it revokes the token (see TokenClaims.Position).
func (t Tokens) IssueForLogin(user uuid.UUID, now time.Time, position int64) (string, time.Time, error) {
	t = t.defaults()
	if len(t.Secret) == 0 {
		return "", time.Time{}, errNoSecret
	}
	expires := now.Add(t.Lifetime).Truncate(time.Second)
	claims := tokenClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    t.Issuer,
		Audience:  jwt.ClaimStrings{t.Audience},
		Subject:   user.String(),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
		ID:        uuid.NewString(),
	}, Position: position}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("identity: sign token: %w", err)
	}
	return signed, expires, nil
}

// Verify returns the user a token was issued to, or ErrInvalidToken.
func (t Tokens) Verify(token string, now time.Time) (uuid.UUID, error) {
	claims, err := t.VerifyClaims(token, now)
	return claims.UserID, err
}

// TokenClaims are what a verified token says.
type TokenClaims struct {
	UserID uuid.UUID // sub
	// IssuedAt is iat, in whole seconds (Issue truncates it); zero when
	// the token has none.
	IssuedAt time.Time
	ID       string // jti
	// Position is pos, the position of the login that issued the token;
	// zero when it has none (tokens issued otherwise, or before it existed).
	Position int64
}

// VerifyClaims is Verify that returns the token's claims.
func (t Tokens) VerifyClaims(token string, now time.Time) (TokenClaims, error) {
	t = t.defaults()
	if len(t.Secret) == 0 || token == "" {
		return TokenClaims{}, ErrInvalidToken
	}
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.Secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(t.Issuer),
		jwt.WithAudience(t.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return TokenClaims{}, ErrInvalidToken
	}
	id, err := uuid.Parse(claims.Subject)
	if err != nil || id.String() != claims.Subject {
		return TokenClaims{}, ErrInvalidToken
	}
	out := TokenClaims{UserID: id, ID: claims.ID, Position: claims.Position}
	if claims.IssuedAt != nil {
		out.IssuedAt = claims.IssuedAt.Time
	}
	return out, nil
}
