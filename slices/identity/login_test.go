package identity

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/gwt"
)

func TestLoginRules(t *testing.T) {
	t.Parallel()
	bothWays(t, login, func(t *testing.T, spec gwt.Scenario[loginState, Login]) {
		t.Run("LogsIn", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "good")).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
		t.Run("WrongPasswordRecordsFailure", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "good")).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("other", nil)}).
				Then(t, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now, Reason: "wrong_password"})
		})
		t.Run("DeactivatedUserFails", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "good"), UserDeactivated{UserID: id, At: now.Add(-time.Minute), By: "operator"}).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now, Reason: "deactivated"})
		})
		t.Run("ChangedPasswordCounts", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "old"), UserPasswordChanged{UserID: id, PasswordHash: "new", At: now.Add(-time.Minute)}).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("new", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
		t.Run("DeactivatedUserVerifiesAHashToo", func(t *testing.T) {
			id, email := newID(), freshEmail()
			calls := 0
			spec.Given(registered(id, email, "good"), UserDeactivated{UserID: id, At: now.Add(-time.Minute), By: "operator"}).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", &calls)}).
				Then(t, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now, Reason: "deactivated"})
			require.Equal(t, 1, calls, "one hash verified, as for an active user")
		})
		t.Run("ReactivatedUserLogsIn", func(t *testing.T) {
			id, email := newID(), freshEmail()
			spec.Given(registered(id, email, "good"), UserDeactivated{UserID: id, At: now.Add(-2 * time.Minute), By: "operator"},
				UserActivated{UserID: id, At: now.Add(-time.Minute), By: "operator"}).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
		t.Run("UnknownEmailVerifiesADummyAndRecordsTheFailure", func(t *testing.T) {
			email := freshEmail()
			calls := 0
			spec.Given().When(Login{EmailHash: EmailHash(email), At: now, Verify: verifier("", &calls)}).
				Then(t, LoginFailedForUnknownEmail{EmailHash: EmailHash(email), At: now})
			require.Equal(t, 1, calls, "one hash verified, as for a known user")
		})
		t.Run("RegisteredAfterTheLookUpIsUnknown", func(t *testing.T) {
			email := freshEmail()
			calls := 0
			spec.Given(registered(newID(), email, "good")).
				When(Login{EmailHash: EmailHash(email), UserID: uuid.Nil, At: now, Verify: verifier("good", &calls)}).
				Then(t, LoginFailedForUnknownEmail{EmailHash: EmailHash(email), At: now})
			require.Equal(t, 1, calls, "the dummy hash, not the user's")
		})
		t.Run("UnknownEmailLockedAfterFiveRecentFailures", func(t *testing.T) {
			email := freshEmail()
			var given []any
			for i := range MaxFailures {
				given = append(given, LoginFailedForUnknownEmail{EmailHash: EmailHash(email), At: now.Add(-time.Duration(10-i) * time.Minute)})
			}
			calls := 0
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), At: now, Verify: verifier("", &calls)}).
				ThenError(t, &TooManyAttemptsError{RetryAfter: 5 * time.Minute})
			require.Zero(t, calls, "a locked login verifies nothing")
		})
		t.Run("FailuresBeforeRegistrationCount", func(t *testing.T) {
			id, email := newID(), freshEmail()
			var given []any
			for i := range MaxFailures {
				given = append(given, LoginFailedForUnknownEmail{EmailHash: EmailHash(email), At: now.Add(-time.Duration(10-i) * time.Minute)})
			}
			spec.Given(append(given, registered(id, email, "good"))...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				ThenError(t, &TooManyAttemptsError{RetryAfter: 5 * time.Minute})
		})
		t.Run("FourRecentFailuresDoNotLock", func(t *testing.T) {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, "good")}
			for i := range MaxFailures - 1 {
				given = append(given, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-time.Duration(i+1) * time.Minute), Reason: "wrong_password"})
			}
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
		t.Run("LockedAfterFiveRecentFailuresEvenWithTheRightPassword", func(t *testing.T) {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, "good")}
			for i := range 5 {
				given = append(given, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-time.Duration(10-i) * time.Minute), Reason: "wrong_password"})
			}
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				ThenError(t, &TooManyAttemptsError{RetryAfter: 5 * time.Minute})
		})
		t.Run("LockedWhateverTheReasonAndAfterASuccess", func(t *testing.T) {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, "good")}
			for i := range MaxFailures {
				reason := "wrong_password"
				if i%2 == 1 {
					reason = "deactivated"
				}
				given = append(given, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-time.Duration(14-i) * time.Minute), Reason: reason},
					UserLoggedIn{UserID: id, At: now.Add(-time.Duration(14-i)*time.Minute + time.Second)})
			}
			calls := 0
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", &calls)}).
				ThenError(t, &TooManyAttemptsError{RetryAfter: time.Minute})
			require.Zero(t, calls, "a locked login verifies nothing")
		})
		t.Run("AFailureExactlyFifteenMinutesAgoHasLeftTheWindow", func(t *testing.T) {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, "good")}
			for i := range MaxFailures {
				given = append(given, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-FailureWindow + time.Duration(i)*time.Minute), Reason: "wrong_password"})
			}
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
		t.Run("OldFailuresDoNotLock", func(t *testing.T) {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, "good")}
			for i := range 5 {
				given = append(given, UserLoginFailed{UserID: id, EmailHash: EmailHash(email), At: now.Add(-time.Duration(16+i) * time.Minute), Reason: "wrong_password"})
			}
			spec.Given(given...).
				When(Login{EmailHash: EmailHash(email), UserID: id, At: now, Verify: verifier("good", nil)}).
				Then(t, UserLoggedIn{UserID: id, At: now})
		})
	})
}

func TestRehashRules(t *testing.T) {
	t.Parallel()
	bothWays(t, rehash, func(t *testing.T, spec gwt.Scenario[user, Rehash]) {
		t.Run("ReplacesTheStaleHash", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "old")).
				When(Rehash{UserID: id, OldHash: "old", NewHash: "new", At: now}).
				Then(t, UserPasswordChanged{UserID: id, PasswordHash: "new", At: now, Rehash: true})
		})
		t.Run("LeavesAHashChangedMeanwhile", func(t *testing.T) {
			id := newID()
			spec.Given(registered(id, freshEmail(), "old"), UserPasswordChanged{UserID: id, PasswordHash: "other", At: now.Add(-time.Second)}).
				When(Rehash{UserID: id, OldHash: "old", NewHash: "new", At: now}).
				Then(t)
		})
	})
}

// TestLoginHTTP: POST /login through the real engine and store.
func TestLoginHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	email := freshEmail()
	id := a.register(email, goodPassword)

	before := time.Now()
	res := a.login(" "+strings.ToUpper(email)+" ", goodPassword)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	require.Equal(t, "Bearer", res.body["token_type"])
	expires, err := time.Parse(time.RFC3339, res.body["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, before.Add(15*time.Minute), expires, 2*time.Second, "15 minutes by default")
	sub, err := a.svc.Tokens.Verify(res.body["token"].(string), time.Now())
	require.NoError(t, err)
	require.Equal(t, id, sub)
	events := userEvents(t, a.svc.Store, id)
	require.IsType(t, UserLoggedIn{}, events[len(events)-1])

	wrong := a.login(email, otherPassword)
	require.Equal(t, http.StatusUnauthorized, wrong.status)
	require.JSONEq(t, `{"code":"invalid_credentials","message":"invalid email or password"}`, string(wrong.raw))
	events = userEvents(t, a.svc.Store, id)
	failed := events[len(events)-1].(UserLoginFailed)
	require.Equal(t, "wrong_password", failed.Reason)
	require.Equal(t, EmailHash(email), failed.EmailHash)

	unknown := a.login(freshEmail(), goodPassword)
	require.Equal(t, http.StatusUnauthorized, unknown.status)
	require.Equal(t, string(wrong.raw), string(unknown.raw))

	for _, c := range []struct{ name, body string }{
		{"MalformedJSON", `{"email":"` + email + `"`},
		{"UnknownField", `{"email":"` + email + `","password":"` + goodPassword + `","remember":true}`},
		{"NoPassword", `{"email":"` + email + `"}`},
		{"InvalidUTF8", "{\"email\":\"" + email + "\",\"password\":\"" + goodPassword + "\xc3\x28\"}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := a.send(request{method: "POST", path: "/login", body: c.body})
			require.Equal(t, http.StatusBadRequest, res.status, string(res.raw))
			require.Equal(t, "invalid_request", res.code())
		})
	}
	require.Len(t, userEvents(t, a.svc.Store, id), len(events), "a refused request records nothing")
}

// TestLoginLockOutHTTP: after 5 failed logins for one email within 15
// minutes, even the right password gets 429 with Retry-After, and the
// refused attempt records nothing.
func TestLoginLockOutHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	email := freshEmail()
	id := a.register(email, goodPassword)
	for i := range MaxFailures {
		res := a.login(email, otherPassword)
		require.Equal(t, http.StatusUnauthorized, res.status, "failure %d", i+1)
	}
	recorded := len(userEvents(t, a.svc.Store, id))

	res := a.login(email, goodPassword)
	require.Equal(t, http.StatusTooManyRequests, res.status, string(res.raw))
	require.Equal(t, "too_many_attempts", res.code())
	retry, err := strconv.Atoi(res.header.Get("Retry-After"))
	require.NoError(t, err)
	require.InDelta(t, FailureWindow.Seconds(), retry, 10, "until the first failure leaves the window")
	require.Len(t, userEvents(t, a.svc.Store, id), recorded, "a locked attempt records nothing")
	require.Equal(t, http.StatusTooManyRequests, a.login(email, otherPassword).status)
}

// TestLoginLockOutHidesRegisteredEmails: a registered email and an unknown
// one get the same answers, bytes and Retry-After included, through five
// failed logins and the lock-out after them: the lock-out does not tell
// which emails are registered. The unknown email's failures are recorded,
// LoginFailedForUnknownEmail tagged with its hash only, so the lock-out
// holds across replicas: the second replica refuses the sixth attempt.
func TestLoginLockOutHidesRegisteredEmails(t *testing.T) {
	t.Parallel()
	a, replica := newAPI(t), newAPIWith(t, apiOptions{noReadModel: true})
	known, unknown := freshEmail(), freshEmail()
	a.register(known, goodPassword)
	var answers [2][]response
	for i, email := range []string{known, unknown} {
		for range MaxFailures {
			answers[i] = append(answers[i], a.login(email, otherPassword))
		}
		answers[i] = append(answers[i], replica.login(email, goodPassword))
	}
	for n := range answers[0] {
		k, u := answers[0][n], answers[1][n]
		want := http.StatusUnauthorized
		if n == MaxFailures {
			want = http.StatusTooManyRequests
		}
		require.Equal(t, want, k.status, "attempt %d, registered email: %s", n+1, k.raw)
		require.Equal(t, want, u.status, "attempt %d, unknown email: %s", n+1, u.raw)
		require.Equal(t, string(k.raw), string(u.raw), "attempt %d: the same bytes", n+1)
		if n == MaxFailures {
			retry, err := strconv.Atoi(u.header.Get("Retry-After"))
			require.NoError(t, err)
			require.InDelta(t, FailureWindow.Seconds(), retry, 10, "until the first failure leaves the window")
		}
	}

	stored, err := a.svc.Store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{emailQuery(EmailHash(unknown))}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, MaxFailures, "one event a failure, none for the refused attempt")
	for _, e := range stored {
		require.Equal(t, "LoginFailedForUnknownEmail", e.Type)
		require.Equal(t, []string{emailTag(EmailHash(unknown))}, e.Tags, "tagged with the email hash only")
		require.NotContains(t, string(e.Data), unknown, "the address itself is not stored")
	}
}

// TestLoginThrottleHTTP: too many attempts from one client address get 429
// with Retry-After, whichever replica they reach: the count is in
// PostgreSQL. Another address is not affected; the addresses of one IPv6
// /64 count as one.
func TestLoginThrottleHTTP(t *testing.T) {
	t.Parallel()
	const limit = 3
	replicas := []*api{
		newAPIWith(t, apiOptions{config: Config{AttemptsPerMinute: limit}}),
		newAPIWith(t, apiOptions{config: Config{AttemptsPerMinute: limit}}),
	}
	pool := replicas[0].svc.Pool
	n := 0
	attempt := func(client string) response {
		n++
		return replicas[n%2].roundTrip(request{method: "POST", path: "/login", client: client,
			body: map[string]string{"email": freshEmail(), "password": goodPassword}})
	}
	// throttled makes limit+1 attempts from the clients in turn and reports
	// whether they all fell into one minute (else the count restarted, and
	// the caller tries again).
	throttled := func(key string, clients ...string) (bool, []response) {
		var out []response
		for i := range limit + 1 {
			out = append(out, attempt(clients[i%len(clients)]))
		}
		var windows int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM login_throttle WHERE client = $1`, key).Scan(&windows))
		return windows == 1, out
	}
	for _, c := range []struct {
		name    string
		clients func() []string
	}{
		{"IPv4", func() []string { return []string{newClientAddr()} }},
		{"IPv6", func() []string {
			n := clientCounter.Add(1)
			return []string{fmt.Sprintf("[2001:db8:%x:%x::1]:443", n>>16, n&0xffff), fmt.Sprintf("[2001:db8:%x:%x:ffff::2]:443", n>>16, n&0xffff)}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for try := 0; ; try++ {
				clients := c.clients()
				host, _, err := net.SplitHostPort(clients[0])
				require.NoError(t, err)
				oneWindow, res := throttled(throttleKey(host), clients...)
				if !oneWindow && try < 3 {
					continue // a minute began in the middle
				}
				for i := range limit {
					require.Equal(t, http.StatusUnauthorized, res[i].status, "attempt %d: %s", i+1, res[i].raw)
				}
				last := res[limit]
				require.Equal(t, http.StatusTooManyRequests, last.status, string(last.raw))
				require.Equal(t, "too_many_attempts", last.code())
				retry, err := strconv.Atoi(last.header.Get("Retry-After"))
				require.NoError(t, err)
				require.True(t, retry >= 1 && retry <= 60, "Retry-After %d: until the minute ends", retry)
				require.Equal(t, http.StatusUnauthorized, attempt(newClientAddr()).status, "another address is not throttled")
				return
			}
		})
	}

	// A burst of concurrent attempts from one address: each is counted
	// before it hashes, so exactly the limit are answered, the others
	// refused, and the refused ones spend no hash.
	t.Run("Burst", func(t *testing.T) {
		const burst = 12
		for try := 0; ; try++ {
			probe := probeHashes(nil, replicas[0].svc, replicas[1].svc)
			client := newClientAddr()
			host, _, err := net.SplitHostPort(client)
			require.NoError(t, err)
			start := make(chan struct{})
			results := make([]response, burst)
			emails := make([]eventstore.QueryItem, burst)
			var wg sync.WaitGroup
			for i := range burst {
				email := freshEmail()
				emails[i] = emailQuery(EmailHash(email))
				wg.Go(func() {
					<-start
					results[i] = replicas[i%2].roundTrip(request{method: "POST", path: "/login", client: client,
						body: map[string]string{"email": email, "password": goodPassword}})
				})
			}
			close(start)
			wg.Wait()
			var windows int
			require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM login_throttle WHERE client = $1`, throttleKey(host)).Scan(&windows))
			if windows > 1 && try < 3 {
				continue // a minute began in the middle
			}
			answered := 0
			for _, res := range results {
				switch res.status {
				case http.StatusUnauthorized:
					answered++
				case http.StatusTooManyRequests:
					require.Equal(t, "too_many_attempts", res.code())
				default:
					t.Fatalf("%d %s", res.status, res.raw)
				}
			}
			require.Equal(t, limit, answered, "exactly the limit is answered")
			require.EqualValues(t, limit, probe.total.Load(), "one hash for each answered attempt, none for a refused one")
			stored, err := replicas[0].svc.Store.Read(context.Background(), eventstore.Query{Items: emails}, eventstore.ReadOptions{})
			require.NoError(t, err)
			require.Len(t, stored, limit, "one recorded failure for each answered attempt: a client writes at most its limit")
			return
		}
	})
}

func TestThrottleKey(t *testing.T) {
	t.Parallel()
	require.Equal(t, "192.0.2.7", throttleKey("192.0.2.7"))
	require.Equal(t, "192.0.2.7", throttleKey("::ffff:192.0.2.7"), "an IPv4-mapped address is the IPv4 address")
	require.Equal(t, "2001:db8:1:2::/64", throttleKey("2001:db8:1:2:3:4:5:6"))
	require.Equal(t, throttleKey("2001:db8:1:2::1"), throttleKey("2001:db8:1:2:ffff::2"), "one /64, one count")
	require.NotEqual(t, throttleKey("2001:db8:1:2::1"), throttleKey("2001:db8:1:3::1"))
}

// TestRehashOnLogin: a password hashed with other parameters than the
// service's is re-hashed with the service's on the next successful login,
// and the login still works afterwards. A re-hash is no change of
// password: the tokens issued before it still work.
func TestRehashOnLogin(t *testing.T) {
	t.Parallel()
	cheap := newAPI(t)
	email := freshEmail()
	id := cheap.register(email, goodPassword)
	stronger := HashParams{MemoryKiB: 2048, Iterations: 2, Parallelism: 1}
	a := newAPIWith(t, apiOptions{config: Config{Hashing: stronger}})
	earlier, _, err := a.svc.Tokens.Issue(id, time.Now().Add(-2*time.Second))
	require.NoError(t, err)

	require.Equal(t, http.StatusOK, a.login(email, goodPassword).status)
	events := userEvents(t, a.svc.Store, id)
	require.Len(t, events, 3)
	require.IsType(t, UserLoggedIn{}, events[1])
	changed := events[2].(UserPasswordChanged)
	require.True(t, strings.HasPrefix(changed.PasswordHash, "$argon2id$v=19$m=2048,t=2,p=1$"), changed.PasswordHash)
	require.True(t, changed.Rehash)
	ok, stale := stronger.Verify(changed.PasswordHash, goodPassword)
	require.True(t, ok)
	require.False(t, stale)
	res := a.send(request{method: "GET", path: "/users/me", token: earlier})
	require.Equal(t, http.StatusOK, res.status, "a token from before the re-hash still works: %s", res.raw)

	require.Equal(t, http.StatusOK, a.login(email, goodPassword).status, "the new hash works")
	require.Equal(t, http.StatusUnauthorized, a.login(email, otherPassword).status)
	events = userEvents(t, a.svc.Store, id)
	require.Len(t, events, 5, "a current hash is not re-hashed")
	require.IsType(t, UserLoggedIn{}, events[3])
	require.IsType(t, UserLoginFailed{}, events[4])
}
