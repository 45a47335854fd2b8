"""The `waitroom` command: serve, replay, import, sync, token, learn, kiosk, notifier, demo."""

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
                      ("WAITROOM_TWILIO_BASE_URL", "twilio_base_url"),
                      ("WAITROOM_TWILIO_SHARED_KEY_SECRET", "twilio_shared_key_secret")):
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
    from server.config import sms_config_problem

    setup_logging()
    config = _config(args)
    problem = sms_config_problem(config)
    if problem:
        print(f"waitroom serve: {problem}", file=sys.stderr)
        return 2
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


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _import_summary(name: str, parsed: Any, counts: dict[str, int]) -> list[str]:
    """What `waitroom import` says: what went in, and each row left out and why."""
    parts = [_plural(counts.get("vets", 0), "vet"), _plural(counts.get("appointment_types", 0), "type"),
             _plural(counts.get("clients", 0), "client"), _plural(counts.get("pets", 0), "pet")]
    if counts.get("blocks"):
        parts.append(_plural(counts["blocks"], "blocked time", "blocked times"))
    lines = [f"{name}: imported {_plural(counts.get('appointments', 0), 'appointment')} ({', '.join(parts)})"]
    if parsed.skipped:
        unit = "event" if name.lower().endswith(".ics") else "row"
        lines.append(f"skipped {_plural(len(parsed.skipped), unit)} (fix and import the file again; "
                     "what was imported is not doubled):")
        lines += [f"  {e}" for e in parsed.skipped]
    if parsed.ignored:
        lines.append(f"left out, not appointments ({len(parsed.ignored)}):")
        lines += [f"  {n}" for n in parsed.ignored]
    if parsed.no_texts:
        lines.append(f"numbers that cannot take texts ({len(parsed.no_texts)}; imported, shown to reception):")
        lines += [f"  {n}" for n in parsed.no_texts]
    return lines


def cmd_import(args: argparse.Namespace) -> int:
    """Exit 0: all imported; 1: the good rows imported, some skipped; 2: nothing imported."""
    from datetime import date

    from server.errors import WaitroomError
    from server.hours import max_visits_per_day
    from server.importers import DATE_ORDERS, ImportOptions, ParsedSchedule, ScheduleFileError, read_schedule_file
    from server.schedule import import_schedule
    from server.texts import save_imported_vet_titles

    async def go(store: Any) -> tuple[ParsedSchedule, dict[str, int] | None]:
        clinic = await store.clinic()
        setting = clinic.settings.get("date_order")
        order, source = ((args.date_order, f"--date-order {args.date_order}") if args.date_order
                         else (setting, f"the clinic's date order ({setting})") if setting in DATE_ORDERS
                         else (None, ""))
        vet = None
        if args.vet:
            async with store.read() as q:
                vets = await q.vet_names()
            if args.vet not in vets and not args.vet_name:
                known = "known: " + ", ".join(f"{k} ({n})" for k, n in list(vets.items())[:20]) if vets else "none yet"
                raise ScheduleFileError(f"--vet {args.vet!r}: no such vet ({known}); give --vet-name to add one")
            vet = (args.vet, args.vet_name or vets[args.vet])
        try:
            day = date.fromisoformat(args.day) if args.day else None
        except ValueError as e:
            raise ScheduleFileError(f"--day {args.day!r}: expected a date such as 2026-11-27") from e
        now = datetime.now(UTC)
        options = ImportOptions(region=clinic.region, date_order=order, date_order_source=source, vet=vet, day=day,
                                today=now.astimezone(clinic.tz).date())
        parsed = read_schedule_file(Path(args.file), default_tz=clinic.tz, options=options)
        if args.strict and parsed.skipped:
            return parsed, None
        async with store.transaction() as tx:
            counts: dict[str, int] = await import_schedule(
                tx, parsed.doc, clinic.tz, clinic.region, max_per_day=max_visits_per_day(clinic.settings))
            await save_imported_vet_titles(tx, parsed.doc)
            await tx.record_event("schedule_import", now, None, {"counts": counts, "file": Path(args.file).name,
                                                                 "skipped": len(parsed.skipped)}, "cli", now)
        return parsed, counts

    try:
        parsed, counts = asyncio.run(_with_store(args.db, go))
    except (ScheduleFileError, WaitroomError, OSError) as e:
        print(f"waitroom import: {e}", file=sys.stderr)
        return 2
    name = Path(args.file).name
    if counts is None:
        unit = "event" if name.lower().endswith(".ics") else "row"
        print(f"waitroom import: {name}: nothing imported (--strict): {_plural(len(parsed.skipped), unit)} "
              "with problems:", file=sys.stderr)
        for problem in parsed.skipped:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"imported": counts, "skipped": [str(e) for e in parsed.skipped],
                          "ignored": [str(n) for n in parsed.ignored],
                          "no_texts": [str(n) for n in parsed.no_texts]}))
    else:
        print("\n".join(_import_summary(name, parsed, counts)))
    return 1 if parsed.skipped else 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Keep the day in step with ezyVet or Provet Cloud (issue 19): exit 0 ok, 2 error or not set up."""
    from server.connectors.cli import run_sync

    return run_sync(args)


def cmd_clinic(args: argparse.Namespace) -> int:
    from server.errors import WaitroomError
    from server.store import Clinic

    async def go(store: Any) -> None:
        old = await store.clinic()
        settings = dict(old.settings)
        if args.date_order == "auto":
            settings.pop("date_order", None)
        elif args.date_order:
            settings["date_order"] = args.date_order
        if args.public_url == "auto":
            settings.pop("public_url", None)
        elif args.public_url:
            settings["public_url"] = _public_url(args.public_url)
        clinic = Clinic(args.name or old.name, args.timezone or old.timezone, args.region or old.region,
                        args.phone or old.phone, settings)
        async with store.transaction() as tx:
            await tx.set_clinic(clinic)

    try:
        asyncio.run(_with_store(args.db, go))
    except WaitroomError as e:
        print(f"waitroom clinic: {e}", file=sys.stderr)
        return 2
    return 0


def _public_url(url: str) -> str:
    """A clinic's public address: scheme and host (and port) only, as the group's proxy serves it."""
    from urllib.parse import urlsplit

    from server.errors import BadRequest

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise BadRequest(f"--public-url: {url!r} is not an address such as https://riverside.vets.example "
                         "(scheme and host only)", "public_url")
    return f"{parts.scheme}://{parts.netloc.lower()}"


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
    if args.web:
        return serve_kiosk_web(args, server, token)
    run_kiosk(server_url=server, token=token, queue_path=args.queue, read_aloud=args.read_aloud or None,
              large=args.large_text or None, contrast=args.high_contrast or None)
    return 0


def serve_kiosk_web(args: argparse.Namespace, server: str, token: str) -> int:
    """`waitroom kiosk --web`: one kiosk process per browser session, all on this box's queue."""
    from kiosk.web import KioskCommand, serve

    extra = [flag for flag, on in (("--read-aloud", args.read_aloud), ("--large-text", args.large_text),
                                   ("--high-contrast", args.high_contrast)) if on]
    serve(KioskCommand(server, token, str(Path(args.queue).resolve()), extra), args.host, args.port,
          max_sessions=args.max_sessions)
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
        async with store.transaction() as tx:
            await create_user(tx, args.name, password, datetime.now(UTC), group_admin=args.group_admin)

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
    from server.store.postgres import is_postgres_url

    if is_postgres_url(args.db):
        print("waitroom backup: this copies a SQLite file; back up a PostgreSQL database with pg_dump "
              "(or the server's point-in-time recovery)", file=sys.stderr)
        return 2
    try:
        events = backup(args.db.removeprefix("sqlite:"), args.path)
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


def cmd_report(args: argparse.Namespace) -> int:
    """The practice manager's reports for a range of days, as CSV, JSON or one HTML file."""
    from datetime import date

    from server.errors import WaitroomError
    from server.report_export import report_csv, report_html, report_json, table_csv
    from server.reports import build_report, load_report_data, make_period

    try:
        period = make_period("custom", date.fromisoformat(args.date_from), date.fromisoformat(args.date_to))
    except ValueError as e:
        print(f"waitroom report: --from/--to: expected dates as YYYY-MM-DD ({e})", file=sys.stderr)
        return 2
    except WaitroomError as e:
        print(f"waitroom report: {e.message}", file=sys.stderr)
        return 2
    from server.store.postgres import is_postgres_url

    # A SQLite file that is not there is a typo (opening it would make an empty clinic); a
    # postgresql:// clinic has no file to look for.
    if not is_postgres_url(args.db) and not Path(args.db.removeprefix("sqlite:")).exists():
        print(f"waitroom report: no database at {args.db}", file=sys.stderr)
        return 2

    async def go(store: Any) -> str:
        clinic = await store.clinic()
        async with store.read() as q:
            if args.vet is not None and await q.vet_name(args.vet) is None:
                raise SystemExit(f"waitroom report: --vet: unknown vet {args.vet!r}")
            data = await load_report_data(q, period, args.vet, clinic.tz)
        rep = build_report(data, period, vet=args.vet, settings=clinic.settings)
        if args.table is not None and args.table not in rep.tables:
            raise SystemExit(f"waitroom report: --table: one of {', '.join(rep.tables)}")
        if args.format == "json":
            return report_json(rep, clinic.name)
        if args.format == "html":
            return report_html(rep, clinic.name)
        return table_csv(rep, args.table) if args.table else report_csv(rep)

    text = asyncio.run(_with_store(args.db, go))
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    """Copy a clinic's SQLite file into a PostgreSQL database (`db check`: check an earlier copy
    again); exit 2 when it cannot or does not check out."""
    from server.store.copy import CopyError, check_copy, copy_sqlite_to_postgres
    from server.store.postgres import is_postgres_url

    check_only = bool(getattr(args, "check_only", False))
    name = "db check" if check_only else "db copy"
    if not is_postgres_url(args.to):
        print(f"waitroom {name}: --to must be a postgresql:// URL (add ?clinic=ID to name the clinic)",
              file=sys.stderr)
        return 2
    source = args.source.removeprefix("sqlite:")
    if source != ":memory:" and not Path(source).is_file():
        print(f"waitroom {name}: --from {args.source}: no such SQLite file", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        report = asyncio.run((check_copy if check_only else copy_sqlite_to_postgres)(source, args.to))
    except (CopyError, OSError, ValueError) as e:
        print(f"waitroom {name}: {e}" + ("" if check_only else " (nothing was copied)"), file=sys.stderr)
        return 2
    for table, (a, b) in report.counts.items():
        print(f"{table:18} {a:8} -> {b:8}")
    refused = f" ({report.refused_on_replay} refused by the rules on both sides)" if report.refused_on_replay else ""
    print(f"{'checked' if check_only else 'copied into'} clinic {report.clinic!r} in {time.perf_counter() - t0:.1f} s: "
          f"row counts equal, the event log of {report.events_replayed} events replayed from empty to the same "
          f"outcome{refused}, {report.events_checked} events and {report.days_checked} days read the same on "
          "both sides")
    return 0


def cmd_sms_receive(args: argparse.Namespace) -> int:
    """A client's text, for a clinic on the console provider: the running server takes it as
    it would take Twilio's webhook (POST /api/sms/receive, reception's token)."""
    import json
    import urllib.error
    import urllib.request

    token = args.token or os.environ.get("WAITROOM_RECEPTION_TOKEN") or _demo_token(Path(args.tokens_file))
    if not token:
        print("waitroom sms receive: --token: a reception token is needed (or WAITROOM_RECEPTION_TOKEN, or the "
              f"demo's {args.tokens_file})", file=sys.stderr)
        return 2
    url = args.server.rstrip("/") + "/api/sms/receive"
    data = json.dumps({"from": args.sender, "body": args.body}).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - the clinic's own server
            got = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:300]
        print(f"waitroom sms receive: {url}: HTTP {e.code} {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"waitroom sms receive: {url}: {e} (is the server running?)", file=sys.stderr)
        return 1
    what = {"keep": "keeps their place", "reschedule": "asks to reschedule (the link is texted back)",
            "optout": "opts out of texts", "optin": "opts back in", "help": "asks for help",
            "other": "said something for reception (in the console's inbox)"}.get(got.get("kind"), got.get("kind"))
    print(f"from {got['from']}: {args.body!r} -> {what}; {got['answers']} answer(s) queued")
    return 0


def _demo_token(path: Path) -> str | None:
    """The reception token the demo wrote to demo-data/tokens.txt, if there is one."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return next((line.split("=", 1)[1] for line in lines if line.startswith("reception=")), None)


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

    s = sub.add_parser("import", help="import a schedule file (.csv, .ics, .json); exit 1 when rows were skipped",
                       description="Import the good rows of a schedule file and list each row left out and why "
                                   "(exit 1 when some were skipped, 2 when nothing was imported).")
    s.add_argument("file")
    s.add_argument("--db", default=db_default)
    s.add_argument("--strict", action="store_true", help="all or nothing: import nothing if any row is bad")
    s.add_argument("--date-order", choices=["dmy", "mdy", "ymd"],
                   help="how the file writes dates such as 03/04/2026 (default: the clinic's setting, else what "
                        "the file proves, else the clinic's region)")
    s.add_argument("--vet", metavar="ID", help="a calendar that is one vet's: its events are this vet's")
    s.add_argument("--vet-name", metavar="NAME", help="with --vet, for a vet not yet known")
    s.add_argument("--day", metavar="YYYY-MM-DD", help="a calendar: import this day only")
    s.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    s.set_defaults(fn=cmd_import)

    s = sub.add_parser("sync", help="keep the day in step with the practice system (ezyVet, Provet Cloud)",
                       description="Read today's and the next days' appointments from ezyVet or Provet Cloud and "
                                   "write kiosk arrivals back; runs until stopped (--once: one round). "
                                   "Secrets come from the environment (README: Practice-management systems).")
    s.add_argument("--pms", required=True, choices=["ezyvet", "provet"])
    s.add_argument("--db", default=db_default)
    s.add_argument("--once", action="store_true", help="one round, print what it did, exit")
    s.add_argument("--status", action="store_true", help="print the last sync and what needs reception, exit")
    s.add_argument("--configure", metavar="KEY=VALUE", action="append", default=[],
                   help="save a setting (partner_id=..., statuses='{\"arrived\": \"In Waiting Room\"}'), exit")
    s.add_argument("--listen", metavar="HOST:PORT",
                   help="receive the system's webhooks here (Provet Cloud: POST /pms/provet/webhook/<secret>)")
    s.set_defaults(fn=cmd_sync)

    s = sub.add_parser("clinic", help="set the clinic's name, timezone, phone region")
    s.add_argument("--db", default=db_default)
    s.add_argument("--name")
    s.add_argument("--timezone")
    s.add_argument("--region")
    s.add_argument("--phone")
    s.add_argument("--date-order", choices=["dmy", "mdy", "ymd", "auto"],
                   help="how imported files write dates such as 03/04/2026 (auto: from the file, else the region)")
    s.add_argument("--public-url", metavar="URL",
                   help="a group's clinic: its own address (https://riverside.vets.example), which names it to "
                        "a group-mode server and goes into its links; 'auto': <clinic id>.<WAITROOM_PUBLIC_URL's host>")
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
    u.add_argument("--group-admin", action="store_true",
                   help="an account of the whole group (PostgreSQL): signs in at every clinic's console and "
                        "sees every clinic at /group")
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
    s.add_argument("--web", action="store_true",
                   help="serve the kiosk to tablets' browsers (textual-serve) instead of this terminal")
    s.add_argument("--host", default="127.0.0.1", help="--web: address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="--web: port (default 8000)")
    s.add_argument("--max-sessions", type=int, default=8,
                   help="--web: most browser screens served at once, one kiosk process each (default 8)")
    s.set_defaults(fn=cmd_kiosk)

    s = sub.add_parser("report", help="the practice manager's reports for a range of days (csv, json, html)")
    s.add_argument("--db", default=db_default)
    s.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    s.add_argument("--to", dest="date_to", required=True, help="last day (included), YYYY-MM-DD")
    s.add_argument("--format", choices=("csv", "json", "html"), default="csv")
    s.add_argument("--vet", help="one vet's id (default: all vets)")
    s.add_argument("--table", help="csv: only this table (waits_by_vet, defects, ...)")
    s.add_argument("--out", help="write to this file instead of standard output")
    s.set_defaults(fn=cmd_report)

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

    s = sub.add_parser("db", help="move a clinic between stores")
    dsub = s.add_subparsers(dest="db_command", required=True)
    d = dsub.add_parser("copy", help="copy a clinic's SQLite file into PostgreSQL (one transaction, then checked)")
    d.add_argument("--from", dest="source", required=True, help="the SQLite file (PATH or sqlite:PATH)")
    d.add_argument("--to", required=True, help="postgresql://user@host/db?clinic=ID")
    d.set_defaults(fn=cmd_db_copy)
    d = dsub.add_parser("check", help="check an earlier copy against its SQLite file again (the copy's own checks)")
    d.add_argument("--from", dest="source", required=True, help="the SQLite file (PATH or sqlite:PATH)")
    d.add_argument("--to", required=True, help="postgresql://user@host/db?clinic=ID")
    d.set_defaults(fn=cmd_db_copy, check_only=True)

    s = sub.add_parser("sms", help="texts by hand, for a clinic on the console provider")
    smsub = s.add_subparsers(dest="sms_command", required=True)
    r = smsub.add_parser("receive", help="a client's reply, taken as Twilio's webhook would bring it")
    r.add_argument("--from", dest="sender", required=True, help="the client's mobile number")
    r.add_argument("--body", required=True, help="what they texted (\"1\", \"2\", STOP, ...)")
    r.add_argument("--server", default="http://127.0.0.1:8080", help="the running waitroom server")
    r.add_argument("--token", help="a reception token (default: WAITROOM_RECEPTION_TOKEN, or the demo's)")
    r.add_argument("--tokens-file", default="demo-data/tokens.txt", help="the demo's tokens (default: %(default)s)")
    r.set_defaults(fn=cmd_sms_receive)

    s = sub.add_parser("demo", help="a demo clinic day: server, notifier, console and kiosk")
    s.add_argument("--dir", default="demo-data")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--no-kiosk", action="store_true")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from server.store.interface import StoreUrlError

    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except StoreUrlError as e:  # a --db this command cannot open: one line, not a traceback
        print(f"waitroom {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
