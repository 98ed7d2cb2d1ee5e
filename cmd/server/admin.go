package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/kafkabridge"
	"github.com/dcbkit/dcbkit/listeners"
	"github.com/dcbkit/dcbkit/migrations"
	"github.com/dcbkit/dcbkit/slices/cart"
	"github.com/dcbkit/dcbkit/slices/identity"
	"github.com/dcbkit/dcbkit/workqueue"
)

type adminDeps struct {
	cfg       Config
	logger    *slog.Logger
	metrics   *metrics
	pool      *pgxpool.Pool
	store     *eventstore.Store
	listeners *listeners.Runtime
	jobs      *workqueue.Queue
	consumer  *kafkabridge.Consumer
	producer  *kafkabridge.Producer // nil: readiness does not report publication
}

// newAdmin builds the operator API: health, readiness, metrics, listener
// status, River's web UI and the DCB HTTP API, behind the ADMIN_TOKEN bearer
// when one is set.
func newAdmin(ctx context.Context, d adminDeps) (http.Handler, error) {
	e := httpapi.NewEngine(httpapi.Options{Logger: d.logger, Observe: d.metrics.observeHTTP("admin"), TrustedProxies: d.cfg.TrustedProxies})
	if d.cfg.AdminToken != "" {
		e.Use(requireToken(d.cfg.AdminToken))
	}
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "alive"}) })
	e.GET("/readyz", readiness(d))
	d.metrics.registry.MustRegister(&statusCollector{d: d})
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{})))
	e.GET("/listeners", func(c *gin.Context) {
		status, err := d.listeners.Status(c.Request.Context())
		if err != nil {
			httpapi.StoreError(c, d.logger, err)
			return
		}
		out := make([]gin.H, len(status))
		for i, s := range status {
			out[i] = gin.H{"name": s.Name, "checkpoint": s.Checkpoint, "head": s.Head, "lag": s.Lag,
				"holder": s.Holder, "lease_until": nullTime(s.LeaseUntil), "running_here": s.Running,
				"last_error": s.LastError, "last_error_at": nullTime(s.LastErrorAt)}
		}
		c.JSON(http.StatusOK, out)
	})
	ui, err := d.jobs.UIHandler(ctx, "/riverui")
	if err != nil {
		return nil, err
	}
	e.Any("/riverui/*path", gin.WrapH(ui))
	// Profiles, for finding where time goes in a running server.
	e.GET("/debug/pprof/*profile", gin.WrapF(func(w http.ResponseWriter, r *http.Request) {
		switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
		case "profile":
			pprof.Profile(w, r)
		case "trace":
			pprof.Trace(w, r)
		case "":
			pprof.Index(w, r)
		default:
			pprof.Handler(name).ServeHTTP(w, r)
		}
	}))
	httpapi.RegisterDCB(e, d.store, d.logger, cart.Events, identity.Events)
	return e, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// requireToken lets through only requests bearing the operator token. It
// compares SHA-256 digests in constant time: subtle.ConstantTimeCompare
// returns at once for inputs of different lengths, which would tell the
// token's length.
func requireToken(token string) gin.HandlerFunc {
	want := sha256.Sum256([]byte(token))
	return func(c *gin.Context) {
		got, isBearer := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !isBearer {
			c.Header("WWW-Authenticate", `Bearer realm="dcbkit-admin"`)
			httpapi.Error(c, http.StatusUnauthorized, "unauthorized", "the operator API requires the ADMIN_TOKEN bearer token")
			return
		}
		c.Next()
	}
}

// readiness answers 200 when PostgreSQL answers and the schema is current;
// Kafka's state is reported, and a broker away, a message that keeps
// failing (listed under kafka_failing with its topic, partition, offset,
// attempts and error) or a failed last publication (the producer out of
// reach or fenced) degrades but does not fail readiness: everything but the
// Kafka bridge still works.
func readiness(d adminDeps) gin.HandlerFunc {
	var migrated atomic.Bool
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		checks := gin.H{}
		ready := true
		if err := d.pool.Ping(ctx); err != nil {
			checks["postgres"], ready = "unavailable: "+err.Error(), false
		} else {
			checks["postgres"] = "ok"
			if !migrated.Load() {
				pending, err := migrations.Pending(ctx, d.pool)
				migrated.Store(err == nil && !pending)
			}
			if migrated.Load() {
				checks["migrations"] = "ok"
			} else {
				checks["migrations"], ready = "pending", false
			}
		}
		var kafka []string // what is wrong
		st, err := d.consumer.Status(ctx)
		if err != nil || !st.Connected {
			kafka = append(kafka, "broker unreachable; consumption and publication retry")
		}
		var failing []gin.H
		for _, p := range st.Partitions {
			if f := p.Failing; f != nil {
				failing = append(failing, gin.H{"topic": p.Topic, "partition": p.Partition, "offset": f.Offset,
					"attempts": f.Attempts, "error": f.Err.Error()})
			}
		}
		if len(failing) > 0 {
			kafka = append(kafka, "a message keeps failing and is retried; its partition waits (see kafka_failing)")
		}
		if d.producer != nil {
			if err := d.producer.Status().LastError; err != nil {
				kafka = append(kafka, "the last publication failed and is retried: "+err.Error())
			}
		}
		checks["kafka"] = "ok"
		if len(kafka) > 0 {
			checks["kafka"] = "degraded: " + strings.Join(kafka, "; ")
		}
		status, code := "ready", http.StatusOK
		if !ready {
			status, code = "not ready", http.StatusServiceUnavailable
		}
		body := gin.H{"status": status, "checks": checks}
		if len(failing) > 0 {
			body["kafka_failing"] = failing
		}
		c.JSON(code, body)
	}
}

// statusCollector turns the status of listeners, jobs and the Kafka consumer
// into metrics at scrape time.
type statusCollector struct{ d adminDeps }

var (
	listenerCheckpoint = prometheus.NewDesc("dcbkit_listener_checkpoint", "Position each listener has handled the log up to.", []string{"listener"}, nil)
	listenerLag        = prometheus.NewDesc("dcbkit_listener_lag", "Positions between the head of the log and each listener's checkpoint.", []string{"listener"}, nil)
	listenerFailing    = prometheus.NewDesc("dcbkit_listener_failing", "1 while a listener's last batch failed.", []string{"listener"}, nil)
	jobsByState        = prometheus.NewDesc("dcbkit_jobs", "Background jobs by kind and state.", []string{"kind", "state"}, nil)
	kafkaLag           = prometheus.NewDesc("dcbkit_kafka_consumer_lag", "Messages not yet processed, by topic and partition.", []string{"topic", "partition"}, nil)
	kafkaConnected     = prometheus.NewDesc("dcbkit_kafka_connected", "1 while the Kafka consumer reaches its brokers.", nil, nil)
	kafkaFailing       = prometheus.NewDesc("dcbkit_kafka_consumer_failing", "1 while a message of the partition keeps failing and is retried (see /readyz for which and why).", []string{"topic", "partition"}, nil)
)

func (s *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{listenerCheckpoint, listenerLag, listenerFailing, jobsByState, kafkaLag, kafkaConnected, kafkaFailing} {
		ch <- d
	}
}

func (s *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if status, err := s.d.listeners.Status(ctx); err == nil {
		for _, l := range status {
			ch <- prometheus.MustNewConstMetric(listenerCheckpoint, prometheus.GaugeValue, float64(l.Checkpoint), l.Name)
			ch <- prometheus.MustNewConstMetric(listenerLag, prometheus.GaugeValue, float64(l.Lag), l.Name)
			failing := 0.0
			if l.LastError != "" {
				failing = 1
			}
			ch <- prometheus.MustNewConstMetric(listenerFailing, prometheus.GaugeValue, failing, l.Name)
		}
	}
	if stats, err := s.d.jobs.Stats(ctx); err == nil {
		for _, k := range stats {
			for _, st := range []struct {
				state string
				n     int64
			}{
				{"available", k.Available}, {"running", k.Running}, {"retryable", k.Retryable}, {"scheduled", k.Scheduled},
				{"completed", k.Completed}, {"cancelled", k.Cancelled}, {"discarded", k.Discarded},
			} {
				ch <- prometheus.MustNewConstMetric(jobsByState, prometheus.GaugeValue, float64(st.n), k.Kind, st.state)
			}
		}
	}
	if st, err := s.d.consumer.Status(ctx); err == nil {
		connected := 0.0
		if st.Connected {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(kafkaConnected, prometheus.GaugeValue, connected)
		for _, p := range st.Partitions {
			partition := strconv.Itoa(int(p.Partition))
			ch <- prometheus.MustNewConstMetric(kafkaLag, prometheus.GaugeValue, float64(p.Lag), p.Topic, partition)
			failing := 0.0
			if p.Failing != nil {
				failing = 1
			}
			ch <- prometheus.MustNewConstMetric(kafkaFailing, prometheus.GaugeValue, failing, p.Topic, partition)
		}
	}
}
