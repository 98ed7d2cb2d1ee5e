package kafkabridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcbkit/dcbkit/kafkabridge"
)

// With a DataDir, a restarted broker on the same address continues every
// partition where it stopped: offsets are never handed out twice, which is
// what lets PostgreSQL's offsets mean the same messages after a restart.
func TestEmbeddedBrokerPersistsAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := &logLines{}
	first, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(logs),
		Topics: []kafkabridge.Topic{{Name: "inventories", Partitions: 2}},
	})
	require.NoError(t, err)
	defer first.Close()
	addr := first.Addrs()[0]
	require.NotEqual(t, "127.0.0.1:0", addr, "the port chosen is reported")
	require.Equal(t, []string{"INFO embedded development Kafka broker started: not for production; set KAFKA_BROKERS to use a real cluster"}, logs.all(),
		"one info line says what it is")

	// One broker per data directory.
	_, err = kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dir, Logger: discardLogger()})
	require.ErrorContains(t, err, "in use by another embedded broker")
	// One broker per address.
	_, err = kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{Addr: addr, Logger: discardLogger()})
	require.Error(t, err)

	produce(t, first.Addrs(), numbered("inventories", 0, 0, 3)...)
	produce(t, first.Addrs(), numbered("inventories", 1, 0, 1)...)
	first.Close()
	first.Close() // harmless
	require.Equal(t, []string{addr}, first.Addrs(), "Addrs stays valid after Close")

	// Same address, same directory, and a topic added to the configuration.
	second, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: addr, DataDir: dir, Logger: discardLogger(),
		Topics: []kafkabridge.Topic{{Name: "inventories", Partitions: 3}, {Name: "price-changes", Partitions: 1}},
	})
	require.NoError(t, err)
	defer second.Close()
	require.Equal(t, []string{addr}, second.Addrs())

	adm := newAdmin(t, second.Addrs())
	ends, err := adm.ListEndOffsets(context.Background(), "inventories", "price-changes")
	require.NoError(t, err)
	hwm := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { hwm[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.Offset })
	require.Equal(t, map[string]int64{
		"inventories/0": 3, "inventories/1": 1, "inventories/2": 0, // grown to 3 partitions
		"price-changes/0": 0, // created on restart
	}, hwm)

	cl, err := kgo.NewClient(kgo.SeedBrokers(second.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx, numbered("inventories", 0, 3, 1)...)
	require.NoError(t, res.FirstErr())
	require.Equal(t, int64(3), res[0].Record.Offset, "offsets continue after the restart")

	// The records from before the restart are still there.
	rd, err := kgo.NewClient(kgo.SeedBrokers(second.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"inventories": {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer rd.Close()
	var values []string
	for len(values) < 4 {
		fs := rd.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	require.Equal(t, []string{`{"n": 0}`, `{"n": 1}`, `{"n": 2}`, `{"n": 3}`}, values)
}

func TestEmbeddedBrokerHonoursTheHostOfAddr(t *testing.T) {
	t.Parallel()
	e, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{Addr: "localhost:0", Logger: discardLogger()})
	require.NoError(t, err)
	defer e.Close()
	host, _, err := net.SplitHostPort(e.Addrs()[0])
	require.NoError(t, err)
	require.True(t, net.ParseIP(host).IsLoopback(), host)

	_, err = kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{Addr: "no-port", Logger: discardLogger()})
	require.ErrorContains(t, err, `address "no-port"`)
}
