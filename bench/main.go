// Command bench measures dcbkit's event store, listeners and server on a
// dedicated PostgreSQL database and compares each figure with a baseline
// measured in the same run (issue #6; results and how to read them are in
// BENCHMARKS.md).
//
// It creates its databases on the server named by DATABASE_URL, migrates
// them with package migrations, and drops them at the end unless -keep.
// The table goes to stdout, progress to stderr, and every figure to a JSON
// file (-json). -quick is the smoke run of CI: seconds instead of minutes,
// small tables, the same code paths.
//
//	make bench         # the full run, 10 to 15 minutes on 2 cores
//	make bench-smoke   # the quick one
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bench is one run: its settings, its results so far, and what one scenario
// hands to another.
type bench struct {
	serverURL        string
	phase            time.Duration // length of a timed phase
	sizes            []int         // events in the log for scenario 4
	seedCarts        int           // carts decided on at each size
	decisionsPerCart int
	rounds           int    // alternating rounds of a comparison
	root             string // the repository, for building the server
	serverBin        string // a prebuilt server, else built
	tmp              string
	only             map[string]bool

	progress *progress
	res      *results

	addItemRate   float64 // scenario 4's store-level add-item decisions/s, baseline of 6
	addItemEvents int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smoke run: small tables and 1s phases (seconds, not minutes)")
	keep := fs.Bool("keep", false, "keep the benchmark databases")
	phaseFlag := fs.Duration("phase", 0, "length of each timed phase (default 10s, 1s with -quick)")
	sizesFlag := fs.String("sizes", "", "events in the log for scenario 4, comma-separated (default 10000,1000000,5000000; 10000,50000,100000 with -quick)")
	jsonPath := fs.String("json", "results/latest.json", "where to write the results as JSON")
	markdown := fs.Bool("markdown", false, "also print the table as Markdown")
	serverBin := fs.String("server", "", "a built cmd/server binary (default: go build it)")
	only := fs.String("only", "", "run only these scenarios, comma-separated (e.g. 1,3)")
	prefix := fs.String("db", "dcbkit_bench", "prefix of the databases the run creates")
	explainFlag := fs.Bool("explain", false, "print the plans (EXPLAIN ANALYZE, BUFFERS via auto_explain) of one append, batch, decision and listener read, then stop")
	explainOn := fs.String("explain-on", "", "with -explain: an existing database to use (e.g. one kept with -keep), instead of a new one filled to the first size")
	if err := fs.Parse(args); err != nil {
		return err
	}

	b := &bench{
		serverURL: os.Getenv("DATABASE_URL"), phase: 10 * time.Second,
		sizes: []int{10_000, 1_000_000, 5_000_000}, seedCarts: 1000, decisionsPerCart: 5, rounds: 5,
		serverBin: *serverBin, progress: &progress{start: time.Now(), out: os.Stderr},
		res: &results{Started: time.Now().UTC(), Quick: *quick}, only: map[string]bool{},
	}
	if b.serverURL == "" {
		b.serverURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if *quick {
		b.phase, b.sizes, b.seedCarts, b.rounds = time.Second, []int{10_000, 50_000, 100_000}, 200, 2
	}
	if *phaseFlag > 0 {
		b.phase = *phaseFlag
	}
	if *sizesFlag != "" {
		b.sizes = nil
		for _, f := range strings.Split(*sizesFlag, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 5*b.seedCarts {
				return fmt.Errorf("-sizes: want three counts of at least %d, got %q", 5*b.seedCarts, *sizesFlag)
			}
			b.sizes = append(b.sizes, n)
		}
		if len(b.sizes) != 3 {
			return fmt.Errorf("-sizes: want three counts, got %q", *sizesFlag)
		}
	}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			b.only[s] = true
		}
	}
	var err error
	if b.root, err = repositoryRoot(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "dcbkit-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)

	var created []string
	defer func() {
		if *keep {
			b.progress.printf("kept the databases %s", strings.Join(created, ", "))
			return
		}
		for _, name := range created {
			if err := dropDatabase(b.serverURL, name); err != nil {
				b.progress.printf("drop database %s: %v", name, err)
			}
		}
	}()
	open := func(suffix string) (*database, error) {
		name := *prefix + "_" + suffix
		db, err := createDatabase(ctx, b.serverURL, name)
		if err == nil {
			created = append(created, name)
		}
		return db, err
	}

	if *explainFlag {
		if *explainOn != "" {
			db, err := openExisting(ctx, b.serverURL, *explainOn)
			if err != nil {
				return err
			}
			defer db.close()
			return explain(ctx, os.Stdout, db)
		}
		db, err := open("explain")
		if err != nil {
			return err
		}
		defer db.close()
		if _, err := b.fill(ctx, db, 0, b.sizes[0]); err != nil {
			return err
		}
		if err := b.vacuum(ctx, db); err != nil {
			return err
		}
		return explain(ctx, os.Stdout, db)
	}

	mode := "full"
	if *quick {
		mode = "quick"
	}
	b.progress.printf("bench (%s): phases of %s, decisions at %v events; databases %s_*", mode, b.phase, b.sizes, *prefix)
	start := time.Now()

	appends, err := open("appends")
	if err != nil {
		return err
	}
	defer appends.close()
	b.res.Machine = describeMachine(ctx, appends.pool, runtime.Version())

	steps := []struct {
		id  string
		run func() error
	}{
		{"1", func() error { return b.scenarioAppend(ctx, appends) }},
		{"2", func() error { return b.scenarioContended(ctx, appends) }},
		{"3", func() error { return b.scenarioBatch(ctx, appends) }},
		{"4", func() error {
			db, err := open("decisions")
			if err != nil {
				return err
			}
			defer db.close()
			return b.scenarioDecisions(ctx, db, b.wants("5"))
		}},
		{"5", func() error {
			if b.wants("4") {
				return nil // ran inside 4, on its log at the middle size
			}
			db, err := open("replay")
			if err != nil {
				return err
			}
			defer db.close()
			if _, err := b.fill(ctx, db, 0, b.sizes[1]); err != nil {
				return err
			}
			if err := b.vacuum(ctx, db); err != nil {
				return err
			}
			return b.scenarioReplay(ctx, db)
		}},
		{"6", func() error {
			db, err := open("http")
			if err != nil {
				return err
			}
			defer db.close()
			storeDB, err := open("http_store")
			if err != nil {
				return err
			}
			defer storeDB.close()
			return b.scenarioHTTP(ctx, db, storeDB)
		}},
		{"7", func() error { b.scenarioPeers(); return nil }},
	}
	for _, s := range steps {
		if !b.wants(s.id) {
			continue
		}
		b.checkQuiet(s.id)
		if err := s.run(); err != nil {
			return fmt.Errorf("scenario %s: %w", s.id, err)
		}
		// Hand back the idle connections of 1–3 before the next scenario
		// opens its own: PostgreSQL's connection slots are shared.
		appends.pool.Reset()
	}
	b.res.Duration = time.Since(start).Round(time.Second).String()
	// Scenario 5 runs inside 4; the table reads in scenario order.
	slices.SortStableFunc(b.res.Rows, func(x, y row) int { return strings.Compare(x.Scenario, y.Scenario) })

	fmt.Println()
	writeTable(os.Stdout, b.res)
	if *markdown {
		fmt.Println()
		writeMarkdown(os.Stdout, b.res)
	}
	if err := writeJSON(*jsonPath, b.res); err != nil {
		return fmt.Errorf("write %s: %w", *jsonPath, err)
	}
	b.progress.printf("done in %s; results in %s", b.res.Duration, *jsonPath)
	if m := misses(b.res); len(m) > 0 {
		b.progress.printf("missed targets: %s (see BENCHMARKS.md)", strings.Join(m, "; "))
	}
	if slices.ContainsFunc(b.res.Rows, func(x row) bool { return x.Scenario == "2" && x.Verdict == "MISS" }) {
		return fmt.Errorf("scenario 2 found invariant violations in the stored log")
	}
	return nil
}

// checkQuiet measures, while the benchmark is idle, how busy the machine is
// before scenario id, records it, and warns when something else is using
// the CPU: the figures of that scenario are then not to be trusted.
func (b *bench) checkQuiet(id string) {
	busy, err := busyCPU(time.Second)
	if err != nil {
		return
	}
	if b.res.BusyBefore == nil {
		b.res.BusyBefore = map[string]float64{}
	}
	b.res.BusyBefore[id] = busy
	if busy > 0.15 {
		b.progress.printf("WARNING: the machine is %.0f%% busy before scenario %s with the benchmark idle: other processes will skew its figures", 100*busy, id)
	}
}

func (b *bench) wants(id string) bool { return len(b.only) == 0 || b.only[id] }

func numCPU() int { return runtime.NumCPU() }

// repositoryRoot finds the directory of the main module, for building the
// server: the nearest parent holding go.mod of github.com/dcbkit/dcbkit.
func repositoryRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/dcbkit/dcbkit\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cannot find the dcbkit repository above the working directory")
		}
		dir = parent
	}
}
