-- +goose Up

-- Items of several tags, found through all of their tags. A query item was
-- looked up through the key of its first tag only (per type, when it has
-- types), and every event with that tag was then checked for the others:
-- {tags: [tenant:acme, cart:123]} read every event of the tenant to find
-- the few of the cart, and its cost grew with the log (eventstore.md,
-- guarantee 6). Whichever tag the caller happened to list first decided.
--
-- Now the keys of all of an item's tags are intersected by a leapfrog
-- (zig-zag) join, dcb_leap: from a position p, each key in turn is asked for
-- the first position at or after p that has it, one btree probe (the first
-- row of event_keys with the key and a position at or after p: its run
-- holds the answer, greatest(p, position - span + 1)); p moves to that
-- answer; once every key has answered p itself, p is a candidate, and the
-- search goes on from p + 1; it ends when a key has no row left. Each probe
-- jumps over every position that one key lacks, so the cost follows the
-- rarest tag (and how the tags interleave), not the most common one.
-- Backwards is the mirror: the first position at or before p that has the
-- key is p when a run of the key contains p, else the end of the key's last
-- run before p (two probes at most). A key's run found by one probe answers
-- the next ones as long as p stays within its reach, so events that share
-- their tags in one append cost one probe per key, not one per event.
--
-- Keys are 64-bit hashes, so a candidate is verified against the event
-- itself, as before: its type among the item's types (if any), every tag of
-- the item present.
--
-- The caller (package eventstore) passes, per probe (one per type of the
-- item, or one for a tags-only item), the keys of the item's other tags:
-- probe_more_keys, flat, with the 1-based range of each probe in
-- probe_more_lo and probe_more_hi (empty, lo > hi, for items of at most one
-- tag). Those are new last arguments of dcb_read and dcb_append, with
-- defaults: a caller from before this migration passes none, and its probes
-- go on through one key each, as before. Items of at most one tag take the
-- same path as before, in the same statement: one range of one key.
--
-- dcb_leap is STABLE: it reads with the snapshot of the statement that
-- calls it, so a read stays one snapshot, and an append's condition sees
-- what its statement sees after the append lock. It pins generic plans and
-- index probes like its callers.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dcb_leap(
    keys bigint[], types text[], tags text[], from_pos bigint, lim int, backwards boolean)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    n       int := cardinality(keys);
    -- Per key, the run its last probe found: it answers for every p within
    -- its reach (forwards p <= run_hi, backwards p >= run_lo).
    runs_lo bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    runs_hi bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    run_lo  bigint;
    run_hi  bigint;
    p       bigint := from_pos;
    q       bigint;
    i       int := 1;
    agreed  int := 0; -- how many keys in a row answered p
    matched int := 0;
BEGIN
    LOOP
        IF NOT backwards THEN
            IF runs_hi[i] IS NULL OR runs_hi[i] < p THEN
                SELECT k.position - k.span + 1, k.position INTO run_lo, run_hi
                FROM event_keys k WHERE k.key = keys[i] AND k.position >= p
                ORDER BY k.position LIMIT 1;
                IF NOT FOUND THEN
                    RETURN;
                END IF;
                runs_lo[i] := run_lo;
                runs_hi[i] := run_hi;
            END IF;
            q := greatest(p, runs_lo[i]);
        ELSE
            IF runs_lo[i] IS NULL OR runs_lo[i] > p THEN
                -- The run that contains p, if any; else the last before p.
                SELECT k.position - k.span + 1, k.position INTO run_lo, run_hi
                FROM event_keys k WHERE k.key = keys[i] AND k.position >= p
                ORDER BY k.position LIMIT 1;
                IF NOT FOUND OR run_lo > p THEN
                    SELECT k.position - k.span + 1, k.position INTO run_lo, run_hi
                    FROM event_keys k WHERE k.key = keys[i] AND k.position < p
                    ORDER BY k.position DESC LIMIT 1;
                    IF NOT FOUND THEN
                        RETURN;
                    END IF;
                END IF;
                runs_lo[i] := run_lo;
                runs_hi[i] := run_hi;
            END IF;
            q := least(p, runs_hi[i]);
        END IF;

        IF q = p THEN
            agreed := agreed + 1;
        ELSE
            p := q;
            agreed := 1;
        END IF;
        IF agreed = n THEN
            PERFORM FROM events e WHERE e.position = p
                AND e.tags @> dcb_leap.tags
                AND (cardinality(dcb_leap.types) = 0 OR e.type = ANY (dcb_leap.types));
            IF FOUND THEN
                RETURN NEXT p;
                matched := matched + 1;
                IF matched = lim THEN
                    RETURN;
                END IF;
            END IF;
            p := CASE WHEN backwards THEN p - 1 ELSE p + 1 END;
            agreed := 0;
        END IF;
        i := i % n + 1;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- dcb_append: 00010's, with probes of several keys.
DROP FUNCTION IF EXISTS dcb_append(int[], uuid[], text[], int[], int[], text[], bytea[], text[], int[], bigint[],
    bigint[], boolean[], boolean[], int[], bigint[], int[], int[], int[], int[], text[], text[], int[], int[], int[]);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dcb_append(
    ev_append int[], ev_ids uuid[], ev_types text[], ev_tags_lo int[], ev_tags_hi int[],
    ev_tags text[], ev_data bytea[], ev_metadata text[],
    key_event int[], key_values bigint[],
    app_after bigint[], app_match_all boolean[], app_ids_given boolean[],
    probe_append int[], probe_keys bigint[], probe_types_lo int[], probe_types_hi int[],
    probe_tags_lo int[], probe_tags_hi int[], probe_types text[], probe_tags text[],
    dep_later int[], dep_earlier int[], key_spans int[] DEFAULT NULL,
    probe_more_keys bigint[] DEFAULT NULL, probe_more_lo int[] DEFAULT NULL, probe_more_hi int[] DEFAULT NULL,
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

    -- Conditions against the log: per probe, one index probe of its key, or
    -- the leapfrog of its keys when its item has several tags; candidates
    -- verified against their whole query item.
    IF cardinality(probe_keys) > 0 THEN
        -- Callers from before 00011: no probe has more keys.
        probe_more_lo := coalesce(probe_more_lo, array_fill(1, ARRAY[cardinality(probe_keys)]));
        probe_more_hi := coalesce(probe_more_hi, array_fill(0, ARRAY[cardinality(probe_keys)]));
        SELECT array_agg(DISTINCT p.a) INTO apps
        FROM unnest(probe_append, probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi,
                probe_more_lo, probe_more_hi)
            AS p(a, key, types_lo, types_hi, tags_lo, tags_hi, more_lo, more_hi)
        CROSS JOIN LATERAL (
            (SELECT FROM event_keys k JOIN events e
                ON e.position BETWEEN greatest(k.position - k.span, app_after[p.a]) + 1 AND k.position
            WHERE p.more_lo > p.more_hi
                AND k.key = p.key AND k.position > app_after[p.a]
                AND (p.types_lo > p.types_hi OR e.type = ANY (probe_types[p.types_lo:p.types_hi]))
                AND e.tags @> probe_tags[p.tags_lo:p.tags_hi]
            LIMIT 1)
            UNION ALL
            SELECT FROM dcb_leap(ARRAY[p.key] || probe_more_keys[p.more_lo:p.more_hi],
                probe_types[p.types_lo:p.types_hi], probe_tags[p.tags_lo:p.tags_hi], app_after[p.a] + 1, 1, false)
            WHERE p.more_lo <= p.more_hi
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

-- dcb_read: 00010's, with probes of several keys.
DROP FUNCTION IF EXISTS dcb_read(boolean, bigint[], int[], int[], int[], int[], text[], text[], bigint, int, boolean);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dcb_read(
    match_all boolean, probe_keys bigint[], probe_types_lo int[], probe_types_hi int[],
    probe_tags_lo int[], probe_tags_hi int[], probe_types text[], probe_tags text[],
    read_from bigint, read_limit int, backwards boolean,
    probe_more_keys bigint[] DEFAULT NULL, probe_more_lo int[] DEFAULT NULL, probe_more_hi int[] DEFAULT NULL)
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
    -- Callers from before 00011: no probe has more keys.
    probe_more_lo := coalesce(probe_more_lo, array_fill(1, ARRAY[cardinality(probe_keys)]));
    probe_more_hi := coalesce(probe_more_hi, array_fill(0, ARRAY[cardinality(probe_keys)]));
    IF match_all AND NOT backwards THEN
        RETURN QUERY SELECT * FROM events e WHERE e.position >= read_from
            ORDER BY e.position LIMIT read_limit;
    ELSIF match_all THEN
        RETURN QUERY SELECT * FROM events e WHERE e.position <= read_from
            ORDER BY e.position DESC LIMIT read_limit;
    ELSIF NOT backwards THEN
        RETURN QUERY SELECT e.* FROM (
            SELECT DISTINCT c.position
            FROM unnest(probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi,
                    probe_more_lo, probe_more_hi)
                AS p(key, types_lo, types_hi, tags_lo, tags_hi, more_lo, more_hi)
            CROSS JOIN LATERAL (
                (SELECT c.position FROM event_keys k
                CROSS JOIN LATERAL generate_series(greatest(k.position - k.span + 1, read_from), k.position) AS c(position)
                WHERE p.more_lo > p.more_hi
                    AND k.key = p.key AND k.position >= read_from
                    AND (p.tags_hi <= p.tags_lo OR EXISTS (
                        SELECT FROM events v WHERE v.position = c.position
                            AND v.tags @> probe_tags[p.tags_lo:p.tags_hi]
                            AND (p.types_lo > p.types_hi OR v.type = ANY (probe_types[p.types_lo:p.types_hi]))))
                ORDER BY k.position, c.position
                LIMIT read_limit)
                UNION ALL
                SELECT l.position FROM dcb_leap(ARRAY[p.key] || probe_more_keys[p.more_lo:p.more_hi],
                    probe_types[p.types_lo:p.types_hi], probe_tags[p.tags_lo:p.tags_hi], read_from, read_limit, false)
                    AS l(position)
                WHERE p.more_lo <= p.more_hi
            ) AS c
            ORDER BY c.position
            LIMIT read_limit
        ) AS page
        JOIN events e ON e.position = page.position
        ORDER BY e.position;
    ELSE
        RETURN QUERY SELECT e.* FROM (
            SELECT DISTINCT c.position
            FROM unnest(probe_keys, probe_types_lo, probe_types_hi, probe_tags_lo, probe_tags_hi,
                    probe_more_lo, probe_more_hi)
                AS p(key, types_lo, types_hi, tags_lo, tags_hi, more_lo, more_hi)
            CROSS JOIN LATERAL (
                -- From the key's first run that ends at or after read_from,
                -- which may begin before it.
                (SELECT c.position FROM event_keys k
                CROSS JOIN LATERAL generate_series(least(k.position, read_from), k.position - k.span + 1, -1) AS c(position)
                WHERE p.more_lo > p.more_hi
                    AND k.key = p.key
                    AND k.position <= coalesce((SELECT min(b.position) FROM event_keys b
                        WHERE b.key = p.key AND b.position >= read_from), read_from)
                    AND (p.tags_hi <= p.tags_lo OR EXISTS (
                        SELECT FROM events v WHERE v.position = c.position
                            AND v.tags @> probe_tags[p.tags_lo:p.tags_hi]
                            AND (p.types_lo > p.types_hi OR v.type = ANY (probe_types[p.types_lo:p.types_hi]))))
                ORDER BY k.position DESC, c.position DESC
                LIMIT read_limit)
                UNION ALL
                SELECT l.position FROM dcb_leap(ARRAY[p.key] || probe_more_keys[p.more_lo:p.more_hi],
                    probe_types[p.types_lo:p.types_hi], probe_tags[p.tags_lo:p.tags_hi], read_from, read_limit, true)
                    AS l(position)
                WHERE p.more_lo <= p.more_hi
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
-- Down keeps these definitions: with their new arguments left out they
-- answer callers of 00010's as 00010's did (through one key per probe).
SELECT 1;
