"""ezyVet: the day's appointments by polling (ezyVet has no appointment webhooks), and arrival
written back as the appointment's status. From ezyVet's developer documentation (sources in
docs/CONNECTORS.md):

- Token: `POST /v1/oauth/access_token`, JSON `{partner_id, client_id, client_secret,
  grant_type: "client_credentials", scope, site_uid}` -> `{access_token, token_type, expires_in}`;
  12-hour TTL; a 401 `{"messages": [{"level", "type", "text", "fields"}]}` means "get a new token".
- Lists answer `{"meta": {items_page, items_page_total, items_page_size, items_total},
  "items": [...]}` (each item the record itself, or wrapped as `{"appointment": {...}}`: both are
  read), paged with `limit` and `page`.
- Filters are URL-encoded JSON comparators: `modified_at={"gt": "1745107200"}`,
  `start_at={"gte": ..., "lt": ...}`, `id={"in": [...]}`; times are Unix epoch seconds.
- `GET /v2/appointment` (fields id, active, start_at, duration, type_id, status_id, animal_id,
  contact_id, resources[{id}], modified_at), `GET /v2/appointmentstatus` (per-site names such as
  "In Waiting Room", "In Consultation"), `GET /v2/appointmenttype`, `GET /v2/resource`,
  `GET /v1/animal`, `GET /v1/contact`, `GET /v1/contactdetail`; rate limits of about 60 requests
  a minute per endpoint (180 per database overall), 429 beyond.
- Write-back: `PATCH /v2/appointment/{id}` with `{"status_id": ...}`.

Settings (the clinic's `pms.ezyvet`, see README "Practice-management systems"): base_url,
partner_id, client_id, scope, site_uid, statuses {arrived, started, cancelled} by name,
cancelled_statuses (names that mean the booking is off), duration_unit ("seconds" or
"minutes"), mobile_detail_type_ids, resource_ids (only these resources are vets), days ahead.
The client secret comes from the environment (WAITROOM_EZYVET_CLIENT_SECRET), never the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.connectors.core import Booking, WriteOutcome, task_text
from server.connectors.http import ConnectorError, Credentials, PoliteClient

PAGE_SIZE = 200
IN_BATCH = 100  # ids per `{"in": [...]}` lookup: keeps the URL short
MAX_PAGES = 200  # 40,000 appointments: beyond any clinic's window, so a longer run is a loop


@dataclass(slots=True)
class EzyVetSettings:
    base_url: str = "https://api.ezyvet.com"
    partner_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    scope: str = ("read-appointment write-appointment read-appointmentstatus read-appointmenttype read-resource "
                  "read-animal read-contact read-contactdetail")
    site_uid: str | None = None
    statuses: dict[str, str] = field(default_factory=lambda: {"arrived": "In Waiting Room",
                                                              "started": "In Consultation"})
    cancelled_statuses: list[str] = field(default_factory=lambda: ["Cancelled", "Did Not Arrive"])
    duration_unit: str = "seconds"
    mobile_detail_type_ids: list[str] = field(default_factory=lambda: ["2"])
    resource_ids: list[str] = field(default_factory=list)
    per_minute: int = 55  # under the documented ~60, leaving room for a person's own use of the API
    # The clinic's consent records in ezyVet cover waiting-room texts: clients with a mobile are
    # texted from the start. Off by default: the kiosk asks at check-in.
    texts_consented: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any], secret: str) -> EzyVetSettings:
        s = cls(client_secret=secret)
        for key in ("base_url", "partner_id", "client_id", "scope", "site_uid", "duration_unit"):
            if isinstance(d.get(key), str):
                setattr(s, key, d[key])
        if isinstance(d.get("statuses"), dict):
            s.statuses = {str(k): str(v) for k, v in d["statuses"].items()}
        for key in ("cancelled_statuses", "mobile_detail_type_ids", "resource_ids"):
            if isinstance(d.get(key), list):
                setattr(s, key, [str(x) for x in d[key]])
        if isinstance(d.get("per_minute"), int) and d["per_minute"] > 0:
            s.per_minute = d["per_minute"]
        if isinstance(d.get("texts_consented"), bool):
            s.texts_consented = d["texts_consented"]
        return s


def _unwrap(item: object, name: str) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    inner = item.get(name)
    return inner if isinstance(inner, dict) else item


def _s(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _epoch(value: object, what: str) -> datetime:
    try:
        seconds = float(str(value))
    except ValueError as e:
        raise ValueError(f"{what}: not an epoch time ({str(value)[:30]!r})") from e
    if not 31_536_000 <= seconds <= 32_503_680_000:  # 1971 .. 3000, as the store takes them
        raise ValueError(f"{what}: {seconds:.0f} is no plausible time")
    return datetime.fromtimestamp(seconds, UTC)


def _active(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("0", "false", "")


class EzyVetConnector:
    name = "ezyvet"
    label = "ezyVet"

    def __init__(self, settings: EzyVetSettings, client: PoliteClient | None = None) -> None:
        self.settings = settings
        extra = {"partner_id": settings.partner_id, "scope": settings.scope}
        if settings.site_uid:
            extra["site_uid"] = settings.site_uid
        self.client = client or PoliteClient(
            settings.base_url, Credentials(f"{settings.base_url.rstrip('/')}/v1/oauth/access_token",
                                           settings.client_id, settings.client_secret, extra),
            per_minute=settings.per_minute, name="ezyVet")
        self._status_ids: dict[str, str] | None = None  # name (case-folded) -> id
        self._names: dict[tuple[str, str], dict[str, Any]] = {}  # (endpoint, id) -> record
        self._asked: dict[tuple[str, str], set[str]] = {}  # (endpoint, key) -> values looked up
        self.problems: list[str] = []
        self.cursor_hint: str | None = None  # the newest modified_at seen: ezyVet's clock, not ours
        # Ids of appointments listed but unreadable (a bad time): still there, so never taken
        # for deleted; reported in `problems`.
        self.unreadable: set[str] = set()

    def request_count(self) -> int:
        return self.client.stats.requests

    def forget_names(self) -> None:
        """Look names and numbers up afresh (each new day): a changed mobile is read again, and
        the memory does not grow for ever."""
        self._names.clear()
        self._asked.clear()
        self._status_ids = None

    async def close(self) -> None:
        await self.client.close()

    # -- reading -------------------------------------------------------------------------

    async def _list(self, path: str, params: dict[str, str], wrapper: str) -> list[dict[str, Any]]:
        """Every item of a paged list, guarded against a server that pages for ever."""
        out: list[dict[str, Any]] = []
        seen_pages: set[tuple[str, ...]] = set()
        page = 1
        while True:
            if page > MAX_PAGES:
                raise ConnectorError(f"ezyVet: {path} still had pages after {MAX_PAGES}: paging does not end")
            _, doc = await self.client.request("GET", path, endpoint=path,
                                               params={**params, "limit": str(PAGE_SIZE), "page": str(page)})
            if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
                raise ConnectorError(f"ezyVet: {path} answered without an items list")
            items = [x for x in (_unwrap(i, wrapper) for i in doc["items"]) if x is not None]
            ids = tuple(str(i.get("id")) for i in items)
            if items and ids in seen_pages:
                raise ConnectorError(f"ezyVet: {path} page {page} repeats an earlier page: paging loops")
            seen_pages.add(ids)
            out.extend(items)
            meta = doc.get("meta")
            if not isinstance(meta, dict):
                meta = {}
            try:
                total_pages = int(str(meta.get("items_page_total", 1)))
            except ValueError as e:
                raise ConnectorError(f"ezyVet: {path}: meta.items_page_total is not a number") from e
            if page >= total_pages or not items:
                return out
            page += 1

    async def _lookup(self, path: str, wrapper: str, ids: Iterable[str], *,
                      key: str = "id") -> dict[str, dict[str, Any]]:
        """Records by `key` (id, contact_id), `IN_BATCH` at a time, remembered for this
        connector's life (names and numbers change seldom; the full read every 15 min
        starts a fresh connector's memory only when the process restarts)."""
        want = sorted({i for i in ids if i} - self._asked.get((path, key), set()))
        self._asked.setdefault((path, key), set()).update(want)
        for start in range(0, len(want), IN_BATCH):
            chunk = want[start:start + IN_BATCH]
            for item in await self._list(path, {key: json.dumps({"in": chunk})}, wrapper):
                rid = _s(item.get("id"))
                if rid is not None:
                    self._names[(path, rid)] = item
        return {k: v for (p, k), v in self._names.items() if p == path}

    async def status_ids(self) -> dict[str, str]:
        if self._status_ids is None:
            items = await self._list("/v2/appointmentstatus", {}, "appointmentstatus")
            self._status_ids = {str(i.get("name", "")).strip().casefold(): str(i.get("id")) for i in items
                                if i.get("id") is not None}
        return self._status_ids

    async def _bookings(self, raw: list[dict[str, Any]]) -> list[Booking]:
        self.cursor_hint = _max_modified(raw, self.cursor_hint)
        statuses = await self.status_ids()
        off = {statuses[n.casefold()] for n in self.settings.cancelled_statuses if n.casefold() in statuses}
        here = {statuses[n.casefold()] for key in ("arrived", "started")
                if (n := self.settings.statuses.get(key)) and n.casefold() in statuses}
        types = await self._lookup("/v2/appointmenttype", "appointmenttype", (_s(a.get("type_id")) or "" for a in raw))
        resource_ids = [self._resource(a) or "" for a in raw]
        resources = await self._lookup("/v2/resource", "resource", resource_ids)
        animals = await self._lookup("/v1/animal", "animal", (_s(a.get("animal_id")) or "" for a in raw))
        contact_ids = [(_s(a.get("contact_id")) or _s(animals.get(_s(a.get("animal_id")) or "", {}).get("contact_id"))
                        or "") for a in raw]
        contacts = await self._lookup("/v1/contact", "contact", contact_ids)
        mobiles = await self._mobiles([c for c in contact_ids if c])
        out = []
        for a, res, contact_id in zip(raw, resource_ids, contact_ids, strict=True):
            aid = _s(a.get("id"))
            if aid is None:
                self.problems.append("an appointment without an id: left out")
                continue
            if self.settings.resource_ids and res not in self.settings.resource_ids:
                continue
            try:
                start = _epoch(a.get("start_at"), f"appointment {aid}: start_at")
                minutes = self._minutes(a.get("duration"), aid)
            except ValueError as e:
                self.problems.append(f"{e}: left as it was")
                self.unreadable.add(aid)
                continue
            type_id = _s(a.get("type_id"))
            animal_id = _s(a.get("animal_id"))
            animal = animals.get(animal_id or "", {})
            contact = contacts.get(contact_id, {})
            cancelled = not _active(a.get("active", True)) or _s(a.get("status_id")) in off
            name = " ".join(x for x in (_s(contact.get("first_name")), _s(contact.get("last_name"))) if x) or \
                _s(contact.get("business_name"))
            out.append(Booking(
                id=aid, scheduled=start, booked_min=minutes, vet_id=res or "unassigned",
                vet_name=_s(resources.get(res, {}).get("name")) or ("Unassigned" if not res else f"Resource {res}"),
                type_id=type_id, type_name=_s(types.get(type_id or "", {}).get("name")),
                client_id=contact_id or None, client_name=name, mobile=mobiles.get(contact_id),
                sms_consent=(self.settings.texts_consented and bool(mobiles.get(contact_id))
                             and _active(contact.get("is_sms_allowed", True))),
                pet_id=animal_id, pet_name=_s(animal.get("name")), cancelled=cancelled,
                arrived=_s(a.get("status_id")) in here))
        return out

    @staticmethod
    def _resource(a: dict[str, Any]) -> str | None:
        res = a.get("resources")
        if isinstance(res, list):
            for r in res:
                rid = _s(r.get("id")) if isinstance(r, dict) else _s(r)
                if rid:
                    return rid
        return _s(a.get("resource_id"))

    def _minutes(self, duration: object, aid: str) -> float:
        try:
            value = float(str(duration))
        except ValueError as e:
            raise ValueError(f"appointment {aid}: duration {str(duration)[:20]!r} is not a number") from e
        minutes = value / 60 if self.settings.duration_unit == "seconds" else value
        if not 0 < minutes <= 24 * 60:
            raise ValueError(f"appointment {aid}: lasts {minutes:g} minutes (expected 1 to 1440)")
        return minutes

    async def _mobiles(self, contact_ids: list[str]) -> dict[str, str]:
        details = await self._lookup("/v1/contactdetail", "contactdetail", contact_ids, key="contact_id")
        out: dict[str, str] = {}
        for d in sorted(details.values(), key=lambda d: str(d.get("id"))):
            cid = _s(d.get("contact_id"))
            if cid is None or cid in out:
                continue
            if _s(d.get("contact_detail_type_id")) in self.settings.mobile_detail_type_ids and _s(d.get("value")):
                out[cid] = str(d["value"]).strip()
        return out

    async def fetch_window(self, first: datetime, last: datetime) -> list[Booking]:
        spec = json.dumps({"gte": str(int(first.timestamp())), "lt": str(int(last.timestamp()))})
        raw = await self._list("/v2/appointment", {"start_at": spec}, "appointment")
        return await self._bookings(raw)

    async def fetch_changes(self, cursor: str | None) -> tuple[list[Booking], str | None] | None:
        if cursor is None:
            return None
        # A minute of overlap: a change committed in the second we last read is not missed
        # (the import is idempotent, so reading it twice costs nothing).
        since = max(int(float(cursor)) - 60, 0)
        raw = await self._list("/v2/appointment", {"modified_at": json.dumps({"gt": str(since)})}, "appointment")
        return await self._bookings(raw), _max_modified(raw, cursor)

    async def fetch_one(self, pms_id: str) -> Booking | None:
        raw = await self._list("/v2/appointment", {"id": json.dumps({"eq": pms_id})}, "appointment")
        found = await self._bookings(raw)
        return found[0] if found else None

    # -- writing -------------------------------------------------------------------------

    async def write_back(self, pms_id: str, action: str, data: dict[str, Any]) -> WriteOutcome:
        if action == "rescheduled":
            return WriteOutcome("task", task_text(self.label, pms_id, data))
        if action in ("unarrived", "unstarted"):
            back = "booked" if action == "unarrived" else "arrived"
            name = self.settings.statuses.get(back)
            if name is None:
                pet = f" ({data['pet']})" if data.get("pet") else ""
                state, what = ("booked", "check-in") if back == "booked" else ("waiting", "consult start")
                return WriteOutcome("task", f"Set appointment {pms_id}{pet} back to {state} in ezyVet: reception "
                                    f"undid the {what} here")
        else:
            name = self.settings.statuses.get(action)
        if action == "cancelled" and name is None:
            return WriteOutcome("task", f"Cancel appointment {pms_id}"
                                f"{' (' + data['pet'] + ')' if data.get('pet') else ''} in ezyVet: the client "
                                "cancelled by text link")
        if name is None:
            return WriteOutcome("sent", f"no ezyVet status set for {action}: nothing to write")
        status_id = (await self.status_ids()).get(name.casefold())
        if status_id is None:
            raise ConnectorError(f"ezyVet: no appointment status named {name!r} on this site "
                                 "(settings pms.ezyvet.statuses)", retryable=False)
        await self.client.request("PATCH", f"/v2/appointment/{pms_id}", endpoint="/v2/appointment:write",
                                  json_body={"status_id": status_id})
        return WriteOutcome("sent")


def _max_modified(raw: list[dict[str, Any]], old: str | None) -> str | None:
    best = float(old) if old is not None else None
    for a in raw:
        try:
            m = float(str(a.get("modified_at")))
        except ValueError:
            continue
        if best is None or m > best:
            best = m
    return None if best is None else str(int(best))
