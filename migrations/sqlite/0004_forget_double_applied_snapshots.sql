-- Snapshots written before this version could hold the last command's events applied twice
-- (cqrs-es 0.5's snapshot store applies to the state the events the aggregate's `handle` had
-- already applied; see src/storage/aggregates.rs). Snapshots are disposable: without them,
-- aggregates load from their events, and new snapshots are written correctly.
DELETE FROM snapshots;
