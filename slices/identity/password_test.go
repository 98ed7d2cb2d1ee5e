package identity

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
