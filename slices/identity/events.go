package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/eventstore"
)

// The identity events. The email itself is in the data, never in a tag: the
// tag is the hex SHA-256 of the normalised address (EmailHash), kept out of
// the data and filled from the tag when reading.

type UserRegistered struct {
	UserID       uuid.UUID `json:"user_id" tag:"user_id"`
	EmailHash    string    `json:"-" tag:"email_hash"`
	Email        string    `json:"email"`
	PasswordHash string    `json:"password_hash"`
	RegisteredAt time.Time `json:"registered_at"`
}

// Validate is the rule Verify checks beyond tags, for a registration that
// reaches the log through the operator's DCB append: its email_hash tag,
// which decoding fills in, is the hash of its email. Otherwise the email
// could be registered again, and logins by another email would find it.
func (e UserRegistered) Validate() error {
	if e.EmailHash != EmailHash(e.Email) {
		return errors.New("its email_hash tag is not the hash of its email")
	}
	return nil
}

type UserLoggedIn struct {
	UserID uuid.UUID `json:"user_id" tag:"user_id"`
	At     time.Time `json:"at"`
}

type UserLoginFailed struct {
	UserID    uuid.UUID `json:"user_id" tag:"user_id"`
	EmailHash string    `json:"-" tag:"email_hash"`
	At        time.Time `json:"at"`
	Reason    string    `json:"reason"`
}

// LoginFailedForUnknownEmail is a failed login with an email that no user
// is registered with (UserLoginFailed needs a user). It counts towards the
// email's lock-out like UserLoginFailed, so that an unknown email is locked
// out as a registered one is.
type LoginFailedForUnknownEmail struct {
	EmailHash string    `json:"-" tag:"email_hash"`
	At        time.Time `json:"at"`
}

type UserDeactivated struct {
	UserID uuid.UUID `json:"user_id" tag:"user_id"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`
}

type UserActivated struct {
	UserID uuid.UUID `json:"user_id" tag:"user_id"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`
}

// UserPasswordChanged is a new password hash: a change by the user, which
// revokes the user's tokens issued before it but the one that made the
// change (TokenID, its jti), or a re-hash of the same password with the
// current parameters (Rehash), which is no change and revokes nothing.
type UserPasswordChanged struct {
	UserID       uuid.UUID `json:"user_id" tag:"user_id"`
	PasswordHash string    `json:"password_hash"`
	At           time.Time `json:"at"`
	TokenID      string    `json:"token_id,omitempty"`
	Rehash       bool      `json:"rehash,omitempty"`
}

// Events is the registry of the identity bounded context.
var Events = eventstore.NewRegistry(
	eventstore.Type[UserRegistered]("UserRegistered"),
	eventstore.Type[UserLoggedIn]("UserLoggedIn"),
	eventstore.Type[UserLoginFailed]("UserLoginFailed"),
	eventstore.Type[LoginFailedForUnknownEmail]("LoginFailedForUnknownEmail"),
	eventstore.Type[UserDeactivated]("UserDeactivated"),
	eventstore.Type[UserActivated]("UserActivated"),
	eventstore.Type[UserPasswordChanged]("UserPasswordChanged"),
)

// NormalizeEmail trims and lower-cases an address: the form stored and hashed.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// EmailHash is the tag value of an address: hex SHA-256 of its normal form.
func EmailHash(email string) string {
	sum := sha256.Sum256([]byte(NormalizeEmail(email)))
	return hex.EncodeToString(sum[:])
}

func emailTag(hash string) string { return eventstore.Tag("email_hash", hash) }
func userTag(id uuid.UUID) string { return eventstore.Tag("user_id", id) }

// userQuery is the events that make one user's state: registration,
// password changes, deactivation and activation. Logins are left out: no
// decision depends on them, so they never conflict with one and a user's
// decisions do not read more as the user logs in more.
func userQuery(id uuid.UUID) eventstore.QueryItem {
	return eventstore.QueryItem{
		Types: Events.TypesOf(UserRegistered{}, UserPasswordChanged{}, UserDeactivated{}, UserActivated{}),
		Tags:  []string{userTag(id)},
	}
}

// emailQuery is every event about one address: its registration and the
// failed logins with it (UserLoginFailed, LoginFailedForUnknownEmail).
func emailQuery(hash string) eventstore.QueryItem {
	return eventstore.QueryItem{Tags: []string{emailTag(hash)}}
}

// user is one user folded from their events.
type user struct {
	id           uuid.UUID
	registered   bool
	email        string
	passwordHash string
	// passwordChangedAt is when the user last changed their password (a
	// re-hash is no change); zero if never. Tokens issued before are void,
	// but keptToken, the one (jti) that made the change.
	passwordChangedAt time.Time
	// passwordChangedPosition is that change's position, when the user
	// was read by readUser (zero otherwise, or if never).
	passwordChangedPosition int64
	keptToken               string
	active                  bool
	registeredAt            time.Time
}

func evolveUser(u user, e any) user {
	switch e := e.(type) {
	case UserRegistered:
		u = user{id: e.UserID, registered: true, email: e.Email, passwordHash: e.PasswordHash, active: true, registeredAt: e.RegisteredAt}
	case UserPasswordChanged:
		u.passwordHash = e.PasswordHash
		if !e.Rehash {
			u.passwordChangedAt, u.keptToken = e.At, e.TokenID
		}
	case UserDeactivated:
		u.active = false
	case UserActivated:
		u.active = true
	}
	return u
}
