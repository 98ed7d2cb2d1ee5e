package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
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
	Environment       string
	JWTSecret         string
	ResetReadModels   []string
}

// devEnvFile is where init_dev.sh records the URL of the database it made.
const devEnvFile = ".dev/env"

// loadConfig parses flags and environment and validates the result. It
// returns every problem at once, one per line.
func loadConfig(args []string, getenv func(string) string) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&cfg.DatabaseURL, "database-url", env("DATABASE_URL", devDatabaseURL()), "PostgreSQL URL (DATABASE_URL)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", env("HTTP_ADDR", ":8080"), "public API address (HTTP_ADDR)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", env("ADMIN_ADDR", "127.0.0.1:8081"), "operator API address (ADMIN_ADDR)")
	fs.StringVar(&cfg.AdminToken, "admin-token", env("ADMIN_TOKEN", ""), "bearer token the operator API requires, if set (ADMIN_TOKEN)")
	brokers := fs.String("kafka-brokers", env("KAFKA_BROKERS", ""), "comma-separated Kafka brokers; empty starts the embedded broker (KAFKA_BROKERS)")
	fs.StringVar(&cfg.KafkaEmbeddedAddr, "kafka-embedded-addr", env("KAFKA_EMBEDDED_ADDR", "127.0.0.1:9092"), "address of the embedded broker (KAFKA_EMBEDDED_ADDR)")
	fs.StringVar(&cfg.Environment, "environment", env("ENVIRONMENT", "development"), "development or production (ENVIRONMENT)")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", env("JWT_SECRET", ""), "secret that signs identity tokens; required outside development (JWT_SECRET)")
	fs.Func("reset-read-model", "truncate and replay this stored read model before serving; repeatable; 'all' for every one", func(v string) error {
		cfg.ResetReadModels = append(cfg.ResetReadModels, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("config: unexpected arguments %q", fs.Args())
	}
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.KafkaBrokers = append(cfg.KafkaBrokers, b)
		}
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	var errs []error
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
	switch c.Environment {
	case "development":
	case "production":
		if len(c.JWTSecret) < 32 {
			bad("JWT_SECRET: required outside development, at least 32 bytes")
		}
	default:
		bad("ENVIRONMENT: want development or production, got %q", c.Environment)
	}
	if len(errs) > 0 {
		return fmt.Errorf("config:\n%w", errors.Join(errs...))
	}
	return nil
}

// devDatabaseURL is the URL init_dev.sh recorded in .dev/env, when the server
// runs from the repository, else the default local database.
func devDatabaseURL() string {
	f, err := os.Open(devEnvFile)
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "DATABASE_URL="); ok {
				return v
			}
		}
	}
	return "postgres://postgres@127.0.0.1:5432/dcbkit?sslmode=disable"
}
