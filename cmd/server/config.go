package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/dcbkit/dcbkit/slices/identity"
)

// Config is the whole configuration of the server. Every field comes from a
// flag or, when the flag is not given, from the environment variable of the
// same meaning, or else from its default (made for local development).
type Config struct {
	DatabaseURL       string
	HTTPAddr          string
	AdminAddr         string
	AdminToken        string
	KafkaBrokers      []string
	KafkaEmbeddedAddr string
	KafkaDataDir      string
	Environment       string
	JWTSecret         string
	ReplicaID         string
	TrustedProxies    []string
	LogLevel          slog.Level
	ReadModelWait     time.Duration
	ReadHeaderTimeout time.Duration
	PublishBudget     time.Duration

	// Identity.
	PasswordMinLength      int
	TokenLifetime          time.Duration
	HashMemoryKiB          int
	HashIterations         int
	HashParallelism        int
	HashConcurrency        int
	HashWait               time.Duration
	LoginAttemptsPerMinute int

	ResetReadModels []string
}

// devEnvFile is where init_dev.sh records the URL of the database it made.
const devEnvFile = ".dev/env"

// loadConfig parses flags and environment and validates the result. It
// reports every problem at once, one per line. For -h or --help it returns
// helpRequested, the list of flags.
func loadConfig(args []string, getenv func(string) string) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var usage strings.Builder
	fs.SetOutput(&usage)
	// Each flag's environment variable is applied after parsing, to the
	// flags not given, so that a flag overrides its variable (even a bad
	// one) and -h does not print the environment's secrets as defaults.
	envOf := map[string]string{}
	str := func(p *string, name, env, def, usage string) {
		envOf[name] = env
		fs.StringVar(p, name, def, usage+" ("+env+")")
	}
	num := func(p *int, name, env string, def int, usage string) {
		envOf[name] = env
		fs.IntVar(p, name, def, usage+" ("+env+")")
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		envOf[name] = env
		fs.DurationVar(p, name, def, usage+" ("+env+")")
	}
	var brokers, proxies, level string
	str(&cfg.DatabaseURL, "database-url", "DATABASE_URL", devDatabaseURL(), "PostgreSQL URL")
	str(&cfg.HTTPAddr, "http-addr", "HTTP_ADDR", ":8080", "public API address")
	str(&cfg.AdminAddr, "admin-addr", "ADMIN_ADDR", "127.0.0.1:8081", "operator API address")
	str(&cfg.AdminToken, "admin-token", "ADMIN_TOKEN", "", "bearer token the operator API requires, if set")
	str(&brokers, "kafka-brokers", "KAFKA_BROKERS", "", "comma-separated Kafka brokers; empty starts the embedded broker")
	str(&cfg.KafkaEmbeddedAddr, "kafka-embedded-addr", "KAFKA_EMBEDDED_ADDR", "127.0.0.1:9092", "address of the embedded broker")
	str(&cfg.KafkaDataDir, "kafka-data-dir", "KAFKA_DATA_DIR", ".dev/kafka", "where the embedded broker keeps its data")
	str(&cfg.Environment, "environment", "ENVIRONMENT", "development", "development or production")
	str(&cfg.JWTSecret, "jwt-secret", "JWT_SECRET", "", "secret that signs identity tokens; required outside development")
	str(&cfg.ReplicaID, "replica-id", "REPLICA_ID", "", "this replica's name, unique and stable across its restarts, for leases and the Kafka producer's transactions; required in production (default in development: host-pid)")
	str(&proxies, "trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed")
	str(&level, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	dur(&cfg.ReadModelWait, "read-model-wait", "READ_MODEL_WAIT", 5*time.Second, "how long a read with ?min_position waits")
	dur(&cfg.ReadHeaderTimeout, "read-header-timeout", "READ_HEADER_TIMEOUT", 5*time.Second, "how long a client may take to send a request's headers")
	dur(&cfg.PublishBudget, "publish-budget", "PUBLISH_BUDGET", time.Hour, "how long a cart's publication retries before it fails")
	num(&cfg.PasswordMinLength, "password-min-length", "PASSWORD_MIN_LENGTH", 15, "minimum password length in code points")
	dur(&cfg.TokenLifetime, "token-lifetime", "TOKEN_LIFETIME", 15*time.Minute, "lifetime of identity tokens")
	num(&cfg.HashMemoryKiB, "hash-memory-kib", "HASH_MEMORY_KIB", 19*1024, "Argon2id memory in KiB")
	num(&cfg.HashIterations, "hash-iterations", "HASH_ITERATIONS", 2, "Argon2id iterations")
	num(&cfg.HashParallelism, "hash-parallelism", "HASH_PARALLELISM", 1, "Argon2id parallelism")
	num(&cfg.HashConcurrency, "hash-concurrency", "HASH_CONCURRENCY", runtime.GOMAXPROCS(0), "password hashes computed at once (each holds HASH_MEMORY_KIB)")
	dur(&cfg.HashWait, "hash-wait", "HASH_WAIT", 5*time.Second, "how long a request waits for a hash slot before it is answered 503 server_busy")
	num(&cfg.LoginAttemptsPerMinute, "login-attempts-per-minute", "LOGIN_ATTEMPTS_PER_MINUTE", 30, "login attempts allowed per client address and minute")
	fs.Func("reset-read-model", "truncate and replay this stored read model before serving; repeatable; 'all' for every one", func(v string) error {
		cfg.ResetReadModels = append(cfg.ResetReadModels, v)
		return nil
	})
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		usage.Reset()
		fmt.Fprintln(&usage, "Usage: server [flags]; a flag not given takes the environment variable in parentheses, else its default.")
		fs.PrintDefaults()
		return cfg, helpRequested(usage.String())
	} else if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := envOf[f.Name]
		v := getenv(env)
		if env == "" || v == "" || given[f.Name] {
			return
		}
		if err := f.Value.Set(v); err != nil {
			want := "want an integer"
			if _, ok := f.Value.(flag.Getter).Get().(time.Duration); ok {
				want = "want a duration such as 90s or 1h"
			}
			errs = append(errs, fmt.Errorf("%s: %s, got %q", env, want, v))
			_ = f.Value.Set(f.DefValue) // one error for the variable, not another for the zero Set left
		}
	})
	if cfg.ReplicaID == "" && cfg.Environment == "development" {
		cfg.ReplicaID = defaultReplicaID()
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("config: unexpected arguments %q", fs.Args())
	}
	cfg.KafkaBrokers = splitList(brokers)
	cfg.TrustedProxies = splitList(proxies)
	if err := cfg.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, got %q", level))
	}
	return cfg, cfg.validate(errs)
}

// helpRequested is the answer to -h or --help: the list of flags, for
// standard output.
type helpRequested string

func (h helpRequested) Error() string { return string(h) }

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (c Config) validate(errs []error) error {
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL: want a postgres:// URL")
	}
	for _, a := range []struct{ name, addr string }{
		{"HTTP_ADDR", c.HTTPAddr}, {"ADMIN_ADDR", c.AdminAddr}, {"KAFKA_EMBEDDED_ADDR", c.KafkaEmbeddedAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad("%s: want host:port, got %q", a.name, a.addr)
		}
	}
	for _, b := range c.KafkaBrokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("KAFKA_BROKERS: want host:port, got %q", b)
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("TRUSTED_PROXIES: want an IP address or CIDR, got %q", p)
			}
		}
	}
	switch c.Environment {
	case "development":
	case "production":
		if len(c.JWTSecret) < 32 {
			bad("JWT_SECRET: required outside development, at least 32 bytes")
		}
		if c.AdminToken == "" {
			bad("ADMIN_TOKEN: required outside development")
		} else if len(c.AdminToken) < 32 {
			bad("ADMIN_TOKEN: at least 32 bytes in production")
		}
		// Development and tests may hash faster; production hashes at
		// least at OWASP's minimum for Argon2id, the identity defaults
		// (its parallelism, 1, is the least the range allows).
		owasp := identity.DefaultHashParams
		if c.HashMemoryKiB < int(owasp.MemoryKiB) {
			bad("HASH_MEMORY_KIB: at least %d (19 MiB, OWASP's minimum for Argon2id) in production, got %d", owasp.MemoryKiB, c.HashMemoryKiB)
		}
		if c.HashIterations < int(owasp.Iterations) {
			bad("HASH_ITERATIONS: at least %d (OWASP's minimum for Argon2id) in production, got %d", owasp.Iterations, c.HashIterations)
		}
	default:
		bad("ENVIRONMENT: want development or production, got %q", c.Environment)
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		bad("JWT_SECRET: at least 32 bytes")
	}
	memoryOK := c.HashMemoryKiB >= 64 && c.HashMemoryKiB <= 4<<20
	iterationsOK := c.HashIterations >= 1 && c.HashIterations <= 100
	parallelismOK := c.HashParallelism >= 1 && c.HashParallelism <= 255
	positive := []struct {
		name string
		ok   bool
	}{
		{"READ_MODEL_WAIT", c.ReadModelWait > 0}, {"READ_HEADER_TIMEOUT", c.ReadHeaderTimeout > 0}, {"PUBLISH_BUDGET", c.PublishBudget > 0}, {"TOKEN_LIFETIME", c.TokenLifetime > 0},
		{"PASSWORD_MIN_LENGTH", c.PasswordMinLength >= 8 && c.PasswordMinLength <= 128},
		{"HASH_MEMORY_KIB", memoryOK},
		{"HASH_ITERATIONS", iterationsOK},
		{"HASH_PARALLELISM", parallelismOK},
		{"LOGIN_ATTEMPTS_PER_MINUTE", c.LoginAttemptsPerMinute >= 1},
		{"HASH_CONCURRENCY", c.HashConcurrency >= 1 && c.HashConcurrency <= 1024}, {"HASH_WAIT", c.HashWait > 0},
	}
	for _, p := range positive {
		if !p.ok {
			bad("%s: out of range", p.name)
		}
	}
	if memoryOK && iterationsOK && parallelismOK {
		// The identity service's own rule, so that no configuration makes
		// hashes that its verification refuses (nobody could log in).
		if err := c.hashParams().Validate(); err != nil {
			bad("HASH_MEMORY_KIB, HASH_PARALLELISM: %v", err)
		}
	}
	if c.ReplicaID == "" {
		// A host-pid default would change at every restart, so a restarted
		// replica's producer would not fence the transaction its crash left
		// open, and two containers sharing a host name could both be pid 1.
		bad("REPLICA_ID: required outside development: a name unique to this replica and stable across its restarts (such as a StatefulSet's pod name)")
	}
	if len(errs) > 0 {
		return fmt.Errorf("config:\n%w", errors.Join(errs...))
	}
	return nil
}

// hashParams are the Argon2id parameters of the configuration; validate
// has checked that each fits its type.
func (c Config) hashParams() identity.HashParams {
	return identity.HashParams{MemoryKiB: uint32(c.HashMemoryKiB), Iterations: uint32(c.HashIterations), Parallelism: uint8(c.HashParallelism)}
}

// devDatabaseURL is the URL init_dev.sh recorded in .dev/env, when the server
// runs from the repository, else the default local database.
func devDatabaseURL() string {
	if f, err := os.Open(devEnvFile); err == nil {
		defer f.Close()
		if url := envFileURL(f); url != "" {
			return url
		}
	}
	return "postgres://postgres@127.0.0.1:5432/dcbkit?sslmode=disable"
}

// envFileURL reads DATABASE_URL from an env file as init_dev.sh writes it:
// bare, or in single quotes (with ' written '\”) when the URL holds a
// character the shell would interpret, such as the & between parameters.
func envFileURL(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "DATABASE_URL=")
		if !ok {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
		}
		return v
	}
	return ""
}

func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "server"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
