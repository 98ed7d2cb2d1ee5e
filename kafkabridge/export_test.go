package kafkabridge

import (
	"context"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Rewind moves a running consumer's fetch position in one partition back to
// offset, so that Kafka delivers again what was already processed, as after
// a rebalance or a lost commit. It reports whether the consumer was running.
func (c *Consumer) Rewind(topic string, partition int32, offset int64) bool {
	cl := c.client.Load()
	if cl == nil {
		return false
	}
	cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {partition: {Epoch: -1, Offset: offset}}})
	return true
}

// Kfake returns the broker's kfake cluster, for tests that inject faults.
func (e *Embedded) Kfake() *kfake.Cluster { return e.cluster }

// Handle applies one record as Run does for each message it receives.
func (c *Consumer) Handle(ctx context.Context, rec Record) error { return c.handle(ctx, rec) }

// Paused returns the partitions whose fetching a running consumer paused.
func (c *Consumer) Paused() map[string][]int32 {
	cl := c.client.Load()
	if cl == nil {
		return nil
	}
	return cl.PauseFetchPartitions(nil)
}

// Pauses returns how many times the consumer paused a partition for its backlog.
func (c *Consumer) Pauses() int64 { return c.pauses.Load() }
