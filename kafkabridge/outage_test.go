package kafkabridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/kafkabridge"
)

// The broker goes away while the consumer runs and comes back on the same
// address and data directory: consumption resumes where it was, nothing is
// lost and nothing applied twice; Produce fails while the broker is away
// and works after; each client logs the outage once, not per attempt.
func TestConsumerAndProducerSurviveBrokerOutage(t *testing.T) {
	t.Parallel()
	const topic = "inventories"
	dir := t.TempDir()
	topics := []kafkabridge.Topic{{Name: topic, Partitions: 2}}
	broker, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dir, Topics: topics, Logger: discardLogger()})
	require.NoError(t, err)
	addr := broker.Addrs()
	t.Cleanup(func() { broker.Close() })

	logs := &logLines{}
	s, pool := newSink(t)
	c := newConsumer(t, pool, addr, "cart", s.translate, slog.New(logs), topic)
	run(t, c)
	p, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{Brokers: addr, TransactionalID: "outage", Logger: slog.New(logs)})
	require.NoError(t, err)
	defer p.Close()
	ctx := context.Background()
	value := func(n int) kafkabridge.Record {
		return kafkabridge.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", n), Value: fmt.Appendf(nil, `{"n": %d}`, n)}
	}

	produce(t, addr, numbered(topic, 0, 0, 3)...)
	produce(t, addr, numbered(topic, 1, 100, 3)...)
	require.NoError(t, p.Produce(ctx, value(1000)))
	eventually(t, wait, "7 messages", func() bool { return s.count(t) == 7 })

	broker.Close()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	require.Error(t, p.Produce(short, value(1001)), "Produce fails while the broker is away")
	var firstErrAt time.Time
	eventually(t, wait, "consumer sees the outage", func() bool {
		st, err := c.Status(ctx)
		require.NoError(t, err)
		firstErrAt = st.LastErrorAt
		return !st.Connected && st.LastError != nil
	})
	// The clients keep trying: errors go on for a while, logged once.
	eventually(t, wait, "reconnection attempts for 300ms", func() bool {
		st, err := c.Status(ctx)
		require.NoError(t, err)
		return st.LastErrorAt.Sub(firstErrAt) >= 300*time.Millisecond
	})
	require.Equal(t, 1, logs.count("WARN kafka unreachable; retrying with backoff client=consumer"), "%q", logs.all())

	broker, err = kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{Addr: addr[0], DataDir: dir, Topics: topics, Logger: discardLogger()})
	require.NoError(t, err)

	produce(t, addr, numbered(topic, 0, 3, 2)...)
	produce(t, addr, numbered(topic, 1, 103, 2)...)
	require.NoError(t, p.Produce(ctx, value(1002), value(1003)), "Produce works again")
	eventually(t, wait, "13 messages", func() bool { return s.count(t) == 13 })

	var ns []int
	for _, r := range s.events(t) {
		ns = append(ns, r.N)
	}
	slices.Sort(ns)
	require.Equal(t, []int{0, 1, 2, 3, 4, 100, 101, 102, 103, 104, 1000, 1002, 1003}, ns,
		"every message once; 1001's Produce failed")
	lastOffsets := map[string]int64{}
	for _, r := range s.events(t) {
		k := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
		lastOffsets[k] = max(lastOffsets[k], r.Offset)
	}
	require.Equal(t, lastOffsets, storedOffsets(t, pool, "cart"), "PostgreSQL's offsets are the last messages applied")

	eventually(t, wait, "consumer connected again", func() bool {
		st, err := c.Status(ctx)
		require.NoError(t, err)
		return st.Connected
	})
	require.Equal(t, 1, logs.count("WARN kafka unreachable; retrying with backoff client=consumer"), "%q", logs.all())
	require.Equal(t, 1, logs.count("INFO kafka reachable again client=consumer"), "%q", logs.all())
	require.Equal(t, 1, logs.count("WARN kafka unreachable; retrying with backoff client=producer"), "%q", logs.all())
	require.Equal(t, 1, logs.count("INFO kafka reachable again client=producer"), "%q", logs.all())
}

// A consumer started before its broker waits for it.
func TestConsumerStartedBeforeTheBrokerWaitsForIt(t *testing.T) {
	t.Parallel()
	const topic = "price-changes"
	placeholder := startBroker(t)
	addr := placeholder.Addrs()
	placeholder.Close() // a free address where nothing listens

	s, pool := newSink(t)
	c := newConsumer(t, pool, addr, "cart", s.translate, nil, topic)
	run(t, c)
	eventually(t, wait, "consumer sees no broker", func() bool {
		st, err := c.Status(context.Background())
		require.NoError(t, err)
		return st.Running && !st.Connected && st.LastError != nil
	})

	broker, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: addr[0], Logger: discardLogger(), Topics: []kafkabridge.Topic{{Name: topic, Partitions: 1}},
	})
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	produce(t, addr, numbered(topic, 0, 0, 2)...)
	// Within kgo's metadata minimum age (5s) of the broker's return.
	eventually(t, wait, "2 messages", func() bool { return s.count(t) == 2 })
}
