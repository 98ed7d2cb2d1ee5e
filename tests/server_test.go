// Package tests holds black-box scenarios against the real server process:
// the binary of ./cmd/server, started on a fresh PostgreSQL database, driven
// through its HTTP APIs and a Kafka client, and checked through its APIs,
// its log and SQL on its database.
//
// The harness (this file, kafka_test.go, client_test.go) is meant for reuse
// by every black-box test: several processes on one database, restarts with
// the same environment and Kafka data directory, SIGTERM and SIGKILL.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// serverBin is the server binary built once per test binary by TestMain,
// with -race when the tests run with -race, so that a data race in the
// server fails the test that provoked it.
var serverBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dcbkit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	serverBin = filepath.Join(dir, "server")
	args := []string{"build", "-o", serverBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command(goTool(), append(args, "github.com/dcbkit/dcbkit/cmd/server")...)
	build.Dir = ".." // the module root; go test runs in the package directory
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: go build ./cmd/server: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// goTool is the go command of the toolchain that runs the tests: `go test`
// puts its own GOROOT/bin first on the PATH of the test binary.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// ServerOptions configure one server process. The zero value starts a
// server on a fresh migrated database with its own embedded Kafka broker,
// every address on a free loopback port.
type ServerOptions struct {
	// DatabaseURL is the database to use; empty: a fresh migrated one
	// (eventstoretest.DatabaseURL), dropped when the test ends. Give the
	// same URL to several servers to run replicas on one database; they
	// then also need one broker (KafkaBrokers).
	DatabaseURL string
	// KafkaBrokers, when set, is KAFKA_BROKERS (an outside broker, e.g.
	// StartBroker's); empty starts the server's embedded broker.
	KafkaBrokers string
	// KafkaDataDir is the embedded broker's data directory; empty: a new
	// temporary one. Restart keeps it.
	KafkaDataDir string
	// Env is added to (and overrides) the harness's environment.
	Env map[string]string
	// Args are the server's command-line flags.
	Args []string
	// AllowErrorLogs lets the process log at level ERROR without failing
	// the test; by default Stop and Kill fail the test on any ERROR line
	// that ExpectedError does not accept.
	AllowErrorLogs bool
	// ExpectedError, if set, accepts the ERROR lines the test provokes on
	// purpose.
	ExpectedError func(LogLine) bool
}

// Server is one running (or ended) server process. Its methods are for the
// goroutine of the test that started it.
type Server struct {
	t    testing.TB
	opts ServerOptions
	env  map[string]string

	// HTTP and Admin are the base URLs of the public and operator APIs,
	// e.g. http://127.0.0.1:41234.
	HTTP, Admin string
	// Broker is the Kafka broker the server uses: its embedded broker's
	// address, or the first of KafkaBrokers.
	Broker string
	// DatabaseURL is the server's database.
	DatabaseURL string

	cmd     *exec.Cmd
	logs    *processLog
	exited  chan struct{}
	waitErr error
	ended   bool // by Stop or Kill
}

// Default timeouts of the harness.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 45 * time.Second
)

// StartServer starts a server process and waits until both its APIs listen
// (and, with the embedded broker, the broker too). The process is stopped
// with SIGTERM when the test ends, unless stopped before; its log is shown
// when the test failed.
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if opts.DatabaseURL == "" {
		opts.DatabaseURL = eventstoretest.DatabaseURL(t)
	}
	if opts.KafkaBrokers == "" && opts.KafkaDataDir == "" {
		opts.KafkaDataDir = t.TempDir()
	}
	env := map[string]string{
		// Several servers share the test PostgreSQL (100 connections when
		// it is the system one): a small pool each.
		"DATABASE_URL":        withPoolSize(opts.DatabaseURL, 12),
		"HTTP_ADDR":           "127.0.0.1:0",
		"ADMIN_ADDR":          "127.0.0.1:0",
		"KAFKA_EMBEDDED_ADDR": "127.0.0.1:0",
		"KAFKA_DATA_DIR":      opts.KafkaDataDir,
		"KAFKA_BROKERS":       opts.KafkaBrokers,
		"HASH_MEMORY_KIB":     "1024",
		"HASH_ITERATIONS":     "1",
		"LOG_LEVEL":           "info",
		// Generous: a test that reads with ?min_position means to wait
		// for the read model, even on a loaded machine.
		"READ_MODEL_WAIT": "30s",
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	return startProcess(t, opts, env)
}

func startProcess(t testing.TB, opts ServerOptions, env map[string]string) *Server {
	t.Helper()
	s := &Server{t: t, opts: opts, env: env, DatabaseURL: opts.DatabaseURL, exited: make(chan struct{}), logs: newProcessLog()}
	s.cmd = exec.Command(serverBin, opts.Args...)
	s.cmd.Dir = t.TempDir() // nothing of the repository (.dev/) is read or written
	s.cmd.Env = processEnv(env)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	s.cmd.Stderr = s.logs.stderrWriter()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("server: start %s: %v", serverBin, err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.logs.readStdout(stdout)
	}()
	go func() {
		<-readDone // Wait closes the pipe: read it to the end first
		s.waitErr = s.cmd.Wait()
		s.logs.markExited()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("server pid %d, args %q, log tail:\n%s", s.cmd.Process.Pid, opts.Args, s.logs.tail(60))
		}
	})

	deadline := time.Now().Add(startTimeout)
	needBroker := env["KAFKA_BROKERS"] == ""
	for {
		s.HTTP = s.addrOf("http listening")
		s.Admin = s.addrOf("admin listening")
		if needBroker {
			s.Broker = s.logs.firstAttr(isEmbeddedBrokerLine, "addr")
		} else {
			s.Broker = strings.Split(env["KAFKA_BROKERS"], ",")[0]
		}
		if s.HTTP != "" && s.Admin != "" && s.Broker != "" {
			return s
		}
		changed := s.logs.changed()
		select {
		case <-s.exited:
			t.Fatalf("server exited before listening (%v); log:\n%s", s.waitErr, s.logs.tail(40))
		case <-changed:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("server did not listen within %s; log:\n%s", startTimeout, s.logs.tail(40))
		}
	}
}

// processEnv is env plus the few variables of the test's own environment a
// Go program needs; nothing else leaks in (a developer's DATABASE_URL or
// ADMIN_TOKEN, say).
func processEnv(env map[string]string) []string {
	var out []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GORACE", "GOTRACEBACK"} {
		if v, ok := os.LookupEnv(k); ok {
			if _, set := env[k]; !set {
				out = append(out, k+"="+v)
			}
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func isEmbeddedBrokerLine(l LogLine) bool {
	return strings.HasPrefix(l.Msg, "embedded development Kafka broker started")
}

func (s *Server) addrOf(msg string) string {
	if a := s.logs.firstAttr(func(l LogLine) bool { return l.Msg == msg }, "addr"); a != "" {
		return "http://" + a
	}
	return ""
}

// Env returns the environment the server was started with (without the
// variables passed through from the test's own environment).
func (s *Server) Env() map[string]string {
	out := make(map[string]string, len(s.env))
	for k, v := range s.env {
		out[k] = v
	}
	return out
}

// Running reports whether the process has not exited yet.
func (s *Server) Running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for the process to exit. It fails the test
// unless the exit is clean: status 0, the "stopped" line logged, no data
// race reported, and no ERROR line unless AllowErrorLogs.
//
// Stop on a server already stopped or killed does nothing; on one that
// exited by itself it fails the test.
func (s *Server) Stop() {
	s.t.Helper()
	if s.ended {
		return
	}
	s.ended = true
	if !s.Running() {
		s.t.Errorf("the server had exited by itself: %v", s.waitErr)
		s.checkLog()
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("server did not stop within %s of SIGTERM; killed", stopTimeout)
		return
	}
	if s.waitErr != nil {
		s.t.Errorf("server exited uncleanly after SIGTERM: %v", s.waitErr)
	}
	if _, ok := s.logs.find(func(l LogLine) bool { return l.Msg == "stopped" }); !ok {
		s.t.Errorf(`server exited without logging "stopped"`)
	}
	s.checkLog()
}

// Kill kills the process with SIGKILL (a crash: nothing is released, no
// lease, no group membership, no broker state) and waits for it to end.
func (s *Server) Kill() {
	s.t.Helper()
	if s.ended {
		return
	}
	s.ended = true
	if !s.Running() {
		s.t.Errorf("the server had exited by itself: %v", s.waitErr)
		s.checkLog()
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.t.Fatalf("server did not end within %s of SIGKILL", stopTimeout)
	}
	s.checkLog()
}

// checkLog fails the test for a data race, and for ERROR lines unless
// allowed.
func (s *Server) checkLog() {
	s.t.Helper()
	if strings.Contains(s.logs.stderrText(), "WARNING: DATA RACE") {
		s.t.Errorf("the server reported a data race:\n%s", s.logs.stderrText())
	}
	if s.opts.AllowErrorLogs {
		return
	}
	for _, l := range s.logs.lines() {
		if l.Level == "ERROR" && (s.opts.ExpectedError == nil || !s.opts.ExpectedError(l)) {
			s.t.Errorf("the server logged an error: %s", l.Raw)
		}
	}
}

// Restart starts a new process with the same environment (database, Kafka
// brokers or embedded broker data directory, per-test variables) after this
// one has ended (Stop or Kill first). The new process gets new ports. args
// replace the flags, e.g. "--reset-read-model", "cart_items"; nil keeps
// none.
func (s *Server) Restart(t testing.TB, args ...string) *Server {
	t.Helper()
	if !s.ended {
		t.Fatal("Restart: Stop or Kill the server first")
	}
	opts := s.opts
	opts.Args = args
	return startProcess(t, opts, s.Env())
}

// Signal sends sig to the process (SIGSTOP and SIGCONT to pause it, say);
// use Stop and Kill to end it.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// PID is the process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// ExitErr is the process's exit error (nil for status 0) once it has ended.
func (s *Server) ExitErr() error {
	<-s.exited
	return s.waitErr
}

// Log returns the log lines (stdout, JSON) so far.
func (s *Server) Log() []LogLine { return s.logs.lines() }

// Stderr returns what the process wrote to its standard error.
func (s *Server) Stderr() string { return s.logs.stderrText() }

// WaitLog waits until a log line satisfies match, and returns it. It fails
// the test after within, or if the process exits first.
func (s *Server) WaitLog(t testing.TB, within time.Duration, what string, match func(LogLine) bool) LogLine {
	t.Helper()
	deadline := time.After(within)
	for {
		changed := s.logs.changed()
		if l, ok := s.logs.find(match); ok {
			return l
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no log line %s within %s", what, within)
		case <-s.exited:
			if l, ok := s.logs.find(match); ok {
				return l
			}
			t.Fatalf("the server exited (%v) before logging %s", s.waitErr, what)
		}
	}
}

// HasLog reports whether a log line satisfies match.
func (s *Server) HasLog(match func(LogLine) bool) bool {
	_, ok := s.logs.find(match)
	return ok
}

// LogLine is one JSON line of the server's log.
type LogLine struct {
	Time  time.Time
	Level string
	Msg   string
	Attrs map[string]any
	Raw   string
}

// Attr returns the attribute key as a string ("" if absent).
func (l LogLine) Attr(key string) string {
	v, ok := l.Attrs[key]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// processLog keeps a process's output and wakes waiters on every new line.
type processLog struct {
	mu     sync.Mutex
	all    []LogLine
	stderr bytes.Buffer
	notify chan struct{}
	exited bool
}

func newProcessLog() *processLog { return &processLog{notify: make(chan struct{})} }

// changed returns a channel closed at the next new line (or exit).
func (p *processLog) changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

func (p *processLog) wakeLocked() {
	close(p.notify)
	p.notify = make(chan struct{})
}

func (p *processLog) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		p.add(sc.Text())
	}
}

func (p *processLog) add(raw string) {
	l := LogLine{Raw: raw}
	var m map[string]any
	if json.Unmarshal([]byte(raw), &m) == nil {
		l.Level, _ = m["level"].(string)
		l.Msg, _ = m["msg"].(string)
		if ts, ok := m["time"].(string); ok {
			l.Time, _ = time.Parse(time.RFC3339Nano, ts)
		}
		delete(m, "level")
		delete(m, "msg")
		delete(m, "time")
		l.Attrs = m
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, l)
	p.wakeLocked()
}

func (p *processLog) markExited() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exited = true
	p.wakeLocked()
}

func (p *processLog) stderrWriter() io.Writer { return writerFunc(p.writeStderr) }

func (p *processLog) writeStderr(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *processLog) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *processLog) lines() []LogLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.all)
}

func (p *processLog) find(match func(LogLine) bool) (LogLine, bool) {
	for _, l := range p.lines() {
		if match(l) {
			return l, true
		}
	}
	return LogLine{}, false
}

func (p *processLog) firstAttr(match func(LogLine) bool, key string) string {
	if l, ok := p.find(match); ok {
		return l.Attr(key)
	}
	return ""
}

// tail returns the last n lines of stdout and all of stderr.
func (p *processLog) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.all[max(0, len(p.all)-n):] {
		b.WriteString(l.Raw)
		b.WriteByte('\n')
	}
	if p.stderr.Len() > 0 {
		b.WriteString("--- stderr ---\n")
		b.Write(p.stderr.Bytes())
	}
	return b.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// EmptyDatabaseURL creates a brand-new, empty database (no migrations: the
// server applies them) on the test PostgreSQL server, dropped when t ends.
func EmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, eventstoretest.ServerURL())
	if err != nil {
		t.Fatalf("EmptyDatabaseURL: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("dcbkit_e2e_empty_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("EmptyDatabaseURL: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, eventstoretest.ServerURL())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return withDatabase(eventstoretest.ServerURL(), name)
}

func withDatabase(serverURL, name string) string {
	i := strings.Index(serverURL, "://")
	rest := serverURL[i+3:]
	query := ""
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest, query = rest[:q], rest[q:]
	}
	if sl := strings.IndexByte(rest, '/'); sl >= 0 {
		rest = rest[:sl]
	}
	return serverURL[:i+3] + rest + "/" + name + query
}

// SQL runs a query on the server's database and returns its rows, each
// scanned with pgx's RowToMap. For checks the APIs do not expose
// (rejected_messages, river_job).
func (s *Server) SQL(t testing.TB, query string, args ...any) []map[string]any {
	t.Helper()
	return querySQL(t, s.DatabaseURL, query, args...)
}

func querySQL(t testing.TB, url, query string, args ...any) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("SQL: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		t.Fatalf("SQL %q: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToMap)
	if err != nil {
		t.Fatalf("SQL %q: %v", query, err)
	}
	return out
}

// eventually polls cond every 20ms until it returns nil, and fails t with
// cond's last error after within.
func eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not so after %s: %v", within, err)
		}
		<-tick.C
	}
}

// withPoolSize sets pool_max_conns on a database URL unless it has one.
func withPoolSize(url string, n int) string {
	if strings.Contains(url, "pool_max_conns") {
		return url
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%spool_max_conns=%d", url, sep, n)
}
