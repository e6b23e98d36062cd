-- A batch's commands confirmed in the statement that appends them.
--
-- Each command reads its token, with the log's head, before it is decided: one round trip
-- of its own, about a quarter of what a command costs on PostgreSQL with 8 clients. A
-- command of a token this process has read before may now be decided at once, on the state
-- this process keeps, and confirmed here, under the appenders' lock, in the statement that
-- appends it:
-- - `expected_before`: the position of the last event this process appended. The chain's
--   head before the batch must be that event: then no other process has appended since the
--   state the commands were decided on, and they were decided as a fresh read would have
--   let them (SQLSTATE KR001 otherwise);
-- - `tokens`: the digests of those commands' tokens (each once), every one still known and
--   not revoked (KR002 otherwise).
-- Either refusal rolls the statement back: nothing of the batch is written, and the
-- application decides those commands again the long way (the token and the head read
-- first). NULL and an empty array ask nothing: the function appends as 0012's did.
--
-- 0012's function of eight arguments stays beside this one: a process of the version before
-- still running on the same database (a restart one server at a time) calls it.

CREATE FUNCTION append_sealed(
    types text[], ids text[], sequences bigint[], event_types text[], versions text[],
    payloads text[], metadata text[], tails text[], expected_before bigint, tokens text[])
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
    IF expected_before IS NOT NULL AND head_position <> expected_before THEN
        RAISE EXCEPTION 'append_sealed: the log''s head is %, not %', head_position,
            expected_before USING ERRCODE = 'KR001';
    END IF;
    IF coalesce(cardinality(tokens), 0) > 0
        AND (SELECT count(*) FROM api_tokens
             WHERE token_hash = ANY (tokens) AND revoked_at IS NULL) <> cardinality(tokens) THEN
        RAISE EXCEPTION 'append_sealed: a token is revoked or unknown' USING ERRCODE = 'KR002';
    END IF;
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
