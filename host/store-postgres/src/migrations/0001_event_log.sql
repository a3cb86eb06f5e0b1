-- Migration 1: the event log, the streams, the command ids, the snapshots, and the
-- function that appends a batch of commands in one call.
--
-- Numbers are counted as in tally-store (host/store/src/version.rs): a global position
-- from 0, dense; a stream version is its number of events, an event's version is the
-- stream's version once it is appended (the first event is 1).

-- One row: where the log ends and the last timestamp given. Every append locks this
-- row (FOR UPDATE) before it takes positions and holds it until it commits, so positions
-- are handed out in commit order: no reader ever sees a position filled in after a larger
-- one (decision 015).
CREATE TABLE tally_log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    next_position bigint NOT NULL CHECK (next_position >= 0),
    last_timestamp_ms bigint NOT NULL CHECK (last_timestamp_ms >= 0)
);
INSERT INTO tally_log_head (next_position, last_timestamp_ms) VALUES (0, 0);

CREATE TABLE tally_events (
    position bigint PRIMARY KEY CHECK (position >= 0),
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    name text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 0),
    timestamp_ms bigint NOT NULL,
    command_id text,
    correlation_id text,
    causation_id text,
    metadata bytea NOT NULL,
    data bytea NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, version)
);
-- Timestamps never decrease along the log: position_at_time searches this index.
CREATE INDEX tally_events_by_time ON tally_events (timestamp_ms, position);

CREATE TABLE tally_streams (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    -- The position of the stream's first event: streams of a type in creation order.
    first_position bigint NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
CREATE INDEX tally_streams_by_type ON tally_streams (aggregate_type, first_position);

-- Command ids, kept in the transaction of their events: a retry finds the first
-- attempt's result, a reuse of the id for another command (another stream, another
-- fingerprint) is told apart.
CREATE TABLE tally_commands (
    command_id text PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    fingerprint bytea CHECK (fingerprint IS NULL OR length(fingerprint) = 32),
    first_position bigint NOT NULL,
    first_version bigint NOT NULL,
    event_count bigint NOT NULL CHECK (event_count >= 1),
    timestamp_ms bigint NOT NULL
);

-- The latest snapshot of a stream per tag (the state's encoding).
CREATE TABLE tally_snapshots (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    tag text NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    data bytea NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, tag)
);

-- Appends a batch of commands in one transaction, in order, each with its own checks;
-- a failed check fails only its command. Command i has event_counts[i] events, taken in
-- order from the event arrays; expected[i] NULL means any version.
--
-- Outcomes: 0 appended, 1 duplicate (the command id's earlier result), 2 command id
-- reused for another command (other_type/other_id: its stream), 3 wrong expected
-- version (actual_version: the stream's version).
CREATE FUNCTION tally_append(
    a_types text[],
    a_ids text[],
    expected bigint[],
    cmd_ids text[],
    fingerprints bytea[],
    correlations text[],
    causations text[],
    event_counts integer[],
    e_names text[],
    e_schemas integer[],
    e_data bytea[],
    e_metadata bytea[]
)
RETURNS TABLE (
    out_command integer,
    out_outcome smallint,
    out_first_position bigint,
    out_first_version bigint,
    out_event_count bigint,
    out_timestamp_ms bigint,
    out_actual_version bigint,
    out_other_type text,
    out_other_id text
)
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    commands integer := coalesce(array_length(a_types, 1), 0);
    next_pos bigint;
    ts bigint;
    cur bigint;
    n integer;
    e integer := 1;
    appended boolean := false;
    earlier tally_commands%ROWTYPE;
BEGIN
    -- Each statement below must see what appends committed before this one took the
    -- lock: true under read committed (a fresh snapshot per statement), not above it.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'tally_append runs only at isolation level read committed';
    END IF;
    IF coalesce(array_length(e_names, 1), 0) <> (SELECT coalesce(sum(c), 0) FROM unnest(event_counts) AS c) THEN
        RAISE EXCEPTION 'tally_append: the event arrays do not match the event counts';
    END IF;

    -- The commit-order lock: held until this transaction commits or rolls back.
    SELECT h.next_position, h.last_timestamp_ms INTO next_pos, ts
        FROM tally_log_head AS h FOR UPDATE;
    ts := greatest(ts, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint);

    FOR i IN 1 .. commands LOOP
        n := event_counts[i];
        IF n IS NULL OR n < 1 THEN
            RAISE EXCEPTION 'tally_append: command % has no events', i;
        END IF;

        IF cmd_ids[i] IS NOT NULL THEN
            SELECT * INTO earlier FROM tally_commands AS c WHERE c.command_id = cmd_ids[i];
            IF FOUND THEN
                IF earlier.aggregate_type = a_types[i] AND earlier.aggregate_id = a_ids[i]
                    AND (earlier.fingerprint IS NULL OR fingerprints[i] IS NULL
                         OR earlier.fingerprint = fingerprints[i]) THEN
                    RETURN QUERY SELECT i, 1::smallint, earlier.first_position,
                        earlier.first_version, earlier.event_count, earlier.timestamp_ms,
                        NULL::bigint, NULL::text, NULL::text;
                ELSE
                    RETURN QUERY SELECT i, 2::smallint, NULL::bigint, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::bigint,
                        earlier.aggregate_type, earlier.aggregate_id;
                END IF;
                e := e + n;
                CONTINUE;
            END IF;
        END IF;

        SELECT s.version INTO cur FROM tally_streams AS s
            WHERE s.aggregate_type = a_types[i] AND s.aggregate_id = a_ids[i];
        cur := coalesce(cur, 0);
        IF expected[i] IS NOT NULL AND expected[i] <> cur THEN
            RETURN QUERY SELECT i, 3::smallint, NULL::bigint, NULL::bigint, NULL::bigint,
                NULL::bigint, cur, NULL::text, NULL::text;
            e := e + n;
            CONTINUE;
        END IF;

        INSERT INTO tally_events (position, aggregate_type, aggregate_id, version, name,
                schema_version, timestamp_ms, command_id, correlation_id, causation_id,
                metadata, data)
            SELECT next_pos + k, a_types[i], a_ids[i], cur + 1 + k, e_names[e + k],
                e_schemas[e + k], ts, cmd_ids[i], correlations[i], causations[i],
                e_metadata[e + k], e_data[e + k]
            FROM generate_series(0, n - 1) AS k;
        INSERT INTO tally_streams AS s (aggregate_type, aggregate_id, version, first_position)
            VALUES (a_types[i], a_ids[i], cur + n, next_pos)
            ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = excluded.version;
        IF cmd_ids[i] IS NOT NULL THEN
            INSERT INTO tally_commands (command_id, aggregate_type, aggregate_id, fingerprint,
                    first_position, first_version, event_count, timestamp_ms)
                VALUES (cmd_ids[i], a_types[i], a_ids[i], fingerprints[i], next_pos, cur + 1,
                    n, ts);
        END IF;
        RETURN QUERY SELECT i, 0::smallint, next_pos, cur + 1, n::bigint, ts, cur + n,
            NULL::text, NULL::text;
        next_pos := next_pos + n;
        e := e + n;
        appended := true;
    END LOOP;

    IF appended THEN
        UPDATE tally_log_head SET next_position = next_pos, last_timestamp_ms = ts;
        -- A wake-up for readers on every host; it carries nothing: they read the table.
        PERFORM pg_notify('tally_events', '');
    END IF;
END;
$fn$;
