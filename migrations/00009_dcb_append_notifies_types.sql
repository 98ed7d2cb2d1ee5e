-- +goose Up

-- dcb_append's notification names the types it appended, as a JSON array of
-- strings, so that a listener reading none of them need not wake at once
-- (package listeners). The payload is '' when the types would not fit in a
-- notification (8000 bytes): every listener wakes, as before. Otherwise the
-- function is 00001's, with 00006's settings; the types come from the same
-- statement as the positions, so the function runs no more statements.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dcb_append(
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
SET enable_seqscan = off
SET enable_bitmapscan = off
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
            RETURNING events.position, events.id, events.type
        ), keys AS (
            INSERT INTO event_keys (key, position)
            SELECT k.key, inserted.position
            FROM unnest(key_event, key_values) AS k(ev, key) JOIN inserted ON inserted.id = ev_ids[k.ev]
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

-- +goose Down
-- Down keeps this definition (the previous one is 00001's with 00006's
-- settings): listeners from before it ignore the payload.
SELECT 1;
