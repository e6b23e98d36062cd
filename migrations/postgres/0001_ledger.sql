-- The ledger on PostgreSQL: the cqrs-es event table extended with what the framework lacks.
--
-- position     the global position of the event. It follows commit order: the insert trigger
--              takes a transaction-scoped advisory lock before drawing the position, so the
--              next writer draws its position only after this transaction has committed (or
--              rolled back). A reader tailing `position > n` therefore never skips an event.
-- recorded_at  transaction time, milliseconds since the Unix epoch (UTC), never decreasing
--              along position.
-- metadata     actor, request_id and reason of the command that wrote the event.
--
-- postgres-es inserts (aggregate_type, aggregate_id, sequence, event_type, event_version,
-- payload, metadata); the trigger fills the rest.
CREATE SEQUENCE events_position_seq;

CREATE TABLE events
(
    position       BIGINT NOT NULL,
    aggregate_type TEXT   NOT NULL,
    aggregate_id   TEXT   NOT NULL,
    sequence       BIGINT NOT NULL CHECK (sequence >= 0),
    event_type     TEXT   NOT NULL,
    event_version  TEXT   NOT NULL,
    payload        JSONB  NOT NULL,
    metadata       JSONB  NOT NULL,
    recorded_at    BIGINT NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_by_position ON events (position);

CREATE FUNCTION events_assign_position() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    last_recorded BIGINT;
BEGIN
    -- 0x6b69726f = 'kiro': the one lock every appender queues on until its commit.
    PERFORM pg_advisory_xact_lock(1802072687);
    NEW.position := nextval('events_position_seq');
    SELECT recorded_at INTO last_recorded FROM events ORDER BY position DESC LIMIT 1;
    NEW.recorded_at := GREATEST(COALESCE(last_recorded, 0),
                                (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_assign_position
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_position();

-- The log is append-only in the database itself.
CREATE FUNCTION refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_refuse_change
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The hash chain: hash(n) = SHA-256(hash(n-1) ‖ canonical(event n)), written by the sealer in
-- position order right after each commit. Append-only as well.
CREATE TABLE event_chain
(
    position BIGINT PRIMARY KEY,
    hash     TEXT   NOT NULL
);

CREATE TRIGGER event_chain_refuse_change
    BEFORE UPDATE OR DELETE ON event_chain
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE TRIGGER event_chain_refuse_truncate
    BEFORE TRUNCATE ON event_chain
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Aggregate snapshots (cqrs-es). Disposable: deleting them only makes loading slower.
CREATE TABLE snapshots
(
    aggregate_type   TEXT   NOT NULL,
    aggregate_id     TEXT   NOT NULL,
    last_sequence    BIGINT NOT NULL CHECK (last_sequence >= 0),
    current_snapshot BIGINT NOT NULL CHECK (current_snapshot >= 0),
    payload          JSONB  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Per-person keys for personal data, kept outside the event table. Destroying a key
-- (setting it to NULL) erases that person's names and free texts from every event.
CREATE TABLE personal_keys
(
    staff_id   TEXT PRIMARY KEY,
    key        BYTEA,
    created_at BIGINT NOT NULL,
    erased_at  BIGINT
);

-- API tokens: only the SHA-256 of each token is stored.
CREATE TABLE api_tokens
(
    token_hash TEXT PRIMARY KEY,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    staff_id   TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Idempotency keys: the first response to a (caller, key) pair, replayed for repeats.
CREATE TABLE idempotency_keys
(
    actor        TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    status       INTEGER,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (actor, key)
);
