package tests

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// Security scenarios through the real server process: the operator token,
// the identity tokens, login enumeration, rate limits across replicas,
// secrets in the log, and SQL injection. Run them with -run Security.

// secret is a fresh random string of 43 URL-safe characters (32 bytes).
func secret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sendJSON is send with a JSON content type when there is a body.
func sendJSON(t testing.TB, method, base, path string, header http.Header, body any) Response {
	t.Helper()
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return send(t, method, base, path, h, body)
}

// bearer is the header of a bearer token.
func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// eventCount counts the events of a type in the server's log.
func (s *Server) eventCount(t testing.TB, typ string) int64 {
	t.Helper()
	return s.SQL(t, `SELECT count(*) AS n FROM events WHERE type = $1`, typ)[0]["n"].(int64)
}

// TestSecurityOperatorToken: with ADMIN_TOKEN set, every route of the
// operator API, and an unknown one, answers 401 to a request without the
// token, with another token, with the token changed in one byte, with a
// prefix of it and with it extended, and lets the token through; a refused
// append writes nothing. (The comparison itself is constant-time: see
// requireToken in cmd/server/admin.go.)
func TestSecurityOperatorToken(t *testing.T) {
	t.Parallel()
	token := secret()
	s := StartServer(t, ServerOptions{Env: map[string]string{"ADMIN_TOKEN": token}})
	flip := func(i int) string { b := []byte(token); b[i] ^= 1; return string(b) }
	wrong := map[string]http.Header{
		"none":          nil,
		"another token": bearer(secret()),
		"first byte":    bearer(flip(0)),
		"middle byte":   bearer(flip(len(token) / 2)),
		"last byte":     bearer(flip(len(token) - 1)),
		"prefix":        bearer(token[:len(token)-1]),
		"extended":      bearer(token + "x"),
		"empty":         bearer(""),
		"other scheme":  {"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+token))}},
		"no scheme":     {"Authorization": {token}},
	}
	appendBody := `{"events":[{"type":"OperatorProbe","tags":["probe:1"],"data":""}]}`
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/healthz", nil},
		{"GET", "/readyz", nil},
		{"GET", "/metrics", nil},
		{"GET", "/listeners", nil},
		{"GET", "/riverui/", nil},
		{"GET", "/riverui/api/jobs?state=available", nil},
		{"GET", "/debug/pprof/", nil},
		{"GET", "/debug/pprof/goroutine?debug=1", nil},
		{"GET", "/dcb/read?query=" + url.QueryEscape(`{"items":[]}`), nil},
		{"POST", "/dcb/append", appendBody},
	}
	for _, r := range routes {
		for name, h := range wrong {
			res := sendJSON(t, r.method, s.Admin, r.path, h, r.body)
			require.Equal(t, http.StatusUnauthorized, res.Status, "%s %s with %s: %s", r.method, r.path, name, res)
			require.Equal(t, "unauthorized", res.Code(), "%s %s with %s", r.method, r.path, name)
			require.NotEmpty(t, res.Header.Get("WWW-Authenticate"))
		}
	}
	// Nor is the token a credential in the URL.
	res := sendJSON(t, "GET", s.Admin, "/listeners?token="+token+"&access_token="+token, nil, nil)
	require.Equal(t, http.StatusUnauthorized, res.Status, "%s", res)
	for _, path := range []string{"/debug/pprof/profile", "/debug/pprof/trace", "/nope"} {
		require.Equal(t, http.StatusUnauthorized, sendJSON(t, "GET", s.Admin, path, nil, nil).Status, path)
	}
	require.Zero(t, s.eventCount(t, "OperatorProbe"), "no refused append wrote anything")

	for _, r := range routes {
		res := sendJSON(t, r.method, s.Admin, r.path, bearer(token), r.body)
		require.True(t, res.Status >= 200 && res.Status < 300, "%s %s with the token: %s", r.method, r.path, res)
	}
	require.Equal(t, int64(1), s.eventCount(t, "OperatorProbe"))
}

// forge signs claims with key and method, for the tokens a server must
// refuse.
func forge(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return token
}

// with returns a copy of m (claims, a body) with key set to value, or
// removed when value is nil.
func with(m map[string]any, key string, value any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	if value == nil {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}

// registerAndLogin registers a user and logs in, returning the user's id
// and token.
func registerAndLogin(t testing.TB, s *Server, email, password string) (string, string) {
	t.Helper()
	reg := s.Post(t, "/users", map[string]string{"email": email, "password": password})
	require.Equal(t, http.StatusCreated, reg.Status, "%s", reg)
	login := s.Post(t, "/login", map[string]string{"email": email, "password": password})
	require.Equal(t, http.StatusOK, login.Status, "%s", login)
	return reg.JSON(t)["user_id"].(string), login.JSON(t)["token"].(string)
}

// TestSecurityJWT: the routes that need a user's token refuse, with 401
// invalid_token and changing nothing, every token but a valid one of an
// active user: none, alg none, another key, another HS algorithm, expired,
// not yet valid, issued in the future, another issuer or audience, no exp,
// a payload altered under the signature, and the token of a deactivated
// user.
func TestSecurityJWT(t *testing.T) {
	t.Parallel()
	key, admin := secret(), secret()
	s := StartServer(t, ServerOptions{Env: map[string]string{"JWT_SECRET": key, "ADMIN_TOKEN": admin}})
	const password = "an unusual phrase for the token test"
	id, token := registerAndLogin(t, s, "jwt-"+uuid.NewString()+"@example.com", password)
	otherID, _ := registerAndLogin(t, s, "jwt-other-"+uuid.NewString()+"@example.com", password)

	now := time.Now()
	valid := jwt.MapClaims{"iss": "dcbkit", "aud": []string{"dcbkit-api"}, "sub": id,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": uuid.NewString()}
	hs256 := jwt.SigningMethodHS256
	parts := strings.Split(token, ".")
	alteredPayload := strings.Split(forge(t, hs256, []byte("any"), with(valid, "sub", otherID)), ".")[1]

	me := func(token string) Response { return sendJSON(t, "GET", s.HTTP, "/users/me", bearer(token), nil) }
	require.Equal(t, http.StatusOK, me(token).Status, "the token of /login")
	require.Equal(t, http.StatusOK, me(forge(t, hs256, []byte(key), valid)).Status,
		"the claims spoilt below are valid as they are")

	refused := map[string]string{
		"none":             "",
		"garbage":          "not.a.token",
		"alg none":         forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid),
		"another key":      forge(t, hs256, []byte(secret()), valid),
		"HS512":            forge(t, jwt.SigningMethodHS512, []byte(key), valid),
		"expired":          forge(t, hs256, []byte(key), with(valid, "exp", now.Add(-time.Minute).Unix())),
		"not yet valid":    forge(t, hs256, []byte(key), with(valid, "nbf", now.Add(time.Hour).Unix())),
		"issued later":     forge(t, hs256, []byte(key), with(valid, "iat", now.Add(time.Hour).Unix())),
		"another issuer":   forge(t, hs256, []byte(key), with(valid, "iss", "somebody-else")),
		"another audience": forge(t, hs256, []byte(key), with(valid, "aud", []string{"another-api"})),
		"no expiry":        forge(t, hs256, []byte(key), with(valid, "exp", nil)),
		"altered payload":  parts[0] + "." + alteredPayload + "." + parts[2],
		"no signature":     parts[0] + "." + parts[1] + ".",
		"unknown user":     forge(t, hs256, []byte(key), with(valid, "sub", uuid.NewString())),
	}
	protected := []struct {
		method, path string
		body         any
	}{
		{"GET", "/users/me", nil},
		{"POST", "/users/me/password", map[string]string{"current_password": password, "new_password": "a brand new and long phrase"}},
		{"POST", "/users/" + id + "/deactivate", nil},
	}
	check := func(name, token string) {
		for _, p := range protected {
			res := sendJSON(t, p.method, s.HTTP, p.path, bearer(token), p.body)
			require.Equal(t, http.StatusUnauthorized, res.Status, "%s %s with %s: %s", p.method, p.path, name, res)
			require.JSONEq(t, `{"code":"invalid_token","message":"a valid bearer token is required"}`, string(res.Body), name)
			require.Equal(t, `Bearer realm="dcbkit"`, res.Header.Get("WWW-Authenticate"), name)
		}
	}
	for name, token := range refused {
		check(name, token)
	}
	require.Equal(t, http.StatusUnauthorized, me(admin).Status, "the operator is nobody's user")
	require.Zero(t, s.eventCount(t, "UserDeactivated"), "no refused token deactivated anybody")
	require.Zero(t, s.eventCount(t, "UserPasswordChanged"), "no refused token changed a password")
	require.Equal(t, http.StatusOK, me(token).Status)

	// Deactivated: the user's tokens stop working at once.
	res := sendJSON(t, "POST", s.HTTP, "/users/"+id+"/deactivate", bearer(admin), nil)
	require.Equal(t, http.StatusNoContent, res.Status, "%s", res)
	check("the token of a deactivated user", token)
	check("a fresh token of a deactivated user", forge(t, hs256, []byte(key), valid))
}

// TestSecurityLoginEnumeration: through the real server with the default
// (production) hash parameters, an unknown email, a wrong password and a
// deactivated user get the same status, headers and body bytes, and median
// response times within 20% of each other.
//
// The three kinds run interleaved, each round in a rotated order, so that
// noise falls on all three alike; the test is not parallel, so that the
// other tests of this package do not run meanwhile. The per-client throttle
// is set out of reach. The medians are judged after each batch on all rounds so far:
// on a quiet machine the first batch decides, a noisy one gets more rounds
// before the verdict, and a real difference (a skipped hash costs all of a
// login's time) does not shrink with more rounds.
func TestSecurityLoginEnumeration(t *testing.T) {
	// A batch is a multiple of three rounds, so that each kind goes first,
	// second and third equally often; perUser keeps a known email below its
	// lock-out at 5 failures.
	const batch, maxBatches, perUser = 9, 5, 4
	admin := secret()
	s := StartServer(t, ServerOptions{Env: map[string]string{
		"ADMIN_TOKEN": admin, "HASH_MEMORY_KIB": "19456", "HASH_ITERATIONS": "2", "LOGIN_ATTEMPTS_PER_MINUTE": "100000",
	}})
	const password = "an unusual phrase for the timing test"
	// Known users, registered before the rounds that need them.
	var wrong, deactivated []string
	register := func(emails *[]string, deactivate bool, round int) {
		for len(*emails) <= round/perUser {
			email := "timing-" + uuid.NewString() + "@example.com"
			reg := s.Post(t, "/users", map[string]string{"email": email, "password": password})
			require.Equal(t, http.StatusCreated, reg.Status, "%s", reg)
			if deactivate {
				res := sendJSON(t, "POST", s.HTTP, "/users/"+reg.JSON(t)["user_id"].(string)+"/deactivate", bearer(admin), nil)
				require.Equal(t, http.StatusNoContent, res.Status, "%s", res)
			}
			*emails = append(*emails, email)
		}
	}
	kinds := []struct {
		name            string
		email, password func(round int) string
	}{
		{"unknown email", func(int) string { return "timing-" + uuid.NewString() + "@example.com" }, func(int) string { return password }},
		{"wrong password", func(r int) string { return wrong[r/perUser] }, func(int) string { return "not the password of this user" }},
		{"deactivated user", func(r int) string { return deactivated[r/perUser] }, func(int) string { return password }},
	}

	var first *Response
	elapsed := make([][]time.Duration, len(kinds))
	round := func(r int) {
		for j := range kinds {
			k := (r + j) % len(kinds) // each kind goes first, second and third in turn
			body := map[string]string{"email": kinds[k].email(r), "password": kinds[k].password(r)}
			start := time.Now()
			res := s.Post(t, "/login", body)
			took := time.Since(start)
			require.Equal(t, http.StatusUnauthorized, res.Status, "%s: %s", kinds[k].name, res)
			if first == nil {
				first = &res
				require.JSONEq(t, `{"code":"invalid_credentials","message":"invalid email or password"}`, string(res.Body))
			}
			require.Equal(t, string(first.Body), string(res.Body), "%s: the same bytes for every failure", kinds[k].name)
			require.Equal(t, headerShape(first.Header), headerShape(res.Header), "%s: the same headers", kinds[k].name)
			if r > 0 {
				elapsed[k] = append(elapsed[k], took)
			}
		}
	}
	rounds := func(from, to int) {
		register(&wrong, false, to)
		register(&deactivated, true, to)
		for r := from; r <= to; r++ {
			round(r)
		}
	}
	rounds(0, 0) // warm-up: connections, plans, caches

	var spread float64
	medians := make([]time.Duration, len(kinds))
	for b := range maxBatches {
		rounds(1+b*batch, (b+1)*batch)
		for k := range kinds {
			sorted := slices.Sorted(slices.Values(elapsed[k]))
			medians[k] = sorted[len(sorted)/2]
			t.Logf("after %d rounds: %-16s median %v (min %v, max %v)", len(sorted), kinds[k].name, medians[k], sorted[0], sorted[len(sorted)-1])
		}
		fastest, slowest := slices.Min(medians), slices.Max(medians)
		if spread = float64(slowest-fastest) / float64(fastest); spread < 0.20 {
			break
		}
	}
	t.Logf("spread of the medians: %.1f%%", 100*spread)
	require.Less(t, spread, 0.20, "median response times of the three failures must be within 20%%: %v", medians)
}

// headerShape is a response's headers without those that differ on every
// response (date, request id).
func headerShape(h http.Header) http.Header {
	out := h.Clone()
	out.Del("Date")
	out.Del("X-Request-Id")
	return out
}

// attemptsUntilRefused logs in through servers in turn, attempt i from the
// client address from(i), until one answers 429 too_many_attempts, and
// returns the number of that attempt; every attempt before must be 401.
func attemptsUntilRefused(t testing.TB, servers []*Server, email func(i int) string, password string, from func(i int) string) int {
	t.Helper()
	for i := 1; i <= 20; i++ {
		s := servers[i%len(servers)]
		res := sendJSON(t, "POST", s.HTTP, "/login", http.Header{"X-Forwarded-For": {from(i)}},
			map[string]string{"email": email(i), "password": password})
		if res.Status == http.StatusTooManyRequests {
			require.Equal(t, "too_many_attempts", res.Code(), "%s", res)
			require.NotEmpty(t, res.Header.Get("Retry-After"))
			return i
		}
		require.Equal(t, http.StatusUnauthorized, res.Status, "attempt %d: %s", i, res)
	}
	t.Fatalf("20 failed logins and no 429")
	return 0
}

// TestSecurityRateLimitsAcrossReplicas: two replicas on one database lock
// an email out, and refuse a client address, after as many attempts in
// total as one replica alone does: the lock-out (5 failures of an email in
// 15 minutes) and the per-client limit (LOGIN_ATTEMPTS_PER_MINUTE, here 6)
// are counted in PostgreSQL.
func TestSecurityRateLimitsAcrossReplicas(t *testing.T) {
	t.Parallel()
	const perMinute = 6
	broker := StartBroker(t)
	db := eventstoretest.DatabaseURL(t)
	opts := ServerOptions{DatabaseURL: db, KafkaBrokers: broker.Addr, Env: map[string]string{
		"TRUSTED_PROXIES": "127.0.0.1", "LOGIN_ATTEMPTS_PER_MINUTE": strconv.Itoa(perMinute),
	}}
	a, b := StartServer(t, opts), StartServer(t, opts)
	one, both := []*Server{a}, []*Server{a, b}

	// The email lock-out, each attempt from another address so that the
	// per-client limit stays out of the way.
	var addr int
	fresh := func(int) string { addr++; return fmt.Sprintf("198.51.100.%d", addr) }
	const password = "an unusual phrase for the replica test"
	lockedOut := func(servers []*Server) int {
		email := "replicas-" + uuid.NewString() + "@example.com"
		require.Equal(t, http.StatusCreated, a.Post(t, "/users", map[string]string{"email": email, "password": password}).Status)
		n := attemptsUntilRefused(t, servers, func(int) string { return email }, "not the password of this user", fresh)
		for _, s := range both {
			res := sendJSON(t, "POST", s.HTTP, "/login", http.Header{"X-Forwarded-For": {fresh(0)}},
				map[string]string{"email": email, "password": password})
			require.Equal(t, http.StatusTooManyRequests, res.Status, "the right password, once locked out: %s", res)
		}
		return n
	}
	alone, together := lockedOut(one), lockedOut(both)
	t.Logf("email locked out at attempt %d on one replica, %d on two", alone, together)
	require.Equal(t, 6, alone, "5 failures, then 429")
	require.Equal(t, alone, together)

	// The per-client limit, with a new unknown email at every attempt (an
	// email, known or not, is locked out after 5 failures). It counts per minute of PostgreSQL's
	// clock: attempts that straddled a minute are repeated from another
	// address, in a minute that has just begun.
	var client int
	minute := func() time.Time { return a.SQL(t, `SELECT date_trunc('minute', now()) AS m`)[0]["m"].(time.Time) }
	refusedClient := func(servers []*Server) int {
		for try := 0; ; try++ {
			client++
			from := fmt.Sprintf("203.0.113.%d", client)
			began := minute()
			n := attemptsUntilRefused(t, servers, func(int) string { return "nobody-" + uuid.NewString() + "@example.com" }, password, func(int) string { return from })
			if minute().Equal(began) {
				return n
			}
			require.Zero(t, try, "a minute turned twice")
		}
	}
	alone, together = refusedClient(one), refusedClient(both)
	t.Logf("client refused at attempt %d on one replica, %d on two", alone, together)
	require.Equal(t, perMinute+1, alone)
	require.Equal(t, alone, together)
}

// withPassword puts password into a database URL's user information, and
// adds the parameters of query ("k=v&…") to its query.
func withPassword(t testing.TB, databaseURL, password, query string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), password)
	if query != "" && u.RawQuery != "" {
		query = "&" + query
	}
	u.RawQuery += query
	return u.String()
}

// TestSecuritySecretsNotLogged: at LOG_LEVEL=debug, the server's stdout and
// stderr hold none of the secrets it handles, from start to stop: a user's
// password and a wrong one, the password's hash, the user's token (and its
// signature alone), JWT_SECRET, ADMIN_TOKEN and a near miss of it, and the
// database password (in DATABASE_URL; trust authentication accepts any),
// also while the database refuses connections. The operator's readiness
// answer during that outage does not hold the database password either.
func TestSecuritySecretsNotLogged(t *testing.T) {
	t.Parallel()
	jwtSecret, admin, dbPassword := secret(), secret(), secret()
	db := eventstoretest.DatabaseURL(t)
	s := StartServer(t, ServerOptions{
		DatabaseURL: withPassword(t, db, dbPassword, ""),
		Env:         map[string]string{"LOG_LEVEL": "debug", "JWT_SECRET": jwtSecret, "ADMIN_TOKEN": admin},
		// The database outage below is logged as errors on purpose.
		AllowErrorLogs: true,
	})
	const password, wrongPassword = "an unusual phrase for the log test", "a wrong phrase for the log test"
	id, token := registerAndLogin(t, s, "logs-"+uuid.NewString()+"@example.com", password)
	require.Equal(t, http.StatusOK, sendJSON(t, "GET", s.HTTP, "/users/me", bearer(token), nil).Status)
	require.Equal(t, http.StatusUnauthorized, sendJSON(t, "GET", s.HTTP, "/users/me?access_token="+token, nil, nil).Status)
	require.Equal(t, http.StatusUnauthorized, sendJSON(t, "GET", s.HTTP, "/users/me", bearer(token+"x"), nil).Status)
	require.Equal(t, http.StatusUnauthorized, sendJSON(t, "POST", s.HTTP, "/users/me/password", bearer(token),
		map[string]string{"current_password": wrongPassword, "new_password": wrongPassword + " again"}).Status)
	for _, email := range []string{"logs-" + uuid.NewString() + "@example.com", "not an address"} {
		res := s.Post(t, "/login", map[string]string{"email": email, "password": wrongPassword})
		require.Equal(t, http.StatusUnauthorized, res.Status, "%s", res)
	}
	nearMiss := admin[:len(admin)-1] + "!"
	require.Equal(t, http.StatusOK, sendJSON(t, "GET", s.Admin, "/listeners", bearer(admin), nil).Status)
	require.Equal(t, http.StatusUnauthorized, sendJSON(t, "GET", s.Admin, "/listeners", bearer(nearMiss), nil).Status)

	// A database outage: connections cut and refused, then allowed again.
	u, err := url.Parse(db)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	allowConnections := func(allow bool) {
		querySQL(t, eventstoretest.ServerURL(), fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %t`, pgx.Identifier{name}.Sanitize(), allow))
	}
	allowConnections(false)
	t.Cleanup(func() { allowConnections(true) }) // before the server stops, should the test fail meanwhile
	querySQL(t, eventstoretest.ServerURL(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name)
	var outage Response
	eventually(t, 30*time.Second, func() error {
		outage = sendJSON(t, "GET", s.Admin, "/readyz", bearer(admin), nil)
		if outage.Status != http.StatusServiceUnavailable || !strings.Contains(string(outage.Body), "failed to connect") {
			return fmt.Errorf("readyz during the outage: %s", outage)
		}
		return nil
	})
	res := sendJSON(t, "GET", s.HTTP, "/users/me", bearer(token), nil)
	require.Equal(t, http.StatusServiceUnavailable, res.Status, "%s", res)
	require.Equal(t, "unavailable", res.Code())
	// The reconnecting components log the refused connections, error text
	// included: the lines the secrets must not be in.
	s.WaitLog(t, 30*time.Second, "the outage logged", func(l LogLine) bool { return strings.Contains(l.Raw, "failed to connect") })
	allowConnections(true)
	eventually(t, 30*time.Second, func() error {
		if r := sendJSON(t, "GET", s.Admin, "/readyz", bearer(admin), nil); r.Status != http.StatusOK {
			return fmt.Errorf("readyz after the outage: %s", r)
		}
		return nil
	})
	s.Stop()

	hash := s.SQL(t, `SELECT convert_from(data, 'UTF8')::jsonb->>'password_hash' AS h FROM events
		WHERE type = 'UserRegistered' AND $1 = ANY (tags)`, "user_id:"+id)[0]["h"].(string)
	phc := strings.Split(hash, "$") // "", "argon2id", "v=19", "m=…,t=…,p=…", salt, digest
	require.Len(t, phc, 6, hash)
	secrets := map[string]string{
		"password": password, "wrong password": wrongPassword, "hash": hash, "salt": phc[4], "digest": phc[5],
		"token": token, "token signature": strings.Split(token, ".")[2], "JWT_SECRET": jwtSecret,
		"ADMIN_TOKEN": admin, "near miss of ADMIN_TOKEN": nearMiss, "database password": dbPassword,
	}
	var out strings.Builder
	for _, l := range s.Log() {
		out.WriteString(l.Raw + "\n")
	}
	out.WriteString(s.Stderr())
	log := out.String()
	require.GreaterOrEqual(t, strings.Count(log, `"msg":"http request"`), 12, "the requests were logged")
	require.Contains(t, log, "failed to connect", "the outage was logged")
	for name, value := range secrets {
		require.NotContains(t, log, value, "the %s is in the log", name)
		require.NotContains(t, string(outage.Body), value, "the %s is in the readiness answer", name)
	}
}

// TestSecuritySecretsNotInStartupErrors: a server that cannot start says why
// on stderr without the secrets of its configuration: a database URL
// that does not parse, and a configuration refused as a whole.
func TestSecuritySecretsNotInStartupErrors(t *testing.T) {
	t.Parallel()
	jwtSecret, admin, dbPassword := "too-short-"+secret()[:8], secret(), secret()
	for _, c := range []struct {
		name, want string
		env        map[string]string
	}{
		{"unparsable database URL", "DATABASE_URL", map[string]string{
			"DATABASE_URL": withPassword(t, eventstoretest.ServerURL(), dbPassword, "pool_max_conns=lots"),
			"JWT_SECRET":   secret() + secret(), "ADMIN_TOKEN": admin,
		}},
		{"invalid configuration", "JWT_SECRET", map[string]string{
			"DATABASE_URL": withPassword(t, eventstoretest.ServerURL(), dbPassword, ""),
			"JWT_SECRET":   jwtSecret, "ADMIN_TOKEN": admin, "ENVIRONMENT": "production", "LOG_LEVEL": "loud",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, serverBin)
			cmd.Dir = t.TempDir()
			cmd.Env = processEnv(c.env)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the server must not start: %s", out)
			require.Contains(t, string(out), c.want, "it says why")
			for name, value := range map[string]string{"JWT_SECRET": jwtSecret, "ADMIN_TOKEN": admin, "database password": dbPassword} {
				require.NotContains(t, string(out), value, "the %s is in the output", name)
			}
		})
	}
}

// injections are classic SQL injection strings, and a NUL, which
// PostgreSQL's text cannot hold.
var injections = []string{
	"' OR '1'='1",
	"'OR'1'='1'--", // a valid local part of an email address
	"'; DROP TABLE events; --",
	"1); DELETE FROM events WHERE (1=1",
	"$$; SELECT pg_sleep(5); $$",
	`\x00`,
	"\x00",
}

// TestSecuritySQLInjection: every string field of the public API, of the
// Kafka messages and of the operator's DCB append either refuses each
// injection string with a 4xx (a rejected message, for Kafka) or stores it
// verbatim, as the API, the read models and the tables give it back byte
// for byte; no request takes the 5 s of an injected pg_sleep; afterwards
// every table is there and the log holds exactly the events of the accepted
// requests.
func TestSecuritySQLInjection(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{Env: map[string]string{"READ_MODEL_WAIT": "5s"}})
	var registered, added, changed int64
	// call sends a request and requires an answer in time and one of the
	// statuses ok.
	call := func(t *testing.T, method, path string, header http.Header, body any, ok ...int) Response {
		t.Helper()
		start := time.Now()
		res := sendJSON(t, method, s.HTTP, path, header, body)
		took := time.Since(start)
		require.Less(t, took, 4*time.Second, "%s %s took %v, as an injected pg_sleep(5) would", method, path, took)
		require.Contains(t, ok, res.Status, "%s %s %v: %s", method, path, body, res)
		return res
	}
	const password = "a long enough password for the injections "
	for _, inj := range injections {
		t.Run(fmt.Sprintf("%q", inj), func(t *testing.T) {
			// Identity: email, password, current and new password, user id.
			email := inj + "@example.com"
			if call(t, "POST", "/users", nil, map[string]string{"email": email, "password": password}, 201, 400).Status == 201 {
				registered++
				token := call(t, "POST", "/login", nil, map[string]string{"email": email, "password": password}, 200).JSON(t)["token"].(string)
				me := call(t, "GET", "/users/me", bearer(token), nil, 200).JSON(t)
				require.Equal(t, strings.ToLower(email), me["email"], "the email as stored")
			}
			email = "injection-" + uuid.NewString() + "@example.com"
			if call(t, "POST", "/users", nil, map[string]string{"email": email, "password": password + inj}, 201, 400).Status == 201 {
				registered++
				call(t, "POST", "/login", nil, map[string]string{"email": email, "password": inj}, 401)
				token := call(t, "POST", "/login", nil, map[string]string{"email": email, "password": password + inj}, 200).JSON(t)["token"].(string)
				call(t, "POST", "/users/me/password", bearer(token), map[string]string{"current_password": inj, "new_password": password}, 401)
				call(t, "POST", "/users/me/password", bearer(token), map[string]string{"current_password": password + inj, "new_password": inj + password}, 204)
				changed++
				call(t, "POST", "/login", nil, map[string]string{"email": email, "password": inj + password}, 200)
				call(t, "POST", "/users/"+url.PathEscape(inj)+"/deactivate", bearer(token), nil, 400, 404)
			}
			call(t, "POST", "/login", nil, map[string]string{"email": inj, "password": inj}, 400, 401)

			// The cart: free text stored verbatim, ids and prices refused.
			cart, product := newID(), newID()
			item := map[string]any{"cart_id": cart, "item_id": newID(), "product_id": product,
				"description": "socks " + inj, "image": inj + ".png", "price": "1.5"}
			if res := call(t, "POST", "/additem/"+cart.String(), nil, item, 200, 400); res.Status == 200 {
				added++
				at := position(t, res)
				for _, path := range []string{"/cartitems", "/cartitemsfromdb?min_position=" + strconv.FormatInt(at, 10)} {
					items := call(t, "GET", "/"+cart.String()+path, nil, nil, 200).JSON(t)["items"].([]any)
					require.Len(t, items, 1, path)
					got := items[0].(map[string]any)
					require.Equal(t, item["description"], got["description"], path)
					require.Equal(t, item["image"], got["image"], path)
				}
				row := s.SQL(t, `SELECT description, image FROM cart_items WHERE cart_id = $1`, cart)
				require.Equal(t, []map[string]any{{"description": item["description"], "image": item["image"]}}, row)
			}
			for _, field := range []string{"cart_id", "item_id", "product_id", "price"} {
				bad := with(item, field, inj)
				call(t, "POST", "/additem/"+cart.String(), nil, bad, 400)
			}
			for _, path := range []string{"/additem/", "/removeitem/", "/clearcart/", "/submitcart/", "/changeinventory/", "/changeprice/"} {
				call(t, "POST", path+url.PathEscape(inj), nil, map[string]any{}, 400, 404)
			}
			call(t, "POST", "/changeinventory/"+product.String(), nil, map[string]any{"product_id": inj, "inventory": 1}, 400)
			call(t, "POST", "/changeprice/"+product.String(), nil, map[string]any{"old_price": inj, "new_price": "1"}, 400)
			call(t, "POST", "/removeitem/"+cart.String(), nil, map[string]any{"item_id": inj}, 400)
			for _, path := range []string{"/" + url.PathEscape(inj) + "/cartitems", "/" + url.PathEscape(inj) + "/cartitemsfromdb",
				"/inventories/" + url.PathEscape(inj), "/cartswithproducts/" + url.PathEscape(inj),
				"/" + cart.String() + "/cartitemsfromdb?min_position=" + url.QueryEscape(inj)} {
				call(t, "GET", path, nil, nil, 400, 404)
			}

			// Kafka: refused messages are kept byte for byte.
			quoted, err := json.Marshal(inj)
			require.NoError(t, err)
			messages := map[string]string{
				"inventories":   fmt.Sprintf(`{"product_uuid":%s,"inventory":1}`, quoted),
				"price-changes": fmt.Sprintf(`{"product_uuid":"%s","old_price":%s,"new_price":"1"}`, newID(), quoted),
			}
			for topic, value := range messages {
				produce(t, s.Broker, topic, -1, inj, value)
			}
			eventually(t, kafkaWait, func() error {
				for topic, value := range messages {
					rows := s.SQL(t, `SELECT 1 FROM rejected_messages WHERE topic = $1 AND key = $2 AND value = $3`, topic, []byte(inj), []byte(value))
					if len(rows) != 1 {
						return fmt.Errorf("%d rejected messages of %s", len(rows), topic)
					}
				}
				return nil
			})

			// The operator's DCB append: types, tags and data verbatim.
			data := `{"text":` + string(quoted) + `}`
			event := map[string]any{"type": "Probe" + inj, "tags": []string{"probe:" + inj}, "data": data}
			res := sendJSON(t, "POST", s.Admin, "/dcb/append", nil, map[string]any{"events": []any{event}})
			require.Contains(t, []int{200, 400}, res.Status, "%s", res)
			if res.Status == 200 {
				got := s.readEvents(t, map[string]any{"items": []any{map[string]any{"tags": event["tags"]}}}, nil)
				require.Len(t, got, 1)
				require.Equal(t, event["type"], got[0].Type)
				require.Equal(t, event["tags"], got[0].Tags)
				require.Equal(t, inj, got[0].Data["text"])
				require.Equal(t, []byte(data), s.SQL(t, `SELECT data FROM events WHERE position = $1`, got[0].Position)[0]["data"])
			}
		})
	}

	t.Logf("stored verbatim: %d users, %d password changes, %d cart items", registered, changed, added)
	require.Equal(t, int64(len(injections)-1), added, "every injection but NUL is a valid description")
	for _, table := range []string{"events", "event_keys", "users", "login_throttle", "cart_items", "cart_items_carts",
		"inventories", "carts_with_products", "kafka_offsets", "rejected_messages", "listener_checkpoints"} {
		require.NotNil(t, s.SQL(t, `SELECT to_regclass($1) AS t`, table)[0]["t"], "table %s", table)
	}
	for typ, want := range map[string]int64{"UserRegistered": registered, "UserPasswordChanged": changed,
		"CartItemAdded": added, "CartCreated": added, "InventoryChanged": 0, "PriceChanged": 0} {
		require.Equal(t, want, s.eventCount(t, typ), typ)
	}
	var listeners []struct {
		Name      string
		LastError string `json:"last_error"`
	}
	s.AdminGet(t, "/listeners").Decode(t, &listeners)
	for _, l := range listeners {
		require.Empty(t, l.LastError, "listener %s", l.Name)
	}
}
