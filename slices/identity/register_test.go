package identity

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
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

// TestRegisterHTTP: POST /users through the real engine and store.
func TestRegisterHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	store := a.svc.Store
	email := freshEmail()

	res := a.send(request{method: "POST", path: "/users", body: map[string]string{"email": "  " + strings.ToUpper(email) + "\t", "password": goodPassword}})
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	id := uuid.MustParse(res.body["user_id"].(string))
	require.Positive(t, res.body["position"])
	stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{userQuery(id)}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 1)
	require.Equal(t, "UserRegistered", stored[0].Type)
	require.ElementsMatch(t, []string{"user_id:" + id.String(), "email_hash:" + EmailHash(email)}, stored[0].Tags,
		"the address is in the data, never in a tag")
	require.NotContains(t, string(stored[0].Data), goodPassword, "no plaintext password is stored")
	reg := userEvents(t, store, id)[0].(UserRegistered)
	require.Equal(t, email, reg.Email, "stored normalised: trimmed, lower-cased")
	require.True(t, strings.HasPrefix(reg.PasswordHash, "$argon2id$v=19$m=1024,t=1,p=1$"), reg.PasswordHash)
	ok, _ := testHashing.Verify(reg.PasswordHash, goodPassword)
	require.True(t, ok)

	res = a.send(request{method: "POST", path: "/users", body: map[string]string{"email": " " + strings.ToUpper(email[:1]) + email[1:], "password": otherPassword}})
	require.Equal(t, http.StatusConflict, res.status)
	require.Equal(t, "email_taken", res.code())

	var used []string // the addresses of refused requests
	fresh := func() string { e := freshEmail(); used = append(used, e); return e }
	refused := []struct {
		name, body string
		status     int
		code       string
	}{
		{"NotAnAddress", `{"email":"not-an-address","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"NoDomainDot", `{"email":"a@localhost","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"TooLongAddress", `{"email":"a@` + strings.Repeat("b", 250) + `.com","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"DisplayName", `{"email":"Someone <a@example.com>","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"FormatCharacter", `{"email":"a\u202e@example.com","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"LoneSurrogateInAddress", `{"email":"a\ud800@example.com","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"ShortPassword", `{"email":"` + fresh() + `","password":"fourteen chars"}`, 400, "weak_password"},
		{"CommonPassword", `{"email":"` + fresh() + `","password":"PasswordPassword"}`, 400, "weak_password"},
		{"LongPassword", `{"email":"` + fresh() + `","password":"` + strings.Repeat("x", 129) + `"}`, 400, "weak_password"},
		{"HugePassword", `{"email":"` + fresh() + `","password":"` + strings.Repeat("x", 900<<10) + `"}`, 400, "weak_password"},
		{"LoneSurrogateInPassword", `{"email":"` + fresh() + `","password":"\udc00 ` + goodPassword + `"}`, 400, "weak_password"},
		{"MalformedJSON", `{"email":`, 400, "invalid_request"},
		{"UnknownField", `{"email":"` + fresh() + `","password":"` + goodPassword + `","admin":true}`, 400, "invalid_request"},
		{"NoPassword", `{"email":"` + fresh() + `"}`, 400, "invalid_request"},
		{"NullEmail", `{"email":null,"password":"` + goodPassword + `"}`, 400, "invalid_request"},
		{"NotAnObject", `["a@example.com"]`, 400, "invalid_request"},
		{"InvalidUTF8", "{\"email\":\"" + fresh() + "\",\"password\":\"\xff\xfe " + goodPassword + "\"}", 400, "invalid_request"},
		{"TooLarge", `{"email":"` + fresh() + `","password":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "body_too_large"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			res := a.send(request{method: "POST", path: "/users", body: c.body})
			require.Equal(t, c.status, res.status, string(res.raw))
			require.Equal(t, c.code, res.code())
			require.NotContains(t, string(res.raw), goodPassword, "an answer never repeats the password")
		})
	}
	for _, e := range used {
		stored, err := store.Read(context.Background(), emailQueryOf(e), eventstore.ReadOptions{})
		require.NoError(t, err)
		require.Empty(t, stored, "a refused request stores nothing")
	}
}

func emailQueryOf(email string) eventstore.Query {
	return eventstore.Query{Items: []eventstore.QueryItem{emailQuery(EmailHash(email))}}
}

// TestConcurrentRegistrationsOfOneAddress: 20 registrations of one address,
// spelt in different cases with surrounding spaces, race through the real
// engine: exactly one gets 201, the others 409 email_taken, and exactly one
// UserRegistered is stored. Repeated to give a race a chance.
func TestConcurrentRegistrationsOfOneAddress(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	const rounds, racers = 8, 20
	for round := range rounds {
		email := freshEmail()
		spellings := make([]string, racers)
		for i := range spellings {
			s := []byte(email)
			for j := range s {
				if (i>>(j%5))&1 == 1 {
					s[j] = byte(unicode.ToUpper(rune(s[j])))
				}
			}
			spellings[i] = strings.Repeat(" ", i%3) + string(s) + strings.Repeat("\t", i%2)
		}
		start := make(chan struct{})
		results := make([]response, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				results[i] = a.roundTrip(request{method: "POST", path: "/users",
					body: map[string]string{"email": spellings[i], "password": goodPassword}})
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for i, res := range results {
			switch res.status {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				require.Equal(t, "email_taken", res.code(), "round %d, racer %d", round, i)
			default:
				t.Fatalf("round %d, racer %d: %d %s", round, i, res.status, res.raw)
			}
		}
		require.Equal(t, 1, created, "round %d: exactly one registration wins", round)
		stored, err := a.svc.Store.Read(context.Background(), emailQueryOf(email), eventstore.ReadOptions{})
		require.NoError(t, err)
		require.Len(t, stored, 1, "round %d: exactly one UserRegistered", round)
		require.Equal(t, "UserRegistered", stored[0].Type)
	}
}

// FuzzRegisterAndLoginBodies: whatever the body, POST /users and POST /login
// answer with the error envelope or success, never 500, and a registration
// that succeeds stored a valid, normalised address.
func FuzzRegisterAndLoginBodies(f *testing.F) {
	a := newAPIWith(f, apiOptions{noReadModel: true})
	for _, seed := range []string{
		`{"email":"` + freshEmail() + `","password":"` + goodPassword + `"}`,
		`{"email":" A@B.example ","password":"` + goodPassword + `"}`,
		`{"email":"a\u0000b@example.com","password":"` + goodPassword + `"}`,
		`{"email":"a@example.com","password":"\ud800\udc00 ` + goodPassword + `"}`,
		`{"email":1,"password":[]}`, `{}`, `null`, `[]`, `"x"`, ``, "\xff", `{"email":"a@b.c"}{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/users", "/login"} {
			res := a.roundTrip(request{method: "POST", path: path, body: body, client: newClientAddr()})
			switch {
			case res.status == http.StatusCreated && path == "/users":
				id, err := uuid.Parse(res.body["user_id"].(string))
				require.NoError(t, err)
				reg := userEvents(t, a.svc.Store, id)[0].(UserRegistered)
				require.True(t, ValidEmail(reg.Email), reg.Email)
				require.Equal(t, NormalizeEmail(reg.Email), reg.Email)
			case res.status == http.StatusOK && path == "/login":
				require.NotEmpty(t, res.body["token"])
			case res.status == http.StatusBadRequest, res.status == http.StatusConflict && path == "/users",
				res.status == http.StatusUnauthorized && path == "/login", res.status == http.StatusTooManyRequests && path == "/login",
				res.status == http.StatusRequestEntityTooLarge:
				require.NotEmpty(t, res.code(), string(res.raw))
			default:
				t.Fatalf("POST %s: %d %s", path, res.status, res.raw)
			}
		}
	})
}

// TestRegisteredEmailHashIsVerified: a registration appended other than by
// Register (the operator's DCB append) must have the hash of its email as
// its email_hash tag, which decoding fills in; Register's own does.
func TestRegisteredEmailHashIsVerified(t *testing.T) {
	t.Parallel()
	id, email := newID(), freshEmail()
	own, err := Events.Encode(UserRegistered{UserID: id, EmailHash: EmailHash(email), Email: email, PasswordHash: "h", RegisteredAt: now})
	require.NoError(t, err)
	require.NoError(t, Events.Verify(own))

	other := own
	other.Tags = []string{userTag(id), emailTag(EmailHash(freshEmail()))}
	require.EqualError(t, Events.Verify(other), "eventstore: UserRegistered: its email_hash tag is not the hash of its email")
}
