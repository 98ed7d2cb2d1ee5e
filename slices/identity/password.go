package identity

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
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

// DefaultHashParams is the OWASP minimum for Argon2id.
var DefaultHashParams = HashParams{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

const (
	saltBytes = 16
	keyBytes  = 32
)

// Hash returns the PHC string of password under p:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>.
func (p HashParams) Hash(password string) (string, error) {
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
// and whether the hash was made with other parameters than p (stale). A
// malformed hash never matches.
func (p HashParams) Verify(phc, password string) (ok, stale bool) {
	params, salt, key, err := parsePHC(phc)
	if err != nil {
		return false, false
	}
	got := argon2.IDKey([]byte(password), salt, params.Iterations, params.MemoryKiB, params.Parallelism, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, params != p
}

func parsePHC(phc string) (HashParams, []byte, []byte, error) {
	parts := strings.Split(phc, "$")
	var p HashParams
	var version int
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil {
		return p, nil, nil, errors.New("malformed argon2 parameters")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, err
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) == 0 {
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

// PasswordPolicy says which passwords are acceptable: long enough, not too
// long, not common. No composition rules.
type PasswordPolicy struct {
	MinLength int // in Unicode code points after NFKC; default 15
	MaxLength int // default 128
}

// ErrWeakPassword is returned for a password the policy refuses.
var ErrWeakPassword = errors.New("weak password")

// Check returns an error wrapping ErrWeakPassword that says why, or nil.
func (p PasswordPolicy) Check(password string) error {
	if !utf8.ValidString(password) {
		return fmt.Errorf("%w: not valid UTF-8", ErrWeakPassword)
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
