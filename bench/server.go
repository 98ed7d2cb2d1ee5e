package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/dcbkit/dcbkit/slices/cart"
)

// buildServer builds cmd/server of the module at root into dir.
func buildServer(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %w\n%s", err, out)
	}
	return bin, nil
}

// server is a running server process.
type server struct {
	cmd    *exec.Cmd
	addr   string
	stderr *tail
	exited chan struct{}
}

// startServer starts bin on its own database, with every listener on a port
// of its own choosing, and returns once its public API answers.
func startServer(ctx context.Context, bin, databaseURL, dir string) (*server, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+databaseURL,
		"HTTP_ADDR=127.0.0.1:0",
		"ADMIN_ADDR=127.0.0.1:0",
		"KAFKA_BROKERS=",
		"KAFKA_EMBEDDED_ADDR=127.0.0.1:0",
		"KAFKA_DATA_DIR="+filepath.Join(dir, "kafka"),
		"ENVIRONMENT=development",
		"REPLICA_ID=bench",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, stderr: &tail{max: 8 << 10}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	addrc := make(chan string, 1)
	go func() {
		// Read the log to find the address, then keep draining it: the server
		// logs every request, and a full pipe would stall it.
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			if found {
				continue
			}
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "http listening" {
				addrc <- line.Addr
				found = true
			} else {
				s.stderr.Write(append(sc.Bytes(), '\n'))
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	select {
	case s.addr = <-addrc:
	case <-s.exited:
		return nil, fmt.Errorf("server exited at start: %s", s.stderr)
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("server did not listen within 2 minutes: %s", s.stderr)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + s.addr + "/healthcheck")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("server at %s is not healthy: %v", s.addr, err)
		}
	}
}

// stop asks the server to shut down and waits for it, killing it after 30s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// memory reads the process's current and peak resident set, in KiB.
func (s *server) memory() (rss, hwm int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// scenarioHTTP is scenario 6: POST /additem through the real server, from 32
// connections, each filling fresh carts with three items one request after
// the other, against the same decisions made on a store directly (as in
// scenario 4) by 32 goroutines, in alternating rounds; the store-level
// rounds use a database of their own (storeDB), so the server's listeners
// have nothing to project while they run.
func (b *bench) scenarioHTTP(ctx context.Context, db, storeDB *database) error {
	const conns = 32
	bin := b.serverBin
	if bin == "" {
		b.progress.printf("6 http: building the server")
		var err error
		if bin, err = buildServer(ctx, b.root, b.tmp); err != nil {
			return err
		}
	}
	b.progress.printf("6 http: starting the server")
	srv, err := startServer(ctx, bin, db.url, b.tmp)
	if err != nil {
		return err
	}
	defer srv.stop()

	var peakRSS atomic.Int64
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, _, err := srv.memory(); err == nil && int64(rss) > peakRSS.Load() {
				peakRSS.Store(int64(rss))
			}
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
		}
	}()

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute,
	}}
	carts := make([]uuid.UUID, conns)
	done := make([]int, conns)
	var statuses sync.Map // status code → *atomic.Int64
	var added atomic.Int64
	post := func(w, i int) error {
		if done[w]%cart.MaxItems == 0 {
			carts[w] = newID()
		}
		done[w]++
		body := fmt.Sprintf(`{"item_id":%q,"product_id":%q,"description":"benchmark item","image":"https://example.invalid/item.png","price":"9.99"}`,
			newID(), newID())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.addr+"/additem/"+carts[w].String(), strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		n, _ := statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if resp.StatusCode != http.StatusOK {
			return errCounted
		}
		added.Add(1)
		return nil
	}
	var before int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'CartItemAdded'`).Scan(&before); err != nil {
		return err
	}
	b.progress.printf("6 http: warming up")
	if _, err := b.warmUp(ctx, conns, post); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if _, err := addItems(ctx, storeDB.store, conns, b.warm()); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	// Both databases were empty when the warm-up planned the store's
	// statements: statistics first, or the generic plans cached then (see
	// BENCHMARKS.md, "Fresh databases") cap both sides at a fraction of
	// their rate.
	for _, d := range []*database{db, storeDB} {
		if err := b.vacuum(ctx, d); err != nil {
			return err
		}
	}
	b.progress.printf("6 http: POST /additem from %d connections vs store-level decisions: %d alternating rounds, %s each", conns, b.rounds, b.phase/time.Duration(b.rounds))
	ps, ratios, err := compare(b.rounds, b.phase,
		func(d time.Duration) (phase, error) { return addItems(ctx, storeDB.store, conns, d) },
		func(d time.Duration) (phase, error) { return measure(ctx, conns, d, 0, post) })
	close(sampling)
	<-sampled
	if err != nil {
		return fmt.Errorf("load: %w (server: %s)", err, srv.stderr)
	}
	store, p := ps[0], ps[1]
	_, hwm, err := srv.memory()
	if err != nil {
		return fmt.Errorf("server memory: %w", err)
	}

	// Every 200 stored one item: the log must say so.
	var stored int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'CartItemAdded'`).Scan(&stored); err != nil {
		return err
	}
	stored -= before
	var codes []string
	statuses.Range(func(k, v any) bool {
		codes = append(codes, fmt.Sprintf("%d×%d", v.(*atomic.Int64).Load(), k))
		return true
	})

	base := b.res.add(phaseRow("6", "add-item decision, store level, rounds beside 6's", conns, "decision", store))
	base.Verdict = "baseline"
	x := b.res.add(phaseRow("6", "POST /additem via the server", conns, "request", p))
	x.judgeRounds("store-level add-item decisions, alternating rounds", ratios[1], "≥ 0.50", atLeast(0.5))
	x.Notes = fmt.Sprintf("statuses %s; %d items stored for %d answers 200", strings.Join(codes, ", "), stored, added.Load())
	if b.addItemRate > 0 {
		x.Notes += fmt.Sprintf("; %.2f× scenario 4's rate", p.perSecond()/b.addItemRate)
		x.Extra = map[string]any{"ratio_to_scenario_4": p.perSecond() / b.addItemRate}
	}
	if p.failed > 0 || stored != added.Load() {
		x.Verdict = "MISS"
	}
	peak := float64(hwm) / 1024
	m := b.res.add(row{Scenario: "6", Name: "server peak memory (VmHWM)", Concurrency: conns, Unit: "MiB",
		Target: "< 150 MiB", Verdict: "MISS",
		Notes: fmt.Sprintf("peak %.1f MiB (largest sampled RSS during load %.1f MiB)", peak, float64(peakRSS.Load())/1024),
		Extra: map[string]any{"vm_hwm_mib": peak, "sampled_peak_rss_mib": float64(peakRSS.Load()) / 1024}})
	if peak < 150 {
		m.Verdict = "PASS"
	}
	b.progress.printf("  %.0f requests/s, p50 %s, p99 %s; %s; %s", p.perSecond(), p.p50, p.p99, x.Notes, m.Notes)
	return nil
}
