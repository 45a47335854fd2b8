-- One text per phone per decision (issue 15 item 3): a household's text names every pet it
-- is about. The outbox row carries the first visit (visit_id, told_*); the others it told
-- about are listed here with the range it told each, so the policy counts each as told.
-- (Numbered 0008: 0007 is taken by the importers' vet blocks, landing separately.)
CREATE TABLE IF NOT EXISTS outbox_visits (
    row_id INTEGER NOT NULL REFERENCES outbox(id),
    visit_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    told_start TEXT NOT NULL,
    told_p10 TEXT NOT NULL,
    told_p90 TEXT NOT NULL,
    PRIMARY KEY (row_id, visit_id)
);
CREATE INDEX IF NOT EXISTS outbox_visits_visit ON outbox_visits(visit_id);
