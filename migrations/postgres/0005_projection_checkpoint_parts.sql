-- A checkpoint larger than one part (64 MiB) is stored in parts: one value holds at most 1 GB
-- in SQLite and in PostgreSQL's bytea, and a city of about 5,000,000 events passes it. The
-- parts of a checkpoint are written first, each in a short transaction of its own (so the
-- one SQLite write lock is never held for the whole state), under a key of their own; then
-- one statement points the checkpoint's row at them (`parts`), and the parts of the
-- checkpoint before are deleted. A checkpoint that fits in one part stays in the row's `state`.
ALTER TABLE projection_checkpoints ADD COLUMN parts TEXT;

CREATE TABLE projection_checkpoint_parts
(
    checkpoint TEXT    NOT NULL,
    part       BIGINT  NOT NULL,
    bytes      BYTEA   NOT NULL,
    PRIMARY KEY (checkpoint, part)
);
