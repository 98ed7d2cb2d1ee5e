package workqueue

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5"
	"riverqueue.com/riverui"
)

// KindStats counts the jobs of one kind by state, for metrics.
type KindStats struct {
	Kind string
	// Available jobs wait for a worker; Running ones are being worked.
	Available, Running int64
	// Retryable jobs failed and wait for their backoff; Scheduled ones wait
	// for their ScheduledAt (or a GiveUp retry).
	Retryable, Scheduled int64
	// Completed jobs succeeded. Cancelled ones were cancelled by an operator.
	// Discarded ones gave up (or, rarely, could not be decoded at all).
	Completed, Cancelled, Discarded int64
}

// Stats counts the jobs of every registered kind, and of any other kind found
// in the database, by state, sorted by kind. It reads the whole job table,
// which keeps finished jobs forever: call it at a metrics-scrape pace, not per
// request.
func (q *Queue) Stats(ctx context.Context) ([]KindStats, error) {
	rows, err := q.pool.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job GROUP BY kind, state`)
	if err != nil {
		return nil, fmt.Errorf("workqueue: stats: %w", err)
	}
	type row struct {
		Kind, State string
		Count       int64
	}
	counts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return nil, fmt.Errorf("workqueue: stats: %w", err)
	}
	byKind := map[string]*KindStats{}
	get := func(kind string) *KindStats {
		if s, ok := byKind[kind]; ok {
			return s
		}
		s := &KindStats{Kind: kind}
		byKind[kind] = s
		return s
	}
	q.mu.Lock()
	for kind := range q.kinds {
		get(kind)
	}
	q.mu.Unlock()
	for _, c := range counts {
		s := get(c.Kind)
		switch c.State {
		case "available":
			s.Available += c.Count
		case "running":
			s.Running += c.Count
		case "retryable":
			s.Retryable += c.Count
		case "scheduled":
			s.Scheduled += c.Count
		case "completed":
			s.Completed += c.Count
		case "cancelled":
			s.Cancelled += c.Count
		case "discarded":
			s.Discarded += c.Count
		}
	}
	stats := make([]KindStats, 0, len(byKind))
	for _, s := range byKind {
		stats = append(stats, *s)
	}
	slices.SortFunc(stats, func(a, b KindStats) int { return cmp.Compare(a.Kind, b.Kind) })
	return stats, nil
}

// UIHandler returns River's web UI (jobs, their errors and states, with
// retry, cancel and delete buttons) and its JSON API, for requests whose path
// starts with prefix, e.g. "/riverui": mount it with
// mux.Handle(prefix+"/", h). ctx bounds the UI's background work (caches);
// cancel it when the HTTP server stops. The UI has no authentication of its
// own: mount it on the operator API only. Like Start, it fixes the registered
// kinds.
func (q *Queue) UIHandler(ctx context.Context, prefix string) (http.Handler, error) {
	client, err := q.riverClient()
	if err != nil {
		return nil, err
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    q.logger,
		Prefix:    prefix,
	})
	if err != nil {
		return nil, fmt.Errorf("workqueue: ui: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("workqueue: ui: %w", err)
	}
	return h, nil
}
