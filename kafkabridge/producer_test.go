package kafkabridge_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dcbkit/dcbkit/kafkabridge"
)

// Each Produce is one committed transaction: read_committed consumers see
// its records; a Produce that fails is aborted and they never see it, though
// its records did reach the log (a read_uncommitted consumer sees them).
func TestProducerCommitsOrAbortsOneTransactionPerProduce(t *testing.T) {
	t.Parallel()
	broker := startBroker(t,
		kafkabridge.Topic{Name: "published-carts", Partitions: 1},
		kafkabridge.Topic{Name: "big", Partitions: 1})
	p, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{
		Brokers: broker.Addrs(), TransactionalID: "test-publisher", Logger: discardLogger(),
	})
	require.NoError(t, err)
	defer p.Close()
	ctx := context.Background()
	rec := func(key string) kafkabridge.Record {
		return kafkabridge.Record{Topic: "published-carts", Key: []byte(key), Value: []byte(`{"cart_id":"` + key + `"}`)}
	}

	require.NoError(t, p.Produce(ctx, rec("cart-1"), rec("cart-2")))
	// Two records and the transaction's commit marker: proof that a
	// transaction was begun and committed, not a plain produce.
	adm := newAdmin(t, broker.Addrs())
	ends, err := adm.ListEndOffsets(ctx, "published-carts")
	require.NoError(t, err)
	end, _ := ends.Lookup("published-carts", 0)
	require.Equal(t, int64(3), end.Offset)

	// A transaction that fails half-way: the first record is written, the
	// second is too large for the broker.
	err = p.Produce(ctx, rec("aborted"), kafkabridge.Record{Topic: "big", Key: []byte("x"), Value: bytes.Repeat([]byte("x"), 2<<20)})
	require.Error(t, err)
	t.Logf("failed transaction: %v", err)

	// A cancelled context: nothing is produced, the error says why.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, p.Produce(cancelled, rec("cancelled")), context.Canceled)

	// The producer goes on after failures.
	require.NoError(t, p.Produce(ctx, rec("cart-3")))

	require.Equal(t, []string{"cart-1", "cart-2", "cart-3"}, readKeys(t, broker.Addrs(), kgo.ReadCommitted(), "cart-3"))
	require.Equal(t, []string{"cart-1", "cart-2", "aborted", "cart-3"}, readKeys(t, broker.Addrs(), kgo.ReadUncommitted(), "cart-3"),
		"the aborted record was written, and is hidden by the abort")

	p.Close()
	require.ErrorIs(t, p.Produce(ctx, rec("late")), kafkabridge.ErrProducerClosed)
}

func TestNewProducerValidatesOptions(t *testing.T) {
	t.Parallel()
	_, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{TransactionalID: "x"})
	require.Error(t, err)
	_, err = kafkabridge.NewProducer(kafkabridge.ProducerOptions{Brokers: []string{"127.0.0.1:1"}})
	require.Error(t, err)
}

// readKeys reads published-carts from the start with the given isolation
// level until it sees the record keyed last, and returns the keys read.
func readKeys(t *testing.T, brokers []string, level kgo.IsolationLevel, last string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(level),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"published-carts": {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	for !(len(keys) > 0 && keys[len(keys)-1] == last) {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read so far: %v", keys)
		fs.EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
	}
	return keys
}

// The broker never answers the commit (the connection drops each time):
// Produce fails, and the transaction is aborted, not left to commit later
// or to join the next one.
func TestProducerAbortsTransactionWhoseCommitIsLost(t *testing.T) {
	t.Parallel()
	broker := startBroker(t, kafkabridge.Topic{Name: "published-carts", Partitions: 1})
	var losing atomic.Bool
	losing.Store(true)
	broker.Kfake().ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !losing.Load() {
			broker.Kfake().DropControl()
			return nil, nil, false
		}
		broker.Kfake().KeepControl()
		return nil, errors.New("answer lost"), true // closes the connection
	})
	p, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{
		Brokers: broker.Addrs(), TransactionalID: "lossy", Logger: discardLogger(), Timeout: 2 * time.Second,
	})
	require.NoError(t, err)
	defer p.Close()
	rec := func(key string) kafkabridge.Record {
		return kafkabridge.Record{Topic: "published-carts", Key: []byte(key), Value: []byte(`{}`)}
	}

	err = p.Produce(context.Background(), rec("lost-commit"))
	require.ErrorContains(t, err, "commit transaction")
	losing.Store(false)
	require.NoError(t, p.Produce(context.Background(), rec("cart-1")))

	require.Equal(t, []string{"cart-1"}, readKeys(t, broker.Addrs(), kgo.ReadCommitted(), "cart-1"))
	require.Equal(t, []string{"lost-commit", "cart-1"}, readKeys(t, broker.Addrs(), kgo.ReadUncommitted(), "cart-1"))
}

// Status reports the outcome of the last Produce: none yet, a success, a
// failure (here: fenced by a second producer with the same transactional
// id, as when two replicas share one), cleared by the next success; a call
// the caller cancelled says nothing about Kafka and changes nothing.
func TestProducerStatusReportsTheLastOutcome(t *testing.T) {
	t.Parallel()
	broker := startBroker(t, kafkabridge.Topic{Name: "published-carts", Partitions: 1})
	newProducer := func() *kafkabridge.Producer {
		p, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{
			Brokers: broker.Addrs(), TransactionalID: "shared-id", Logger: discardLogger(), Timeout: 10 * time.Second,
		})
		require.NoError(t, err)
		t.Cleanup(p.Close)
		return p
	}
	ctx := context.Background()
	rec := kafkabridge.Record{Topic: "published-carts", Key: []byte("cart"), Value: []byte(`{}`)}

	p := newProducer()
	require.Equal(t, kafkabridge.ProducerStatus{}, p.Status(), "nothing produced yet")
	require.NoError(t, p.Produce(ctx, rec))
	st := p.Status()
	require.NoError(t, st.LastError)
	require.False(t, st.LastSuccessAt.IsZero())

	require.NoError(t, newProducer().Produce(ctx, rec), "the second producer fences the first")
	err := p.Produce(ctx, rec)
	require.Error(t, err)
	st = p.Status()
	require.Equal(t, err, st.LastError)
	require.False(t, st.LastErrorAt.IsZero())

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.Error(t, p.Produce(cancelled, rec))
	require.Equal(t, err, p.Status().LastError, "a cancelled call changes nothing")

	require.NoError(t, p.Produce(ctx, rec), "a new client takes the transactional id back")
	require.NoError(t, p.Status().LastError)
}
