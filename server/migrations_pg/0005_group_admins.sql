-- Group admins (issue 13 item 2): staff accounts of the whole group rather than one clinic. The
-- account stays a row of staff_users (of the clinic it was made at, whose sessions reference it);
-- this table marks it valid at every clinic of the database: it signs in at any clinic's console
-- (a session is still the clinic's it was opened at) and sees every clinic on /group.
CREATE TABLE group_admins (
    user_id BIGINT PRIMARY KEY REFERENCES staff_users(id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL
);
