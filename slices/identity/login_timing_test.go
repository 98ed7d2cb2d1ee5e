package identity

import (
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFailedLoginsAreIndistinguishable: an unknown email, a wrong password
// and a deactivated user get byte-identical 401 bodies, and their median
// response times differ by less than 20%.
//
// It measures with the default (production) hash parameters, so that the
// hash dominates as it does in production, through the real engine and
// store. The three kinds run interleaved, each round in a rotated order, so
// that machine noise (other processes, CPU frequency) falls on all three
// alike, and the heap is collected before each attempt, so that no attempt
// pays for another's garbage. Every attempt comes from its own client
// address, so the per-client throttle never answers; failed logins of a
// known email count towards its lock-out, so each known user fails at most
// MaxFailures-1 times. No listener runs, and the test is not parallel, so
// that nothing else in the process competes for the CPU.
//
// The medians are judged after each batch of rounds, on all rounds so far:
// on a quiet machine the first batch decides; when other processes make the
// machine noisy, more rounds let the medians settle before a verdict. A
// real difference does not shrink with more rounds, so it still fails.
func TestFailedLoginsAreIndistinguishable(t *testing.T) {
	const batch, batches = 30, 3 // rounds per batch (one attempt of each kind per round), and at most that many batches
	a := newAPIWith(t, apiOptions{config: Config{Hashing: DefaultHashParams}, noReadModel: true})
	store := a.svc.Store
	hash, err := DefaultHashParams.Hash(goodPassword)
	require.NoError(t, err)

	// Known users, enough that none reaches the lock-out.
	perUser := MaxFailures - 1
	rounds := 1 + batch*batches // one warm-up round
	users := func(deactivated bool) []string {
		var emails []string
		for range (rounds + perUser - 1) / perUser {
			id, email := newID(), freshEmail()
			given := []any{registered(id, email, hash)}
			if deactivated {
				given = append(given, UserDeactivated{UserID: id, At: now, By: "operator"})
			}
			givenEvents(t, store, given...)
			emails = append(emails, email)
		}
		return emails
	}
	wrong, deactivated := users(false), users(true)

	kinds := []struct {
		name  string
		login func(round int) response
	}{
		{"unknown email", func(int) response { return a.login(freshEmail(), goodPassword) }},
		{"wrong password", func(r int) response { return a.login(wrong[r/perUser], otherPassword) }},
		{"deactivated user", func(r int) response { return a.login(deactivated[r/perUser], goodPassword) }},
	}
	var body []byte
	elapsed := make([][]time.Duration, len(kinds))
	round := func(r int) {
		for j := range kinds {
			k := (r + j) % len(kinds) // each kind goes first, second and third in turn
			a.client = newClientAddr()
			runtime.GC()
			res := kinds[k].login(r)
			require.Equal(t, http.StatusUnauthorized, res.status, "%s: %s", kinds[k].name, res.raw)
			if body == nil {
				body = res.raw
				require.JSONEq(t, `{"code":"invalid_credentials","message":"invalid email or password"}`, string(body))
			}
			require.Equal(t, string(body), string(res.raw), "%s: the same bytes for every failure", kinds[k].name)
			if r > 0 {
				elapsed[k] = append(elapsed[k], res.elapsed)
			}
		}
	}
	round(0) // warm-up: connections, plans, caches

	var spread float64
	medians := make([]time.Duration, len(kinds))
	for b := range batches {
		for r := range batch {
			round(1 + b*batch + r)
		}
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
	require.Less(t, spread, 0.20, "median response times of the three failures must be within 20%%: %v", medians)
}
