"""Provet Cloud: the day's appointments from its REST API, kept in step by its webhooks, and
arrival written back as an admitted consultation. From Provet Cloud's developer documentation
(sources in docs/CONNECTORS.md):

- Base `https://provetcloud.com/<provet_id>/api/0.1/` (or the regional host the clinic uses).
- Authentication: an API token (`Authorization: Token ...`) or OAuth 2.0 client credentials
  (the token endpoint takes a form, with the client id and secret preferably as HTTP Basic).
- Lists are paged: `{"count", "num_pages", "next", "previous", "results": [...]}` with up to
  1,000 results a page; `next` is the URL of the next page (we follow it only on the API's own
  host, and never twice).
- Filters: `field__gte=...`, `field__lt=...`, `field__in=[1,2,3]`; times as
  `YYYY-MM-DD hh:mm+hh:mm`.
- Rate limits per endpoint over a rolling 60 s; 429 with `Retry-After` seconds.
- Webhooks: a POST of `<object>_id=123` to our URL (appointment and consultation triggers),
  retried by Provet until it gets a 200; they carry the id only, so we fetch the record.
- Consultations (`POST consultation/`: client, patients, complaint, type, department,
  supervising_veterinarian) start "Admitted" (status 0) with `admitted_time`: that is arrival.

Records are linked by URL (`"client": ".../client/456/"`); the id is the URL's last part.
Settings (`pms.provet`): base_url, provet_id, token_url, client_id, department_ids,
cancelled_types / cancelled field, days ahead. The API token or client secret comes from the
environment (WAITROOM_PROVET_API_TOKEN or WAITROOM_PROVET_CLIENT_SECRET).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from server.connectors.core import Booking, WriteOutcome, task_text
from server.connectors.http import ConnectorError, Credentials, PoliteClient

MAX_PAGES = 100  # 100,000 appointments at 1,000 a page
IN_BATCH = 100
_ID = re.compile(r"/(\d+)/?$")
SEXES = {"female": "female", "male": "male", "f": "female", "m": "male"}


@dataclass(slots=True)
class ProvetSettings:
    base_url: str = ""  # https://provetcloud.com/<provet_id>/api/0.1
    token_url: str = ""  # https://provetcloud.com/<provet_id>/oauth2/token/
    client_id: str = ""
    client_secret: str = ""
    api_token: str | None = None
    department_ids: list[str] = field(default_factory=list)
    per_minute: int = 55
    admit: bool = True  # write arrival back as an admitted consultation
    texts_consented: bool = False  # the clinic's Provet consent covers waiting-room texts (else the kiosk asks)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, secret: str = "", api_token: str | None = None) -> ProvetSettings:
        s = cls(client_secret=secret, api_token=api_token or None)
        for key in ("base_url", "token_url", "client_id"):
            if isinstance(d.get(key), str):
                setattr(s, key, d[key])
        if not s.base_url and isinstance(d.get("provet_id"), str | int):
            s.base_url = f"https://provetcloud.com/{d['provet_id']}/api/0.1"
        if not s.token_url and isinstance(d.get("provet_id"), str | int):
            s.token_url = f"https://provetcloud.com/{d['provet_id']}/oauth2/token/"
        if isinstance(d.get("department_ids"), list):
            s.department_ids = [str(x) for x in d["department_ids"]]
        if isinstance(d.get("per_minute"), int) and d["per_minute"] > 0:
            s.per_minute = d["per_minute"]
        if isinstance(d.get("admit"), bool):
            s.admit = d["admit"]
        if isinstance(d.get("texts_consented"), bool):
            s.texts_consented = d["texts_consented"]
        return s


def _id_of(link: object) -> str | None:
    """The id of a linked record: its URL's last part, or the value itself."""
    if isinstance(link, dict):
        link = link.get("id") or link.get("url")
    if isinstance(link, int) and not isinstance(link, bool):
        return str(link)
    if isinstance(link, str):
        match = _ID.search(link)
        if match:
            return match.group(1)
        return link.strip() or None
    return None


def _s(value: object) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what}: missing")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"{what}: {value[:30]!r} is not a time") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)  # Provet answers in UTC ("...Z"); a bare time is read as UTC too
    if not 1971 <= t.year <= 2999:
        raise ValueError(f"{what}: {value[:30]!r} is no plausible time")
    return t


def _filter_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M+00:00")


class ProvetConnector:
    name = "provet"
    label = "Provet Cloud"

    def __init__(self, settings: ProvetSettings, client: PoliteClient | None = None) -> None:
        if not settings.base_url:
            raise ConnectorError("Provet Cloud: no base_url or provet_id configured", retryable=False)
        self.settings = settings
        self.client = client or PoliteClient(
            settings.base_url, Credentials(settings.token_url, settings.client_id, settings.client_secret,
                                           json_body=False, api_token=settings.api_token),
            per_minute=settings.per_minute, name="Provet Cloud")
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self.problems: list[str] = []
        self.unreadable: set[str] = set()  # listed but unreadable: never taken for deleted

    def request_count(self) -> int:
        return self.client.stats.requests

    def forget_names(self) -> None:
        """Look records up afresh (each new day): a changed mobile is read again."""
        self._records.clear()

    async def close(self) -> None:
        await self.client.close()

    async def _list(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path
        query: dict[str, str] | None = params
        visited: set[str] = set()
        for _ in range(MAX_PAGES):
            assert url is not None
            _, doc = await self.client.request("GET", url, endpoint=path, params=query)
            if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
                raise ConnectorError(f"Provet Cloud: {path} answered without a results list")
            out.extend(r for r in doc["results"] if isinstance(r, dict))
            nxt = doc.get("next")
            if not nxt:
                return out
            if not isinstance(nxt, str) or not self.client.same_origin(nxt):
                raise ConnectorError(f"Provet Cloud: {path}: a next page on another host; not followed "
                                     "(our token goes only to the API's own host)")
            if nxt in visited:
                raise ConnectorError(f"Provet Cloud: {path}: the next page repeats an earlier one: paging loops")
            visited.add(nxt)
            url, query = nxt, None  # the next URL carries its own query
        raise ConnectorError(f"Provet Cloud: {path} still had pages after {MAX_PAGES}: paging does not end")

    async def _lookup(self, kind: str, ids: Iterable[str | None]) -> dict[str, dict[str, Any]]:
        want = sorted({i for i in ids if i} - {k for (p, k) in self._records if p == kind})
        for start in range(0, len(want), IN_BATCH):
            chunk = want[start:start + IN_BATCH]
            for r in await self._list(f"/{kind}/", {"id__in": "[" + ",".join(chunk) + "]"}):
                rid = _id_of(r.get("id") or r.get("url"))
                if rid:
                    self._records[(kind, rid)] = r
        return {k: v for (p, k), v in self._records.items() if p == kind}

    async def _bookings(self, raw: list[dict[str, Any]]) -> list[Booking]:
        users = await self._lookup("user", (_id_of(a.get("user")) for a in raw))
        clients = await self._lookup("client", (_id_of(a.get("client")) for a in raw))
        patient_ids = [self._first_patient(a) for a in raw]
        patients = await self._lookup("patient", patient_ids)
        reasons = await self._lookup("reason", (_id_of(a.get("reason")) for a in raw))
        out = []
        for a, patient_id in zip(raw, patient_ids, strict=True):
            aid = _id_of(a.get("id") or a.get("url"))
            if aid is None:
                self.problems.append("an appointment without an id: left out")
                continue
            try:
                start = _time(a.get("start"), f"appointment {aid}: start")
                end = _time(a.get("end"), f"appointment {aid}: end")
            except ValueError as e:
                self.problems.append(f"{e}: left as it was")
                self.unreadable.add(aid)
                continue
            minutes = (end - start).total_seconds() / 60
            if not 0 < minutes <= 24 * 60:
                self.problems.append(f"appointment {aid}: lasts {minutes:g} minutes (expected 1 to 1440): "
                                     "left as it was")
                self.unreadable.add(aid)
                continue
            user_id = _id_of(a.get("user"))
            user = users.get(user_id or "", {})
            vet_name = " ".join(x for x in (_s(user.get("title")), _s(user.get("first_name")),
                                            _s(user.get("last_name"))) if x) or _s(user.get("name"))
            client_id = _id_of(a.get("client"))
            client = clients.get(client_id or "", {})
            patient = patients.get(patient_id or "", {})
            reason_id = _id_of(a.get("reason"))
            reason = reasons.get(reason_id or "", {})
            cancelled = bool(a.get("cancelled")) or a.get("active") is False or bool(a.get("deleted"))
            sex = SEXES.get(str(patient.get("gender") or "").strip().lower())
            out.append(Booking(
                id=aid, scheduled=start, booked_min=minutes, vet_id=user_id or "unassigned",
                vet_name=vet_name or ("Unassigned" if not user_id else f"User {user_id}"),
                type_id=reason_id, type_name=_s(reason.get("name")) or _s(a.get("title")),
                client_id=client_id,
                client_name=" ".join(x for x in (_s(client.get("firstname")), _s(client.get("lastname"))) if x) or None,
                mobile=self._mobile(client),
                sms_consent=self.settings.texts_consented and bool(self._mobile(client)) and not client.get("no_sms"),
                pet_id=patient_id, pet_name=_s(patient.get("name")), species=_s(patient.get("species")), sex=sex,
                cancelled=cancelled, arrived=bool(a.get("consultation"))))
        return out

    @staticmethod
    def _first_patient(a: dict[str, Any]) -> str | None:
        patients = a.get("patients")
        if isinstance(patients, list) and patients:
            return _id_of(patients[0])
        return None

    @staticmethod
    def _mobile(client: dict[str, Any]) -> str | None:
        numbers = client.get("phone_numbers")
        if isinstance(numbers, list):
            for n in numbers:
                if isinstance(n, dict) and _s(n.get("phone_number")):
                    kind = str(n.get("type_code") or n.get("type") or "").lower()
                    if kind in ("", "1", "mobile", "cell"):
                        return str(n["phone_number"]).strip()
        return _s(client.get("mobile")) or _s(client.get("phone"))

    async def fetch_window(self, first: datetime, last: datetime) -> list[Booking]:
        params = {"start__gte": _filter_time(first), "start__lt": _filter_time(last)}
        if self.settings.department_ids:
            params["department__in"] = "[" + ",".join(self.settings.department_ids) + "]"
        return await self._bookings(await self._list("/appointment/", params))

    async def fetch_changes(self, cursor: str | None) -> tuple[list[Booking], str | None] | None:
        return None  # Provet tells us by webhook; between them the full window is read

    async def fetch_one(self, pms_id: str) -> Booking | None:
        status, doc = await self.client.request("GET", f"/appointment/{pms_id}/", endpoint="/appointment/",
                                                allow=(404, 410))
        if status in (404, 410):
            return None
        if not isinstance(doc, dict):
            raise ConnectorError(f"Provet Cloud: appointment {pms_id} answered without a record")
        dept = _id_of(doc.get("department"))
        if self.settings.department_ids and dept not in self.settings.department_ids:
            return None
        found = await self._bookings([doc])
        return found[0] if found else None

    async def write_back(self, pms_id: str, action: str, data: dict[str, Any]) -> WriteOutcome:
        if action == "rescheduled":
            return WriteOutcome("task", task_text(self.label, pms_id, data))
        if action == "cancelled":
            pet = f" ({data['pet']})" if data.get("pet") else ""
            return WriteOutcome("task", f"Cancel appointment {pms_id}{pet} in Provet Cloud: the client cancelled "
                                "by text link")
        if action == "unarrived":
            pet = f" ({data['pet']})" if data.get("pet") else ""
            return WriteOutcome("task", f"Reception undid the check-in of appointment {pms_id}{pet}: the "
                                "consultation admitted in Provet Cloud stays; cancel it there if it was a mistake")
        if action in ("started", "unstarted"):
            return WriteOutcome("sent", "Provet Cloud: the consultation is started in Provet itself")
        if not self.settings.admit:
            return WriteOutcome("sent", "admission turned off (pms.provet.admit)")
        status, appt = await self.client.request("GET", f"/appointment/{pms_id}/", endpoint="/appointment/",
                                                 allow=(404, 410))
        if status in (404, 410) or not isinstance(appt, dict):
            return WriteOutcome("task", f"Admit the client of appointment {pms_id} in Provet Cloud by hand: "
                                "the appointment is gone there")
        if appt.get("consultation"):
            return WriteOutcome("sent", "already admitted in Provet Cloud")
        body = {k: appt[k] for k in ("client", "patients", "department") if appt.get(k)}
        body["complaint"] = appt.get("complaint") or appt.get("title") or "Checked in at the kiosk"
        body["type"] = 1  # outpatient
        if appt.get("user"):
            body["supervising_veterinarian"] = appt["user"]
        body["appointment"] = appt.get("url") or f"{self.settings.base_url.rstrip('/')}/appointment/{pms_id}/"
        await self.client.request("POST", "/consultation/", endpoint="/consultation/", json_body=body)
        return WriteOutcome("sent")


def appointment_id_from_webhook(form: dict[str, str]) -> str | None:
    """The appointment a Provet webhook names (`appointment_id=123`); None for other triggers."""
    value = form.get("appointment_id")
    if value and value.strip().isdigit() and len(value.strip()) <= 20:
        return value.strip()
    return None


def host_of(url: str) -> str:
    return urlsplit(url).netloc
