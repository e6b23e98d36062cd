-- Checkpoints in pieces: the read models are kept in pieces (segments of the fact vectors and
-- the timeline, shards of the histories), and a checkpoint writes only the pieces that changed
-- since the one before, each row under the position of the checkpoint that wrote it
-- (`version`). The row in `projection_checkpoints` becomes a manifest naming the version and
-- SHA-256 of every piece at its position. The whole-state checkpoints and their parts are
-- dropped: the first start after this migration rebuilds the read models from the log.
CREATE TABLE projection_segments
(
    key     TEXT    NOT NULL,
    version INTEGER NOT NULL,
    bytes   BLOB    NOT NULL,
    PRIMARY KEY (key, version)
);

DROP TABLE projection_checkpoint_parts;
DELETE FROM projection_checkpoints;
