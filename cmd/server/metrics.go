package main

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dcbkit/dcbkit/eventstore"
)

// metrics are the server's Prometheus metrics, served on the operator port.
type metrics struct {
	registry       *prometheus.Registry
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	appends        *prometheus.CounterVec
	appendedEvents prometheus.Counter
	appendDuration prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dcbkit_http_requests_total", Help: "HTTP requests answered, by API, method, route and status.",
		}, []string{"api", "method", "route", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dcbkit_http_request_duration_seconds", Help: "HTTP request latency, by API, method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api", "method", "route"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dcbkit_appends_total", Help: "Appends to the event store, by outcome (ok, conflict: the append condition failed, error).",
		}, []string{"outcome"}),
		appendedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dcbkit_appended_events_total", Help: "Events appended to the event store.",
		}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dcbkit_append_duration_seconds", Help: "Latency of appends, group commit included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.appends, m.appendedEvents, m.appendDuration)
	return m
}

// observeHTTP returns the httpapi Observe hook for one API ("public", "admin").
func (m *metrics) observeHTTP(api string) func(method, route string, status int, elapsed time.Duration) {
	return func(method, route string, status int, elapsed time.Duration) {
		if route == "" {
			route = "unmatched" // keeps unknown paths from exploding the label set
		}
		m.httpRequests.WithLabelValues(api, method, route, strconv.Itoa(status)).Inc()
		m.httpDuration.WithLabelValues(api, method, route).Observe(elapsed.Seconds())
	}
}

// observeAppend is the event store's OnAppend hook.
func (m *metrics) observeAppend(s eventstore.AppendStats) {
	outcome := "ok"
	switch {
	case errors.Is(s.Err, eventstore.ErrAppendConditionFailed):
		outcome = "conflict"
	case s.Err != nil:
		outcome = "error"
	default:
		m.appendedEvents.Add(float64(s.Events))
	}
	m.appends.WithLabelValues(outcome).Inc()
	m.appendDuration.Observe(s.Duration.Seconds())
}
