-- +goose Up

-- One row per listener (package listeners): its checkpoint, its lease and its
-- last error. Rows are created on first run or first reset and never deleted.
--
-- position is the checkpoint: the listener has handled every matching event
-- at or below it. holder and lease_until are the lease: one replica at a time
-- runs a listener; another may take it over once lease_until has passed (or
-- the holder released it by setting lease_until to now()). Every batch locks
-- this row first, then commits its effects and its new position together.
-- last_error and last_error_at describe the latest failed batch, cleared by
-- the next successful one; every replica sees them.
CREATE TABLE listener_checkpoints (
    name          text PRIMARY KEY,
    position      bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
    holder        text,
    lease_until   timestamptz,
    last_error    text,
    last_error_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE listener_checkpoints;
