package workqueue_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/workqueue"
)

type idle struct{}

func (idle) Kind() string { return "test_idle" }

func TestStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: func(context.Context, workqueue.Job[echo]) error { return nil }})
	workqueue.Register(q, workqueue.KindConfig[other]{
		MaxAttempts: 1,
		Work:        func(context.Context, workqueue.Job[other]) error { return errBroken },
	})
	workqueue.Register(q, workqueue.KindConfig[idle]{Work: func(context.Context, workqueue.Job[idle]) error { return nil }})

	start(t, q)
	for range 2 {
		_, err := q.Enqueue(ctx, echo{}, workqueue.EnqueueOptions{})
		require.NoError(t, err)
	}
	_, err := q.Enqueue(ctx, other{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	waitFor(t, "jobs finished", func() bool {
		return countJobs(t, pool, "state IN ('completed', 'discarded')") == 3
	})
	stopCtx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	require.NoError(t, q.Stop(stopCtx))
	_, err = q.Enqueue(ctx, echo{}, workqueue.EnqueueOptions{})
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, echo{}, workqueue.EnqueueOptions{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)

	stats, err := q.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, []workqueue.KindStats{
		{Kind: "test_echo", Available: 1, Scheduled: 1, Completed: 2},
		{Kind: "test_idle"},
		{Kind: "test_other", Discarded: 1},
	}, stats)
}

func TestUIHandler(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	q := newQueue(t, pool)
	workqueue.Register(q, workqueue.KindConfig[echo]{Work: func(context.Context, workqueue.Job[echo]) error { return nil }})
	_, err := q.Enqueue(context.Background(), echo{Name: "shown"}, workqueue.EnqueueOptions{UniqueKey: "k"})
	require.NoError(t, err)

	h, err := q.UIHandler(t.Context(), "/riverui")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/riverui/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	status, body := get("/riverui/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "<html")

	status, body = get("/riverui/api/jobs?state=available")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"kind":"test_echo"`)
	require.Contains(t, body, `unique_key`, "the key is shown with the args")
}
