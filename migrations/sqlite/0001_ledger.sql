-- The ledger on SQLite: the cqrs-es event table extended with what the framework lacks.
--
-- position     the global, commit-ordered position of the event. SQLite has a single writer,
--              so AUTOINCREMENT (never reused, never renumbered by VACUUM) follows commit order.
-- recorded_at  transaction time, milliseconds since the Unix epoch (UTC), set by the database.
-- metadata     actor, request_id and reason of the command that wrote the event (JSON text).
--
-- sqlite-es inserts (aggregate_type, aggregate_id, sequence, event_type, event_version,
-- payload, metadata); the other columns fill themselves.
CREATE TABLE events
(
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL CHECK (sequence >= 0),
    event_type     TEXT    NOT NULL,
    event_version  TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (aggregate_type, aggregate_id, sequence)
);

-- The log is append-only in the database itself.
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused');
END;

CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;

-- The hash chain: hash(n) = SHA-256(hash(n-1) ‖ canonical(event n)), written by the sealer in
-- position order right after each commit. Append-only as well.
CREATE TABLE event_chain
(
    position INTEGER PRIMARY KEY,
    hash     TEXT    NOT NULL
);

CREATE TRIGGER event_chain_refuse_update BEFORE UPDATE ON event_chain
BEGIN
    SELECT RAISE(ABORT, 'the hash chain is append-only: UPDATE refused');
END;

CREATE TRIGGER event_chain_refuse_delete BEFORE DELETE ON event_chain
BEGIN
    SELECT RAISE(ABORT, 'the hash chain is append-only: DELETE refused');
END;

-- Aggregate snapshots (cqrs-es). Disposable: deleting them only makes loading slower.
CREATE TABLE snapshots
(
    aggregate_type   TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    last_sequence    INTEGER NOT NULL CHECK (last_sequence >= 0),
    current_snapshot INTEGER NOT NULL CHECK (current_snapshot >= 0),
    payload          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Per-person keys for personal data, kept outside the event table. Destroying a key
-- (setting it to NULL) erases that person's names and free texts from every event.
CREATE TABLE personal_keys
(
    staff_id   TEXT    PRIMARY KEY,
    key        BLOB,
    created_at INTEGER NOT NULL,
    erased_at  INTEGER
);

-- API tokens: only the SHA-256 of each token is stored.
CREATE TABLE api_tokens
(
    token_hash TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    staff_id   TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Idempotency keys: the first response to a (caller, key) pair, replayed for repeats.
CREATE TABLE idempotency_keys
(
    actor        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER,
    body         TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (actor, key)
);
