package identity

import (
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/decide"
	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
)

// Register creates a user whose email no other user has. The email is
// unique without a uniqueness table: the decision reads the registrations
// tagged with the email's hash and appends on condition that none appeared
// meanwhile, so of concurrent registrations of one address exactly one wins.
//
//	given UserRegistered for the same normalised email   → ErrEmailTaken
//	given nothing                                         → UserRegistered
type Register struct {
	UserID       uuid.UUID // set by the handler
	Email        string    // normalised
	PasswordHash string    // computed by the handler
	At           time.Time
}

// ErrEmailTaken is a deliberate, documented trade-off: registration reveals
// that an address is registered.
var ErrEmailTaken = errors.New("email already registered")

func registerQuery(c Register) eventstore.Query {
	return eventstore.Query{Items: []eventstore.QueryItem{{
		Types: Events.TypesOf(UserRegistered{}), Tags: []string{emailTag(EmailHash(c.Email))},
	}}}
}

func decideRegister(taken bool, c Register) ([]any, error) {
	if taken {
		return nil, ErrEmailTaken
	}
	return []any{UserRegistered{UserID: c.UserID, EmailHash: EmailHash(c.Email), Email: c.Email,
		PasswordHash: c.PasswordHash, RegisteredAt: c.At}}, nil
}

var register = decide.Decider[bool, Register]{
	Events: Events,
	Query:  registerQuery,
	Evolve: func(bool, any) bool { return true },
	Decide: decideRegister,
}

// ValidEmail reports whether email (normalised) is a plain address of at
// most 254 bytes, with a local part of at most 64, a dot in the domain, and
// only printable characters (no U+FFFD, which stands for undecodable text,
// nor invisible format characters such as U+202E, which reverses text).
func ValidEmail(email string) bool {
	if len(email) > 254 || !utf8.ValidString(email) || strings.ContainsAny(email, " \t\r\n") {
		return false
	}
	for _, r := range email {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return false
	}
	at := strings.LastIndexByte(email, '@')
	return at > 0 && at <= 64 && strings.Contains(email[at+1:], ".")
}

type credentials struct {
	Email    *string `json:"email"`
	Password *string `json:"password"`
}

// POST /users
func (s *Service) registerHandler(c *gin.Context) {
	var req credentials
	if !httpapi.Decode(c, &req) {
		return
	}
	if req.Email == nil || req.Password == nil {
		httpapi.Error(c, http.StatusBadRequest, "invalid_request", "email and password are required")
		return
	}
	email := NormalizeEmail(*req.Email)
	if !ValidEmail(email) {
		httpapi.Error(c, http.StatusBadRequest, "invalid_email", "not a valid email address")
		return
	}
	if err := s.Policy.Check(*req.Password); err != nil {
		httpapi.Error(c, http.StatusBadRequest, "weak_password", err.Error())
		return
	}
	hash, err := s.hasher.hash(c.Request.Context(), *req.Password)
	if err != nil {
		s.fail(c, err)
		return
	}
	cmd := Register{UserID: uuid.Must(uuid.NewV7()), Email: email, PasswordHash: hash, At: s.now()}
	res, err := decide.Run(c.Request.Context(), s.Store, register, cmd)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"user_id": cmd.UserID, "position": res.Position})
}
