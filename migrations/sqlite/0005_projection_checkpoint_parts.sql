-- A checkpoint larger than one value may hold (1 GB in SQLite, and in PostgreSQL's bytea; a
-- city of about 5,000,000 events passes it) is stored in parts: the first in
-- projection_checkpoints.state, the rest here in order, all written in one transaction.
CREATE TABLE projection_checkpoint_parts
(
    name  TEXT    NOT NULL,
    part  INTEGER NOT NULL,
    bytes BLOB    NOT NULL,
    PRIMARY KEY (name, part)
);
