"""The `waitroom` command: serve, replay, import, token, learn, kiosk, notifier, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line on stderr: easy to grep, easy to ship."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _config(args: argparse.Namespace) -> Any:
    from server.config import Config

    kw: dict[str, Any] = {"db_path": args.db}
    for name in ("host", "port"):
        if getattr(args, name, None) is not None:
            kw[name] = getattr(args, name)
    if getattr(args, "clock", None):
        from server.config import ManualClock

        # A demo clock: runs on from the given moment (an ISO time with offset).
        kw["clock"] = ManualClock(datetime.fromisoformat(args.clock), running=True)
    secret = os.environ.get("WAITROOM_SECRET")
    if secret:
        kw["secret"] = secret
    if os.environ.get("WAITROOM_PUBLIC_URL"):
        kw["public_url"] = os.environ["WAITROOM_PUBLIC_URL"]
    elif "host" in kw:
        kw["public_url"] = f"http://{kw['host']}:{kw.get('port', 8080)}"
    # The SMS provider (default: the console). Secrets come from the environment, never argv.
    for env, name in (("WAITROOM_SMS_PROVIDER", "sms_provider"), ("WAITROOM_TWILIO_ACCOUNT_SID", "twilio_account_sid"),
                      ("WAITROOM_TWILIO_AUTH_TOKEN", "twilio_auth_token"), ("WAITROOM_TWILIO_FROM", "twilio_from"),
                      ("WAITROOM_TWILIO_MESSAGING_SERVICE_SID", "twilio_messaging_service_sid"),
                      ("WAITROOM_TWILIO_BASE_URL", "twilio_base_url")):
        if os.environ.get(env):
            kw[name] = os.environ[env]
    # The demo's console provider shows texts' links whole (they are live: redacted otherwise).
    kw["console_sms_links"] = os.environ.get("WAITROOM_CONSOLE_SMS_LINKS", "") in ("1", "yes", "true")
    if os.environ.get("WAITROOM_TRUSTED_PROXIES"):
        kw["trusted_proxies"] = tuple(p.strip() for p in os.environ["WAITROOM_TRUSTED_PROXIES"].split(",") if p.strip())
    return Config(**kw)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.app import ACCESS_LOG_FORMAT, ClinicAccessLogger, create_app

    setup_logging()
    config = _config(args)
    # run_app shuts down cleanly on SIGTERM and SIGINT: requests finish, cleanup_ctx runs.
    web.run_app(create_app(config), host=config.host, port=config.port, print=None,
                access_log=logging.getLogger("waitroom.access"), access_log_class=ClinicAccessLogger,
                access_log_format=ACCESS_LOG_FORMAT)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from server.replay import main

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return main(texts=not args.no_texts)


async def _with_store(db: str, fn: Any) -> Any:
    from server.store import open_store

    store = await open_store(db)
    try:
        return await fn(store)
    finally:
        await store.close()


def cmd_token(args: argparse.Namespace) -> int:

    async def go(store: Any) -> str:
        async with store.transaction() as tx:
            token: str = await tx.create_token(args.role, args.name, datetime.now(UTC))
            return token

    token = asyncio.run(_with_store(args.db, go))
    print(token)  # shown once: only its hash is kept
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from server.errors import WaitroomError
    from server.importers import ScheduleFileError, parse_schedule_file
    from server.schedule import import_schedule

    async def go(store: Any) -> dict[str, int]:
        clinic = await store.clinic()
        doc = parse_schedule_file(Path(args.file), default_tz=clinic.tz)
        now = datetime.now(UTC)
        async with store.transaction() as tx:
            counts: dict[str, int] = await import_schedule(tx, doc, clinic.tz, clinic.region)
            await tx.record_event("schedule_import", now, None, {"counts": counts, "file": Path(args.file).name},
                                  "cli", now)
            return counts

    try:
        counts = asyncio.run(_with_store(args.db, go))
    except (ScheduleFileError, WaitroomError, OSError) as e:
        print(f"waitroom import: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"imported": counts}))
    return 0


def cmd_clinic(args: argparse.Namespace) -> int:
    from server.errors import WaitroomError
    from server.store import Clinic

    async def go(store: Any) -> None:
        old = await store.clinic()
        clinic = Clinic(args.name or old.name, args.timezone or old.timezone, args.region or old.region,
                        args.phone or old.phone, old.settings)
        async with store.transaction() as tx:
            await tx.set_clinic(clinic)

    try:
        asyncio.run(_with_store(args.db, go))
    except WaitroomError as e:
        print(f"waitroom clinic: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    from server.runtime import ClinicRuntime
    async def go(store: Any) -> str:
        clinic = await store.clinic()
        rt = ClinicRuntime(store, clinic)
        t0 = time.perf_counter()
        model = await rt.relearn(datetime.now(UTC).astimezone(clinic.tz).date())
        took = time.perf_counter() - t0
        async with store.transaction() as tx:
            await tx.keep_model(model.to_json(), datetime.now(UTC))
        return f"{model.describe()}\nlearned in {took * 1000:.0f} ms"

    print(asyncio.run(_with_store(args.db, go)))
    return 0


def cmd_kiosk(args: argparse.Namespace) -> int:
    from kiosk.app import run_kiosk  # only here: the server never loads Textual

    server = args.server or os.environ.get("WAITROOM_SERVER")
    token = args.token or os.environ.get("WAITROOM_TOKEN")
    if not server or not token:
        print("waitroom kiosk: --server and --token (or WAITROOM_SERVER / WAITROOM_TOKEN) are needed",
              file=sys.stderr)
        return 2
    run_kiosk(server_url=server, token=token, queue_path=args.queue, read_aloud=args.read_aloud or None,
              large=args.large_text or None, contrast=args.high_contrast or None)
    return 0


def cmd_notifier(args: argparse.Namespace) -> int:
    from notifier.worker import serve
    from server.store import open_store

    async def run() -> None:
        store = await open_store(args.db)
        try:
            await serve(store.transaction, store.read)
        finally:
            await store.close()

    setup_logging()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    """Add a reception console account; the password is read without echo, or from stdin."""
    import getpass

    from server.web.auth import AuthError, create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("waitroom user add: the passwords differ", file=sys.stderr)
            return 2

    async def go(store: Any) -> None:
        async with store.transaction() as conn:
            await create_user(conn, args.name, password, datetime.now(UTC))

    try:
        asyncio.run(_with_store(args.db, go))
    except AuthError as e:
        print(f"waitroom user add: {e}", file=sys.stderr)
        return 2
    print(f"user {args.name} added")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """An online backup (safe while serving); restore = stop the server, copy the file back."""
    from server.store.backup import BackupError, backup

    try:
        events = backup(args.db, args.path)
    except BackupError as e:
        print(f"waitroom backup: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"backup": args.path, "events": events}))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """Erase contact details of clients not seen for N days; `--save` keeps N for every start-up."""
    from server.retention import SETTING, erase_stale_clients, retention_days

    async def go(store: Any) -> dict[str, Any]:
        clinic = await store.clinic()
        days = args.days or retention_days(clinic.settings)
        if days is None:
            return {"error": "no --days given and no retention setting saved"}
        now = datetime.now(UTC)
        async with store.transaction() as tx:
            erased = await erase_stale_clients(tx, now.astimezone(clinic.tz).date(), days, actor="cli", now=now)
            if args.save:
                clinic.settings[SETTING] = days
                await tx.set_clinic(clinic)
        return {"days": days, "erased": erased, "saved": bool(args.save)}

    out = asyncio.run(_with_store(args.db, go))
    print(json.dumps(out), file=sys.stderr if "error" in out else sys.stdout)
    return 2 if "error" in out else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from server.demo import run_demo

    return run_demo(Path(args.dir), port=args.port, with_kiosk=not args.no_kiosk)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="waitroom", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    db_default = os.environ.get("WAITROOM_DB", "waitroom.db")

    s = sub.add_parser("serve", help="run the HTTP server")
    s.add_argument("--db", default=db_default)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--clock", help=argparse.SUPPRESS)  # demo and tests: start the clock at this moment
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("replay", help="speak the replay protocol on stdin/stdout")
    s.add_argument("--no-texts", action="store_true",
                   help="estimates only: do not decide delay texts (measures the estimator alone)")
    s.set_defaults(fn=cmd_replay)

    s = sub.add_parser("import", help="import a schedule file (.json, .csv, .ics)")
    s.add_argument("file")
    s.add_argument("--db", default=db_default)
    s.set_defaults(fn=cmd_import)

    s = sub.add_parser("clinic", help="set the clinic's name, timezone, phone region")
    s.add_argument("--db", default=db_default)
    s.add_argument("--name")
    s.add_argument("--timezone")
    s.add_argument("--region")
    s.add_argument("--phone")
    s.set_defaults(fn=cmd_clinic)

    s = sub.add_parser("token", help="API tokens")
    tsub = s.add_subparsers(dest="token_command", required=True)
    t = tsub.add_parser("create", help="create a token and print it once")
    t.add_argument("--role", required=True, choices=["pms", "kiosk", "reception", "display"])
    t.add_argument("--name", required=True)
    t.add_argument("--db", default=db_default)
    t.set_defaults(fn=cmd_token)

    s = sub.add_parser("user", help="reception console accounts")
    usub = s.add_subparsers(dest="user_command", required=True)
    u = usub.add_parser("add", help="add a staff account (asks for the password twice)")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    u.add_argument("--db", default=db_default)
    u.set_defaults(fn=cmd_user_add)

    s = sub.add_parser("learn", help="learn the clinic from its finished days and print what was learned")
    s.add_argument("--db", default=db_default)
    s.set_defaults(fn=cmd_learn)

    s = sub.add_parser("kiosk", help="run the lobby kiosk (Textual)")
    s.add_argument("--server")
    s.add_argument("--token")
    s.add_argument("--queue", default=os.environ.get("WAITROOM_KIOSK_QUEUE", "kiosk-queue.db"))
    s.add_argument("--read-aloud", action="store_true",
                   help="read every screen aloud by default (espeak-ng; or WAITROOM_READ_ALOUD=1)")
    s.add_argument("--large-text", action="store_true", help="large text by default (or WAITROOM_LARGE_TEXT=1)")
    s.add_argument("--high-contrast", action="store_true",
                   help="high contrast by default (or WAITROOM_HIGH_CONTRAST=1)")
    s.set_defaults(fn=cmd_kiosk)

    s = sub.add_parser("notifier", help="run the SMS outbox worker alone")
    s.add_argument("--db", default=db_default)
    s.set_defaults(fn=cmd_notifier)

    s = sub.add_parser("backup", help="copy the database to PATH (SQLite online backup, safe while serving)")
    s.add_argument("path")
    s.add_argument("--db", default=db_default)
    s.set_defaults(fn=cmd_backup)

    s = sub.add_parser("retention", help="erase phone numbers and notes of clients not seen for N days")
    s.add_argument("--days", type=int, help="days after the last visit (default: the saved setting)")
    s.add_argument("--save", action="store_true", help="keep --days as the clinic's setting, applied at start-up")
    s.add_argument("--db", default=db_default)
    s.set_defaults(fn=cmd_retention)

    s = sub.add_parser("demo", help="a demo clinic day: server, notifier, console and kiosk")
    s.add_argument("--dir", default="demo-data")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--no-kiosk", action="store_true")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
