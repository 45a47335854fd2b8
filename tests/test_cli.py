"""The `waitroom` command as a person runs it: serve, token, import, learn."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import NewDb, seed_clinic

EXE = str(Path(sys.executable).parent / "waitroom")
DATA = Path(__file__).parent / "data"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_token_create_prints_a_token_once_that_the_server_accepts(new_db: NewDb) -> None:
    db = new_db("w")
    out = subprocess.run([EXE, "token", "create", "--role", "reception", "--name", "desk-1", "--db", str(db)],
                         capture_output=True, text=True, check=True)
    token = out.stdout.strip()
    assert token.startswith("wr_reception_")
    port = _port()
    proc = subprocess.Popen([EXE, "serve", "--db", str(db), "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/estimates",
                                             headers={"Authorization": f"Bearer {token}"})
                with urllib.request.urlopen(req, timeout=1) as resp:
                    assert json.load(resp)["estimates"] == []
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        bad = urllib.request.Request(f"http://127.0.0.1:{port}/api/events", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(bad, timeout=1)
        except urllib.error.HTTPError as e:
            assert e.code in (400, 403)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0  # a clean shutdown on SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    with proc.stderr:
        logs = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    access = [entry for entry in logs if entry["logger"] == "waitroom.access"]  # structured logs on stderr
    # The refused post is in the access log; the successful polls of estimates are not.
    assert any("POST /api/events" in e["msg"] for e in access)
    assert not any("GET /api/estimates" in e["msg"] and '" 200 ' in e["msg"] for e in access)


def test_bad_role_is_refused(clinic_db: str) -> None:
    out = subprocess.run([EXE, "token", "create", "--role", "admin", "--name", "x", "--db", clinic_db],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "admin" in out.stderr


def test_learn_reports_each_vets_speed(new_db: NewDb) -> None:
    db = new_db("w")
    asyncio.run(seed_clinic(db, history_days=15))
    out = subprocess.run([EXE, "learn", "--db", str(db)], capture_output=True, text=True, check=True)
    # The demo history makes Dr. Okafor (v2) 1.3x slower than booked and v3 0.85x.
    lines = {line.split(":")[0].strip(): line for line in out.stdout.splitlines() if line.strip().startswith("vet")}
    assert "slower" in lines["vet v2"]
    assert "faster" in lines["vet v3"]


@pytest.mark.parametrize("suffix", [".json", ".csv", ".ics"])
def test_import_from_file(new_db: NewDb, suffix: str) -> None:
    src = Path(__file__).parent / "data" / ("schedule.json" if suffix == ".json" else f"day{suffix}")
    if not src.exists():
        pytest.fail(f"sample file {src} is missing")
    db = new_db("w")
    subprocess.run([EXE, "clinic", "--db", str(db), "--name", "Test", "--timezone", "America/Chicago"], check=True)
    out = subprocess.run([EXE, "import", str(src), "--db", str(db), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)["imported"]
    assert counts["appointments"] > 0
    again = subprocess.run([EXE, "import", str(src), "--db", str(db), "--json"], capture_output=True, text=True)
    assert json.loads(again.stdout) == json.loads(out.stdout)  # re-import: same ids, nothing doubled


def _import(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "import", *args, "--db", str(db)], capture_output=True, text=True, timeout=60)


def _clinic(db: str, *args: str) -> str:
    subprocess.run([EXE, "clinic", "--db", str(db), "--name", "Test", "--timezone", "America/Chicago", *args],
                   check=True, timeout=60)
    return db


def test_import_of_excels_csv_imports_the_good_rows_lists_the_bad_and_exits_1(clinic_db: str, tmp_path: Path) -> None:
    db = _clinic(clinic_db, "--region", "US")
    out = _import(db, str(DATA / "excel-us.csv"))
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "excel-us.csv: imported 4 appointments (2 vets, 3 types, 3 clients, 4 pets)"
    assert lines[1].startswith("skipped 1 row")
    assert lines[2].startswith("  row 4: Mobile: '1.31256E+10' is how Excel shows a long number")
    assert "  row 5: Mobile: '1-800-FLOWERS' is a toll-free number: it cannot take texts" in "\n".join(lines)
    # Fixed in Excel and imported again: the rest is not doubled, the fixed row comes in.
    fixed = tmp_path / "fixed.csv"
    fixed.write_bytes((DATA / "excel-us.csv").read_bytes().replace(b"1.31256E+10", b"(312) 555-0155"))
    again = _import(db, str(fixed), "--json")
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["imported"]["appointments"] == 5


def test_import_strict_is_all_or_nothing_and_exits_2(clinic_db: str) -> None:
    db = _clinic(clinic_db, "--region", "US")
    out = _import(db, str(DATA / "excel-us.csv"), "--strict")
    assert out.returncode == 2
    assert "nothing imported (--strict): 1 row with problems:\n  row 4: Mobile:" in out.stderr
    assert json.loads(_import(db, str(DATA / "day.csv"), "--json").stdout)["imported"]["appointments"] == 5


def test_import_date_order_from_flag_or_clinic_setting(clinic_db: str, tmp_path: Path) -> None:
    src = tmp_path / "day.csv"
    src.write_text("appointment_id,start,duration_min,vet_id\r\na1,03/04/2026 09:00,15,v1\r\n")
    db = _clinic(clinic_db, "--region", "CA")  # Canada: no default order
    refused = _import(db, str(src))
    assert refused.returncode == 2 and "could be day/month or month/day" in refused.stderr
    assert _import(db, str(src), "--date-order", "dmy").returncode == 0
    subprocess.run([EXE, "clinic", "--db", str(db), "--date-order", "mdy"], check=True, timeout=60)
    assert _import(db, str(src)).returncode == 0


def test_import_of_a_calendar_names_its_vet_and_reports_what_it_left_out(clinic_db: str) -> None:
    db = _clinic(clinic_db, "--region", "US")
    unknown = _import(db, str(DATA / "google.ics"), "--vet", "kim")
    assert unknown.returncode == 2 and "--vet 'kim': no such vet (none yet); give --vet-name" in unknown.stderr
    out = _import(db, str(DATA / "google.ics"), "--vet", "kim", "--vet-name", "Dr. Kim Lee")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "google.ics: imported 2 appointments (1 vet, 2 types, 0 clients, 0 pets, 1 blocked time)")
    assert "left out, not appointments (2):" in out.stdout
    assert "'Dr. Okafor on vacation': an all-day event" in out.stdout
    # Known now: --vet alone is enough, and the vet keeps its name.
    outlook = _import(db, str(DATA / "outlook.ics"), "--vet", "kim", "--json")
    assert outlook.returncode == 0, outlook.stderr
    assert json.loads(outlook.stdout)["imported"] == {"vets": 1, "appointment_types": 2, "clients": 0, "pets": 0,
                                                      "appointments": 2, "blocks": 2}


@pytest.mark.parametrize(("env", "missing"), [
    ({"WAITROOM_SMS_PROVIDER": "twilio"},
     "WAITROOM_TWILIO_ACCOUNT_SID, WAITROOM_TWILIO_AUTH_TOKEN, WAITROOM_TWILIO_FROM or "
     "WAITROOM_TWILIO_MESSAGING_SERVICE_SID"),
    ({"WAITROOM_SMS_PROVIDER": "twilio", "WAITROOM_TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
      "WAITROOM_TWILIO_AUTH_TOKEN": "t" * 32}, "WAITROOM_TWILIO_FROM or WAITROOM_TWILIO_MESSAGING_SERVICE_SID"),
    ({"WAITROOM_SMS_PROVIDER": "twillio"}, "'twillio' is not a provider: use console or twilio"),
])
def test_serve_with_an_incomplete_sms_setup_says_what_is_missing_in_one_line(
        clinic_db: str, env: dict[str, str], missing: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAITROOM_")}
    out = subprocess.run([EXE, "serve", "--db", clinic_db, "--port", str(_port())],
                         capture_output=True, text=True, timeout=60, env={**clean, **env})
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("waitroom serve: ") and line.endswith(missing)
