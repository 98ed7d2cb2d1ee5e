package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// configEnv returns a getenv over vars, with a database URL, so that a test
// sees only the problems it makes.
func configEnv(vars map[string]string) func(string) string {
	return func(k string) string {
		if k == "DATABASE_URL" && vars[k] == "" {
			return "postgres://x@h/db"
		}
		return vars[k]
	}
}

// TestConfigHashParameters: the configuration refuses Argon2id parameters
// that the identity service would hash with but never verify (less than
// 8 KiB of memory per lane), saying which and why; the boundary passes.
func TestConfigHashParameters(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(nil, configEnv(map[string]string{"HASH_MEMORY_KIB": "64", "HASH_PARALLELISM": "16"}))
	require.ErrorContains(t, err,
		"HASH_MEMORY_KIB, HASH_PARALLELISM: argon2 needs at least 8 KiB of memory per lane: 128 KiB for a parallelism of 16, got 64 KiB")

	cfg, err := loadConfig(nil, configEnv(map[string]string{"HASH_MEMORY_KIB": "128", "HASH_PARALLELISM": "16"}))
	require.NoError(t, err)
	require.NoError(t, cfg.hashParams().Validate())

	_, err = loadConfig(nil, configEnv(map[string]string{"HASH_MEMORY_KIB": "64", "HASH_PARALLELISM": "256"}))
	require.ErrorContains(t, err, "HASH_PARALLELISM: out of range")
	require.NotContains(t, err.Error(), "per lane", "only the range is reported when a value is out of it")
}
