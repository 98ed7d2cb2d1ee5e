package cart

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/kafkabridge"
	"github.com/dcbkit/dcbkit/workqueue"
)

func TestPublishDeadline(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name    string
		created time.Time
		budget  time.Duration
		want    time.Time
	}{
		{"EndsWithTheBudget", now.Add(-time.Minute), time.Hour, now.Add(59 * time.Minute)},
		{"ShortBudget", now, 10 * time.Second, now.Add(10 * time.Second)},
		{"AtLeastOneRealTryWhenTheBudgetIsSpent", now.Add(-2 * time.Hour), time.Hour, now.Add(minPublishAttempt)},
		{"AtLeastOneRealTryWithATinyBudget", now, time.Second, now.Add(minPublishAttempt)},
		{"ZeroBudgetIsTheDefault", now, 0, now.Add(DefaultPublishBudget)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, publishDeadline(tc.created, tc.budget, now))
		})
	}
}

// TestPublishRetriesUntilTheBudgetsLastMinute: the work queue gives up when
// the next retry would start after the budget; publication's backoff grows
// as the queue's default does but never past a sixtieth of the budget, so
// with the broker away a cart is retried into the budget's last minute, not
// given up half an hour early.
func TestPublishRetriesUntilTheBudgetsLastMinute(t *testing.T) {
	t.Parallel()
	backoff := publishBackoff(time.Hour)
	require.GreaterOrEqual(t, backoff(1), time.Second, "the first retry waits as the default does")
	require.Less(t, backoff(1), 2*time.Second)
	for n := 1; n <= 100; n++ {
		require.LessOrEqual(t, backoff(n), time.Minute, "retry after attempt %d", n)
	}
	require.Equal(t, time.Minute, backoff(30), "late retries wait the cap")
	require.Equal(t, time.Second, publishBackoff(10*time.Second)(5), "never below a second")
}

// TestPublishAttemptEndsWithTheBudget: with the broker away, an attempt to
// publish ends at the end of the job's budget, not at the producer's own
// timeout (30 s), which used to stretch a short PUBLISH_BUDGET to that.
func TestPublishAttemptEndsWithTheBudget(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there any more
	producer, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{Brokers: []string{dead}, TransactionalID: "test-" + newID().String(),
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(producer.Close)

	c, p := newID(), newID()
	it := item(c, p, "1")
	events, err := Events.EncodeAll([]any{CartCreated{c}, it, CartSubmitted{CartID: c, TotalPrice: it.Price,
		OrderedProducts: []OrderedProduct{{it.ItemID, p, it.Price}}}})
	require.NoError(t, err)
	_, err = store.Append(context.Background(), events, nil)
	require.NoError(t, err)

	s := &Service{Store: store, Producer: producer, publishBudget: time.Second}
	start := time.Now()
	err = s.publish(context.Background(), workqueue.Job[PublishCart]{Args: PublishCart{CartID: c}, Attempt: 1, CreatedAt: start})
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, elapsed, minPublishAttempt+5*time.Second, "the attempt ends with the budget (or the minimum attempt)")
	stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{cartQuery(c)}}, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 3, "nothing recorded by the failed attempt")
}
