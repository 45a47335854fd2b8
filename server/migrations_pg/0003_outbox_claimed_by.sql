-- Which server process claimed a text it is sending (its store's origin, also its connections'
-- application_name): a row left `sending` by a process whose connections are gone (killed,
-- crashed) is adopted by a live process, which looks it up at the provider before any resend.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
CREATE INDEX outbox_sending ON outbox (clinic_id, claimed_by) WHERE status = 'sending';
