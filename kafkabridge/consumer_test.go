package kafkabridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcbkit/dcbkit/kafkabridge"
)

const wait = 20 * time.Second

// Three partitions: each partition's messages are applied once, in order,
// and the offsets are kept per partition.
func TestConsumerTracksOffsetsPerPartitionInOrder(t *testing.T) {
	t.Parallel()
	broker := startBroker(t, kafkabridge.Topic{Name: "orders", Partitions: 3})
	s, pool := newSink(t)
	c := newConsumer(t, pool, broker.Addrs(), "g", s.translate, nil, "orders")

	for p := range int32(3) {
		produce(t, broker.Addrs(), numbered("orders", p, int(p)*100, 10)...)
	}
	run(t, c)
	eventually(t, wait, "30 messages", func() bool { return s.count(t) == 30 })

	// More on one partition only: the other partitions' offsets stay.
	produce(t, broker.Addrs(), numbered("orders", 1, 110, 5)...)
	eventually(t, wait, "35 messages", func() bool { return s.count(t) == 35 })

	perPartition := map[int32][]received{}
	for _, r := range s.events(t) {
		perPartition[r.Partition] = append(perPartition[r.Partition], r)
	}
	for p, want := range map[int32]int{0: 10, 1: 15, 2: 10} {
		got := perPartition[p]
		require.Len(t, got, want, "partition %d", p)
		for i, r := range got {
			require.Equal(t, int64(i), r.Offset, "partition %d: offsets in order, none missing or repeated", p)
			require.Equal(t, int(p)*100+i, r.N, "partition %d: messages in order", p)
		}
	}
	require.Equal(t, map[string]int64{"orders/0": 9, "orders/1": 14, "orders/2": 9}, storedOffsets(t, pool, "g"))

	eventually(t, wait, "status without lag", func() bool {
		st, err := c.Status(context.Background())
		require.NoError(t, err)
		if !st.Connected || len(st.Partitions) != 3 {
			return false
		}
		for _, ps := range st.Partitions {
			if ps.Lag != 0 || ps.HighWatermark != ps.Processed+1 {
				return false
			}
		}
		return true
	})
	st, err := c.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, []kafkabridge.PartitionStatus{
		{Topic: "orders", Partition: 0, Processed: 9, HighWatermark: 10, Lag: 0},
		{Topic: "orders", Partition: 1, Processed: 14, HighWatermark: 15, Lag: 0},
		{Topic: "orders", Partition: 2, Processed: 9, HighWatermark: 10, Lag: 0},
	}, st.Partitions)
	require.Zero(t, st.Redelivered)
}

// A message delivered again is not translated again: across consumers
// (Kafka's committed offsets rewound, PostgreSQL's offsets decide where to
// start) and within one consumer (its fetch position rewound, every
// redelivered message is skipped by the offsets table).
func TestConsumerAppliesRedeliveredMessagesOnce(t *testing.T) {
	t.Parallel()
	const topic, group = "inventories", "cart"
	broker := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 1})
	s, pool := newSink(t)
	adm := newAdmin(t, broker.Addrs())

	first := newConsumer(t, pool, broker.Addrs(), group, s.translate, nil, topic)
	stopFirst := run(t, first)
	produce(t, broker.Addrs(), numbered(topic, 0, 0, 5)...)
	eventually(t, wait, "5 messages", func() bool { return s.count(t) == 5 })
	// Kafka's committed offset follows PostgreSQL's, for Kafka's tools.
	eventually(t, wait, "Kafka commit at 5", func() bool { return committed(t, adm, group, topic, 0) == 5 })
	stopFirst()

	// Rewind the group's Kafka offsets to the beginning: a fresh consumer
	// still starts after what PostgreSQL recorded.
	resp, err := adm.CommitOffsets(context.Background(), group,
		kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 0, LeaderEpoch: -1}}})
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	require.Equal(t, int64(0), committed(t, adm, group, topic, 0))

	calls := s.calls.Load()
	second := newConsumer(t, pool, broker.Addrs(), group, s.translate, nil, topic)
	run(t, second)
	produce(t, broker.Addrs(), numbered(topic, 0, 5, 2)...)
	eventually(t, wait, "7 messages", func() bool { return s.count(t) == 7 })
	require.Equal(t, calls+2, s.calls.Load(), "only the two new messages reach the translator")
	st, err := second.Status(context.Background())
	require.NoError(t, err)
	require.Zero(t, st.Redelivered, "the consumer started after PostgreSQL's offset: nothing was delivered twice")

	// Within one consumer: Kafka delivers all seven again.
	require.True(t, second.Rewind(topic, 0, 0))
	eventually(t, wait, "7 redeliveries skipped", func() bool {
		st, err := second.Status(context.Background())
		require.NoError(t, err)
		return st.Redelivered == 7
	})
	require.Equal(t, calls+2, s.calls.Load(), "redelivered messages never reach the translator")
	produce(t, broker.Addrs(), numbered(topic, 0, 7, 1)...)
	eventually(t, wait, "8 messages", func() bool { return s.count(t) == 8 })

	var ns []int
	for _, r := range s.events(t) {
		ns = append(ns, r.N)
	}
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, ns, "each message applied exactly once")
	require.Equal(t, map[string]int64{topic + "/0": 7}, storedOffsets(t, pool, group))
}

// A message the translator rejects is stored with its raw bytes and the
// reason, anything it did is rolled back, and the partition goes on.
func TestConsumerStoresRejectedMessagesAndGoesOn(t *testing.T) {
	t.Parallel()
	const topic = "price-changes"
	broker := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 1})
	s, pool := newSink(t)
	c := newConsumer(t, pool, broker.Addrs(), "cart", s.translate, nil, topic)
	run(t, c)

	produce(t, broker.Addrs(),
		&kgo.Record{Topic: topic, Key: []byte("a"), Value: []byte(`{"n": 1}`)},
		&kgo.Record{Topic: topic, Key: []byte("b"), Value: []byte("\x00not json\xff")},
		&kgo.Record{Topic: topic, Key: nil, Value: []byte(`{"n": -1}`)},
		&kgo.Record{Topic: topic, Key: []byte("d"), Value: []byte(`{"n": 2}`)},
	)
	eventually(t, wait, "offset 3 recorded", func() bool { return storedOffsets(t, pool, "cart")[topic+"/0"] == 3 })

	var ns []int
	for _, r := range s.events(t) {
		ns = append(ns, r.N)
	}
	require.Equal(t, []int{1, 2}, ns, "the message after the poison ones is processed; -1's append was rolled back")

	rows, err := pool.Query(context.Background(), `
		SELECT consumer_group, topic, partition, "offset", key, value, reason
		FROM rejected_messages ORDER BY "offset"`)
	require.NoError(t, err)
	type rejected struct {
		Group, Topic string
		Partition    int32
		Offset       int64
		Key, Value   []byte
		Reason       string
	}
	var got []rejected
	for rows.Next() {
		var r rejected
		require.NoError(t, rows.Scan(&r.Group, &r.Topic, &r.Partition, &r.Offset, &r.Key, &r.Value, &r.Reason))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 2)
	require.Equal(t, rejected{"cart", topic, 0, 1, []byte("b"), []byte("\x00not json\xff"), got[0].Reason}, got[0])
	require.Contains(t, got[0].Reason, "kafkabridge: message rejected: value is not")
	require.Equal(t, rejected{"cart", topic, 0, 2, nil, []byte(`{"n": -1}`), got[1].Reason}, got[1])
	require.Contains(t, got[1].Reason, "-1 is invalid")
	require.Equal(t, int64(4), s.calls.Load(), "each message reached the translator once")
}

// A rejection whose reason PostgreSQL cannot store as it is (a NUL byte,
// invalid UTF-8, great length: often the message's own bytes) is stored
// cleaned, and the next message is applied: the partition does not stop.
func TestConsumerStoresRejectionWhateverItsReason(t *testing.T) {
	t.Parallel()
	const topic = "price-changes"
	broker := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 1})
	s, pool := newSink(t)
	long := strings.Repeat("é", 3000)
	c := newConsumer(t, pool, broker.Addrs(), "cart", func(ctx context.Context, tx pgx.Tx, rec kafkabridge.Record) error {
		switch v := string(rec.Value); v {
		case "nul", "invalid":
			return fmt.Errorf("%w: bad byte in \x00%s\xff", kafkabridge.ErrReject, v)
		case "long":
			return fmt.Errorf("%w: \x00%s", kafkabridge.ErrReject, long)
		}
		return s.translate(ctx, tx, rec)
	}, nil, topic)
	run(t, c)

	produce(t, broker.Addrs(),
		&kgo.Record{Topic: topic, Value: []byte("nul")},
		&kgo.Record{Topic: topic, Value: []byte("invalid")},
		&kgo.Record{Topic: topic, Value: []byte("long")},
		&kgo.Record{Topic: topic, Value: []byte(`{"n": 1}`)},
	)
	eventually(t, wait, "the message after the rejected ones applied", func() bool { return s.count(t) == 1 })
	require.Equal(t, map[string]int64{topic + "/0": 3}, storedOffsets(t, pool, "cart"))

	rows, err := pool.Query(context.Background(), `SELECT reason FROM rejected_messages ORDER BY "offset"`)
	require.NoError(t, err)
	reasons, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, reasons, 3)
	require.Equal(t, "kafkabridge: message rejected: bad byte in nul\uFFFD", reasons[0])
	require.Equal(t, "kafkabridge: message rejected: bad byte in invalid\uFFFD", reasons[1])
	require.True(t, strings.HasPrefix(reasons[2], "kafkabridge: message rejected: éé"), reasons[2][:40])
	require.True(t, strings.HasSuffix(reasons[2], "é…"), "cut at a character boundary")
	require.Less(t, len(reasons[2]), len(long))
}

// A message whose translator keeps failing holds its partition, and with
// it the consumer's next poll, only while the consumer owns the partition:
// when a rebalance moves the partition to another replica, the first stops
// retrying the message and no longer reports it failing, and the new owner
// takes it over from PostgreSQL's offset.
func TestConsumerLetsGoOfAPartitionMovedToAnotherReplica(t *testing.T) {
	t.Parallel()
	const topic = "inventories"
	broker := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 2})
	s, pool := newSink(t)
	healed := [2]*atomic.Bool{{}, {}}
	s.failUntil[100], s.failUntil[200] = healed[0].Load, healed[1].Load
	var calls [2][2]atomic.Int64 // by consumer, by partition
	counting := func(consumer int) kafkabridge.Translator {
		return func(ctx context.Context, tx pgx.Tx, rec kafkabridge.Record) error {
			calls[consumer][rec.Partition].Add(1)
			return s.translate(ctx, tx, rec)
		}
	}
	failing := func(c *kafkabridge.Consumer) map[int32]bool {
		st, err := c.Status(context.Background())
		require.NoError(t, err)
		out := map[int32]bool{}
		for _, ps := range st.Partitions {
			if ps.Failing != nil {
				out[ps.Partition] = true
			}
		}
		return out
	}

	a := newConsumer(t, pool, broker.Addrs(), "cart", counting(0), nil, topic)
	run(t, a)
	produce(t, broker.Addrs(), append(numbered(topic, 0, 100, 1), numbered(topic, 1, 200, 1)...)...)
	eventually(t, wait, "both partitions failing in the first replica", func() bool { return len(failing(a)) == 2 })

	b := newConsumer(t, pool, broker.Addrs(), "cart", counting(1), nil, topic)
	run(t, b)
	var moved int32 = -1
	eventually(t, wait, "one partition failing in the second replica", func() bool {
		for p := range failing(b) {
			moved = p
		}
		return moved >= 0
	})
	kept := 1 - moved
	eventually(t, wait, "the first replica lets go of the moved partition", func() bool {
		f := failing(a)
		return !f[moved] && f[kept]
	})
	before, other := calls[0][moved].Load(), calls[1][moved].Load()
	eventually(t, wait, "the second replica retries thrice", func() bool { return calls[1][moved].Load() >= other+3 })
	require.Equal(t, before, calls[0][moved].Load(), "the first replica no longer tries the moved partition's message")

	healed[moved].Store(true)
	eventually(t, wait, "the moved message applied", func() bool { return s.count(t) == 1 })
	produce(t, broker.Addrs(), numbered(topic, moved, 300, 1)...)
	eventually(t, wait, "the next message of the moved partition applied", func() bool { return s.count(t) == 2 })
	healed[kept].Store(true)
	eventually(t, wait, "the kept message applied", func() bool { return s.count(t) == 3 })
	require.Equal(t, map[string]int64{fmt.Sprintf("%s/%d", topic, moved): 1, fmt.Sprintf("%s/%d", topic, kept): 0},
		storedOffsets(t, pool, "cart"))
}

// A translator error that is not a rejection is retried with exponential
// backoff; the partition waits for it, and it is applied once it succeeds.
// Status shows the failing message and the partition's lag meanwhile.
func TestConsumerRetriesFailedMessageWithBackoff(t *testing.T) {
	t.Parallel()
	const topic = "inventories"
	broker := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 2})
	s, pool := newSink(t)
	var healed atomic.Bool
	s.failUntil[2] = healed.Load
	c := newConsumer(t, pool, broker.Addrs(), "cart", s.translate, nil, topic)

	st, err := c.Status(context.Background())
	require.NoError(t, err)
	require.False(t, st.Running)
	require.Empty(t, st.Partitions, "nothing known before Run: no broker asked, no offsets stored")

	run(t, c)
	produce(t, broker.Addrs(), numbered(topic, 1, 10, 2)...)
	eventually(t, wait, "partition 1 processed", func() bool { return s.count(t) == 2 })
	produce(t, broker.Addrs(), numbered(topic, 0, 1, 3)...) // n = 1, 2 (fails), 3

	eventually(t, wait, "message 2 failing for 6 attempts", func() bool { return len(s.attemptTimes(2)) >= 6 })
	st, err = c.Status(context.Background())
	require.NoError(t, err)
	require.Len(t, st.Partitions, 2)
	p0 := st.Partitions[0]
	require.Equal(t, int64(0), p0.Processed, "message 1 done")
	require.Equal(t, int64(3), p0.HighWatermark)
	require.Equal(t, int64(2), p0.Lag, "messages 2 and 3 wait")
	require.NotNil(t, p0.Failing)
	require.Equal(t, int64(1), p0.Failing.Offset)
	require.GreaterOrEqual(t, p0.Failing.Attempts, 5)
	require.ErrorIs(t, p0.Failing.Err, errTransient)
	require.Equal(t, kafkabridge.PartitionStatus{Topic: topic, Partition: 1, Processed: 1, HighWatermark: 2, Lag: 0}, st.Partitions[1])
	for _, r := range s.events(t) {
		require.NotEqual(t, 3, r.N, "message 3 must not overtake message 2")
	}

	// Backoff doubles from RetryMin (10ms) up to RetryMax (80ms); a timer
	// never fires early, so each gap is at least its backoff.
	times := s.attemptTimes(2)
	for i := 1; i < 6; i++ {
		backoff := min(10*time.Millisecond<<(i-1), 80*time.Millisecond)
		require.GreaterOrEqual(t, times[i].Sub(times[i-1]), backoff, "gap before attempt %d", i+1)
	}

	healed.Store(true)
	eventually(t, wait, "all 5 messages", func() bool { return s.count(t) == 5 })
	var p0ns []int
	for _, r := range s.events(t) {
		if r.Partition == 0 {
			p0ns = append(p0ns, r.N)
		}
	}
	require.Equal(t, []int{1, 2, 3}, p0ns)
	eventually(t, wait, "failure cleared and no lag", func() bool {
		st, err := c.Status(context.Background())
		require.NoError(t, err)
		return st.Partitions[0].Failing == nil && st.Partitions[0].Lag == 0 && st.Partitions[0].Processed == 2
	})
}

// A partition stuck on a failing message holds up only itself: the other
// partitions go on being consumed, poll after poll. Records of the stuck
// partition wait in memory up to a bound, then its fetching is paused; once
// it heals it goes on where it stopped and is resumed. Each message is
// applied once, in order within its partition.
func TestConsumerStuckPartitionHoldsUpOnlyItself(t *testing.T) {
	t.Parallel()
	const topic = "inventories"
	broker := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 2})
	s, pool := newSink(t)
	var healed atomic.Bool
	s.failUntil[1] = healed.Load
	c := newConsumer(t, pool, broker.Addrs(), "cart", s.translate, nil, topic)
	run(t, c)

	produce(t, broker.Addrs(), numbered(topic, 0, 1, 2)...) // 1 fails, 2 waits behind it
	eventually(t, wait, "message 1 failing", func() bool { return len(s.attemptTimes(1)) >= 3 })
	for round := range 3 { // each round produced after the last was applied: a poll of its own
		produce(t, broker.Addrs(), numbered(topic, 1, 100+10*round, 10)...)
		eventually(t, wait, fmt.Sprintf("round %d of partition 1 applied while partition 0 is stuck", round),
			func() bool { return s.count(t) == 10*(round+1) })
	}
	produce(t, broker.Addrs(), numbered(topic, 0, 1000, 1500)...) // more than the backlog bound
	eventually(t, wait, "partition 0 paused", func() bool { return slices.Equal(c.Paused()[topic], []int32{0}) })
	produce(t, broker.Addrs(), numbered(topic, 1, 130, 10)...)
	eventually(t, wait, "partition 1 applied while partition 0 is paused", func() bool { return s.count(t) == 40 })
	require.Empty(t, slices.DeleteFunc(s.events(t), func(r received) bool { return r.Partition == 1 }),
		"nothing of partition 0 before message 1 heals")
	st, err := c.Status(context.Background())
	require.NoError(t, err)
	require.NotNil(t, st.Partitions[0].Failing, "partition 0 reports its failing message")
	require.Nil(t, st.Partitions[1].Failing)

	healed.Store(true)
	eventually(t, wait, "all 1542 messages", func() bool { return s.count(t) == 1542 })
	byPartition := map[int32][]int{}
	for _, r := range s.events(t) {
		byPartition[r.Partition] = append(byPartition[r.Partition], r.N)
	}
	want := map[int32][]int{0: {1, 2}}
	for n := range 1500 {
		want[0] = append(want[0], 1000+n)
	}
	for n := range 40 {
		want[1] = append(want[1], 100+n)
	}
	require.Equal(t, want, byPartition, "each once, in order")
	require.Equal(t, map[string]int64{topic + "/0": 1501, topic + "/1": 39}, storedOffsets(t, pool, "cart"))
	require.Empty(t, c.Paused(), "resumed")
	require.Positive(t, c.Pauses())
}

// A partition that keeps up is never paused: a paused partition, once
// resumed, waits for the client's fetch in flight, which the broker holds
// up to FetchMaxWait when its other partitions are quiet. Messages sent one
// after another to a partition beside a quiet one, each a poll of its own,
// find it never paused (watched every millisecond; a version that paused
// each partition for its batch took 25 s for these five with the default
// FetchMaxWait of 5 s).
func TestConsumerPartitionBesideAQuietOneIsNotDelayed(t *testing.T) {
	t.Parallel()
	const topic = "inventories"
	broker := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 2})
	s, pool := newSink(t)
	c := newConsumer(t, pool, broker.Addrs(), "cart", s.translate, nil, topic)
	run(t, c)
	produce(t, broker.Addrs(), numbered(topic, 1, 0, 1)...)
	eventually(t, wait, "the first message", func() bool { return s.count(t) == 1 })

	done := make(chan struct{})
	paused := make(chan map[string][]int32, 1)
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				paused <- nil
				return
			case <-tick.C:
				if p := c.Paused(); len(p) > 0 {
					paused <- p
					return
				}
			}
		}
	}()
	for n := 1; n <= 5; n++ {
		produce(t, broker.Addrs(), numbered(topic, 1, n, 1)...)
		eventually(t, wait, fmt.Sprintf("message %d", n), func() bool { return s.count(t) == n+1 })
	}
	close(done)
	require.Nil(t, <-paused, "no partition paused")
	require.Zero(t, c.Pauses(), "not even for a moment")
}

func TestNewConsumerValidatesOptions(t *testing.T) {
	t.Parallel()
	s, pool := newSink(t)
	tr := map[string]kafkabridge.Translator{"t": s.translate}
	for name, opts := range map[string]kafkabridge.ConsumerOptions{
		"no brokers":     {Group: "g", Translators: tr},
		"no group":       {Brokers: []string{"x:1"}, Translators: tr},
		"no translators": {Brokers: []string{"x:1"}, Group: "g"},
		"nil translator": {Brokers: []string{"x:1"}, Group: "g", Translators: map[string]kafkabridge.Translator{"t": nil}},
		"empty topic":    {Brokers: []string{"x:1"}, Group: "g", Translators: map[string]kafkabridge.Translator{"": s.translate}},
	} {
		_, err := kafkabridge.NewConsumer(pool, opts)
		require.Error(t, err, name)
	}
	_, err := kafkabridge.NewConsumer(nil, kafkabridge.ConsumerOptions{Brokers: []string{"x:1"}, Group: "g", Translators: tr})
	require.Error(t, err)
}

func newAdmin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// committed returns the group's Kafka-committed offset for a partition, -1
// if none.
func committed(t *testing.T, adm *kadm.Client, group, topic string, partition int32) int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(context.Background(), group)
	require.NoError(t, err)
	o, ok := offs.Lookup(topic, partition)
	if !ok {
		return -1
	}
	return o.At
}

// A broker that lost its data hands out offsets PostgreSQL already has as
// processed: the consumer cannot tell its new messages from redeliveries,
// and says so with an error line. (Why the embedded broker keeps a DataDir.)
func TestConsumerReportsBrokerThatLostItsData(t *testing.T) {
	t.Parallel()
	const topic = "inventories"
	first := startBroker(t, kafkabridge.Topic{Name: topic, Partitions: 1})
	s, pool := newSink(t)
	c := newConsumer(t, pool, first.Addrs(), "cart", s.translate, nil, topic)
	stop := run(t, c)
	produce(t, first.Addrs(), numbered(topic, 0, 0, 3)...)
	eventually(t, wait, "3 messages", func() bool { return s.count(t) == 3 })
	stop()
	first.Close()

	// In memory only: the new broker starts the partition at offset 0.
	second, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: first.Addrs()[0], Logger: discardLogger(), Topics: []kafkabridge.Topic{{Name: topic, Partitions: 1}},
	})
	require.NoError(t, err)
	t.Cleanup(second.Close)
	produce(t, second.Addrs(), numbered(topic, 0, 3, 1)...)

	logs := &logLines{}
	c = newConsumer(t, pool, second.Addrs(), "cart", s.translate, slog.New(logs), topic)
	run(t, c)
	eventually(t, wait, "the error line", func() bool {
		return logs.count("ERROR kafka partition ends before the offset recorded as processed") == 1
	})
	eventually(t, wait, "the new message skipped", func() bool {
		st, err := c.Status(context.Background())
		require.NoError(t, err)
		return st.Redelivered == 1
	})
	require.Equal(t, 3, s.count(t), "message 3 took offset 0, recorded as processed")
}

// Consumers holding the same partition at once (as during a rebalance) race
// on its offset row: each message is applied exactly once, whoever wins.
func TestRacingConsumersApplyEachMessageOnce(t *testing.T) {
	t.Parallel()
	const racers, messages = 8, 25
	s, pool := newSink(t)
	var cs []*kafkabridge.Consumer
	for range racers {
		cs = append(cs, newConsumer(t, pool, []string{"127.0.0.1:1"}, "cart", s.translate, nil, "inventories"))
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			for i := range messages {
				rec := kafkabridge.Record{Topic: "inventories", Partition: 0, Offset: int64(i), Value: fmt.Appendf(nil, `{"n": %d}`, i)}
				if err := c.Handle(context.Background(), rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	got := s.events(t)
	require.Len(t, got, messages)
	for i, r := range got {
		require.Equal(t, i, r.N, "in order, once each")
	}
	require.Equal(t, int64(messages), s.calls.Load(), "the translator ran once per message")
	var skipped int64
	for _, c := range cs {
		st, err := c.Status(context.Background())
		require.NoError(t, err)
		skipped += st.Redelivered
	}
	require.Equal(t, int64((racers-1)*messages), skipped)
	require.Equal(t, map[string]int64{"inventories/0": messages - 1}, storedOffsets(t, pool, "cart"))
}
