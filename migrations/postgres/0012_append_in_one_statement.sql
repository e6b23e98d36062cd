-- A batch of appends in one statement, which is its own transaction.
--
-- The appender wrote a batch in four round trips: BEGIN, the insert of the events, the insert
-- of their chain links, COMMIT. The links cannot go with the events from the client: their
-- hashes cover the position and the time the server assigns. But only those two numbers come
-- from the server, and they open the canonical form (chain.rs): `[position,recorded_at`,
-- then the rest, which the client knows. So the client sends each event with the rest of its
-- canonical form (`tails`, written by chain.rs), and this function inserts the events, reads
-- the chain's head under the appenders' lock (the insert's statement trigger took it, as
-- before), links each event as
--
--     hash(n) = hex(SHA-256(hash(n-1) ‖ '[' ‖ position ‖ ',' ‖ recorded_at ‖ tail))
--
-- and inserts the links: the events and their seal commit together, as before, in one round
-- trip instead of four, with the lock held for the function's run instead of across three of
-- them. The canonical form still lives in chain.rs alone; here the two numbers are written as
-- PostgreSQL writes a bigint, which is how serde_json writes an i64.
--
-- Returns, per event in the order sent (`ordinal`, from 1), its position, its time and its
-- link, and the position of the chain's head before the batch.
CREATE FUNCTION append_sealed(
    types text[], ids text[], sequences bigint[], event_types text[], versions text[],
    payloads text[], metadata text[], tails text[])
    RETURNS TABLE (ordinal bigint, event_position bigint, event_recorded_at bigint,
                   event_hash text, chain_before bigint)
    LANGUAGE plpgsql AS
$$
DECLARE
    positions     bigint[];
    times         bigint[];
    ordinals      bigint[];
    ordered_tails text[];
    hashes        text[] := ARRAY[]::text[];
    head_position bigint;
    link          text;
BEGIN
    WITH inserted AS (
        INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                            payload, metadata)
        SELECT u.t, u.a, u.s, u.e, u.v, u.p::json, u.m::json
        FROM unnest(types, ids, sequences, event_types, versions, payloads, metadata)
                 WITH ORDINALITY AS u (t, a, s, e, v, p, m, n)
        -- The positions are drawn in the order sent: an aggregate's events in sequence.
        ORDER BY u.n
        RETURNING events.position, events.recorded_at, events.aggregate_type,
                  events.aggregate_id, events.sequence)
    SELECT array_agg(i.position ORDER BY i.position),
           array_agg(i.recorded_at ORDER BY i.position),
           array_agg(x.n ORDER BY i.position),
           array_agg(x.tail ORDER BY i.position)
    INTO positions, times, ordinals, ordered_tails
    FROM inserted i
             JOIN unnest(types, ids, sequences, tails) WITH ORDINALITY AS x (t, a, s, tail, n)
                  ON x.t = i.aggregate_type AND x.a = i.aggregate_id AND x.s = i.sequence;
    IF coalesce(array_length(positions, 1), 0) <> coalesce(array_length(types, 1), 0) THEN
        RAISE EXCEPTION 'append_sealed: % events sent, % inserted',
            coalesce(array_length(types, 1), 0), coalesce(array_length(positions, 1), 0);
    END IF;
    -- The head is read after the insert, under the appenders' lock: the last link any
    -- earlier commit wrote.
    SELECT c.position, c.hash INTO head_position, link
    FROM event_chain c ORDER BY c.position DESC LIMIT 1;
    head_position := coalesce(head_position, 0);
    link := coalesce(link, repeat('0', 64));
    FOR i IN 1 .. coalesce(array_length(positions, 1), 0) LOOP
        link := encode(sha256(convert_to(
                    link || '[' || positions[i] || ',' || times[i] || ordered_tails[i], 'UTF8')),
                       'hex');
        hashes[i] := link;
    END LOOP;
    INSERT INTO event_chain (position, hash) SELECT * FROM unnest(positions, hashes);
    RETURN QUERY SELECT u.o, u.p, u.t, u.h, head_position
                 FROM unnest(ordinals, positions, times, hashes) AS u (o, p, t, h);
END;
$$;
