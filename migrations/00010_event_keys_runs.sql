-- +goose Up

-- Lookup keys in runs. The events of one append mostly share their type and
-- some tags (the items of one cart, an import), and each of those keys cost
-- one row and one btree entry per event. A row of event_keys now stands for
-- a run of `span` consecutive positions ending at `position`, every one of
-- which has the key: an append of 100 events, each with a tag of the batch
-- and one of its own, wrote 500 rows and writes 203. The caller (package
-- eventstore) finds the runs among the events of each append, whose
-- positions are drawn in order under the append lock.
--
-- A key's runs are disjoint, so its rows in the index on (key, position)
-- come in position order, and a probe still reads one range of them. The
-- only run that can straddle a boundary is the first one that ends at or
-- after it: a forward read or a condition starts within it (it is in their
-- range already), and a backward read starts its range there.
--
-- The column has a default of 1, so existing rows (each one position) need
-- no rewrite, though its CHECK reads every row once; the index is rebuilt
-- to carry the span, so that reads stay index-only. ADD COLUMN locks
-- event_keys ACCESS EXCLUSIVE until this migration's transaction ends: every
-- append, condition check and read with query items waits for the check and
-- the rebuild, whose time grows with the table (README, "Upgrading"); only
-- match-all reads, which do not use event_keys, go on.
--
-- dcb_read also turns off JIT compilation, which PostgreSQL's defaults start
-- above a plan cost of 100,000: its generic plans reach that (with sorting
-- off, below, they always do), and compiling them takes tens of
-- milliseconds for statements that run in well under one. dcb_append too,
-- for the same reason. And it turns off plain sorts, so that a limited read
-- sorts only the positions within each run (an incremental sort on the
-- index's order) and stops after its page, instead of sorting all of a
-- key's entries first; and merge and hash joins, so that the events of a
-- page are fetched by their positions (with sorts off, a plan made on a
-- small log merged the page with the whole log, read from its start).
ALTER TABLE event_keys ADD COLUMN IF NOT EXISTS span integer NOT NULL DEFAULT 1 CHECK (span > 0);
CREATE INDEX event_keys_key_position_span ON event_keys (key, position) INCLUDE (span);
DROP INDEX event_keys_key_position;
ALTER INDEX event_keys_key_position_span RENAME TO event_keys_key_position;

-- dcb_append: 00009's, writing runs and probing them. The runs come from the
-- caller, in a new last argument, key_spans: per key row, how many events of
-- its append, ending at key_event, have the key. Callers from before this
-- migration do not pass it, and their rows are runs of one position, as
-- before.
DROP FUNCTION IF EXISTS dcb_append(int[], uuid[], text[], int[], int[], text[], bytea[], text[], int[], bigint[],
    bigint[], boolean[], boolean[], int[], bigint[], int[], int[], int[], int[], text[], text[], int[], int[]);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dcb_append(
    ev_append int[], ev_ids uuid[], ev_types text[], ev_tags_lo int[], ev_tags_hi int[],
    ev_tags text[], ev_data bytea[], ev_metadata text[],
    key_event int[], key_values bigint[],
    app_after bigint[], app_match_all boolean[], app_ids_given boolean[],
    probe_append int[], probe_keys bigint[], probe_types_lo int[], probe_types_hi int[],
    probe_tags_lo int[], probe_tags_hi int[], probe_types text[], probe_tags text[],
    dep_later int[], dep_earlier int[], key_spans int[] DEFAULT NULL,
    OUT existing_counts bigint[], OUT conditions_failed boolean[], OUT last_positions bigint[])
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
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
    payload    text;
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
              FROM unnest(ev_ids) WITH ORDINALITY AS u(id, i)
              -- LIMIT 1: a probe of the ids' index per id. As a plain join,
              -- a plan made on a small log merged the ids with the whole
              -- index, which every later append then read from its start.
              CROSS JOIN LATERAL (SELECT e.position FROM events e WHERE e.id = u.id LIMIT 1) AS e
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
            SELECT FROM event_keys k JOIN events e
                ON e.position BETWEEN greatest(k.position - k.span, app_after[p.a]) + 1 AND k.position
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
            RETURNING events.position, events.id, events.type
        ), keys AS (
            -- A key row stands for the `span` events of its append that end
            -- at key_event: positions are drawn in order, so theirs are the
            -- `span` positions that end at the row's.
            INSERT INTO event_keys (key, position, span)
            SELECT k.key, inserted.position, coalesce(k.span, 1)
            FROM unnest(key_event, key_values, key_spans) AS k(ev, key, span) JOIN inserted ON inserted.id = ev_ids[k.ev]
        )
        SELECT array_agg(x.a), array_agg(x.last),
            (SELECT to_json(array_agg(DISTINCT inserted.type))::text FROM inserted)
        INTO apps, lasts, payload
        FROM (SELECT ev_append[u.i] AS a, max(inserted.position) AS last
              FROM inserted JOIN unnest(ev_ids) WITH ORDINALITY AS u(id, i) ON u.id = inserted.id
              GROUP BY 1) AS x;
        FOR k IN 1 .. cardinality(apps) LOOP
            last_positions[apps[k]] := lasts[k];
        END LOOP;
        -- Wakes listeners when the transaction commits, saying which types
        -- were appended ('' when too many to say: then every listener wakes).
        PERFORM pg_notify('dcb_events', CASE WHEN octet_length(payload) < 8000 THEN payload ELSE '' END);
    END IF;
END
$$;
-- +goose StatementEnd

-- dcb_read: 00008's, reading runs.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dcb_read(
    match_all boolean, probe_keys bigint[], probe_types_lo int[], probe_types_hi int[],
    probe_tags_lo int[], probe_tags_hi int[], probe_types text[], probe_tags text[],
    read_from bigint, read_limit int, backwards boolean)
RETURNS SETOF events
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_mergejoin = off
SET enable_hashjoin = off
SET jit = off
AS $$
BEGIN
    IF match_all AND NOT backwards THEN
        RETURN QUERY SELECT * FROM events e WHERE e.position >= read_from
            ORDER BY e.position LIMIT read_limit;
    ELSIF match_all THEN
        RETURN QUERY SELECT * FROM events e WHERE e.position <= read_from
            ORDER BY e.position DESC LIMIT read_limit;
    ELSIF NOT backwards THEN
        RETURN QUERY SELECT e.* FROM (
            SELECT DISTINCT c.position
            FROM unnest(probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi)
                AS p(key, types_lo, types_hi, tags_lo, tags_hi)
            CROSS JOIN LATERAL (
                SELECT c.position FROM event_keys k
                CROSS JOIN LATERAL generate_series(greatest(k.position - k.span + 1, read_from), k.position) AS c(position)
                WHERE k.key = p.key AND k.position >= read_from
                    AND (p.tags_hi <= p.tags_lo OR EXISTS (
                        SELECT FROM events v WHERE v.position = c.position
                            AND v.tags @> probe_tags[p.tags_lo:p.tags_hi]
                            AND (p.types_lo > p.types_hi OR v.type = ANY (probe_types[p.types_lo:p.types_hi]))))
                ORDER BY k.position, c.position
                LIMIT read_limit
            ) AS c
            ORDER BY c.position
            LIMIT read_limit
        ) AS page
        JOIN events e ON e.position = page.position
        ORDER BY e.position;
    ELSE
        RETURN QUERY SELECT e.* FROM (
            SELECT DISTINCT c.position
            FROM unnest(probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi)
                AS p(key, types_lo, types_hi, tags_lo, tags_hi)
            CROSS JOIN LATERAL (
                -- From the key's first run that ends at or after read_from,
                -- which may begin before it.
                SELECT c.position FROM event_keys k
                CROSS JOIN LATERAL generate_series(least(k.position, read_from), k.position - k.span + 1, -1) AS c(position)
                WHERE k.key = p.key
                    AND k.position <= coalesce((SELECT min(b.position) FROM event_keys b
                        WHERE b.key = p.key AND b.position >= read_from), read_from)
                    AND (p.tags_hi <= p.tags_lo OR EXISTS (
                        SELECT FROM events v WHERE v.position = c.position
                            AND v.tags @> probe_tags[p.tags_lo:p.tags_hi]
                            AND (p.types_lo > p.types_hi OR v.type = ANY (probe_types[p.types_lo:p.types_hi]))))
                ORDER BY k.position DESC, c.position DESC
                LIMIT read_limit
            ) AS c
            ORDER BY c.position DESC
            LIMIT read_limit
        ) AS page
        JOIN events e ON e.position = page.position
        ORDER BY e.position DESC;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- Splits every run into rows of one position, the layout 00009's functions
-- read. The column, its index and these functions stay: they read and
-- write that layout too, and Up again rebuilds the index.
INSERT INTO event_keys (key, position)
SELECT key, generate_series(position - span + 1, position - 1) FROM event_keys WHERE span > 1;
UPDATE event_keys SET span = 1 WHERE span > 1;
