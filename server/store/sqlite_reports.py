"""The SQLite implementation of the reports' queries (server/store/reports.py). Plain SELECTs
with joins and ranges over the canonical time text: the same statements run on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from server.store.interface import LoggedEvent
from server.store.reports import ReportRecovery, ReportReply, ReportText, ReportVisit, ToldRange
from server.timeutil import from_db, to_db


def _t(s: str | None) -> datetime | None:
    return from_db(s)


def _must(s: str | None) -> datetime:
    t = from_db(s)
    assert t is not None
    return t


class SqliteReportQueries:
    """Mixed into SqliteTx: needs its `_rows`."""

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # provided by SqliteTx
        raise NotImplementedError

    async def report_visits(self, first: date, last: date, vet: str | None) -> list[ReportVisit]:
        where, args = "a.day BETWEEN ? AND ?", [first.isoformat(), last.isoformat()]
        if vet is not None:
            where += " AND a.vet_id = ?"
            args.append(vet)
        rows = await self._rows(
            "SELECT a.id, a.kind, a.day, a.vet_id, v.name AS vet_name, a.type_id, t.name AS type_name, "
            "COALESCE(p.name, a.pet_name) AS pet, c.name AS client, a.scheduled, a.booked_min, a.status, "
            "a.arrived, a.started, a.ended FROM appointments a "
            "LEFT JOIN vets v ON v.id = a.vet_id LEFT JOIN appointment_types t ON t.id = a.type_id "
            "LEFT JOIN pets p ON p.id = a.pet_id LEFT JOIN clients c ON c.id = p.client_id "
            f"WHERE {where} ORDER BY a.day, a.vet_id, COALESCE(a.scheduled, a.arrived), a.id", args)
        return [ReportVisit(r[0], r[1], date.fromisoformat(r[2]), r[3], r[4] or r[3], r[5], r[6], r[7], r[8],
                            _t(r[9]), float(r[10]), r[11], _t(r[12]), _t(r[13]), _t(r[14])) for r in rows]

    async def report_told(self, first: date, last: date) -> list[ToldRange]:
        args = [first.isoformat(), last.isoformat()]
        rows = await self._rows(
            "SELECT pr.visit_id, pr.at, pr.start, pr.p10, pr.p90, 'checkin' FROM promises pr "
            "JOIN appointments a ON a.id = pr.visit_id WHERE a.day BETWEEN ? AND ? "
            "UNION ALL SELECT o.visit_id, o.created_at, o.told_start, o.told_p10, o.told_p90, 'text' FROM outbox o "
            "JOIN appointments a ON a.id = o.visit_id WHERE a.day BETWEEN ? AND ? AND o.told_p90 IS NOT NULL "
            "AND o.status <> 'failed' "
            "UNION ALL SELECT ov.visit_id, o.created_at, ov.told_start, ov.told_p10, ov.told_p90, 'text' "
            "FROM outbox_visits ov JOIN outbox o ON o.id = ov.row_id JOIN appointments a ON a.id = ov.visit_id "
            "WHERE a.day BETWEEN ? AND ? AND o.status <> 'failed' ORDER BY 2", args * 3)
        return [ToldRange(r[0], _must(r[1]), _must(r[2]), _must(r[3]), _must(r[4]), r[5]) for r in rows]

    async def report_texts(self, since: datetime, until: datetime) -> list[ReportText]:
        rows = await self._rows(
            "SELECT id, visit_id, kind, status, segments, created_at FROM outbox "
            "WHERE created_at >= ? AND created_at < ? ORDER BY id", (to_db(since), to_db(until)))
        return [ReportText(int(r[0]), r[1], r[2], r[3], int(r[4]), _must(r[5])) for r in rows]

    async def report_replies(self, since: datetime, until: datetime) -> list[ReportReply]:
        rows = await self._rows(
            "SELECT kind, visit_id, received_at FROM inbound_messages WHERE received_at >= ? AND received_at < ? "
            "ORDER BY id", (to_db(since), to_db(until)))
        return [ReportReply(r[0], r[1], _must(r[2])) for r in rows]

    async def report_opt_outs(self, since: datetime, until: datetime) -> int:
        rows = await self._rows("SELECT COUNT(*) FROM opt_outs WHERE opted_out_at >= ? AND opted_out_at < ?",
                                (to_db(since), to_db(until)))
        return int(rows[0][0])

    async def report_events(self, since: datetime, until: datetime, types: tuple[str, ...]) -> list[LoggedEvent]:
        if not types:
            return []
        rows = await self._rows(
            "SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
            "LEFT JOIN appointments a ON a.id = e.appointment_id "
            f"WHERE e.at >= ? AND e.at < ? AND e.type IN ({','.join('?' * len(types))}) ORDER BY e.seq",
            (to_db(since), to_db(until), *types))
        return [LoggedEvent(seq=int(r[0]), at=_must(r[1]), recorded_at=_must(r[2]), type=r[3], appointment=r[4],
                            data=json.loads(r[5] or "{}"), actor=r[6], vet=r[7]) for r in rows]

    async def report_notes(self, first: date, last: date) -> list[LoggedEvent]:
        rows = await self._rows(
            "SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
            "JOIN appointments a ON a.id = e.appointment_id WHERE e.type = 'report_note' AND a.day BETWEEN ? AND ? "
            "ORDER BY e.seq", (first.isoformat(), last.isoformat()))
        return [LoggedEvent(seq=int(r[0]), at=_must(r[1]), recorded_at=_must(r[2]), type=r[3], appointment=r[4],
                            data=json.loads(r[5] or "{}"), actor=r[6], vet=r[7]) for r in rows]

    async def report_recoveries(self, first: date, last: date) -> list[ReportRecovery]:
        rows = await self._rows(
            "SELECT ro.visit_id, ro.gesture, ro.offered_at FROM recovery_offers ro "
            "JOIN appointments a ON a.id = ro.visit_id WHERE a.day BETWEEN ? AND ?",
            (first.isoformat(), last.isoformat()))
        return [ReportRecovery(r[0], r[1], _must(r[2])) for r in rows]
