package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
)

// Fuzz targets for the identity endpoints that FuzzRegisterAndLoginBodies
// does not cover: the body of POST /users/me/password, and the path and
// Authorization header of POST /users/{user_id}/deactivate and /activate.
// Whatever the input, the answer is a success that did what the input says
// and no more than its caller may, or a precise refusal that wrote nothing
// (but a wrong current password, a failed login).

// fuzzUser appends a registered user with goodPassword (no HTTP, no
// hashing: hash is computed once per target) and returns their id and a
// token for them.
func fuzzUser(t *testing.T, a *api, hash string) (uuid.UUID, string) {
	t.Helper()
	id := newID()
	reg := registered(id, freshEmail(), hash)
	givenEvents(t, a.svc.Store, reg)
	token, _, err := a.svc.Tokens.Issue(id, a.svc.now())
	require.NoError(t, err)
	return id, token
}

func (a *api) head(t *testing.T) int64 {
	t.Helper()
	head, err := a.svc.Store.Head(context.Background())
	require.NoError(t, err)
	return head
}

// eventsSince returns the events appended after head, decoded.
func (a *api) eventsSince(t *testing.T, head int64) []any {
	t.Helper()
	stored, err := a.svc.Store.Read(context.Background(), eventstore.Query{}, eventstore.ReadOptions{From: head + 1})
	require.NoError(t, err)
	out := make([]any, len(stored))
	for i, e := range stored {
		out[i], err = Events.Decode(e)
		require.NoError(t, err)
	}
	return out
}

// requireRefusal checks that res is one of the allowed statuses and codes,
// with a message, and that nothing was written since head.
func (a *api) requireRefusal(t *testing.T, res response, head int64, allowed map[int][]string) {
	t.Helper()
	require.Contains(t, allowed[res.status], res.code(), "status %d: %s", res.status, res.raw)
	msg, _ := res.body["message"].(string)
	require.NotEmpty(t, msg, string(res.raw))
	require.True(t, utf8.ValidString(msg), "message not UTF-8: %q", msg)
	require.Empty(t, a.eventsSince(t, head), "a refused request wrote events")
}

// FuzzChangePasswordBody: POST /users/me/password with a valid token. The
// placeholder $CURRENT stands for the user's password. An accepted body
// named the right current password, and afterwards the new one, exactly as
// sent, is the user's password; a 401 recorded one failed login and nothing
// else.
func FuzzChangePasswordBody(f *testing.F) {
	for _, seed := range []string{
		`{"current_password":"$CURRENT","new_password":"` + otherPassword + `"}`,
		`{"current_password":"$CURRENT","new_password":"$CURRENT"}`,
		`{"current_password":"wrong","new_password":"` + otherPassword + `"}`,
		`{"current_password":"$CURRENT","new_password":"short"}`,
		`{"current_password":"$CURRENT","new_password":"password1234567890"}`,
		`{"current_password":"$CURRENT","new_password":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}`,
		`{"current_password":"$CURRENT","new_password":"😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀"}`,
		`{"current_password":"$CURRENT","new_password":"\ud800 ` + otherPassword + `"}`,
		`{"current_password":"$CURRENT","new_password":"` + otherPassword + `","extra":1}`,
		`{"current_password":"$CURRENT"}`, `{"current_password":1,"new_password":true}`, `{}`, `null`, ``, "\xff",
	} {
		f.Add([]byte(seed))
	}
	a := newAPIWith(f, apiOptions{noReadModel: true})
	hash, err := testHashing.Hash(goodPassword)
	require.NoError(f, err)
	refusals := map[int][]string{
		http.StatusBadRequest:            {"invalid_request", "weak_password"},
		http.StatusRequestEntityTooLarge: {"body_too_large"},
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		id, token := fuzzUser(t, a, hash)
		body := strings.ReplaceAll(string(input), "$CURRENT", goodPassword)
		head := a.head(t)
		res := a.roundTrip(request{method: "POST", path: "/users/me/password", body: body, token: token})
		if res.status == http.StatusUnauthorized {
			// A wrong current password is refused and recorded as a
			// failed login, and nothing else is written.
			require.Equal(t, "invalid_credentials", res.code(), string(res.raw))
			events := a.eventsSince(t, head)
			require.Len(t, events, 1)
			failed := events[0].(UserLoginFailed)
			require.Equal(t, id, failed.UserID)
			require.Equal(t, "wrong_current_password", failed.Reason)
			return
		}
		if res.status != http.StatusNoContent {
			a.requireRefusal(t, res, head, refusals)
			return
		}
		var sent struct {
			Current string `json:"current_password"`
			New     string `json:"new_password"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &sent), "accepted %q", body)
		require.True(t, utf8.ValidString(body), "accepted a body that is not UTF-8: %q", body)
		require.Equal(t, goodPassword, sent.Current, "accepted a wrong current password")
		require.NoError(t, a.svc.Policy.Check(sent.New), "accepted a weak password")
		events := a.eventsSince(t, head)
		require.Len(t, events, 1)
		changed := events[0].(UserPasswordChanged)
		require.Equal(t, id, changed.UserID)
		ok, _ := testHashing.Verify(changed.PasswordHash, sent.New)
		require.True(t, ok, "the stored hash is not the new password's")
	})
}

// FuzzUserActionPaths: POST /users/{user_id}/deactivate, then /activate,
// with a fuzzed user id and Authorization header. The placeholders: $SELF
// (a fresh user's id), $OTHER (another user's id), $TOKEN (the fresh user's
// token), $ADMIN (the operator's token). A success acted on the user the
// path names, by the operator, or by that user themself when deactivating.
func FuzzUserActionPaths(f *testing.F) {
	for _, seed := range [][2]string{
		{"$SELF", "Bearer $ADMIN"}, {"$SELF", "Bearer $TOKEN"}, {"$OTHER", "Bearer $TOKEN"}, {"$OTHER", "bearer   $ADMIN  "},
		{"$SELF", ""}, {"$SELF", "Basic $ADMIN"}, {"$SELF", "Bearer $ADMIN$ADMIN"}, {"$SELF", "Bearer $TOKENx"},
		{"nope", "Bearer $ADMIN"}, {"0b8e5f2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b", "Bearer $ADMIN"}, {"{$SELF}", "Bearer $ADMIN"},
		{"'; DROP TABLE events; --", "Bearer $ADMIN"}, {"$SELF/../$OTHER", "Bearer $TOKEN"}, {"\x00", "Bearer \x00"},
	} {
		f.Add(seed[0], seed[1])
	}
	a := newAPIWith(f, apiOptions{noReadModel: true})
	allowed := map[int][]string{
		http.StatusBadRequest:   {"invalid_id"},
		http.StatusUnauthorized: {"invalid_token"},
		http.StatusForbidden:    {"forbidden"},
		http.StatusNotFound:     {"user_not_found", "not_found"},
		http.StatusConflict:     {"already_deactivated", "already_active"},
	}
	f.Fuzz(func(t *testing.T, userID, authorization string) {
		self, token := fuzzUser(t, a, "")
		other, _ := fuzzUser(t, a, "")
		fill := strings.NewReplacer("$SELF", self.String(), "$OTHER", other.String(), "$TOKEN", token, "$ADMIN", testAdminToken)
		path := "/users/" + url.PathEscape(fill.Replace(userID))
		authorization = fill.Replace(authorization)
		byOperator := strings.Contains(authorization, testAdminToken)
		for _, action := range []string{"/deactivate", "/activate"} {
			head := a.head(t)
			res := a.roundTrip(request{method: "POST", path: path + action, authorization: authorization})
			if res.status != http.StatusNoContent {
				a.requireRefusal(t, res, head, allowed)
				continue
			}
			events := a.eventsSince(t, head)
			require.Len(t, events, 1)
			var target uuid.UUID
			var by string
			switch e := events[0].(type) {
			case UserDeactivated:
				require.Equal(t, "/deactivate", action)
				target, by = e.UserID, e.By
			case UserActivated:
				require.Equal(t, "/activate", action)
				target, by = e.UserID, e.By
			default:
				t.Fatalf("%s appended %T", action, e)
			}
			require.Equal(t, strings.ToLower(fill.Replace(userID)), target.String(), "acted on another user than the path's")
			if by != "operator" {
				require.Equal(t, "/deactivate", action, "only the operator activates")
				require.Equal(t, self, target, "a user acted on another user")
				require.Equal(t, self.String(), by)
			} else {
				require.True(t, byOperator, "acted as the operator without the operator's token: %q", authorization)
			}
		}
	})
}
