-- A vet's blocked time, from an imported calendar: a staff meeting, lunch, surgery. The vet
-- starts nobody inside it (the estimator, the console's timeline and the reschedule page's free
-- slots all honour it). Idempotent by id, as appointments are: a re-import moves a block.
CREATE TABLE IF NOT EXISTS vet_blocks (
    id TEXT PRIMARY KEY,             -- the calendar's UID, "@<start>" for a repeating event's occurrence
    vet_id TEXT NOT NULL REFERENCES vets(id),
    day TEXT NOT NULL,               -- clinic-local date of the start, YYYY-MM-DD
    start_at TEXT NOT NULL,          -- ISO 8601 UTC
    end_at TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''  -- the event's title ("Staff meeting"), empty for a private event
);
CREATE INDEX IF NOT EXISTS vet_blocks_day ON vet_blocks(day, vet_id);
