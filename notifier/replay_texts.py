"""The real policy, for `waitroom replay` (../shared/replay/PROTOCOL.md, "Texts").

`ReplayTexter.observe` is called after every replay event with the day's visits and the
current estimates; it keeps what was "sent" in memory and returns the texts the policy
decides, in the protocol's shape. Every replay client has consent, speaks English, and it
is daytime, as the protocol says. It reads visits and estimates structurally (anything
with the attributes below: the server's `Visit` and `Estimate` qualify), so the notifier
still imports nothing from the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from notifier.policy import PolicySettings, Reason, SentText, TextCandidate, as_sent, decide


class VisitLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def vet(self) -> str: ...
    @property
    def scheduled(self) -> datetime | None: ...
    @property
    def arrived(self) -> datetime | None: ...
    @property
    def started(self) -> datetime | None: ...
    @property
    def ended(self) -> datetime | None: ...
    @property
    def noshow(self) -> bool: ...
    @property
    def pet(self) -> str | None: ...


class EstimateLike(Protocol):
    @property
    def start(self) -> datetime: ...
    @property
    def p10(self) -> datetime: ...
    @property
    def p90(self) -> datetime: ...


# The protocol declares every client in daytime: texting hours are not what replay measures.
REPLAY_SETTINGS = PolicySettings(enforce_hours=False)


@dataclass(slots=True)
class ReplayTexter:
    settings: PolicySettings = REPLAY_SETTINGS
    # The clinic's zone, for the per-day cap; None: the zone `now` carries (replay times
    # have the clinic's offset). UTC would be wrong: its midnight falls in a US afternoon.
    tz: tzinfo | None = None
    sent: dict[str, list[SentText]] = field(default_factory=dict)
    # The range the kiosk showed at check-in: the first estimate seen after arrival.
    kiosk: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)

    def observe(self, now: datetime, visits: Iterable[VisitLike],
                estimates: Mapping[str, EstimateLike]) -> list[dict[str, Any]]:
        """Texts decided at `now`: [{appointment, at, kind: "delay", start, p10, p90}]."""
        visits = list(visits)
        tz = self.tz or now.tzinfo or UTC
        reasons = _reasons(visits)
        candidates = []
        for v in visits:
            e = estimates.get(v.id)
            if e is None or v.kind == "emergency" or v.started is not None or v.noshow:
                continue
            if v.arrived is not None and v.id not in self.kiosk:
                self.kiosk[v.id] = (e.p10, e.p90)
            k = self.kiosk.get(v.id)
            candidates.append(TextCandidate(
                visit_id=v.id, kind=v.kind, pet_name=v.pet, pet_sex=None, vet_name=v.vet,
                scheduled=v.scheduled, arrived=v.arrived, start=e.start, p10=e.p10, p90=e.p90,
                to_number="+15555550100", language="en", consent=True, opted_out=False,
                tz=tz, reason=reasons.get(v.vet),
                kiosk_p10=k[0] if k else None, kiosk_p90=k[1] if k else None,
            ))
        out: list[dict[str, Any]] = []
        for d in decide(candidates, now, self.settings, self.sent):
            self.sent.setdefault(d.visit_id, []).append(as_sent(d))
            c = d.candidate
            out.append({"appointment": c.visit_id, "at": now.isoformat(), "kind": "delay",
                        "start": c.start.isoformat(), "p10": c.p10.isoformat(), "p90": c.p90.isoformat()})
        return out


def _reasons(visits: list[VisitLike]) -> dict[str, Reason]:
    """Per vet: an emergency waiting or under way explains a delay; else earlier overruns."""
    out: dict[str, Reason] = {}
    for v in visits:
        if v.kind == "emergency" and v.ended is None:
            out[v.vet] = "emergency"
    return out
