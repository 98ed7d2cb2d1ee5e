// Package eventstoretest gives tests a fresh, migrated PostgreSQL database of
// their own, on whatever server init_dev.sh provided, plus helpers to append
// given events and check stored ones.
//
// The server is the one named by DATABASE_URL (the Makefile exports the URL
// that init_dev.sh wrote to .dev/env), else postgres://postgres@127.0.0.1:5432.
// The first call in a test binary migrates a template database, once per
// schema version and shared by all test binaries; every call then clones it
// with CREATE DATABASE … TEMPLATE, which takes a few tens of milliseconds.
package eventstoretest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/migrations"
)

const defaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
	counter      atomic.Int64
)

// ServerURL returns the URL of the PostgreSQL server tests use.
func ServerURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return defaultURL
}

// DatabaseURL creates a fresh, migrated database for t, drops it when t ends,
// and returns its URL. It fails t with a clear message when no PostgreSQL
// answers.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	url, drop, err := createDatabase()
	if err != nil {
		t.Fatalf("eventstoretest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("eventstoretest: %v", err)
		}
	})
	return url
}

// createDatabase clones the migrated template into a new database and
// returns its URL and the function that drops it.
func createDatabase() (string, func() error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return "", nil, fmt.Errorf("no PostgreSQL answers at %s (run ./init_dev.sh, or make test, which does): %w", redact(ServerURL()), err)
	}
	defer admin.Close(ctx)

	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx, admin) })
	if templateErr != nil {
		return "", nil, fmt.Errorf("prepare template database: %w", templateErr)
	}
	name := fmt.Sprintf("dcbkit_test_%d_%d_%d", time.Now().Unix(), os.Getpid(), counter.Add(1))
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName)); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return withDatabase(ServerURL(), name), drop, nil
}

var shared struct {
	url   string
	once  sync.Once
	pool  *pgxpool.Pool
	store *eventstore.Store
}

// Main runs a package's tests with one database created for all of them and
// dropped afterwards, which SharedPool and SharedStore use: tests that use
// fresh ids share a database safely. Call it from TestMain.
func Main(m *testing.M) {
	url, drop, err := createDatabase()
	if err != nil {
		fmt.Fprintln(os.Stderr, "eventstoretest:", err)
		os.Exit(1)
	}
	shared.url = url
	code := m.Run()
	if shared.store != nil {
		shared.store.Close()
		shared.pool.Close()
	}
	if err := drop(); err != nil {
		fmt.Fprintln(os.Stderr, "eventstoretest:", err)
	}
	os.Exit(code)
}

// SharedPool returns the pool on the package's shared database (see Main).
func SharedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	initShared(t)
	return shared.pool
}

// SharedStore returns a store on the package's shared database (see Main).
func SharedStore(t testing.TB) *eventstore.Store {
	t.Helper()
	initShared(t)
	return shared.store
}

func initShared(t testing.TB) {
	t.Helper()
	if shared.url == "" {
		t.Fatal("eventstoretest: SharedPool and SharedStore need eventstoretest.Main in the package's TestMain")
	}
	shared.once.Do(func() {
		cfg, err := pgxpool.ParseConfig(shared.url)
		if err != nil {
			panic(err)
		}
		cfg.MaxConns = 40
		if shared.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			panic(err)
		}
		shared.store = eventstore.New(shared.pool, eventstore.Options{})
	})
}

// NewPool returns a pool on a fresh, migrated database, closed when t ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(DatabaseURL(t))
	if err != nil {
		t.Fatalf("eventstoretest: %v", err)
	}
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("eventstoretest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewStore returns a store on a fresh, migrated database, closed when t ends.
func NewStore(t testing.TB, opts eventstore.Options) *eventstore.Store {
	t.Helper()
	s := eventstore.New(NewPool(t), opts)
	t.Cleanup(s.Close)
	return s
}

// ensureTemplate creates the migrated template database for the current schema
// version unless another test binary already has. Test binaries run in
// parallel, so they take turns under an advisory lock.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	name := "dcbkit_template_" + migrations.Version()
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(7306878238)"); err != nil {
		return "", err
	}
	defer admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7306878238)")

	dropStale(ctx, admin)
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil || exists {
		return name, err
	}
	building := name + "_building"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDatabase(ServerURL(), building))
	if err != nil {
		return "", err
	}
	err = migrations.Up(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pool.Close()
	if err != nil {
		return "", err
	}
	// Renamed only once complete, so a crash never leaves a half-built template.
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, name))
	return name, err
}

// dropStale drops test databases that outlived their test binary by an hour:
// a killed run cannot clean up after itself.
func dropStale(ctx context.Context, admin *pgx.Conn) {
	rows, err := admin.Query(ctx, `
		SELECT datname FROM pg_database
		WHERE datname LIKE 'dcbkit\_test\_%' AND split_part(datname, '_', 3)::bigint < $1`,
		time.Now().Add(-time.Hour).Unix())
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		_, _ = admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{n}.Sanitize()))
	}
}

func withDatabase(serverURL, name string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Path = "/" + name
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
