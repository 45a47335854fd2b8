"""The SQLite implementation of the connectors' state and write-back outbox (server/store/pms.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from server.store.pms import NewPmsWrite, PmsSyncState, PmsWrite
from server.timeutil import from_db, to_db


def _must(s: str) -> datetime:
    t = from_db(s)
    assert t is not None
    return t


def _write(r: Any) -> PmsWrite:
    return PmsWrite(r["id"], r["pms"], r["visit_id"], r["action"], json.loads(r["data"]), r["status"],
                    r["attempts"], _must(r["next_at"]), _must(r["created_at"]), r["last_error"])


def _state(r: Any) -> PmsSyncState:
    return PmsSyncState(r["pms"], r["cursor"], r["events_seen"], from_db(r["last_attempt_at"]),
                        from_db(r["last_ok_at"]), from_db(r["last_full_at"]), r["last_error"],
                        json.loads(r["progress"]))


class SqlitePmsOps:
    """Mixed into SqliteTx: needs its `_rows` and `_write`."""

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # provided by SqliteTx
        raise NotImplementedError

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> Any:  # provided by SqliteTx
        raise NotImplementedError

    async def pms_state(self, pms: str) -> PmsSyncState:
        rows = await self._rows("SELECT * FROM pms_sync WHERE pms = ?", (pms,))
        return _state(rows[0]) if rows else PmsSyncState(pms)

    async def pms_states(self) -> list[PmsSyncState]:
        return [_state(r) for r in await self._rows("SELECT * FROM pms_sync ORDER BY pms")]

    async def save_pms_state(self, state: PmsSyncState) -> None:
        def t(d: datetime | None) -> str | None:
            return to_db(d) if d is not None else None

        await self._write(
            "INSERT INTO pms_sync (pms, cursor, events_seen, last_attempt_at, last_ok_at, last_full_at, last_error, "
            "progress) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pms) DO UPDATE SET cursor = excluded.cursor, "
            "events_seen = excluded.events_seen, last_attempt_at = excluded.last_attempt_at, "
            "last_ok_at = excluded.last_ok_at, last_full_at = excluded.last_full_at, "
            "last_error = excluded.last_error, progress = excluded.progress",
            (state.pms, state.cursor, state.events_seen, t(state.last_attempt_at), t(state.last_ok_at),
             t(state.last_full_at), state.last_error, json.dumps(state.progress)))

    async def pms_booked_visits(self, prefix: str, first: date, last: date) -> dict[str, str]:
        # The prefix is an id we chose ("ezyvet:"): escape LIKE's wildcards all the same.
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._rows(
            "SELECT id, status FROM appointments WHERE kind = 'appointment' AND id LIKE ? ESCAPE '\\' "
            "AND day >= ? AND day <= ?", (pattern, first.isoformat(), last.isoformat()))
        return {r["id"]: r["status"] for r in rows}

    async def client_preferences(self, client_ids: list[str]) -> dict[str, tuple[bool, str]]:
        out: dict[str, tuple[bool, str]] = {}
        for start in range(0, len(client_ids), 500):  # under SQLite's bound-parameter limit
            chunk = client_ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for r in await self._rows(f"SELECT id, sms_consent, language FROM clients WHERE id IN ({marks})", chunk):
                out[r["id"]] = (bool(r["sms_consent"]), r["language"])
        return out

    async def queue_pms_writes(self, rows: list[NewPmsWrite], now: datetime) -> int:
        n = 0
        for row in rows:
            cur = await self._write(
                "INSERT INTO pms_outbox (pms, dedupe, visit_id, action, data, status, next_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe) DO NOTHING",
                (row.pms, row.dedupe, row.visit_id, row.action, json.dumps(row.data), row.status, to_db(now),
                 to_db(now)))
            n += max(cur.rowcount, 0)
        return n

    async def due_pms_writes(self, pms: str, now: datetime, limit: int) -> list[PmsWrite]:
        rows = await self._rows(
            "SELECT * FROM pms_outbox WHERE pms = ? AND status = 'queued' AND next_at <= ? ORDER BY id LIMIT ?",
            (pms, to_db(now), limit))
        return [_write(r) for r in rows]

    async def finish_pms_write(self, row_id: int, status: str, now: datetime, *, error: str | None = None,
                               next_at: datetime | None = None) -> None:
        if status == "queued":
            await self._write(
                "UPDATE pms_outbox SET status = 'queued', attempts = attempts + 1, next_at = ?, "
                "last_error = COALESCE(?, last_error) WHERE id = ?",
                (to_db(next_at or now), error, row_id))
            return
        attempted = 1 if status in ("sent", "failed") else 0
        await self._write(
            "UPDATE pms_outbox SET status = ?, attempts = attempts + ?, done_at = ?, last_error = COALESCE(?, "
            "last_error) WHERE id = ?", (status, attempted, to_db(now), error, row_id))

    async def pms_writes(self, statuses: tuple[str, ...], limit: int) -> list[PmsWrite]:
        marks = ", ".join("?" for _ in statuses)
        rows = await self._rows(f"SELECT * FROM pms_outbox WHERE status IN ({marks}) ORDER BY id DESC LIMIT ?",
                                (*statuses, limit))
        return [_write(r) for r in rows]
