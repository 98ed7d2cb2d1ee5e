package tests

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcbkit/dcbkit/kafkabridge"
)

// Kafka helpers: a broker run in the test process (for servers started with
// KAFKA_BROKERS), and a franz-go producer and consumer.

// serverTopics are the topics the server consumes and produces (the
// embedded broker of the server creates them; an outside broker must have
// them).
var serverTopics = []kafkabridge.Topic{
	{Name: "inventories", Partitions: 3},
	{Name: "price-changes", Partitions: 3},
	{Name: "published-carts", Partitions: 3},
}

// Broker is an embedded (kfake) broker in the test process with a data
// directory, so that it can be stopped and started again on the same
// address with its records and group offsets.
type Broker struct {
	// Addr is host:port, to give as KAFKA_BROKERS.
	Addr    string
	dataDir string
	e       *kafkabridge.Embedded
}

// StartBroker starts a broker with the server's topics on a free port; it is
// stopped when t ends.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{Addr: "127.0.0.1:0", dataDir: t.TempDir()}
	b.Start(t)
	t.Cleanup(b.Stop)
	return b
}

// Start starts the broker (again) on its address and data directory.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	e, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: b.Addr, DataDir: b.dataDir, Topics: serverTopics,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	b.e, b.Addr = e, e.Addrs()[0]
}

// Stop stops the broker: its port closes and every connection drops.
func (b *Broker) Stop() {
	if b.e != nil {
		b.e.Close()
		b.e = nil
	}
}

// produce writes one record to topic with a plain producer; partition < 0
// lets the key choose it.
func produce(t testing.TB, broker, topic string, partition int32, key, value string) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(broker)}
	if partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: topic, Partition: partition, Value: []byte(value)}
	if key != "" {
		rec.Key = []byte(key)
	}
	require.NoError(t, cl.ProduceSync(ctx, rec).FirstErr(), "produce to %s", topic)
}

// consume reads topic from the beginning, read_committed, until done says
// the records so far are enough, and returns them; it fails t after within.
func consume(t testing.TB, broker, topic string, within time.Duration, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var recs []*kgo.Record
	for !done(recs) {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s: %d records after %s, not enough", topic, len(recs), within)
		}
		fetches.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}
