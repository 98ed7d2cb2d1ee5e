package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/slices/cart"
)

// explain prints the plans, with actual times and buffers, of the statements
// that the measured operations run inside the store's functions, through
// auto_explain (which needs a superuser): one single-event conditional
// append, one conditional append of 100 events, one decision's read, and one
// batch of the cart_items listener's read. It works on db as it is, so that
// it can be pointed at a database kept with -keep.
func explain(ctx context.Context, w io.Writer, db *database) error {
	cfg, err := pgxpool.ParseConfig(db.url)
	if err != nil {
		return err
	}
	cfg.MaxConns = 1
	var current strings.Builder
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if strings.HasPrefix(n.Message, "duration:") {
			current.WriteString(n.Message)
			current.WriteString("\n")
		}
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		for _, s := range []string{
			"LOAD 'auto_explain'",
			"SET auto_explain.log_min_duration = 0",
			"SET auto_explain.log_analyze = on",
			"SET auto_explain.log_buffers = on",
			"SET auto_explain.log_nested_statements = on",
			"SET auto_explain.log_level = notice",
		} {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := eventstore.New(pool, eventstore.Options{})
	defer store.Close()

	show := func(title string, f func() error) error {
		current.Reset()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", title, err)
		}
		fmt.Fprintf(w, "==== %s\n%s\n", title, current.String())
		return nil
	}
	tag := tagOf("explain")
	q := itemQuery(tag)
	one := []eventstore.Event{{Type: "Measured", Tags: []string{tag}, Data: []byte(`{"n":1}`)}}
	if _, err := store.Append(ctx, one, nil); err != nil { // warm the session
		return err
	}
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	if err := show("single-event conditional append", func() error {
		_, err := store.Append(ctx, one, &eventstore.AppendCondition{FailIfEventsMatch: q, After: head})
		return err
	}); err != nil {
		return err
	}
	batch := make([]eventstore.Event, 100)
	for i := range batch {
		batch[i] = eventstore.Event{Type: "Batched", Tags: []string{tag, fmt.Sprintf("item:%d", i)}, Data: []byte(`{"item":1,"qty":2}`)}
	}
	if head, err = store.Head(ctx); err != nil {
		return err
	}
	if err := show("conditional append of 100 events", func() error {
		_, err := store.Append(ctx, batch, &eventstore.AppendCondition{FailIfEventsMatch: q, After: head})
		return err
	}); err != nil {
		return err
	}
	seeded, _, err := (&bench{}).seed(ctx, db, 1)
	if err != nil {
		return err
	}
	if err := show("decision (read, fold, conditional append) on a cart of five events", func() error {
		return decideOn(ctx, store, seeded, 0)
	}); err != nil {
		return err
	}
	if err := walStats(ctx, w, db, store); err != nil {
		return err
	}
	l := cart.CartItemsListener()
	return show("one batch of the cart_items listener's read (500 events from the start)", func() error {
		_, err := store.Read(ctx, l.Query, eventstore.ReadOptions{From: 1, Limit: 500})
		return err
	})
}

// walStats prints, by resource manager, the WAL written by 200 single-event
// conditional appends right after a CHECKPOINT, through pg_walinspect
// (PostgreSQL 15 and later; skipped where the extension is missing). Full
// page images (fpi) are where an index with random keys pays.
func walStats(ctx context.Context, w io.Writer, db *database, store *eventstore.Store) error {
	if _, err := db.pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
		fmt.Fprintf(w, "==== WAL by resource manager: skipped (%v)\n\n", err)
		return nil
	}
	if err := settle(ctx, db.pool); err != nil {
		return err
	}
	var start string
	if err := db.pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&start); err != nil {
		return err
	}
	tag := tagOf("walstats")
	var last int64
	for range 200 {
		res, err := store.Append(ctx, []eventstore.Event{{Type: "Measured", Tags: []string{tag}, Data: []byte(`{"n":1}`)}},
			&eventstore.AppendCondition{FailIfEventsMatch: itemQuery(tag), After: last})
		if err != nil {
			return err
		}
		last = res.Position
	}
	rows, err := db.pool.Query(ctx, `SELECT "resource_manager/record_type", count, record_size, fpi_size, combined_size
		FROM pg_get_wal_stats($1::pg_lsn, pg_current_wal_lsn(), false) WHERE count > 0 ORDER BY combined_size DESC`, start)
	if err != nil {
		return err
	}
	defer rows.Close()
	fmt.Fprintf(w, "==== WAL of 200 single-event conditional appends after a CHECKPOINT, by resource manager (whole server)\n")
	fmt.Fprintf(w, "%-12s %8s %12s %12s %12s\n", "rmgr", "records", "record B", "fpi B", "total B")
	for rows.Next() {
		var name string
		var count, rec, fpi, total int64
		if err := rows.Scan(&name, &count, &rec, &fpi, &total); err != nil {
			return err
		}
		fmt.Fprintf(w, "%-12s %8d %12d %12d %12d\n", name, count, rec, fpi, total)
	}
	fmt.Fprintln(w)
	return rows.Err()
}
