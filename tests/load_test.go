package tests

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric reads one unlabelled gauge from the operator API's /metrics.
func (s *Server) metric(name string) (float64, error) {
	resp, err := httpClient.Get(s.Admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics (status %d)", name, resp.StatusCode)
}

// growth compares the mean of the last third of samples with the mean of
// the first third, after skipping the first quarter (warm-up): 0.1 is 10%
// more at the end.
func growth(samples []float64) float64 {
	s := samples[len(samples)/4:]
	third := len(s) / 3
	if third == 0 {
		return 0
	}
	mean := func(xs []float64) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += x
		}
		return sum / float64(len(xs))
	}
	return mean(s[len(s)-third:])/mean(s[:third]) - 1
}

// TestReliabilityLoad: a sustained run at a steady request rate (short: 15
// seconds; long: 5 minutes) reports latency percentiles and the error rate
// per request kind, and whether the server's memory grows. In the long form
// the heap in use may not grow by more than 100% between the first and the
// last third of the run, and the error rate must stay under 1%.
func TestReliabilityLoad(t *testing.T) {
	s := StartServer(t, ServerOptions{Env: reliabilityEnv(nil)})
	targets := &Targets{}
	targets.Set(s.HTTP)
	duration := short(15*time.Second, 5*time.Minute)
	const clients, interval = 5, 50 * time.Millisecond // 100 requests per second
	w := StartWorkload(t, targets, WorkloadOptions{Clients: clients, Interval: interval, Products: 20,
		KafkaInterval: 100 * time.Millisecond, Broker: s.Broker})

	var heap, rss []float64
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	every(ctx, time.Second, func() {
		h, err := s.metric("go_memstats_heap_inuse_bytes")
		r, err2 := s.metric("process_resident_memory_bytes")
		if err != nil || err2 != nil {
			t.Errorf("metrics: %v %v", err, err2)
			return
		}
		heap, rss = append(heap, h), append(rss, r)
	})
	w.Stop()
	sent, acked := w.Report(t)

	w.mu.Lock()
	errors, total := 0, 0
	for _, st := range w.stats {
		errors += st.unavailable + st.failed + st.unknown
		total += st.sent
	}
	w.mu.Unlock()
	rate := float64(errors) / float64(max(total, 1))
	hg, rg := growth(heap), growth(rss)
	summary(t, "load", "%s at %d req/s: requests %d, acknowledged %d, error rate %.2f%%, heap in use %.1f→%.1f MiB (growth %+.0f%%), RSS growth %+.0f%%",
		duration, int(float64(clients)*float64(time.Second)/float64(interval)), sent, acked, rate*100,
		heap[0]/(1<<20), heap[len(heap)-1]/(1<<20), hg*100, rg*100)

	waitSettled(t, s.DatabaseURL, w.Produced(), 2*time.Minute)
	var r Report
	CheckInvariants(t, &r, s, w.Acks(), w.Produced())
	r.log(t, "load")
	if len(r.Violations) > 0 {
		t.Errorf("%d invariant violations", len(r.Violations))
	}
	if longRun() {
		if hg > 1 {
			t.Errorf("the heap in use grew by %.0f%% over the run", hg*100)
		}
		if rate > 0.01 {
			t.Errorf("error rate %.2f%%", rate*100)
		}
	}
	if resp := s.AdminGet(t, "/healthz"); resp.Status != http.StatusOK {
		t.Errorf("healthz after the run: %s", resp)
	}
}
