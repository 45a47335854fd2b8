-- One stored form for every time: fixed-width UTC text, 2026-03-02T13:50:00.000000Z, so that
-- two times compare as strings. Before this, the server wrote Python's isoformat() in UTC
-- ("+00:00", microseconds only when not zero) and the notifier the fixed "Z" form.
-- Rewrites the UTC "+00:00" forms (with or without microseconds); anything else is left as is.

UPDATE appointments SET scheduled = substr(scheduled, 1, 19) || '.' ||
    CASE WHEN substr(scheduled, 20, 1) = '.' THEN substr(scheduled, 21, 6) ELSE '000000' END || 'Z'
WHERE scheduled LIKE '____-__-__T__:__:__%+00:00' AND length(scheduled) IN (25, 32);

UPDATE appointments SET arrived = substr(arrived, 1, 19) || '.' ||
    CASE WHEN substr(arrived, 20, 1) = '.' THEN substr(arrived, 21, 6) ELSE '000000' END || 'Z'
WHERE arrived LIKE '____-__-__T__:__:__%+00:00' AND length(arrived) IN (25, 32);

UPDATE appointments SET started = substr(started, 1, 19) || '.' ||
    CASE WHEN substr(started, 20, 1) = '.' THEN substr(started, 21, 6) ELSE '000000' END || 'Z'
WHERE started LIKE '____-__-__T__:__:__%+00:00' AND length(started) IN (25, 32);

UPDATE appointments SET ended = substr(ended, 1, 19) || '.' ||
    CASE WHEN substr(ended, 20, 1) = '.' THEN substr(ended, 21, 6) ELSE '000000' END || 'Z'
WHERE ended LIKE '____-__-__T__:__:__%+00:00' AND length(ended) IN (25, 32);

UPDATE events SET at = substr(at, 1, 19) || '.' ||
    CASE WHEN substr(at, 20, 1) = '.' THEN substr(at, 21, 6) ELSE '000000' END || 'Z'
WHERE at LIKE '____-__-__T__:__:__%+00:00' AND length(at) IN (25, 32);

UPDATE events SET recorded_at = substr(recorded_at, 1, 19) || '.' ||
    CASE WHEN substr(recorded_at, 20, 1) = '.' THEN substr(recorded_at, 21, 6) ELSE '000000' END || 'Z'
WHERE recorded_at LIKE '____-__-__T__:__:__%+00:00' AND length(recorded_at) IN (25, 32);

UPDATE vet_status SET unavailable_until = substr(unavailable_until, 1, 19) || '.' ||
    CASE WHEN substr(unavailable_until, 20, 1) = '.' THEN substr(unavailable_until, 21, 6) ELSE '000000' END || 'Z'
WHERE unavailable_until LIKE '____-__-__T__:__:__%+00:00' AND length(unavailable_until) IN (25, 32);

UPDATE tokens SET created_at = substr(created_at, 1, 19) || '.' ||
    CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, 6) ELSE '000000' END || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%+00:00' AND length(created_at) IN (25, 32);

UPDATE idempotency SET created_at = substr(created_at, 1, 19) || '.' ||
    CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, 6) ELSE '000000' END || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%+00:00' AND length(created_at) IN (25, 32);

UPDATE models SET learned_at = substr(learned_at, 1, 19) || '.' ||
    CASE WHEN substr(learned_at, 20, 1) = '.' THEN substr(learned_at, 21, 6) ELSE '000000' END || 'Z'
WHERE learned_at LIKE '____-__-__T__:__:__%+00:00' AND length(learned_at) IN (25, 32);

UPDATE outbox SET next_attempt_at = substr(next_attempt_at, 1, 19) || '.' ||
    CASE WHEN substr(next_attempt_at, 20, 1) = '.' THEN substr(next_attempt_at, 21, 6) ELSE '000000' END || 'Z'
WHERE next_attempt_at LIKE '____-__-__T__:__:__%+00:00' AND length(next_attempt_at) IN (25, 32);

UPDATE outbox SET expires_at = substr(expires_at, 1, 19) || '.' ||
    CASE WHEN substr(expires_at, 20, 1) = '.' THEN substr(expires_at, 21, 6) ELSE '000000' END || 'Z'
WHERE expires_at LIKE '____-__-__T__:__:__%+00:00' AND length(expires_at) IN (25, 32);

UPDATE outbox SET sending_at = substr(sending_at, 1, 19) || '.' ||
    CASE WHEN substr(sending_at, 20, 1) = '.' THEN substr(sending_at, 21, 6) ELSE '000000' END || 'Z'
WHERE sending_at LIKE '____-__-__T__:__:__%+00:00' AND length(sending_at) IN (25, 32);

UPDATE outbox SET told_start = substr(told_start, 1, 19) || '.' ||
    CASE WHEN substr(told_start, 20, 1) = '.' THEN substr(told_start, 21, 6) ELSE '000000' END || 'Z'
WHERE told_start LIKE '____-__-__T__:__:__%+00:00' AND length(told_start) IN (25, 32);

UPDATE outbox SET told_p10 = substr(told_p10, 1, 19) || '.' ||
    CASE WHEN substr(told_p10, 20, 1) = '.' THEN substr(told_p10, 21, 6) ELSE '000000' END || 'Z'
WHERE told_p10 LIKE '____-__-__T__:__:__%+00:00' AND length(told_p10) IN (25, 32);

UPDATE outbox SET told_p90 = substr(told_p90, 1, 19) || '.' ||
    CASE WHEN substr(told_p90, 20, 1) = '.' THEN substr(told_p90, 21, 6) ELSE '000000' END || 'Z'
WHERE told_p90 LIKE '____-__-__T__:__:__%+00:00' AND length(told_p90) IN (25, 32);

UPDATE outbox SET created_at = substr(created_at, 1, 19) || '.' ||
    CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, 6) ELSE '000000' END || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%+00:00' AND length(created_at) IN (25, 32);

UPDATE outbox SET updated_at = substr(updated_at, 1, 19) || '.' ||
    CASE WHEN substr(updated_at, 20, 1) = '.' THEN substr(updated_at, 21, 6) ELSE '000000' END || 'Z'
WHERE updated_at LIKE '____-__-__T__:__:__%+00:00' AND length(updated_at) IN (25, 32);

UPDATE inbound_messages SET handled_at = substr(handled_at, 1, 19) || '.' ||
    CASE WHEN substr(handled_at, 20, 1) = '.' THEN substr(handled_at, 21, 6) ELSE '000000' END || 'Z'
WHERE handled_at LIKE '____-__-__T__:__:__%+00:00' AND length(handled_at) IN (25, 32);

UPDATE inbound_messages SET received_at = substr(received_at, 1, 19) || '.' ||
    CASE WHEN substr(received_at, 20, 1) = '.' THEN substr(received_at, 21, 6) ELSE '000000' END || 'Z'
WHERE received_at LIKE '____-__-__T__:__:__%+00:00' AND length(received_at) IN (25, 32);

UPDATE opt_outs SET opted_out_at = substr(opted_out_at, 1, 19) || '.' ||
    CASE WHEN substr(opted_out_at, 20, 1) = '.' THEN substr(opted_out_at, 21, 6) ELSE '000000' END || 'Z'
WHERE opted_out_at LIKE '____-__-__T__:__:__%+00:00' AND length(opted_out_at) IN (25, 32);

UPDATE link_uses SET used_at = substr(used_at, 1, 19) || '.' ||
    CASE WHEN substr(used_at, 20, 1) = '.' THEN substr(used_at, 21, 6) ELSE '000000' END || 'Z'
WHERE used_at LIKE '____-__-__T__:__:__%+00:00' AND length(used_at) IN (25, 32);

UPDATE recovery_offers SET offered_at = substr(offered_at, 1, 19) || '.' ||
    CASE WHEN substr(offered_at, 20, 1) = '.' THEN substr(offered_at, 21, 6) ELSE '000000' END || 'Z'
WHERE offered_at LIKE '____-__-__T__:__:__%+00:00' AND length(offered_at) IN (25, 32);

UPDATE staff_users SET created_at = substr(created_at, 1, 19) || '.' ||
    CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, 6) ELSE '000000' END || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%+00:00' AND length(created_at) IN (25, 32);

UPDATE staff_sessions SET created_at = substr(created_at, 1, 19) || '.' ||
    CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, 6) ELSE '000000' END || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%+00:00' AND length(created_at) IN (25, 32);

UPDATE staff_sessions SET expires_at = substr(expires_at, 1, 19) || '.' ||
    CASE WHEN substr(expires_at, 20, 1) = '.' THEN substr(expires_at, 21, 6) ELSE '000000' END || 'Z'
WHERE expires_at LIKE '____-__-__T__:__:__%+00:00' AND length(expires_at) IN (25, 32);

UPDATE login_attempts SET at = substr(at, 1, 19) || '.' ||
    CASE WHEN substr(at, 20, 1) = '.' THEN substr(at, 21, 6) ELSE '000000' END || 'Z'
WHERE at LIKE '____-__-__T__:__:__%+00:00' AND length(at) IN (25, 32);

UPDATE texts_paused SET paused_at = substr(paused_at, 1, 19) || '.' ||
    CASE WHEN substr(paused_at, 20, 1) = '.' THEN substr(paused_at, 21, 6) ELSE '000000' END || 'Z'
WHERE paused_at LIKE '____-__-__T__:__:__%+00:00' AND length(paused_at) IN (25, 32);

UPDATE waiting_in_car SET since = substr(since, 1, 19) || '.' ||
    CASE WHEN substr(since, 20, 1) = '.' THEN substr(since, 21, 6) ELSE '000000' END || 'Z'
WHERE since LIKE '____-__-__T__:__:__%+00:00' AND length(since) IN (25, 32);

UPDATE promises SET start = substr(start, 1, 19) || '.' ||
    CASE WHEN substr(start, 20, 1) = '.' THEN substr(start, 21, 6) ELSE '000000' END || 'Z'
WHERE start LIKE '____-__-__T__:__:__%+00:00' AND length(start) IN (25, 32);

UPDATE promises SET p10 = substr(p10, 1, 19) || '.' ||
    CASE WHEN substr(p10, 20, 1) = '.' THEN substr(p10, 21, 6) ELSE '000000' END || 'Z'
WHERE p10 LIKE '____-__-__T__:__:__%+00:00' AND length(p10) IN (25, 32);

UPDATE promises SET p90 = substr(p90, 1, 19) || '.' ||
    CASE WHEN substr(p90, 20, 1) = '.' THEN substr(p90, 21, 6) ELSE '000000' END || 'Z'
WHERE p90 LIKE '____-__-__T__:__:__%+00:00' AND length(p90) IN (25, 32);

UPDATE promises SET at = substr(at, 1, 19) || '.' ||
    CASE WHEN substr(at, 20, 1) = '.' THEN substr(at, 21, 6) ELSE '000000' END || 'Z'
WHERE at LIKE '____-__-__T__:__:__%+00:00' AND length(at) IN (25, 32);
