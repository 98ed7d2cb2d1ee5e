package main

import (
	"errors"
	"testing"
	"time"

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

// TestConfigProductionSecurity: production refuses an operator token under
// 32 bytes (as it does a JWT secret) and hash settings under OWASP's minimum
// for Argon2id, each with its own message; development accepts both, and
// production accepts the defaults with long secrets.
func TestConfigProductionSecurity(t *testing.T) {
	t.Parallel()
	long := "0123456789abcdef0123456789abcdef" // 32 bytes
	weak := map[string]string{"ADMIN_TOKEN": "x", "JWT_SECRET": long, "HASH_MEMORY_KIB": "64", "HASH_ITERATIONS": "1"}

	weak["ENVIRONMENT"] = "production"
	_, err := loadConfig(nil, configEnv(weak))
	require.Error(t, err)
	for _, want := range []string{
		"ADMIN_TOKEN: at least 32 bytes in production",
		"HASH_MEMORY_KIB: at least 19456 (19 MiB, OWASP's minimum for Argon2id) in production, got 64",
		"HASH_ITERATIONS: at least 2 (OWASP's minimum for Argon2id) in production, got 1",
	} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "JWT_SECRET")

	weak["ENVIRONMENT"] = "development"
	_, err = loadConfig(nil, configEnv(weak))
	require.NoError(t, err, "development may hash faster and use any operator token")

	_, err = loadConfig(nil, configEnv(map[string]string{"ENVIRONMENT": "production", "ADMIN_TOKEN": long, "JWT_SECRET": long, "REPLICA_ID": "r1"}))
	require.NoError(t, err, "the defaults are OWASP's minimum")
	_, err = loadConfig(nil, configEnv(map[string]string{"ENVIRONMENT": "production", "ADMIN_TOKEN": long[1:], "JWT_SECRET": long, "REPLICA_ID": "r1"}))
	require.EqualError(t, err, "config:\nADMIN_TOKEN: at least 32 bytes in production")
}

// TestConfigReplicaID: production needs a replica id given (a host-pid
// default changes at every restart, so the restarted producer would not
// fence its predecessor's open transaction); development makes one up.
func TestConfigReplicaID(t *testing.T) {
	t.Parallel()
	long := "0123456789abcdef0123456789abcdef"
	prod := map[string]string{"ENVIRONMENT": "production", "ADMIN_TOKEN": long, "JWT_SECRET": long}
	_, err := loadConfig(nil, configEnv(prod))
	require.EqualError(t, err, "config:\nREPLICA_ID: required outside development: a name unique to this replica and stable across its restarts (such as a StatefulSet's pod name)")
	cfg, err := loadConfig([]string{"--replica-id", "cart-0"}, configEnv(prod))
	require.NoError(t, err)
	require.Equal(t, "cart-0", cfg.ReplicaID)

	cfg, err = loadConfig(nil, configEnv(nil))
	require.NoError(t, err)
	require.Equal(t, defaultReplicaID(), cfg.ReplicaID)
}

// TestConfigFlagOverridesEnvironment: a flag wins over its variable, even a
// variable that does not parse; a variable that does not parse, with no flag,
// is one error naming it (not a second one for the zero it would leave).
func TestConfigFlagOverridesEnvironment(t *testing.T) {
	t.Parallel()
	env := configEnv(map[string]string{"HASH_ITERATIONS": "abc", "HASH_WAIT": "soon", "HTTP_ADDR": ":9000"})
	cfg, err := loadConfig([]string{"--hash-iterations", "3", "--hash-wait", "2s", "--http-addr", ":9001"}, env)
	require.NoError(t, err)
	require.Equal(t, 3, cfg.HashIterations)
	require.Equal(t, 2*time.Second, cfg.HashWait)
	require.Equal(t, ":9001", cfg.HTTPAddr)

	_, err = loadConfig(nil, env)
	require.EqualError(t, err, "config:\nHASH_ITERATIONS: want an integer, got \"abc\"\nHASH_WAIT: want a duration such as 90s or 1h, got \"soon\"")

	cfg, err = loadConfig(nil, configEnv(map[string]string{"HASH_ITERATIONS": "4", "HASH_CONCURRENCY": "3"}))
	require.NoError(t, err)
	require.Equal(t, 4, cfg.HashIterations)
	require.Equal(t, 3, cfg.HashConcurrency)
}

// TestConfigHelp: -h lists every flag with its variable, and shows no value
// taken from the environment (a secret would be printed).
func TestConfigHelp(t *testing.T) {
	t.Parallel()
	secret := "0123456789abcdef0123456789abcdef-secret"
	_, err := loadConfig([]string{"-h"}, configEnv(map[string]string{"JWT_SECRET": secret, "ADMIN_TOKEN": secret}))
	help, ok := errors.AsType[helpRequested](err)
	require.True(t, ok, "got %v", err)
	for _, want := range []string{"-jwt-secret", "(JWT_SECRET)", "-hash-concurrency", "(HASH_CONCURRENCY)", "-reset-read-model"} {
		require.Contains(t, string(help), want)
	}
	require.NotContains(t, string(help), secret)
}
