"""The server's side of delay texts: turn today's state and estimates into the notifier's
candidates, and queue what its policy decides, inside the transaction that changed things.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import aiosqlite

from notifier import links, outbox
from notifier.messages import ClinicInfo
from notifier.policy import PolicySettings, Reason, TextCandidate
from server.domain import DayState, Estimate
from server.store import Clinic, fetch
from server.timeutil import from_db, to_db

# The protocol's replay clients: all consent, all English, all in daytime.
REPLAY_NUMBER = "+15555550100"


@dataclass(frozen=True, slots=True)
class TextingOptions:
    public_url: str = "http://127.0.0.1:8080"
    secret: bytes = b""  # signs the reschedule links; none: texts carry no link
    # Replay: every client can be texted (it has no contact details) at any hour.
    replay: bool = False


def policy_settings(clinic: Clinic, *, replay: bool = False) -> PolicySettings:
    """The clinic's texting settings (threshold, quiet hours), never wider than 08:00-21:00."""
    s: dict[str, Any] = clinic.settings.get("texts", {}) if isinstance(clinic.settings.get("texts"), dict) else {}
    kw: dict[str, Any] = {}
    if isinstance(s.get("threshold_min"), int | float) and s["threshold_min"] > 0:
        kw["threshold_min"] = float(s["threshold_min"])
    for key in ("quiet_start", "quiet_end"):
        if isinstance(s.get(key), str):
            try:
                kw[key] = time.fromisoformat(s[key])
            except ValueError:
                pass
    if replay:
        kw["enforce_hours"] = False
    try:
        return PolicySettings(**kw)
    except ValueError:  # a setting wider than the policy allows: keep the safe defaults
        return PolicySettings(enforce_hours=not replay)


def reasons(state: DayState, now: datetime) -> dict[str, Reason]:
    """Why each vet is behind, in the words a text gives."""
    out: dict[str, Reason] = {}
    for vet, until in state.vet_unavailable_until.items():
        if until > now:
            out[vet] = "running_late"
    for v in state.visits.values():
        if v.in_consult and v.kind != "emergency" and v.started is not None \
                and now - v.started > timedelta(minutes=v.booked_min * 1.5):
            out.setdefault(v.vet, "overrun")
    for v in state.visits.values():
        if v.kind == "emergency" and v.ended is None and not v.noshow:
            out[v.vet] = "emergency"
    return out


async def candidates(conn: aiosqlite.Connection, state: DayState, est: dict[str, Estimate], now: datetime,
                     clinic: Clinic, opts: TextingOptions) -> list[TextCandidate]:
    """One candidate per pending, non-emergency visit with an estimate; none while texts are paused."""
    pauses = await fetch(conn, "SELECT scope, client_id FROM texts_paused")
    if any(r[0] == "clinic" for r in pauses):
        return []
    paused = {r[1] or "" for r in pauses}
    ids = [vid for vid, v in state.visits.items() if vid in est and v.kind != "emergency"]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    # One query (it runs in every event's transaction): contact details and the range promised.
    contact = {r["id"]: r for r in await fetch(
        conn,
        "SELECT a.id, p.name AS pet, p.sex, c.id AS client, c.mobile, c.sms_consent, c.language, v.name AS vet, "
        "pr.p10 AS told_p10, pr.p90 AS told_p90 "
        "FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id LEFT JOIN clients c ON c.id = p.client_id "
        "JOIN vets v ON v.id = a.vet_id LEFT JOIN promises pr ON pr.visit_id = a.id "
        f"WHERE a.id IN ({marks})", ids)}
    why = reasons(state, now)
    out = []
    for vid in ids:
        v, e, c = state.visits[vid], est[vid], contact.get(vid)
        if c is None:
            continue
        if opts.replay:
            number, consent, lang = REPLAY_NUMBER, True, "en"
        else:
            number, consent, lang = c["mobile"], bool(c["sms_consent"]), c["language"] or "en"
            if c["client"] is not None and c["client"] in paused:
                continue
        told = (from_db(c["told_p10"]), from_db(c["told_p90"])) if c["told_p10"] else None
        out.append(TextCandidate(
            visit_id=vid, kind=v.kind, pet_name=c["pet"] or v.pet, pet_sex=c["sex"], vet_name=c["vet"],
            scheduled=v.scheduled, arrived=v.arrived, start=e.start, p10=e.p10, p90=e.p90,
            to_number=number, language=lang, consent=consent, tz=clinic.tz, reason=why.get(v.vet),
            kiosk_p10=told[0] if told else None, kiosk_p90=told[1] if told else None,
        ))
    return out


async def record_promises(conn: aiosqlite.Connection, state: DayState, est: dict[str, Estimate],
                          now: datetime) -> None:
    """The first estimate after a client checks in is the range they were told (kiosk or desk)."""
    arrived = [vid for vid, v in state.visits.items() if v.arrived is not None and vid in est
               and v.kind != "emergency"]
    if not arrived:
        return
    # The first range stands (OR IGNORE): one statement, whatever was promised before.
    await conn.executemany(
        "INSERT OR IGNORE INTO promises (visit_id, start, p10, p90, at) VALUES (?, ?, ?, ?, ?)",
        [(vid, to_db(est[vid].start), to_db(est[vid].p10), to_db(est[vid].p90), to_db(now)) for vid in arrived])


async def queue_delay_texts(conn: aiosqlite.Connection, state: DayState, est: dict[str, Estimate],
                            now: datetime, clinic: Clinic, opts: TextingOptions) -> list[int]:
    """Decide and queue delay texts for today, in the caller's transaction; new outbox row ids."""
    cands = await candidates(conn, state, est, now, clinic, opts)
    if not cands:
        return []

    def link_for(c: TextCandidate) -> str | None:
        if not opts.secret:
            return None
        token = links.make_token(opts.secret, c.visit_id, now)
        return f"{opts.public_url.rstrip('/')}/r/{token}"

    settings = policy_settings(clinic, replay=opts.replay)
    return await outbox.queue_texts(conn, cands, now, settings, ClinicInfo(clinic.name, clinic.phone),
                                    link_for=link_for)
