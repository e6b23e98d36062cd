-- The request id an idempotency key's command runs under, so that a key left in progress by a
-- crash can be resolved from the log (the command committed, or it did not).
ALTER TABLE idempotency_keys ADD COLUMN request_id TEXT;
