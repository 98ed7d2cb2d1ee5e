// Package kafkabridge connects the system to Kafka: a Consumer that turns
// messages into effects in PostgreSQL exactly once in effect, a
// transactional Producer, and an embedded broker for development and tests.
//
// # Consumer guarantees
//
//  1. Exactly once in effect. Each message is translated (typically into
//     events appended with eventstore's AppendTx) and its offset is recorded
//     in kafka_offsets, one row per (consumer group, topic, partition), in
//     the same PostgreSQL transaction: both commit or neither does. A
//     message at or below the recorded offset is a redelivery and is
//     skipped without reaching the translator. Consumers that hold the same
//     partition at once (during a rebalance) take turns on that row's lock,
//     so the later one skips too.
//  2. PostgreSQL decides where to start. When the group assigns a
//     partition, the consumer starts it right after the offset PostgreSQL
//     recorded, or at the beginning of the log if there is none, whatever
//     offset Kafka has committed for the group. Offsets are also committed
//     to Kafka after PostgreSQL's commit, so that Kafka's tools show the
//     group's lag; losing or rewinding them costs nothing.
//  3. Rejected messages are never lost and never block. A message the
//     translator rejects (an error wrapping ErrReject: undecodable,
//     invalid) is stored in rejected_messages with its raw key and value and
//     the reason, in the transaction that records its offset; whatever the
//     translator did for it is rolled back. The partition goes on. The
//     reason is stored cleaned, whatever bytes the translator put in it:
//     without NULs, valid UTF-8, cut at about 4000 bytes.
//  4. Order and no skipping. The messages of a partition are handled one at
//     a time, in offset order; partitions are handled concurrently. A
//     message whose translator fails otherwise (PostgreSQL down, a bug) is
//     retried with exponential backoff, never skipped: its partition waits
//     for it (its fetching paused once a poll's worth of its records
//     waits), while the consumer's other partitions go on, until a rebalance revokes the partition or the
//     group loses it: then the consumer stops retrying and the partition's
//     next owner starts again after the offset PostgreSQL recorded. Status
//     shows the failing message.
//  5. Only committed records. The consumer reads with read_committed
//     isolation: records of aborted transactions are never translated.
//
// # Producer guarantees
//
// Every Producer.Produce call is one Kafka transaction: it begins it,
// produces each record, and commits it, or aborts it on any error. A
// read_committed consumer sees all of a call's records or none. Records go
// to the partition of their key, so deterministic keys (the cart id) keep
// one entity's messages in order and let consumers de-duplicate.
//
// # When the broker is down
//
// Nothing stops: Consumer.Run keeps retrying (the client reconnects with
// backoff) and logs one warning when the outage begins and one line when it
// ends, not one per attempt; Consumer.Status reports Connected false and
// the last error, for readiness. After the broker returns, each partition
// continues after the offset PostgreSQL recorded. Producer.Produce returns
// an error when its context is done or after ProducerOptions.Timeout, so
// that the caller (a River job) retries later; the abandoned transaction is
// aborted. Producer.Status reports the last Produce's error (out of reach,
// fenced) until one succeeds, for readiness.
//
// # The embedded broker
//
// StartEmbedded runs franz-go's kfake, an in-process broker that speaks the
// Kafka protocol, so that development needs no Kafka and tests use the same
// code path as production. Give it a DataDir: a broker that forgets its
// logs hands out offsets again that PostgreSQL already recorded as
// processed, and the consumer would skip the new messages that carry them
// as redeliveries (it logs an error when it sees a partition end before
// its recorded offset).
//
// # Tables
//
// kafka_offsets and rejected_messages come from migrations/00003_kafka.sql.
// Only this package writes them.
package kafkabridge
