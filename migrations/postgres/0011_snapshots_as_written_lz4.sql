-- Aggregate snapshots keep their JSON as written (json, as the log since 0010), and they and
-- the read models' checkpoint pieces are compressed with lz4 instead of pglz.
--
-- A snapshot of a session of 100 people is about 12 KB of JSON, over the size PostgreSQL
-- compresses at, and an import writes one per session: 500 per 50,000 rows. Inserting 500 of
-- them took 203 ms as jsonb with pglz, 150 ms as json with pglz and 42 ms as json with lz4
-- (psql, this machine). A checkpoint's pieces (up to a few MB of JSON each) are compressed on
-- every write and decompressed on every start; lz4 does both several times faster.
--
-- Snapshots are disposable (deleting them only makes loading slower), and every reader takes
-- their text whole. lz4 applies to values written from now on; the older ones stay readable
-- as they are. A server without lz4 (built without it, or older than PostgreSQL 14) keeps
-- pglz.
ALTER TABLE snapshots
    ALTER COLUMN payload TYPE json USING payload::json;

DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE snapshots ALTER COLUMN payload SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE projection_segments ALTER COLUMN bytes SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server has no lz4: snapshots and checkpoints stay compressed with pglz';
END;
$$;
