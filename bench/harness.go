package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/migrations"
)

// database is one dedicated, migrated database of a run, with its pool and
// store; drop removes it unless the run keeps its databases.
type database struct {
	name  string
	url   string
	pool  *pgxpool.Pool
	store *eventstore.Store
}

// createDatabase creates and migrates a database named prefix_<suffix> on the
// server at serverURL. The pool has room for 32 writers, the group-commit
// goroutine and a listener runtime, and no more: the server's
// max_connections (100 by default) is shared with whatever else runs.
func createDatabase(ctx context.Context, serverURL, name string) (*database, error) {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("no PostgreSQL answers at DATABASE_URL (run ./init_dev.sh, or make bench, which does): %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return nil, fmt.Errorf("drop stale database %s: %w", name, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	db := &database{name: name, url: withDatabase(serverURL, name)}
	cfg, err := pgxpool.ParseConfig(db.url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 40
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := migrations.Up(ctx, db.pool, quiet); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	db.store = eventstore.New(db.pool, eventstore.Options{})
	return db, nil
}

// openExisting opens a database that exists, e.g. one kept with -keep.
func openExisting(ctx context.Context, serverURL, name string) (*database, error) {
	db := &database{name: name, url: withDatabase(serverURL, name)}
	cfg, err := pgxpool.ParseConfig(db.url)
	if err != nil {
		return nil, err
	}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, err
	}
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	db.store = eventstore.New(db.pool, eventstore.Options{})
	return db, nil
}

// close closes the store and the pool.
func (db *database) close() {
	if db.store != nil {
		db.store.Close()
	}
	db.pool.Close()
}

// dropDatabase drops name on the server at serverURL.
func dropDatabase(serverURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// withDatabase returns serverURL with its database name replaced.
func withDatabase(serverURL, name string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Path = "/" + name
	return u.String()
}

// settle makes the phases start from the same state: a CHECKPOINT, so that
// no checkpoint of the previous phase's writes lands in the next one.
func settle(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, "CHECKPOINT")
	return err
}

// phase is what one measured phase saw.
type phase struct {
	ops      int // successful operations
	failed   int // operations that returned errSkip (e.g. a condition failure)
	elapsed  time.Duration
	p50, p99 time.Duration
	lat      []time.Duration // every successful operation's, sorted
}

// merge adds the rounds of one variant of a comparison into one phase.
func merge(ps ...phase) phase {
	var m phase
	for _, p := range ps {
		m.ops += p.ops
		m.failed += p.failed
		m.elapsed += p.elapsed
		m.lat = append(m.lat, p.lat...)
	}
	m.p50, m.p99 = percentile(m.lat, 50), percentile(m.lat, 99)
	return m
}

func (p phase) perSecond() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.ops) / p.elapsed.Seconds()
}

// errCounted is returned by an operation that did its work but whose outcome
// counts as failed (a condition failure), not as an error of the run.
var errCounted = fmt.Errorf("counted failure")

// measure runs op from workers goroutines until d has passed or, when count
// is positive, until count operations have been started, and records the
// latency of every call. op gets the worker's index and a sequence number
// unique within the phase. The first error other than errCounted stops the
// phase and is returned.
func measure(ctx context.Context, workers int, d time.Duration, count int, op func(w, i int) error) (phase, error) {
	var (
		wg        sync.WaitGroup
		next      atomic.Int64
		latencies = make([][]time.Duration, workers)
		failed    = make([]int, workers)
		firstErr  error
		errOnce   sync.Once
		stop      atomic.Bool
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if count > 0 && i >= count || count <= 0 && !time.Now().Before(deadline) {
					return
				}
				t0 := time.Now()
				err := op(w, i)
				took := time.Since(t0)
				switch {
				case err == nil:
					latencies[w] = append(latencies[w], took)
				case err == errCounted:
					failed[w]++
				default:
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	p := phase{elapsed: time.Since(start)}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	all := slices.Concat(latencies...)
	for _, f := range failed {
		p.failed += f
	}
	p.ops = len(all)
	p.p50, p.p99 = percentile(all, 50), percentile(all, 99)
	p.lat = all
	return p, firstErr
}

// warmUp runs op like measure, for b.warm, and forgets the figures: the
// pool's connections, their prepared statements and the plans cached by the
// store's functions are then ready before a phase is timed. It returns the
// number of successful operations.
func (b *bench) warmUp(ctx context.Context, workers int, op func(w, i int) error) (int, error) {
	p, err := measure(ctx, workers, b.warm(), 0, op)
	return p.ops, err
}

func (b *bench) warm() time.Duration { return min(b.phase/10, time.Second) }

// percentile returns the q-th percentile (nearest rank) of ds; it sorts ds.
func percentile(ds []time.Duration, q int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := (len(ds)*q + 99) / 100 // ceil(n*q/100), 1-based
	return ds[max(rank, 1)-1]
}

// progress writes timestamped progress lines to stderr.
type progress struct {
	start time.Time
	out   io.Writer
	mu    sync.Mutex
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Round(time.Second)
	fmt.Fprintf(p.out, "[%6s] %s\n", el, fmt.Sprintf(format, args...))
}

// machine describes where the run happened.
type machine struct {
	CPU        string            `json:"cpu"`
	Cores      int               `json:"cores"`
	MemoryMiB  int               `json:"memory_mib"`
	GoVersion  string            `json:"go_version"`
	PostgreSQL string            `json:"postgresql"`
	Settings   map[string]string `json:"settings"`
}

// pgSettings are the PostgreSQL settings that matter to these numbers.
var pgSettings = []string{"shared_buffers", "fsync", "synchronous_commit", "wal_level", "max_wal_size",
	"checkpoint_timeout", "commit_delay", "work_mem", "effective_cache_size", "max_connections"}

func describeMachine(ctx context.Context, pool *pgxpool.Pool, goVersion string) machine {
	m := machine{Cores: numCPU(), GoVersion: goVersion, Settings: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		for line := range strings.Lines(string(b)) {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemoryMiB = kb / 1024
				break
			}
		}
	}
	_ = pool.QueryRow(ctx, "SELECT version()").Scan(&m.PostgreSQL)
	for _, s := range pgSettings {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", s).Scan(&v); err == nil {
			m.Settings[s] = v
		}
	}
	return m
}

// busyCPU returns the share of the machine's CPU time (0 to 1) spent
// running anything during d. Called while the benchmark itself is idle, it
// tells whether something else on the machine would skew the next phase.
func busyCPU(d time.Duration) (float64, error) {
	read := func() (busy, total uint64, err error) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[0] != "cpu" {
			return 0, 0, fmt.Errorf("unexpected /proc/stat")
		}
		for i, f := range fields[1:] {
			var v uint64
			fmt.Sscan(f, &v)
			total += v
			if i != 3 && i != 4 { // idle, iowait
				busy += v
			}
		}
		return busy, total, nil
	}
	b0, t0, err := read()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b1, t1, err := read()
	if err != nil || t1 == t0 {
		return 0, err
	}
	return float64(b1-b0) / float64(t1-t0), nil
}

// variant is one side of a comparison: a timed run of d.
type variant func(d time.Duration) (phase, error)

// compare runs the variants in turn, rounds times, each for d/rounds per
// round, in an order that alternates (A B C, C B A, …) so that a change in
// the machine's load during the comparison touches every variant alike. It
// returns each variant's rounds merged and, for every variant, the spread
// over the rounds of its throughput over variant 0's in the same round.
// On a machine shared with other work, the median of paired rounds is a
// far steadier ratio than two long phases one after the other.
func compare(rounds int, d time.Duration, vs ...variant) ([]phase, []spread, error) {
	per := make([][]phase, len(vs))
	for r := range rounds {
		order := make([]int, len(vs))
		for i := range order {
			order[i] = i
			if r%2 == 1 {
				order[i] = len(vs) - 1 - i
			}
		}
		for _, i := range order {
			p, err := vs[i](d / time.Duration(rounds))
			if err != nil {
				return nil, nil, err
			}
			per[i] = append(per[i], p)
		}
	}
	merged := make([]phase, len(vs))
	ratios := make([]spread, len(vs))
	for i := range vs {
		merged[i] = merge(per[i]...)
		rs := make([]float64, rounds)
		for r := range rounds {
			rs[r] = per[i][r].perSecond() / per[0][r].perSecond()
		}
		ratios[i] = spreadOf(rs)
	}
	return merged, ratios, nil
}

// spread is a ratio measured in paired rounds: the median of the rounds'
// ratios, and the lowest and the highest. The median is the figure; the
// range shows how far the machine moved it from one round to the next.
type spread struct{ median, low, high float64 }

func spreadOf(rs []float64) spread {
	rs = slices.Sorted(slices.Values(rs))
	n := len(rs)
	m := rs[n/2]
	if n%2 == 0 {
		m = (rs[n/2-1] + rs[n/2]) / 2
	}
	return spread{median: m, low: rs[0], high: rs[n-1]}
}

func (s spread) String() string {
	return fmt.Sprintf("%.2f (rounds %.2f–%.2f)", s.median, s.low, s.high)
}

// walPosition returns the server's current WAL position, in bytes.
func walPosition(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var lsn int64
	err := pool.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").Scan(&lsn)
	return lsn, err
}
