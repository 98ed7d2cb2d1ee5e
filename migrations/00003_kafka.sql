-- +goose Up

-- Progress of the Kafka bridge's consumers, kept in PostgreSQL so that it
-- commits in the same transaction as the effects of the message (see package
-- kafkabridge). One row per (group, topic, partition): Kafka orders messages
-- within a partition only, so progress is tracked per partition; a row per
-- topic would skip or repeat messages as soon as a topic has two partitions.
-- last_offset is the offset of the last message handled (translated or
-- rejected); a message at or below it is a redelivery and is skipped.
CREATE TABLE kafka_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      int         NOT NULL,
    last_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Messages that can never be processed (undecodable, invalid), kept with
-- their raw bytes and the reason instead of being dropped or blocking their
-- partition. A message is rejected at most once: its offset is recorded in
-- kafka_offsets in the same transaction.
CREATE TABLE rejected_messages (
    id             bigserial   PRIMARY KEY,
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      int         NOT NULL,
    "offset"       bigint      NOT NULL,
    key            bytea,
    value          bytea,
    reason         text        NOT NULL,
    rejected_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rejected_messages_position_key UNIQUE (consumer_group, topic, partition, "offset")
);

-- +goose Down
DROP TABLE rejected_messages;
DROP TABLE kafka_offsets;
