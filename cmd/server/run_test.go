package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// server is a whole server started in-process by run.
type server struct {
	httpURL, adminURL string
	done              chan error
	stop              context.CancelFunc
	logs              *logBuffer
}

// startServer runs the server on fresh ports and a fresh database, with env
// on top of the test defaults, and waits until it listens.
func startServer(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL":        eventstoretest.DatabaseURL(t),
		"HTTP_ADDR":           "127.0.0.1:0",
		"ADMIN_ADDR":          "127.0.0.1:0",
		"KAFKA_EMBEDDED_ADDR": "127.0.0.1:0",
		"KAFKA_DATA_DIR":      t.TempDir(),
		"HASH_MEMORY_KIB":     "1024",
		"HASH_ITERATIONS":     "1",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &server{done: make(chan error, 1), stop: cancel, logs: &logBuffer{}}
	go func() {
		err := run(ctx, args, func(k string) string { return vars[k] }, pw)
		pw.Close()
		s.done <- err
	}()
	listening := make(chan struct{ msg, addr string }, 2)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.logs.add(sc.Text())
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasSuffix(line.Msg, " listening") {
				listening <- struct{ msg, addr string }{line.Msg, line.Addr}
			}
		}
	}()
	for s.httpURL == "" || s.adminURL == "" {
		select {
		case l := <-listening:
			if l.msg == "http listening" {
				s.httpURL = "http://" + l.addr
			} else {
				s.adminURL = "http://" + l.addr
			}
		case err := <-s.done:
			t.Fatalf("server stopped before listening: %v\n%s", err, s.logs)
		case <-time.After(60 * time.Second):
			t.Fatalf("server did not start listening within 60s\n%s", s.logs)
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			require.NoError(t, err, "run must return cleanly on shutdown")
		case <-time.After(30 * time.Second):
			t.Error("server did not stop within 30s")
		}
	})
	return s
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	resp, err := http.Get(s.httpURL + "/healthcheck")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	require.JSONEq(t, `{"status":"ok"}`, string(body))
}

// TestEnvFileURL: the server reads .dev/env as init_dev.sh writes it,
// quoted when the URL holds shell characters.
func TestEnvFileURL(t *testing.T) {
	t.Parallel()
	for file, want := range map[string]string{
		"DATABASE_URL=postgres://u@h:5432/d?sslmode=disable\n":       "postgres://u@h:5432/d?sslmode=disable",
		"X=1\nDATABASE_URL='postgres://u@h/d?sslmode=disable&x=1'\n": "postgres://u@h/d?sslmode=disable&x=1",
		"DATABASE_URL='postgres://u:it'\\''s@h/d?a=1&b=2'\n":         "postgres://u:it's@h/d?a=1&b=2",
		"OTHER=1\n": "",
	} {
		require.Equal(t, want, envFileURL(strings.NewReader(file)), "%q", file)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	cfg, err := loadConfig([]string{"--http-addr", "127.0.0.1:9000", "--reset-read-model", "a", "--reset-read-model", "b"},
		env(map[string]string{"HTTP_ADDR": ":7000", "KAFKA_BROKERS": "k1:9092, k2:9092", "DATABASE_URL": "postgres://x@h/db"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", cfg.HTTPAddr, "a flag wins over the environment")
	require.Equal(t, []string{"k1:9092", "k2:9092"}, cfg.KafkaBrokers)
	require.Equal(t, []string{"a", "b"}, cfg.ResetReadModels)
	require.Equal(t, "postgres://x@h/db", cfg.DatabaseURL)
	require.Equal(t, "127.0.0.1:8081", cfg.AdminAddr)
	require.Equal(t, 5*time.Second, cfg.ReadHeaderTimeout)

	_, err = loadConfig(nil, env(map[string]string{
		"DATABASE_URL": "mysql://x", "HTTP_ADDR": "nope", "ENVIRONMENT": "production", "KAFKA_BROKERS": "k1", "READ_HEADER_TIMEOUT": "0s",
	}))
	require.Error(t, err)
	for _, want := range []string{"DATABASE_URL: want a postgres:// URL", `HTTP_ADDR: want host:port, got "nope"`,
		"JWT_SECRET: required outside development", `KAFKA_BROKERS: want host:port, got "k1"`,
		"READ_HEADER_TIMEOUT: out of range"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = loadConfig([]string{"--bogus"}, env(nil))
	require.ErrorContains(t, err, "flag provided but not defined: -bogus")
	_, err = loadConfig(nil, env(map[string]string{"ENVIRONMENT": "staging"}))
	require.ErrorContains(t, err, `ENVIRONMENT: want development or production, got "staging"`)
	require.False(t, strings.Contains(err.Error(), "JWT_SECRET"))
}

// logBuffer keeps a server's log lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
