-- The log keeps each event's payload and metadata as the text Kiroku wrote (json) instead of
-- decomposing it (jsonb). Nothing queries inside them but the rare look-up of a request's
-- events (`metadata->>'request_id'`, which json answers too); every other read takes the text
-- whole (a rebuild, `kiroku verify`, an export), and turning jsonb back into text was about 70 %
-- of the server's work in a rebuild (docs/PERFORMANCE.md, the fourteenth run). A COPY into
-- json only checks the text; into jsonb it parses it.
--
-- The hash chain covers the parsed values in their canonical form, never the stored text
-- (src/storage/chain.rs), so the events already sealed keep their links: their text becomes
-- jsonb's rendering of the same values. The table is rewritten once, at this migration; its
-- triggers do not fire on that rewrite.
ALTER TABLE events
    ALTER COLUMN payload TYPE json USING payload::json,
    ALTER COLUMN metadata TYPE json USING metadata::json;
