package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// HashParams are the Argon2id parameters of new password hashes. Hashes made
// with other parameters still verify, and are re-hashed on the next
// successful login.
type HashParams struct {
	MemoryKiB   uint32 // default 19 MiB
	Iterations  uint32 // default 2
	Parallelism uint8  // default 1
}

// DefaultHashParams is the OWASP minimum for Argon2id (19 MiB, 2
// iterations, parallelism 1); the server refuses less in production.
var DefaultHashParams = HashParams{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

const (
	saltBytes = 16
	keyBytes  = 32
)

// Validate returns an error saying what is wrong when argon2 would not hash
// with p as stated: it needs at least one iteration, one lane, and 8 KiB of
// memory per lane. (Below 8 KiB per lane it silently uses more than asked,
// so the PHC string would not tell how the hash was made; with no
// iteration or lane it panics.) It is the one rule for the parameters that
// Hash uses and parsePHC accepts, and for the server's configuration.
func (p HashParams) Validate() error {
	switch {
	case p.Iterations < 1:
		return errors.New("argon2 needs at least 1 iteration")
	case p.Parallelism < 1:
		return errors.New("argon2 needs a parallelism of at least 1")
	case uint64(p.MemoryKiB) < 8*uint64(p.Parallelism):
		return fmt.Errorf("argon2 needs at least 8 KiB of memory per lane: %d KiB for a parallelism of %d, got %d KiB",
			8*uint32(p.Parallelism), p.Parallelism, p.MemoryKiB)
	}
	return nil
}

// Hash returns the PHC string of password under p:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>. It refuses parameters that
// Validate refuses: their hashes would never verify.
func (p HashParams) Hash(password string) (string, error) {
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("identity: hash: %w", err)
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("identity: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyBytes)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC string, in constant time,
// and whether the hash was made with other parameters, salt or key length
// than p makes (stale). A malformed hash never matches.
func (p HashParams) Verify(phc, password string) (ok, stale bool) {
	params, salt, key, err := parsePHC(phc)
	if err != nil {
		return false, false
	}
	got := argon2.IDKey([]byte(password), salt, params.Iterations, params.MemoryKiB, params.Parallelism, uint32(len(key)))
	stale = params != p || len(salt) != saltBytes || len(key) != keyBytes
	return subtle.ConstantTimeCompare(got, key) == 1, stale
}

// parsePHC parses $argon2id$v=19$m=…,t=…,p=…$<salt>$<key>, in exactly that
// spelling, with parameters that Validate accepts.
func parsePHC(phc string) (HashParams, []byte, []byte, error) {
	parts := strings.Split(phc, "$")
	var p HashParams
	var version int
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version ||
		parts[2] != fmt.Sprintf("v=%d", version) {
		return p, nil, nil, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Iterations, p.Parallelism) || p.Validate() != nil {
		return p, nil, nil, errors.New("malformed argon2 parameters")
	}
	// Decoding skips line breaks; re-encoding holds the one spelling.
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil || b64.EncodeToString(salt) != parts[4] {
		return p, nil, nil, errors.New("malformed argon2 salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) == 0 || b64.EncodeToString(key) != parts[5] {
		return p, nil, nil, errors.New("malformed argon2 key")
	}
	return p, salt, key, nil
}

// dummyHash is verified when a login names no user, so that an unknown email
// costs the same time as a wrong password.
func (p HashParams) dummyHash() string {
	salt := bytes.Repeat([]byte{0x5a}, saltBytes)
	key := argon2.IDKey([]byte("not a password of anybody"), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyBytes)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ErrBusy is returned when a password hash waited longer than the
// service's HashWait for a slot: the server is busy hashing other requests'
// passwords. The handlers answer 503 server_busy with Retry-After.
var ErrBusy = errors.New("identity: too many password hashes at once")

// hasher computes and verifies the service's password hashes, at most
// cap(slots) at a time. Each Argon2id hash holds MemoryKiB of memory while
// it runs, so without a bound, concurrent requests (which need no account)
// could make the server allocate without limit. Every hash a request pays
// for goes through it: registration, the check of a login (the dummy hash
// of an unknown email included), both hashes of a password change, and a
// re-hash. It is safe for concurrent use.
type hasher struct {
	params HashParams
	slots  chan struct{}
	wait   time.Duration // longest wait for a slot before ErrBusy
	// waiting counts the callers blocked waiting for a slot.
	waiting atomic.Int64
	// running, when set (by tests, before any use), is called inside the
	// slot before each hash; the function it returns is called after it.
	running func() (done func())
}

func newHasher(params HashParams, concurrency int, wait time.Duration) *hasher {
	return &hasher{params: params, slots: make(chan struct{}, concurrency), wait: wait}
}

// do runs f in a slot. It gives up when ctx ends first (returning its
// error) or when no slot frees up within h.wait (ErrBusy).
func (h *hasher) do(ctx context.Context, f func()) error {
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-h.slots }()
	if h.running != nil {
		defer h.running()()
	}
	f()
	return nil
}

// acquire takes a slot, at once when one is free (no timer), else waiting
// as do says.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return ErrBusy
	}
}

// hash returns the PHC string of password under the service's parameters.
func (h *hasher) hash(ctx context.Context, password string) (phc string, err error) {
	if waitErr := h.do(ctx, func() { phc, err = h.params.Hash(password) }); waitErr != nil {
		return "", waitErr
	}
	return phc, err
}

// verify is HashParams.Verify under the service's parameters, in a slot.
func (h *hasher) verify(ctx context.Context, phc, password string) (ok, stale bool, err error) {
	err = h.do(ctx, func() { ok, stale = h.params.Verify(phc, password) })
	return ok, stale, err
}

// PasswordPolicy says which passwords are acceptable: long enough, not too
// long, not common. No composition rules.
type PasswordPolicy struct {
	MinLength int // in Unicode code points after NFKC; default 15
	MaxLength int // default 128
}

// ErrWeakPassword is returned for a password the policy refuses.
var ErrWeakPassword = errors.New("weak password")

// Check returns an error wrapping ErrWeakPassword that says why, or nil.
// It never repeats the password. A password that is not valid UTF-8, or
// holds U+FFFD (what a JSON decoder makes of undecodable text), is refused:
// it would not be the password the person typed.
func (p PasswordPolicy) Check(password string) error {
	if !utf8.ValidString(password) || strings.ContainsRune(password, utf8.RuneError) {
		return fmt.Errorf("%w: not valid UTF-8 text", ErrWeakPassword)
	}
	// Normalising a huge input costs tens of milliseconds; no NFKC code point
	// stands for more than 4 input code points (the longest canonical
	// decomposition, e.g. U+1F82), so a longer input is too long anyway.
	if utf8.RuneCountInString(password) > 4*p.MaxLength {
		return fmt.Errorf("%w: at most %d characters", ErrWeakPassword, p.MaxLength)
	}
	normal := norm.NFKC.String(password)
	n := utf8.RuneCountInString(normal)
	switch {
	case n < p.MinLength:
		return fmt.Errorf("%w: at least %d characters", ErrWeakPassword, p.MinLength)
	case n > p.MaxLength:
		return fmt.Errorf("%w: at most %d characters", ErrWeakPassword, p.MaxLength)
	case common[strings.ToLower(normal)]:
		return fmt.Errorf("%w: it is one of the most common passwords", ErrWeakPassword)
	}
	return nil
}

//go:embed common_passwords.txt
var commonList []byte

// common holds the built-in list of common passwords, lower-cased.
var common = func() map[string]bool {
	m := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(commonList))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			m[strings.ToLower(line)] = true
		}
	}
	return m
}()
