package identity

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/httpapi"
)

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	p := PasswordPolicy{MinLength: 15, MaxLength: 128}
	require.NoError(t, p.Check("a long and unusual phrase"))
	require.NoError(t, p.Check("ééééééééééééééé"), "15 code points, more bytes")
	require.ErrorIs(t, p.Check("short one"), ErrWeakPassword)
	require.ErrorContains(t, p.Check("ﬀﬀﬀﬀﬀﬀﬀ"), "at least 15", "NFKC turns each ligature into two letters: 14")
	require.ErrorContains(t, p.Check(strings.Repeat("x", 129)), "at most 128")
	require.ErrorContains(t, p.Check("PasswordPassword"), "common")
	require.ErrorContains(t, p.Check("correct horse battery staple"), "common")
	require.ErrorIs(t, p.Check("\xff\xfe invalid utf8 bytes"), ErrWeakPassword)
	require.ErrorContains(t, p.Check("\ufffd a long and unusual phrase"), "UTF-8", "U+FFFD is what undecodable text became")
	require.ErrorContains(t, p.Check(strings.Repeat("x", 1<<20)), "at most 128", "a huge input is refused before normalising")
	require.NoError(t, p.Check(strings.Repeat("\u03b1\u0313\u0300\u0345", 20)), "80 code points that NFKC composes into 20 (U+1F82)")
	require.ErrorContains(t, p.Check(strings.Repeat("\u03b1\u0313\u0300\u0345", 129)), "at most 128", "4 × 129 code points, 129 after NFKC")
}

func TestHashing(t *testing.T) {
	t.Parallel()
	h, err := testHashing.Hash("a long and unusual phrase")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$"))
	ok, stale := testHashing.Verify(h, "a long and unusual phrase")
	require.True(t, ok)
	require.False(t, stale)
	ok, _ = testHashing.Verify(h, "a long and unusual phrasE")
	require.False(t, ok)
	ok, stale = DefaultHashParams.Verify(h, "a long and unusual phrase")
	require.True(t, ok, "an old hash still verifies")
	require.True(t, stale, "and is known to be stale")
	h2, err := testHashing.Hash("a long and unusual phrase")
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salted")
	salt, key := strings.Split(h, "$")[4], strings.Split(h, "$")[5]
	for _, bad := range []string{
		"", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=x$c2FsdA$a2V5", "$argon2id$v=19$m=1024,t=1,p=1$!!$a2V5",
		// argon2 panics on these parameters; a stored hash must not crash a login.
		"$argon2id$v=19$m=1024,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=1024,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=7,t=1,p=1$" + salt + "$" + key,
		// Not in the one spelling.
		"$argon2id$v=19$m=1024,t=1,p=1x$" + salt + "$" + key,
		"$argon2id$v=19$m=01024,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=1024,t=1,p=1$" + salt + "$" + key,
		"x$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$",
	} {
		ok, _ := testHashing.Verify(bad, goodPassword)
		require.False(t, ok, bad)
	}
	ok, stale = testHashing.Verify("$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$"+key, goodPassword)
	require.False(t, ok)
	require.True(t, stale, "a salt of another length is stale")
}

// FuzzParsePHC: no stored string makes the parser panic, and whatever it
// accepts argon2 accepts too (it panics on zero iterations or parallelism,
// or on less than 8 KiB per lane) and is spelt the one way Hash spells it.
func FuzzParsePHC(f *testing.F) {
	h, err := testHashing.Hash(goodPassword)
	require.NoError(f, err)
	for _, seed := range []string{h, "", "$argon2id$v=19$m=0,t=0,p=0$$", "$argon2id$v=19$m=1024,t=1,p=1$$a2V5", "$$$$$"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, phc string) {
		p, salt, key, err := parsePHC(phc)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, p.Iterations, uint32(1))
		require.GreaterOrEqual(t, p.Parallelism, uint8(1))
		require.GreaterOrEqual(t, p.MemoryKiB, 8*uint32(p.Parallelism))
		require.NotEmpty(t, key)
		b64 := base64.RawStdEncoding
		require.Equal(t, phc, fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.MemoryKiB, p.Iterations, p.Parallelism,
			b64.EncodeToString(salt), b64.EncodeToString(key)))
	})
}

// TestHashConcurrencyIsBounded: however many requests hash at once (a
// registration, a login, a password change, each from its own address),
// never more than HashConcurrency hashes run at a time. Every hash waits
// inside its slot until all the requests have reached the hasher; then
// exactly HashConcurrency are running and the others wait for a slot.
// Repeated, and then the most ever seen at once is exactly the bound.
func TestHashConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	const slots, requests, rounds = 2, 18, 3
	a := newAPIWith(t, apiOptions{config: Config{HashConcurrency: slots, HashWait: time.Minute}, noReadModel: true})
	hash, err := testHashing.Hash(goodPassword)
	require.NoError(t, err)
	for round := range rounds {
		reqs := make([]request, requests)
		want := make([]int, requests)
		for i := range reqs {
			email := freshEmail()
			reqs[i].client = newClientAddr()
			switch i % 3 {
			case 0:
				reqs[i] = request{method: "POST", path: "/users", client: reqs[i].client,
					body: map[string]string{"email": email, "password": goodPassword}}
				want[i] = http.StatusCreated
			case 1:
				givenEvents(t, a.svc.Store, registered(newID(), email, hash))
				reqs[i] = request{method: "POST", path: "/login", client: reqs[i].client,
					body: map[string]string{"email": email, "password": goodPassword}}
				want[i] = http.StatusOK
			case 2:
				id := newID()
				givenEvents(t, a.svc.Store, registered(id, email, hash))
				token, _, err := a.svc.Tokens.Issue(id, time.Now())
				require.NoError(t, err)
				reqs[i] = request{method: "POST", path: "/users/me/password", client: reqs[i].client, token: token,
					body: map[string]string{"current_password": goodPassword, "new_password": otherPassword}}
				want[i] = http.StatusNoContent
			}
		}
		gate := make(chan struct{})
		probe := probeHashes(gate, a.svc)
		results := make([]response, requests)
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Go(func() { results[i] = a.roundTrip(reqs[i]) })
		}
		require.Eventually(t, func() bool { return probe.inFlight.Load()+a.svc.hasher.waiting.Load() == requests },
			30*time.Second, time.Millisecond, "round %d: every request reaches the hasher", round)
		require.EqualValues(t, slots, probe.inFlight.Load(), "round %d: hashes running at once", round)
		close(gate)
		wg.Wait()
		for i, res := range results {
			require.Equal(t, want[i], res.status, "round %d, %s %s: %s", round, reqs[i].method, reqs[i].path, res.raw)
		}
		require.EqualValues(t, slots, probe.most.Load(), "round %d: the most hashes ever running at once", round)
		require.EqualValues(t, requests+requests/3, probe.total.Load(), "round %d: one hash a request, two for a password change", round)
	}
}

// TestHashWaitGivesUp: a request that finds every hash slot taken waits at
// most HashWait, then gets 503 server_busy with Retry-After and records
// nothing; one whose client goes away while it waits gives up at once.
// The request holding the slot finishes normally.
func TestHashWaitGivesUp(t *testing.T) {
	t.Parallel()
	const wait = 200 * time.Millisecond
	a := newAPIWith(t, apiOptions{config: Config{HashConcurrency: 1, HashWait: wait}, noReadModel: true})
	hash, err := testHashing.Hash(goodPassword)
	require.NoError(t, err)
	known, knownEmail := newID(), freshEmail()
	givenEvents(t, a.svc.Store, registered(known, knownEmail, hash))
	gate := make(chan struct{})
	probe := probeHashes(gate, a.svc)

	holder := make(chan response, 1)
	go func() {
		holder <- a.roundTrip(request{method: "POST", path: "/users", client: newClientAddr(),
			body: map[string]string{"email": freshEmail(), "password": goodPassword}})
	}()
	require.Eventually(t, func() bool { return probe.inFlight.Load() == 1 }, 30*time.Second, time.Millisecond)

	for _, r := range []request{
		{method: "POST", path: "/login", body: map[string]string{"email": knownEmail, "password": otherPassword}},
		{method: "POST", path: "/users", body: map[string]string{"email": freshEmail(), "password": goodPassword}},
	} {
		r.client = newClientAddr()
		res := a.roundTrip(r)
		require.Equal(t, http.StatusServiceUnavailable, res.status, "%s: %s", r.path, res.raw)
		require.Equal(t, "server_busy", res.code())
		require.Equal(t, "1", res.header.Get("Retry-After"))
		require.GreaterOrEqual(t, res.elapsed, wait, "it waited for a slot")
	}
	require.Len(t, userEvents(t, a.svc.Store, known), 1, "a login that was not checked records no failure")

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan response, 1)
	go func() {
		gone <- a.roundTrip(request{method: "POST", path: "/login", client: newClientAddr(), ctx: ctx,
			body: map[string]string{"email": knownEmail, "password": goodPassword}})
	}()
	require.Eventually(t, func() bool { return a.svc.hasher.waiting.Load() == 1 }, 30*time.Second, time.Millisecond)
	cancel()
	res := <-gone
	require.Equal(t, 499, res.status, string(res.raw))
	require.Zero(t, a.svc.hasher.waiting.Load())
	require.Len(t, userEvents(t, a.svc.Store, known), 1)

	close(gate)
	require.Equal(t, http.StatusCreated, (<-holder).status)
	require.EqualValues(t, 1, probe.total.Load(), "only the holder hashed")
}

// TestHashParamsValidate: hashing and parsing agree on which parameters are
// valid. Parameters that Validate accepts make hashes that verify; the
// others make no hash (argon2 would silently use more memory than the PHC
// string says, and parsePHC refuses such a string: with HASH_MEMORY_KIB=64
// and HASH_PARALLELISM=16 users registered, and none could log in). A
// service is not built with them.
func TestHashParamsValidate(t *testing.T) {
	t.Parallel()
	require.EqualError(t, HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 16}.Validate(),
		"argon2 needs at least 8 KiB of memory per lane: 128 KiB for a parallelism of 16, got 64 KiB")
	require.EqualError(t, HashParams{MemoryKiB: 64, Iterations: 0, Parallelism: 1}.Validate(), "argon2 needs at least 1 iteration")
	require.EqualError(t, HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 0}.Validate(), "argon2 needs a parallelism of at least 1")
	require.NoError(t, DefaultHashParams.Validate())

	for _, lanes := range []uint8{1, 2, 16, 255} {
		for _, memory := range []uint32{8*uint32(lanes) - 1, 8 * uint32(lanes), 8*uint32(lanes) + 1} {
			p := HashParams{MemoryKiB: memory, Iterations: 1, Parallelism: lanes}
			h, err := p.Hash(goodPassword)
			if p.Validate() != nil {
				require.Error(t, err, "%+v", p)
				continue
			}
			require.NoError(t, err, "%+v", p)
			ok, stale := p.Verify(h, goodPassword)
			require.True(t, ok, "%+v: a hash made with valid parameters verifies", p)
			require.False(t, stale)
		}
	}

	store, pool := eventstoretest.SharedStore(t), eventstoretest.SharedPool(t)
	require.PanicsWithValue(t,
		"identity: NewService: hash parameters: argon2 needs at least 8 KiB of memory per lane: 128 KiB for a parallelism of 16, got 64 KiB",
		func() {
			NewService(Config{Hashing: HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 16}, Tokens: Tokens{Secret: testSecret}},
				store, pool, nil, httpapi.ReadModels{})
		})
}
