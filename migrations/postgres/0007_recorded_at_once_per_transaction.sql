-- The position trigger without a lookup of the log's last event for every row.
--
-- `recorded_at` never decreases along position: each row takes the greater of the clock and
-- the last event's time. That last time used to be looked up for every row (an index scan
-- in PL/pgSQL, 9 µs of the 16 µs the trigger cost per row when inserting 100,000 events in
-- one statement). Now it is looked up once per transaction, on its first row, and then
-- carried from row to row in a transaction-local setting, tagged with the transaction's id.
-- The advisory lock is held from the first row until commit, so nothing else can append in
-- between and the carried value is the log's last time. The value is believed only when this
-- transaction wrote it (its id) and it is not ahead of the clock; otherwise the log is
-- looked up as before, so a session that sets the variable itself can neither push time
-- forward nor hide the last event's time.
CREATE OR REPLACE FUNCTION events_assign_position() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    clock         BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
    mine          TEXT   := txid_current()::text || ':';
    carried       TEXT   := current_setting('kiroku.last_recorded_at', true);
    last_recorded BIGINT;
BEGIN
    -- 0x6b69726f = 'kiro': the one lock every appender queues on until its commit.
    PERFORM pg_advisory_xact_lock(1802072687);
    NEW.position := nextval('events_position_seq');
    IF starts_with(COALESCE(carried, ''), mine) THEN
        last_recorded := substr(carried, length(mine) + 1)::BIGINT;
    END IF;
    IF last_recorded IS NULL OR last_recorded > clock THEN
        SELECT recorded_at INTO last_recorded FROM events ORDER BY position DESC LIMIT 1;
    END IF;
    NEW.recorded_at := GREATEST(COALESCE(last_recorded, 0), clock);
    PERFORM set_config('kiroku.last_recorded_at', mine || NEW.recorded_at::text, true);
    RETURN NEW;
END;
$$;
