"""`waitroom sync --pms ezyvet|provet`: the clinic's one sync loop (see server/connectors/loop.py).

One loop per clinic: the process holds an exclusive lock on `<db>.sync.lock` (fcntl.flock,
released by the kernel however the process ends; `lock_path` for a PostgreSQL clinic), so a
second `waitroom sync` for the same clinic exits at once instead of syncing twice and writing
every arrival back twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO

from server.connectors.core import SyncRefused
from server.connectors.http import ConnectorError
from server.connectors.loop import SyncLoop
from server.connectors.setup import configure, loop_settings, make_connector
from server.store import Store, open_store

log = logging.getLogger("waitroom.connectors")


class AlreadyRunning(Exception):
    pass


def lock_path(db: str) -> str:
    """Beside a SQLite file; for a PostgreSQL clinic (`postgresql://...?clinic=ID`, no file of
    ours) in the temporary directory, named by a hash of the URL without its password: it keeps
    two syncs of one clinic apart on one machine (run the sync on one machine only)."""
    from urllib.parse import urlsplit, urlunsplit

    if db.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(db)
        host = parts.hostname or ""
        safe = urlunsplit((parts.scheme, f"{parts.username or ''}@{host}:{parts.port or ''}", parts.path,
                           parts.query, ""))
        digest = hashlib.sha256(safe.encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"waitroom-sync-{digest}.lock")
    return f"{db.removeprefix('sqlite:')}.sync.lock"


@contextlib.contextmanager
def sync_lock(db: str) -> Iterator[IO[str]]:
    """The clinic's sync lock (see the module doc); AlreadyRunning when another process holds it."""
    path = lock_path(db)
    handle = open(path, "a+")  # noqa: SIM115 - held for the process's life, closed below
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise AlreadyRunning(f"another `waitroom sync` is running for this clinic ({path})") from e
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield handle
    finally:
        handle.close()


def _print(msg: str) -> None:
    print(msg, flush=True)


async def _status(store: Store, pms: str) -> int:
    async with store.read() as q:
        state = await q.pms_state(pms)
        attention = await q.pms_writes(("failed", "task"), 50)
        queued = await q.pms_writes(("queued",), 1000)
    _print(json.dumps({
        "pms": pms, "last_ok_at": state.last_ok_at.isoformat() if state.last_ok_at else None,
        "last_attempt_at": state.last_attempt_at.isoformat() if state.last_attempt_at else None,
        "last_error": state.last_error, "progress": state.progress, "write_backs_queued": len(queued),
        "needs_reception": [{"id": w.id, "visit": w.visit_id, "action": w.action, "status": w.status,
                             "why": w.last_error} for w in attention if w.pms == pms]}, indent=2))
    return 0


async def _run(args: argparse.Namespace) -> int:
    store = await open_store(args.db)
    try:
        clinic = await store.clinic()
        if args.configure:
            try:
                settings = configure(dict(clinic.settings), args.pms, args.configure)
            except ValueError as e:
                print(f"waitroom sync: {e}", file=sys.stderr)
                return 2
            clinic.settings = settings
            async with store.transaction() as tx:
                await tx.set_clinic(clinic)
            _print(json.dumps(settings["pms"][args.pms], indent=2))
            return 0
        if args.status:
            return await _status(store, args.pms)
        try:
            connector = make_connector(args.pms, clinic.settings, os.environ)
        except ConnectorError as e:
            print(f"waitroom sync: {e}", file=sys.stderr)
            return 2
        loop = SyncLoop(store, connector, loop_settings(clinic.settings, args.pms))
        try:
            if args.once:
                try:
                    result = await loop.round()
                except (ConnectorError, SyncRefused) as e:
                    print(f"waitroom sync: {e}", file=sys.stderr)
                    return 2
                _print(f"{connector.label}: {result.summary()} in {result.requests} requests")
                for line in result.skipped + result.kept:
                    _print(f"  {line}")
                return 0
            return await _forever(loop, args)
        finally:
            close = getattr(connector, "close", None)
            if close is not None:
                await close()
    finally:
        await store.close()


async def _forever(loop: SyncLoop, args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.connectors.webhook import webhook_app

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    runner = None
    if args.listen:
        secret = os.environ.get(f"WAITROOM_{args.pms.upper()}_WEBHOOK_SECRET", "")
        if len(secret) < 16:
            print(f"waitroom sync: --listen needs WAITROOM_{args.pms.upper()}_WEBHOOK_SECRET (16+ characters)",
                  file=sys.stderr)
            return 2
        host, _, port = args.listen.rpartition(":")
        runner = web.AppRunner(webhook_app(loop, secret), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
        log.info("%s: webhooks on %s", args.pms, args.listen)
    log.info("%s: sync loop started at %s", args.pms, datetime.now(UTC).isoformat())
    try:
        await loop.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from server.cli import setup_logging

    setup_logging(os.environ.get("WAITROOM_LOG_LEVEL", "INFO"))
    if args.configure or args.status:
        return asyncio.run(_run(args))
    try:
        with sync_lock(args.db):
            return asyncio.run(_run(args))
    except AlreadyRunning as e:
        print(f"waitroom sync: {e}", file=sys.stderr)
        return 2
