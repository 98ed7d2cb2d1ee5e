package tests

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// readiness reads GET /readyz: its status code and its checks.
func (s *Server) readiness(t testing.TB) (int, map[string]any) {
	t.Helper()
	r := s.AdminGet(t, "/readyz")
	checks, _ := r.JSON(t)["checks"].(map[string]any)
	return r.Status, checks
}

// TestBrokerDownPublicationFails: with the (outside) broker stopped, a
// submitted cart's publication retries until its budget (PUBLISH_BUDGET,
// shortened to 5s) is spent, then exactly one CartPublicationFailed ends
// its story and no CartPublished. Meanwhile the server logs the outage,
// /readyz reports Kafka degraded but stays ready, and the rest of the API
// answers.
func TestBrokerDownPublicationFails(t *testing.T) {
	t.Parallel()
	broker := StartBroker(t)
	s := StartServer(t, ServerOptions{KafkaBrokers: broker.Addr, Env: map[string]string{"PUBLISH_BUDGET": "5s"}})
	eventually(t, kafkaWait, func() error {
		if _, checks := s.readiness(t); checks["kafka"] != "ok" {
			return fmt.Errorf("readyz kafka: %v", checks["kafka"])
		}
		return nil
	})

	c, p := newID(), newID()
	s.addItem(t, c, newID(), p, "4.20")
	broker.Stop()
	submittedAt := time.Now()
	s.submit(t, c)

	// Degraded, not down.
	eventually(t, 30*time.Second, func() error {
		status, checks := s.readiness(t)
		if status != http.StatusOK {
			return fmt.Errorf("readyz %d %v", status, checks)
		}
		if k, _ := checks["kafka"].(string); len(k) < 8 || k[:8] != "degraded" {
			return fmt.Errorf("readyz kafka: %v", checks["kafka"])
		}
		return nil
	})
	s.WaitLog(t, 30*time.Second, "saying Kafka is unreachable", func(l LogLine) bool {
		return l.Level == "WARN" && l.Msg == "kafka unreachable; retrying with backoff"
	})
	require.Equal(t, http.StatusOK, s.AdminGet(t, "/healthz").Status)
	other := newID()
	at := s.addItem(t, other, newID(), p, "1")
	require.Equal(t, http.StatusOK, s.Get(t, "/"+c.String()+"/cartitems").Status)
	s.readModel(t, "/"+other.String()+"/cartitemsfromdb", at)

	events := waitStoryEnd(t, s, c, time.Minute)
	// The budget bounds the attempts too: the producer's own timeout (30s)
	// used to stretch it.
	took := time.Since(submittedAt)
	require.Less(t, took, 20*time.Second, "CartPublicationFailed long after the 5s budget")
	failed := ofType(events, "CartPublicationFailed")
	require.Len(t, failed, 1)
	require.Empty(t, ofType(events, "CartPublished"))
	require.Equal(t, c.String(), failed[0].Data["cart_id"])
	require.NotEmpty(t, failed[0].Data["reason"])
	s.WaitLog(t, 10*time.Second, "saying the producer retries", func(l LogLine) bool {
		return l.Msg == "kafka unreachable; retrying with backoff" && l.Attr("client") == "producer"
	})
	t.Logf("reason: %s", failed[0].Data["reason"])
	s.WaitLog(t, 10*time.Second, "saying the publication gave up", func(l LogLine) bool {
		return l.Msg == "workqueue: job gave up" && l.Attr("kind") == "cart.publish"
	})
	jobs := s.SQL(t, `SELECT state FROM river_job WHERE kind = 'cart.publish'`)
	require.Len(t, jobs, 1)
	require.Equal(t, "discarded", jobs[0]["state"], "the job ended, given up")
	require.Len(t, ofType(s.CartEvents(t, c), "CartPublicationFailed"), 1, "still exactly one")
}
