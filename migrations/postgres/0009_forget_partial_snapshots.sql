-- A snapshot written by a command whose events crossed a multiple of the snapshot size (100)
-- held only the events up to that multiple, yet was stored under the sequence of the
-- command's last event, so every load that started from it missed the rest (cqrs-es 0.5's
-- rule, kept by src/storage/aggregates.rs until this version). Such a snapshot is exactly
-- one whose last_sequence is not a multiple of 100. Snapshots are disposable: without them
-- an aggregate loads from its events, and the snapshots written from now on hold every event
-- up to their last_sequence.
DELETE FROM snapshots WHERE last_sequence % 100 <> 0;
