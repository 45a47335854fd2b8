"""The clinic a request is for (issue 13 item 2): `ClinicSite` and the `Sites` registry.

A server process serves one clinic (a SQLite file, or `postgresql://...?clinic=ID`) or, with
`postgresql://...?clinic=*`, every clinic of a group's database ("group mode"). Either way the
app holds a `Sites` registry and every request is given its clinic's `ClinicSite` by the site
middleware (server/app.py) before any handler runs: handlers read `site(request).store`,
`.runtime`, `.config`, never an app-wide store. One code path: a single clinic is a registry of
one site.

How a request finds its clinic in group mode:
- an API request with `Authorization: Bearer <token>`: the clinic owning the token (looked up
  group-wide; a hash held by two clinics is refused, 401);
- everything else (pages, client links, the display, Twilio's webhooks): the request's Host,
  which is the clinic's public address: its `public_url` setting (`waitroom clinic
  --public-url`) or, without one, `<clinic id>.<the host of WAITROOM_PUBLIC_URL>`; a host whose
  first label is a clinic's id is that clinic. A host naming no clinic gets a 404 page.

The group's clinics share one asyncpg pool and one LISTEN connection (`PgGroup`); each keeps its
own write lock, advisory lock, runtime (estimates, periodic tick) and notifier worker. A clinic
added to the database while the process runs is started at its first request (token or host),
at its first change notice, or by the check every `REFRESH_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from notifier.providers import make_provider
from notifier.worker import Worker, WorkerSettings
from server.config import Config
from server.runtime import ClinicRuntime
from server.speech import CallAudio
from server.store import Store, hash_token, open_store
from server.texts import TextingOptions

log = logging.getLogger("waitroom.sites")

# Valid tokens seen lately, by hash: the token check is on every request, and a query each time
# was most of a busy lobby's cost. Unknown tokens are not cached (a token just created works at
# once); a revoked one stops within the TTL.
TOKEN_CACHE_TTL_S = 5.0
# Group mode: how often the list of clinics is read again (new clinics, changed addresses), and
# at most how often a request for an unknown host or clinic reads it.
REFRESH_S = 30.0
REFRESH_ON_MISS_S = 1.0


def is_group_url(db: str) -> bool:
    """`?clinic=*`: every clinic of the database (group mode)."""
    from server.store.postgres import GROUP, is_postgres_url, split_url

    if not is_postgres_url(db):
        return False
    return split_url(db)[1] == GROUP


def clinic_secret(secret: str, clinic_id: str) -> str:
    """Each clinic of a group signs its links with its own key, derived from WAITROOM_SECRET and
    its id: clinics share PMS-style visit ids ("a1"), and one clinic's status or reschedule link
    must never open another's visit, whatever the secrets."""
    return hmac.new(secret.encode(), b"waitroom-clinic:" + clinic_id.encode(), hashlib.sha256).hexdigest()


def clinic_public_url(config: Config, clinic_id: str, settings: dict[str, Any]) -> str:
    """A group's clinic's public address: its own setting, else `<id>.<the group's host>`."""
    own = settings.get("public_url")
    if isinstance(own, str) and own:
        return own.rstrip("/")
    parts = urlsplit(config.public_url)
    return f"{parts.scheme}://{clinic_id}.{parts.netloc}"


@dataclass(eq=False)
class ClinicSite:
    """One clinic as this process serves it: its store, runtime and per-clinic config (its own
    link secret and public address), and the caches and workers that are the clinic's own."""

    clinic_id: str
    config: Config
    store: Store
    runtime: ClinicRuntime
    # The last /api/estimates answer, reused while nothing changed (server/api.py).
    estimates_body: list[Any] = field(default_factory=list)
    # The lobby calls' sounds (server/speech.py), keyed by visit ids: per clinic.
    call_audio: CallAudio = field(default_factory=CallAudio)
    # Computed reports by (database version, period, vet) (server/web/reports.py).
    reports_cache: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    # The notifier's outbox worker, when it runs in this process.
    worker: Worker | None = None
    # Per-clinic handlers built on first use (server/sms.py: the webhooks bound to this clinic).
    handlers: dict[str, Any] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return urlsplit(self.config.public_url).netloc.lower()


async def _apply_retention(store: Store, settings: dict[str, Any], today: date, now: datetime) -> None:
    """The clinic's client-data retention setting (server/retention.py), applied at each start."""
    from server.retention import erase_stale_clients, retention_days

    days = retention_days(settings)
    if days is not None:
        async with store.transaction() as tx:
            n = await erase_stale_clients(tx, today, days, actor="retention", now=now)
        log.info("retention: erased contact details of %d clients not seen for %d days", n, days)


async def start_site(clinic_id: str, config: Config, store: Store) -> ClinicSite:
    """Start serving one clinic: retention, the learned runtime, the notifier worker and tick."""
    now = config.clock.now()
    clinic = await store.clinic()
    await _apply_retention(store, clinic.settings, now.astimezone(clinic.tz).date(), now)
    texting = TextingOptions(public_url=config.public_url, secret=config.secret.encode())
    runtime = await ClinicRuntime.start(store, now.astimezone(clinic.tz).date(), texting=texting,
                                        clock=config.clock.now)
    site = ClinicSite(clinic_id, config, store, runtime)
    if config.run_notifier:
        provider = make_provider(
            config.sms_provider, account_sid=config.twilio_account_sid, auth_token=config.twilio_auth_token,
            from_number=config.twilio_from, messaging_service_sid=config.twilio_messaging_service_sid,
            base_url=config.twilio_base_url, public_url=config.public_url, console_links=config.console_sms_links)
        # Other processes on the same database: adopt what a stopped one left mid-send.
        settings = WorkerSettings(orphan_check_s=5.0) if store.several_processes else None
        worker = Worker(store.transaction, provider, config.clock.now, settings, reader=store.read)
        site.worker = worker
        runtime.on_texts = worker.wake
        site.tasks.append(asyncio.create_task(_run_worker(worker)))
        site.tasks.append(asyncio.create_task(runtime.run_ticks(config.text_tick_s)))
    return site


async def _run_worker(worker: Worker) -> None:
    try:
        await worker.run()
    finally:
        await worker.provider.close()


async def stop_site(site: ClinicSite) -> None:
    for task in site.tasks:
        task.cancel()
    for task in site.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await site.store.close()


class Sites:
    """The clinics this process serves, and how a request finds its own."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.group_mode = is_group_url(config.db_path)
        self.single: ClinicSite | None = None
        self._group: Any = None  # PgGroup in group mode
        self._sites: dict[str, ClinicSite] = {}
        self._starting: dict[str, asyncio.Task[ClinicSite]] = {}
        self._known: dict[str, dict[str, Any]] = {}  # group mode: clinic id -> settings
        self._hosts: dict[str, str] = {}  # public host (with and without port) -> clinic id
        self._refreshed = 0.0
        self._tokens: dict[str, tuple[float, tuple[str, str, str]]] = {}
        self._background: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        from server.store.postgres import PgGroup, is_postgres_url, split_url

        db = self.config.db_path
        if self.group_mode:
            self._group = await PgGroup.open(db)
            self._group.on_unknown_clinic = self._noticed
            await self.refresh()
            self._background.append(asyncio.create_task(self._keep_up()))
            return
        clinic_id = split_url(db)[1] if is_postgres_url(db) else "main"
        config = replace(self.config, secret=clinic_secret(self.config.secret, clinic_id)) \
            if is_postgres_url(db) else self.config
        store = await open_store(db)
        try:
            self.single = await start_site(clinic_id, config, store)
        except BaseException:
            await store.close()
            raise
        self._sites[clinic_id] = self.single

    async def close(self) -> None:
        for task in self._background + list(self._starting.values()):
            task.cancel()
        for task in self._background + list(self._starting.values()):
            with contextlib.suppress(BaseException):
                await task
        for site in list(self._sites.values()):
            await stop_site(site)
        self._sites.clear()
        if self._group is not None:
            await self._group.close()

    async def _keep_up(self) -> None:
        """Group mode: start every clinic (one at a time: each learns its model), then look for
        new ones every REFRESH_S."""
        while True:
            for clinic_id in list(self._known):
                if clinic_id not in self._sites:
                    try:
                        await self.get(clinic_id)
                    except Exception:
                        log.exception("clinic %s could not be started; trying again later", clinic_id)
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception:
                log.exception("reading the group's clinics failed; trying again later")

    def _noticed(self, clinic_id: str) -> None:
        """A change notice from a clinic not served yet (added while running): start it."""
        if clinic_id not in self._starting and clinic_id not in self._sites:
            self._background = [t for t in self._background if not t.done()]
            self._background.append(asyncio.create_task(self._start_noticed(clinic_id)))

    async def _start_noticed(self, clinic_id: str) -> None:
        try:
            await self.get(clinic_id)
        except Exception:
            log.exception("clinic %s could not be started", clinic_id)

    async def refresh(self) -> None:
        """Read the group's clinics and their addresses again."""
        if self._group is None:
            return
        self._refreshed = time.monotonic()
        self._known = await self._group.clinics()
        hosts: dict[str, str] = {}
        for clinic_id, settings in self._known.items():
            # A started clinic keeps the address its links were made with until a restart.
            site = self._sites.get(clinic_id)
            url = site.config.public_url if site is not None else clinic_public_url(self.config, clinic_id, settings)
            netloc = urlsplit(url).netloc.lower()
            hosts[netloc] = clinic_id
        self._hosts = hosts

    # -- finding a clinic -----------------------------------------------------------------------

    def all(self) -> list[ClinicSite]:
        """The clinics started so far."""
        return list(self._sites.values())

    def known(self) -> list[str]:
        """Every clinic this process serves or will serve (group mode: the database's)."""
        return sorted(self._known) if self.group_mode else list(self._sites)

    async def get(self, clinic_id: str) -> ClinicSite | None:
        """The clinic's site, started on first use in group mode; None for no such clinic."""
        site = self._sites.get(clinic_id)
        if site is not None or self._group is None:
            return site
        if clinic_id not in self._known and time.monotonic() - self._refreshed > REFRESH_ON_MISS_S:
            await self.refresh()
        if clinic_id not in self._known:
            return None
        task = self._starting.get(clinic_id)
        if task is None:
            task = self._starting[clinic_id] = asyncio.create_task(self._start(clinic_id))
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._starting.pop(clinic_id, None)

    async def _start(self, clinic_id: str) -> ClinicSite:
        settings = self._known.get(clinic_id, {})
        config = replace(self.config, secret=clinic_secret(self.config.secret, clinic_id),
                         public_url=clinic_public_url(self.config, clinic_id, settings))
        site = await start_site(clinic_id, config, self._group.store(clinic_id))
        self._sites[clinic_id] = site
        log.info("serving clinic %s at %s", clinic_id, config.public_url)
        return site

    async def by_token(self, token: str) -> tuple[ClinicSite, str, str] | None:
        """(the clinic, the role, the token's name) of a valid token, or None."""
        key = hash_token(token)
        t = time.monotonic()
        hit = self._tokens.get(key)
        if hit is not None and hit[0] > t:
            clinic_id, role, name = hit[1]
        else:
            owners: list[tuple[str, str, str]] = []
            if self.single is not None:
                async with self.single.store.read() as q:
                    found = await q.token_role(token)
                if found is not None:
                    owners = [(self.single.clinic_id, found[0], found[1])]
            elif self._group is not None:
                owners = await self._group.token_owners(token)
            if len(owners) != 1:  # unknown, revoked, or (a damaged table) held by two clinics
                self._tokens.pop(key, None)
                return None
            if len(self._tokens) > 1000:  # a flood of distinct tokens cannot grow it without bound
                self._tokens.clear()
            self._tokens[key] = (t + TOKEN_CACHE_TTL_S, owners[0])
            clinic_id, role, name = owners[0]
        if self._group is not None and clinic_id not in self._known:
            await self.refresh()  # the token proves a clinic added since the last look
        site = await self.get(clinic_id)
        return None if site is None else (site, role, name)

    def _host_clinic(self, host: str) -> str | None:
        host = host.lower()
        found = self._hosts.get(host) or self._hosts.get(host.split(":", 1)[0])
        if found is None:
            label = host.split(".", 1)[0].split(":", 1)[0]
            found = label if label in self._known else None
        return found

    async def by_host(self, host: str | None) -> ClinicSite | None:
        """The clinic whose public address this Host is (the one clinic, when not a group)."""
        if self.single is not None:
            return self.single
        if not host:
            return None
        clinic_id = self._host_clinic(host)
        if clinic_id is None and time.monotonic() - self._refreshed > REFRESH_ON_MISS_S:
            await self.refresh()
            clinic_id = self._host_clinic(host)
        return None if clinic_id is None else await self.get(clinic_id)
