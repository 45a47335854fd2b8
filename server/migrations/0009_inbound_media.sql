-- A client's MMS reply keeps its pictures' links (Twilio's MediaUrl0..N with their content
-- types): reception sees what was sent, not an empty text. A table, not a column, so the
-- migration is safe to run twice.
CREATE TABLE IF NOT EXISTS inbound_media (
    inbound_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    url TEXT NOT NULL,
    content_type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (inbound_id, n)
);
