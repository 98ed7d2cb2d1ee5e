package identity

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestMeHTTP: GET /users/me answers from the stored read model users, kept
// by a running listener, consistent with the user's own last event without
// being asked, and with ?min_position when asked.
func TestMeHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	email := freshEmail()
	id := a.register(email, goodPassword)
	login := a.login(email, goodPassword)
	require.Equal(t, http.StatusOK, login.status)
	token := login.body["token"].(string)
	loginPosition := int64(login.body["position"].(float64))
	me := func(query string) response {
		return a.send(request{method: "GET", path: "/users/me" + query, token: token})
	}

	res := me("")
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	events := userEvents(t, a.svc.Store, id)
	reg, logged := events[0].(UserRegistered), events[1].(UserLoggedIn)
	require.JSONEq(t, `{"user_id":"`+id.String()+`","email":"`+email+`","active":true,
		"registered_at":"`+reg.RegisteredAt.Format(time.RFC3339Nano)+`","last_login_at":"`+logged.At.Format(time.RFC3339Nano)+`"}`, string(res.raw))
	seen, err := strconv.ParseInt(res.header.Get("X-Read-Model-Position"), 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, seen, loginPosition, "the read model has the login the token came from")

	// Another login: the next answer has it, without min_position.
	again := a.login(email, goodPassword)
	require.Equal(t, http.StatusOK, again.status)
	res = me("")
	require.Equal(t, http.StatusOK, res.status)
	events = userEvents(t, a.svc.Store, id)
	require.Equal(t, events[2].(UserLoggedIn).At.Format(time.RFC3339Nano), res.body["last_login_at"])

	head, err := a.svc.Store.Head(context.Background())
	require.NoError(t, err)
	res = me("?min_position=" + strconv.FormatInt(head, 10))
	require.Equal(t, http.StatusOK, res.status)
	seen, err = strconv.ParseInt(res.header.Get("X-Read-Model-Position"), 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, seen, head)

	res = me("?min_position=-1")
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "invalid_request", res.code())
	a.svc.ReadModels.Wait = 100 * time.Millisecond
	res = me("?min_position=" + strconv.FormatInt(head+1_000_000, 10))
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	require.Equal(t, "read_model_lagging", res.code())
	require.Equal(t, "1", res.header.Get("Retry-After"))
}

// TestUsersReadModelReplay: after runtime.Reset(ctx, "users") the listener
// replays the log from the start and the table holds the same rows. On a
// database of its own, so that emptying the table troubles no other test.
func TestUsersReadModelReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.NewPool(t)
	store := eventstore.New(pool, eventstore.Options{})
	t.Cleanup(store.Close)
	a := newAPIWith(t, apiOptions{pool: pool, store: store})

	// Every event the read model handles, and some it does not.
	loggedIn, email, token := a.newUser()
	require.Equal(t, http.StatusUnauthorized, a.login(email, otherPassword).status)
	require.Equal(t, http.StatusNoContent, a.send(request{method: "POST", path: "/users/me/password", token: token,
		body: map[string]string{"current_password": goodPassword, "new_password": otherPassword}}).status)
	require.Equal(t, http.StatusOK, a.login(email, otherPassword).status)
	deactivated := a.register(freshEmail(), goodPassword)
	reactivated, _, _ := a.newUser()
	neverLoggedIn := a.register(freshEmail(), goodPassword)
	for _, id := range []string{deactivated.String(), reactivated.String()} {
		require.Equal(t, http.StatusNoContent, a.send(request{method: "POST", path: "/users/" + id + "/deactivate", token: testAdminToken}).status)
	}
	require.Equal(t, http.StatusNoContent, a.send(request{method: "POST", path: "/users/" + reactivated.String() + "/activate", token: testAdminToken}).status)

	rows := func() []map[string]any {
		t.Helper()
		head, err := store.Head(ctx)
		require.NoError(t, err)
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = a.runtime.WaitFor(wait, UsersReadModel, head)
		require.NoError(t, err)
		r, err := pool.Query(ctx, `SELECT user_id::text, email, active, registered_at, last_login_at, position FROM users ORDER BY user_id`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(r, pgx.RowToMap)
		require.NoError(t, err)
		return out
	}
	before := rows()
	require.Len(t, before, 4)
	byID := map[string]map[string]any{}
	for _, r := range before {
		byID[r["user_id"].(string)] = r
	}
	require.Equal(t, true, byID[loggedIn.String()]["active"])
	require.NotNil(t, byID[loggedIn.String()]["last_login_at"])
	require.Equal(t, false, byID[deactivated.String()]["active"])
	require.Equal(t, true, byID[reactivated.String()]["active"])
	require.Nil(t, byID[neverLoggedIn.String()]["last_login_at"])

	require.NoError(t, a.runtime.Reset(ctx, UsersReadModel))
	require.Equal(t, before, rows(), "the replay gives the same rows")
}
