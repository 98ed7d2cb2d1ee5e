package kafkabridge

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// health follows whether a client reaches its brokers, from the client's
// own hooks, and logs each change of state once: one warning when an outage
// begins, one info line when it ends, however many attempts lie between.
// The client retries by itself meanwhile.
//
// An outage begins when a connection cannot be opened, and ends when a
// request is answered. A request failing on an open connection (EOF when the
// broker goes away, or when it closes a connection it had already given
// up) is recorded as the last error but is not an outage by itself: the
// client opens a new connection, and whether that fails decides.
type health struct {
	logger *slog.Logger
	what   string // "consumer" or "producer", for the log lines

	mu        sync.Mutex
	connected bool
	known     bool // whether connected has been set at all
	lastErr   error
	lastErrAt time.Time
	downSince time.Time
}

var (
	_ kgo.HookBrokerConnect = (*health)(nil)
	_ kgo.HookBrokerE2E     = (*health)(nil)
)

func newHealth(logger *slog.Logger, what string) *health {
	return &health{logger: logger, what: what}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *health) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.fail(err)
	}
}

// OnBrokerE2E implements kgo.HookBrokerE2E: an answered request proves the
// broker reachable.
func (h *health) OnBrokerE2E(_ kgo.BrokerMetadata, _ int16, e2e kgo.BrokerE2E) {
	if err := e2e.Err(); err != nil {
		h.record(err)
		return
	}
	h.ok()
}

// record keeps err as the last error without declaring an outage.
func (h *health) record(err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr, h.lastErrAt = err, time.Now()
}

// fail records err and logs the start of an outage if there was none.
func (h *health) fail(err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return // our own shutdown, not an outage
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	h.lastErr, h.lastErrAt = err, now
	if h.connected || !h.known {
		h.connected, h.known, h.downSince = false, true, now
		h.logger.Warn("kafka unreachable; retrying with backoff", "client", h.what, "err", err)
	}
}

// ok logs the end of an outage, if there was one.
func (h *health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.connected && h.known {
		h.logger.Info("kafka reachable again", "client", h.what, "outage", time.Since(h.downSince).Round(time.Millisecond))
	}
	h.connected, h.known = true, true
}

// retirable passes a client's hooks on to a health until retired, so that
// a client being discarded does not report on the one replacing it.
type retirable struct {
	h       *health
	retired atomic.Bool
}

var (
	_ kgo.HookBrokerConnect = (*retirable)(nil)
	_ kgo.HookBrokerE2E     = (*retirable)(nil)
)

func (r *retirable) OnBrokerConnect(meta kgo.BrokerMetadata, d time.Duration, conn net.Conn, err error) {
	if !r.retired.Load() {
		r.h.OnBrokerConnect(meta, d, conn, err)
	}
}

func (r *retirable) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if !r.retired.Load() {
		r.h.OnBrokerE2E(meta, key, e2e)
	}
}

func (h *health) state() (connected bool, lastErrAt time.Time, lastErr error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connected, h.lastErrAt, h.lastErr
}
