-- Automatic answers to one number are capped per 24 hours (notifier/replies.py:
-- auto_replies_since): counting them must not scan every text ever sent.
CREATE INDEX IF NOT EXISTS outbox_to_number ON outbox(to_number, created_at);
