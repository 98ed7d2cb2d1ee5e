-- +goose Up

-- The log. One row per event, never updated or deleted.
--
-- Positions come from an identity sequence with CACHE 1 and are drawn only while
-- the append lock is held (see dcb_lock_appends), so they become visible in
-- strictly increasing order: a reader that sees position N sees every committed
-- position below N. A sequence cache above 1 would break that; do not add one.
CREATE TABLE events (
    position    bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    id          uuid        NOT NULL,
    type        text        NOT NULL,
    tags        text[]      NOT NULL,
    data        bytea       NOT NULL,
    metadata    jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_id_key UNIQUE (id)
);

-- Lookup keys: every way a query item can find an event. An event of type T
-- with tags G1..Gn has the keys hash(T), hash(Gi) and hash(T, Gi). A query item
-- maps to the keys of its types and its first tag, so every probe is one range
-- scan of this btree, O(log n) whatever the size of the log. Keys are 64-bit
-- hashes computed by the eventstore package; matches are verified against the
-- event itself, so a collision can never produce a wrong answer.
CREATE TABLE event_keys (
    key      bigint NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX event_keys_key_position ON event_keys (key, position);

-- Appends are serialised by one transaction-scoped advisory lock. The caller's
-- transaction must be READ COMMITTED so that the statements after the lock see
-- everything committed before it was granted.
-- +goose StatementBegin
CREATE FUNCTION dcb_lock_appends() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'event store appends need READ COMMITTED isolation, this transaction is %',
            current_setting('transaction_isolation')
            USING ERRCODE = '25001'; -- active_sql_transaction
    END IF;
    PERFORM pg_advisory_xact_lock(1684234849, 1); -- 'dcba', 1
END
$$;
-- +goose StatementEnd

-- The log is append-only.
-- +goose StatementBegin
CREATE FUNCTION dcb_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP
        USING ERRCODE = '42501'; -- insufficient_privilege
END
$$;
-- +goose StatementEnd
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION dcb_refuse_change();

-- +goose Down
DROP TABLE event_keys;
DROP TABLE events;
DROP FUNCTION dcb_refuse_change();
DROP FUNCTION dcb_lock_appends();
