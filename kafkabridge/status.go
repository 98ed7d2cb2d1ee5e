package kafkabridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// ConsumerStatus is a consumer's state for readiness checks and metrics.
type ConsumerStatus struct {
	Group string
	// Running is whether Run is running.
	Running bool
	// Connected is whether the last request to the brokers succeeded.
	Connected bool
	// LastError is the last error reaching Kafka (nil if none yet), and
	// LastErrorAt when it happened; they stay after the broker is back.
	LastError   error
	LastErrorAt time.Time
	// Redelivered counts the messages skipped since NewConsumer because
	// PostgreSQL had them as processed already.
	Redelivered int64
	// Partitions lists every partition of the consumed topics that the
	// broker or PostgreSQL knows of, by topic and partition.
	Partitions []PartitionStatus
}

// PartitionStatus is the progress of one partition.
type PartitionStatus struct {
	Topic     string
	Partition int32
	// Processed is the offset of the last message handled (translated or
	// rejected), from PostgreSQL; -1 if none.
	Processed int64
	// HighWatermark is the offset the next message produced will get; -1
	// when the broker could not be asked.
	HighWatermark int64
	// Lag is HighWatermark - (Processed + 1), at least 0; -1 when
	// HighWatermark is unknown. Transaction markers take offsets too, so a
	// partition fed by transactional producers may show a small lag with
	// nothing left to process.
	Lag int64
	// Failing is set while a message of this partition keeps failing
	// (translator or PostgreSQL error): its offset, the number of
	// attempts and the last error.
	Failing *PartitionFailure
}

// PartitionFailure describes a message being retried.
type PartitionFailure struct {
	Offset   int64
	Attempts int
	Err      error
}

// Status reports the consumer's connection state and, per partition, the
// offset processed (from PostgreSQL), the high watermark and the lag. It
// asks the broker for high watermarks only while Run runs, and for at most
// two seconds. It returns an error only if PostgreSQL cannot be read. It is
// safe for concurrent use.
func (c *Consumer) Status(ctx context.Context) (ConsumerStatus, error) {
	st := ConsumerStatus{Group: c.opts.Group, Running: c.running.Load(), Redelivered: c.redelivered.Load()}
	st.Connected, st.LastErrorAt, st.LastError = c.health.state()

	stored, err := c.storedOffsets(ctx)
	if err != nil {
		return st, err
	}
	byTP := make(map[topicPartition]*PartitionStatus)
	get := func(tp topicPartition) *PartitionStatus {
		ps, ok := byTP[tp]
		if !ok {
			ps = &PartitionStatus{Topic: tp.topic, Partition: tp.partition, Processed: -1, HighWatermark: -1, Lag: -1}
			byTP[tp] = ps
		}
		return ps
	}
	for tp, last := range stored {
		get(tp).Processed = last
	}
	if cl := c.client.Load(); cl != nil {
		kctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ends, err := kadm.NewClient(cl).ListEndOffsets(kctx, c.topics...)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			c.health.record(fmt.Errorf("list end offsets: %w", err))
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil || o.Partition < 0 {
				return
			}
			get(topicPartition{o.Topic, o.Partition}).HighWatermark = o.Offset
		})
	}
	c.mu.Lock()
	for tp, f := range c.failures {
		get(tp).Failing = &PartitionFailure{Offset: f.offset, Attempts: f.attempts, Err: f.err}
	}
	c.mu.Unlock()

	for _, ps := range byTP {
		if ps.HighWatermark >= 0 {
			ps.Lag = max(ps.HighWatermark-(ps.Processed+1), 0)
		}
		st.Partitions = append(st.Partitions, *ps)
	}
	slices.SortFunc(st.Partitions, func(a, b PartitionStatus) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return st, nil
}
