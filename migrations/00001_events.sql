-- +goose Up

-- The log. One row per event, never updated or deleted.
--
-- Positions come from an identity sequence with CACHE 1 and are drawn only while
-- the append lock is held (see dcb_append), so they become visible in
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

-- A query, flattened for the functions below: one probe per lookup key
-- (probe_keys), each with the 1-based ranges of its item's types and tags in
-- probe_types and probe_tags. A candidate found through a key is verified
-- against its whole item: type among the item's types (if any), every tag of
-- the item present.
--
-- The functions pin generic plans (SET plan_cache_mode): planning these
-- statements costs more than running them, and their generic plans are index
-- probes whatever the arguments (eventstore's TestPlansUseIndexes checks).
-- Being VOLATILE, dcb_append takes a fresh snapshot for each statement, so
-- what it reads after taking the append lock includes everything committed
-- before the lock was granted.

-- dcb_append commits a batch of appends (group commit: one transaction, one
-- call, however many appends), each as if it ran alone, in order:
--   * an append whose event ids are already stored is an idempotent retry: it
--     inserts nothing and answers with the position of the stored events;
--   * an append whose condition fails inserts nothing: an event matching its
--     probes exists after its `after` (any event at all for a match-all
--     condition), or an earlier append of the batch that it depends on (its
--     events match the condition: dep_later/dep_earlier pairs, sorted by
--     dep_later, computed by the caller) is inserted;
--   * the others insert their events, positions drawn in order.
-- Appends are serialised by a transaction-scoped advisory lock, taken first:
-- positions therefore become visible in increasing order. The transaction
-- must be READ COMMITTED, or the statements after the lock would not see
-- what was committed while waiting for it.
-- Arguments are flat arrays: events (ev_*; ev_append = the 1-based append
-- each belongs to), their lookup keys (key_event = 1-based event index), per
-- append its after, match-all flag and whether its ids were given by the
-- caller (app_*), and the condition probes (probe_append = the append each
-- belongs to). It answers, per append: how many of its event ids were
-- already stored, whether its condition failed, and the position of its last
-- event (inserted now, or by the first attempt of a retry).
-- +goose StatementBegin
CREATE FUNCTION dcb_append(
    ev_append int[], ev_ids uuid[], ev_types text[], ev_tags_lo int[], ev_tags_hi int[],
    ev_tags text[], ev_data bytea[], ev_metadata text[],
    key_event int[], key_values bigint[],
    app_after bigint[], app_match_all boolean[], app_ids_given boolean[],
    probe_append int[], probe_keys bigint[], probe_types_lo int[], probe_types_hi int[],
    probe_tags_lo int[], probe_tags_hi int[], probe_types text[], probe_tags text[],
    dep_later int[], dep_earlier int[],
    OUT existing_counts bigint[], OUT conditions_failed boolean[], OUT last_positions bigint[])
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    batch_size int := cardinality(app_after);
    accepted   boolean[] := array_fill(false, ARRAY[batch_size]);
    app        int;
    dep        int := 1;
    head       bigint;
    k          int;
    apps       int[];
    nums       bigint[];
    lasts      bigint[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'event store appends need READ COMMITTED isolation, this transaction is %',
            current_setting('transaction_isolation')
            USING ERRCODE = '25001'; -- active_sql_transaction
    END IF;
    PERFORM pg_advisory_xact_lock(1684234849, 1); -- 'dcba', 1: the append lock

    existing_counts := array_fill(0::bigint, ARRAY[batch_size]);
    conditions_failed := array_fill(false, ARRAY[batch_size]);
    last_positions := array_fill(NULL::bigint, ARRAY[batch_size]);

    -- Idempotent retries: events already stored under ids the caller gave.
    IF true = ANY (app_ids_given) THEN
        SELECT array_agg(x.a), array_agg(x.n), array_agg(x.last) INTO apps, nums, lasts
        FROM (SELECT ev_append[u.i] AS a, count(*) AS n, max(e.position) AS last
              FROM unnest(ev_ids) WITH ORDINALITY AS u(id, i) JOIN events e ON e.id = u.id
              WHERE app_ids_given[ev_append[u.i]]
              GROUP BY 1) AS x;
        FOR k IN 1 .. coalesce(cardinality(apps), 0) LOOP
            existing_counts[apps[k]] := nums[k];
            last_positions[apps[k]] := lasts[k];
        END LOOP;
    END IF;

    -- Conditions against the log: one index probe per lookup key, candidates
    -- verified against their whole query item.
    IF cardinality(probe_keys) > 0 THEN
        SELECT array_agg(DISTINCT p.a) INTO apps
        FROM unnest(probe_append, probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi)
            AS p(a, key, types_lo, types_hi, tags_lo, tags_hi)
        CROSS JOIN LATERAL (
            SELECT FROM event_keys k JOIN events e ON e.position = k.position
            WHERE k.key = p.key AND k.position > app_after[p.a]
                AND (p.types_lo > p.types_hi OR e.type = ANY (probe_types[p.types_lo:p.types_hi]))
                AND e.tags @> probe_tags[p.tags_lo:p.tags_hi]
            LIMIT 1
        ) AS match;
        FOR k IN 1 .. coalesce(cardinality(apps), 0) LOOP
            conditions_failed[apps[k]] := true;
        END LOOP;
    END IF;
    IF true = ANY (app_match_all) THEN
        -- max: one index probe, where EXISTS would let a generic plan scan.
        SELECT coalesce(max(e.position), 0) INTO head FROM events e;
        FOR app IN 1 .. batch_size LOOP
            IF app_match_all[app] AND head > app_after[app] THEN
                conditions_failed[app] := true;
            END IF;
        END LOOP;
    END IF;

    -- Decide in arrival order, against the earlier appends of this batch.
    FOR app IN 1 .. batch_size LOOP
        WHILE dep <= cardinality(dep_later) AND dep_later[dep] = app LOOP
            IF accepted[dep_earlier[dep]] THEN
                conditions_failed[app] := true;
            END IF;
            dep := dep + 1;
        END LOOP;
        IF app_match_all[app] AND true = ANY (accepted[1:app-1]) THEN
            conditions_failed[app] := true;
        END IF;
        accepted[app] := existing_counts[app] = 0 AND NOT conditions_failed[app];
    END LOOP;

    IF true = ANY (accepted) THEN
        WITH inserted AS (
            INSERT INTO events (id, type, tags, data, metadata)
            SELECT i.id, i.type, ev_tags[i.tags_lo:i.tags_hi], i.data, NULLIF(i.metadata, '')::jsonb
            FROM unnest(ev_append, ev_ids, ev_types, ev_tags_lo, ev_tags_hi, ev_data, ev_metadata)
                WITH ORDINALITY AS i(a, id, type, tags_lo, tags_hi, data, metadata, ord)
            WHERE accepted[i.a]
            ORDER BY i.ord
            RETURNING events.position, events.id
        ), keys AS (
            INSERT INTO event_keys (key, position)
            SELECT k.key, inserted.position
            FROM unnest(key_event, key_values) AS k(ev, key) JOIN inserted ON inserted.id = ev_ids[k.ev]
        )
        SELECT array_agg(x.a), array_agg(x.last) INTO apps, lasts
        FROM (SELECT ev_append[u.i] AS a, max(inserted.position) AS last
              FROM inserted JOIN unnest(ev_ids) WITH ORDINALITY AS u(id, i) ON u.id = inserted.id
              GROUP BY 1) AS x;
        FOR k IN 1 .. cardinality(apps) LOOP
            last_positions[apps[k]] := lasts[k];
        END LOOP;
        -- Wakes listeners when the transaction commits.
        PERFORM pg_notify('dcb_events', '');
    END IF;
END
$$;
-- +goose StatementEnd

-- dcb_read returns the events matching the probes (all events when
-- match_all), from position read_from (inclusive; downwards when backwards),
-- at most read_limit of them (NULL: no limit), in position order. For each
-- lookup key it runs one ordered, limited range scan, so its cost depends on
-- the number of matching events, not on the size of the log.
-- +goose StatementBegin
CREATE FUNCTION dcb_read(
    match_all boolean, probe_keys bigint[], probe_types_lo int[], probe_types_hi int[],
    probe_tags_lo int[], probe_tags_hi int[], probe_types text[], probe_tags text[],
    read_from bigint, read_limit int, backwards boolean)
RETURNS SETOF events
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    IF match_all AND NOT backwards THEN
        RETURN QUERY SELECT * FROM events e WHERE e.position >= read_from
            ORDER BY e.position LIMIT read_limit;
    ELSIF match_all THEN
        RETURN QUERY SELECT * FROM events e WHERE e.position <= read_from
            ORDER BY e.position DESC LIMIT read_limit;
    ELSIF NOT backwards THEN
        RETURN QUERY SELECT DISTINCT ON (c.position) c.*
            FROM unnest(probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi)
                AS p(key, types_lo, types_hi, tags_lo, tags_hi)
            CROSS JOIN LATERAL (
                SELECT e.* FROM event_keys k JOIN events e ON e.position = k.position
                WHERE k.key = p.key AND k.position >= read_from
                    AND (p.types_lo > p.types_hi OR e.type = ANY (probe_types[p.types_lo:p.types_hi]))
                    AND e.tags @> probe_tags[p.tags_lo:p.tags_hi]
                ORDER BY k.position
                LIMIT read_limit
            ) AS c
            ORDER BY c.position
            LIMIT read_limit;
    ELSE
        RETURN QUERY SELECT DISTINCT ON (c.position) c.*
            FROM unnest(probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi)
                AS p(key, types_lo, types_hi, tags_lo, tags_hi)
            CROSS JOIN LATERAL (
                SELECT e.* FROM event_keys k JOIN events e ON e.position = k.position
                WHERE k.key = p.key AND k.position <= read_from
                    AND (p.types_lo > p.types_hi OR e.type = ANY (probe_types[p.types_lo:p.types_hi]))
                    AND e.tags @> probe_tags[p.tags_lo:p.tags_hi]
                ORDER BY k.position DESC
                LIMIT read_limit
            ) AS c
            ORDER BY c.position DESC
            LIMIT read_limit;
    END IF;
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
DROP FUNCTION dcb_read;
DROP FUNCTION dcb_append;
DROP FUNCTION dcb_refuse_change();
