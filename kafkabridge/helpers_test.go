package kafkabridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/kafkabridge"
)

// startBroker starts an in-memory embedded broker on a free port, closed
// when t ends.
func startBroker(t *testing.T, topics ...kafkabridge.Topic) *kafkabridge.Embedded {
	t.Helper()
	e, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: "127.0.0.1:0", Topics: topics, Logger: discardLogger(),
	})
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return e
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// eventually polls cond until it holds, failing t after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

// produce writes records with a plain (non-transactional) client, each to
// the partition it names.
func produce(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

// numbered returns count records for topic/partition whose values are
// {"n": from}, {"n": from+1}, …
func numbered(topic string, partition int32, from, count int) []*kgo.Record {
	var recs []*kgo.Record
	for n := from; n < from+count; n++ {
		recs = append(recs, &kgo.Record{
			Topic: topic, Partition: partition,
			Key:   []byte("k" + strconv.Itoa(n)),
			Value: fmt.Appendf(nil, `{"n": %d}`, n),
		})
	}
	return recs
}

// received is what the test translator appends for one message.
type received struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	N         int    `json:"n"`
}

// sink is a translator that appends one MessageReceived event per message
// to a real event store: {"n": int} is accepted, anything else rejected,
// and {"n": -1} appends its event before rejecting (the append must vanish).
// failUntil, when set for an n, makes the translator fail (not reject)
// until it returns true.
type sink struct {
	store *eventstore.Store
	calls atomic.Int64

	mu        sync.Mutex
	failUntil map[int]func() bool
	attempts  map[int][]time.Time
}

func newSink(t *testing.T) (*sink, *pgxpool.Pool) {
	pool := eventstoretest.NewPool(t)
	store := eventstore.New(pool, eventstore.Options{})
	t.Cleanup(store.Close)
	return &sink{store: store, failUntil: map[int]func() bool{}, attempts: map[int][]time.Time{}}, pool
}

var errTransient = errors.New("transient failure")

func (s *sink) translate(ctx context.Context, tx pgx.Tx, rec kafkabridge.Record) error {
	s.calls.Add(1)
	var msg struct {
		N *int `json:"n"`
	}
	if err := json.Unmarshal(rec.Value, &msg); err != nil || msg.N == nil {
		return fmt.Errorf("%w: value is not {\"n\": int}: %v", kafkabridge.ErrReject, err)
	}
	n := *msg.N
	s.mu.Lock()
	s.attempts[n] = append(s.attempts[n], time.Now())
	until := s.failUntil[n]
	s.mu.Unlock()
	if until != nil && !until() {
		return errTransient
	}
	data, _ := json.Marshal(received{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, N: n})
	_, err := s.store.AppendTx(ctx, tx, []eventstore.Event{{
		Type: "MessageReceived",
		Tags: []string{"topic:" + rec.Topic, "partition:" + strconv.Itoa(int(rec.Partition))},
		Data: data,
	}}, nil)
	if err != nil {
		return err
	}
	if n == -1 {
		return fmt.Errorf("%w: -1 is invalid (after appending)", kafkabridge.ErrReject)
	}
	return nil
}

func (s *sink) attemptTimes(n int) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts[n])
}

// events returns every message the sink recorded, in log order.
func (s *sink) events(t *testing.T) []received {
	t.Helper()
	evs, err := s.store.Read(context.Background(), eventstore.All, eventstore.ReadOptions{})
	require.NoError(t, err)
	out := make([]received, len(evs))
	for i, e := range evs {
		require.NoError(t, json.Unmarshal(e.Data, &out[i]))
	}
	return out
}

func (s *sink) count(t *testing.T) int { return len(s.events(t)) }

// run runs c until the returned stop is called (or t ends) and checks that
// Run returned nil.
func run(t *testing.T, c *kafkabridge.Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Errorf("Consumer.Run did not return within 20s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newConsumer(t *testing.T, pool *pgxpool.Pool, brokers []string, group string, tr kafkabridge.Translator, logger *slog.Logger, topics ...string) *kafkabridge.Consumer {
	t.Helper()
	if logger == nil {
		logger = discardLogger()
	}
	translators := map[string]kafkabridge.Translator{}
	for _, topic := range topics {
		translators[topic] = tr
	}
	c, err := kafkabridge.NewConsumer(pool, kafkabridge.ConsumerOptions{
		Brokers: brokers, Group: group, Translators: translators, Logger: logger,
		RetryMin: 10 * time.Millisecond, RetryMax: 80 * time.Millisecond,
	})
	require.NoError(t, err)
	return c
}

// storedOffsets reads kafka_offsets for group: "topic/partition" → last offset.
func storedOffsets(t *testing.T, pool *pgxpool.Pool, group string) map[string]int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT topic || '/' || partition, last_offset FROM kafka_offsets WHERE consumer_group = $1`, group)
	require.NoError(t, err)
	out := map[string]int64{}
	var (
		k string
		v int64
	)
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { out[k] = v; return nil })
	require.NoError(t, err)
	return out
}

// logLines records the messages logged through it, with their "client"
// attribute, for tests that count log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "client" {
			line += " client=" + a.Value.String()
		}
		if a.Key == "err" {
			line += " err=" + a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return nil
}

// count counts the lines that begin with prefix.
func (l *logLines) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}
