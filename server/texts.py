"""The server's side of delay texts: turn today's state and estimates into the notifier's
candidates, and queue what its policy decides, inside the transaction that changed things.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any

from notifier import formats, links, outbox
from notifier.messages import ClinicInfo
from notifier.policy import PolicySettings, Reason, TextCandidate, TextDecision
from server.domain import DayState, Estimate
from server.errors import BadRequest
from server.hours import max_delay_min
from server.phones import line_kind
from server.store import Clinic, Tx

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


def vet_title(clinic: Clinic, vet_id: str) -> str | None:
    """The vet's title ("Dr." / "Dra.") from the clinic's `vet_titles` setting (import or console)."""
    titles = clinic.settings.get("vet_titles")
    return formats.title_of(titles.get(vet_id)) if isinstance(titles, dict) else None


async def save_vet_title(tx: Tx, vet_id: str, title: str | None) -> None:
    """Keep a vet's title ("Dr." / "Dra."; None forgets it) in the clinic's `vet_titles` setting."""
    clinic = await tx.clinic()
    titles = dict(clinic.settings.get("vet_titles") or {})
    if title is None:
        titles.pop(vet_id, None)
    else:
        titles[vet_id] = title
    await tx.set_clinic(replace(clinic, settings={**clinic.settings, "vet_titles": titles}))


async def save_imported_vet_titles(tx: Tx, doc: object) -> None:
    """`vets[i].title` of a schedule document ("Dr." / "Dra.", optional), kept for the Spanish
    sentences; anything else is a 400 naming the field."""
    vets = doc.get("vets") if isinstance(doc, dict) else None
    for i, v in enumerate(vets if isinstance(vets, list) else []):
        if not isinstance(v, dict) or v.get("title") in (None, ""):
            continue
        title = formats.title_of(v["title"])
        if title is None:
            raise BadRequest(f"vets[{i}].title: expected Dr. or Dra.", f"vets[{i}].title")
        await save_vet_title(tx, str(v.get("id")), title)


async def candidates(tx: Tx, state: DayState, est: dict[str, Estimate], now: datetime,
                     clinic: Clinic, opts: TextingOptions) -> list[TextCandidate]:
    """One candidate per pending, non-emergency visit with an estimate; none while texts are paused."""
    paused = await tx.texts_paused()
    if paused.clinic:
        return []
    ids = [vid for vid, v in state.visits.items() if vid in est and v.kind != "emergency"]
    if not ids:
        return []
    contact = await tx.text_contacts(ids)
    why = reasons(state, now)
    tz = clinic.tz  # parsed from the clinic's setting on each read: once, not per client
    titles = {vet: vet_title(clinic, vet) for vet in {state.visits[vid].vet for vid in ids}}
    out = []
    for vid in ids:
        v, e, c = state.visits[vid], est[vid], contact.get(vid)
        if c is None:
            continue
        number: str | None
        if opts.replay:
            number, consent, lang = REPLAY_NUMBER, True, "en"
        else:
            number, consent, lang = c.mobile, c.sms_consent, c.language
            if c.client is not None and c.client in paused.clients:
                continue
        out.append(TextCandidate(
            visit_id=vid, kind=v.kind, pet_name=c.pet or v.pet, pet_sex=c.pet_sex, vet_name=c.vet_name,
            scheduled=v.scheduled, arrived=v.arrived, start=e.start, p10=e.p10, p90=e.p90,
            to_number=number, language=lang, consent=consent, tz=tz, reason=why.get(v.vet),
            kiosk_p10=c.told_p10, kiosk_p90=c.told_p90, vet_title=titles[v.vet],
            textable=not number or line_kind(number) is None,
        ))
    return out


async def record_promises(tx: Tx, state: DayState, est: dict[str, Estimate], now: datetime) -> None:
    """The first estimate after a client checks in is the range they were told (kiosk or desk)."""
    arrived = {vid: est[vid] for vid, v in state.visits.items() if v.arrived is not None and vid in est
               and v.kind != "emergency"}
    if arrived:
        await tx.keep_first_promises(arrived, now)


async def queue_delay_texts(tx: Tx, state: DayState, est: dict[str, Estimate],
                            now: datetime, clinic: Clinic, opts: TextingOptions) -> list[int]:
    """Decide and queue delay texts for today, in the caller's transaction; new outbox row ids."""
    cands = await candidates(tx, state, est, now, clinic, opts)
    if not cands:
        return []

    def link_for(c: TextCandidate) -> str | None:
        if not opts.secret:
            return None
        token = links.make_token(opts.secret, c.visit_id, now)
        return f"{opts.public_url.rstrip('/')}/r/{token}"

    settings = policy_settings(clinic, replay=opts.replay)
    return await outbox.queue_texts(tx, cands, now, settings, ClinicInfo(clinic.name, clinic.phone),
                                    link_for=link_for, one_per_number=not opts.replay,
                                    hold_if=implausible(max_delay_min(clinic.settings)))


def implausible(limit_min: float) -> Callable[[TextDecision], str | None]:
    """A check for delay texts no clinic could mean: more than `limit_min` minutes past the
    booked time (or the arrival, for a walk-in). Such a text is held for reception with the
    reason (a schedule pushed twice, a time typed wrong), never sent on its own: 10,000 rows
    in one push once had real clients told "about 34715-35835 min later"."""

    def check(d: TextDecision) -> str | None:
        c = d.candidate
        since = c.scheduled or c.arrived
        if since is None:
            return None
        late = (c.p90 - since).total_seconds() / 60
        if late <= limit_min:
            return None
        return (f"Not sent: it would tell the client about {late:.0f} min of delay, more than the "
                f"{limit_min:.0f} min a clinic day allows (setting texts.max_delay_min). Check the schedule "
                "and the vet's queue, then send it anyway or phone the client.")

    return check
