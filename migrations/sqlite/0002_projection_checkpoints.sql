-- The projector's durable state: each row holds a projection's whole read model and the log
-- position it reflects, written together in one statement, so that after a crash the
-- projector resumes exactly where its last checkpoint left off (exactly once, in order).
-- Disposable: `kiroku rebuild` deletes the rows and rebuilds from the log.
CREATE TABLE projection_checkpoints
(
    name        TEXT    PRIMARY KEY,
    format      INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    fingerprint TEXT    NOT NULL,
    state       BLOB    NOT NULL,
    saved_at    INTEGER NOT NULL
);
