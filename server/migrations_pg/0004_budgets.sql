-- Request budgets shared by every process of a clinic (the kiosk tokens' lookups a minute,
-- server/kiosk_api.py): one row per request charged, older ones deleted as they leave the window.
CREATE TABLE budget_spends (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    key TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX budget_spends_key ON budget_spends (clinic_id, key, at);
