"""The `waitroom` command as a person runs it: serve, token, import, learn."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import seed_clinic

EXE = str(Path(sys.executable).parent / "waitroom")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_token_create_prints_a_token_once_that_the_server_accepts(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
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


def test_bad_role_is_refused(tmp_path: Path) -> None:
    out = subprocess.run([EXE, "token", "create", "--role", "admin", "--name", "x", "--db", str(tmp_path / "w.db")],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "admin" in out.stderr


def test_learn_reports_each_vets_speed(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    asyncio.run(seed_clinic(db, history_days=15))
    out = subprocess.run([EXE, "learn", "--db", str(db)], capture_output=True, text=True, check=True)
    # The demo history makes Dr. Okafor (v2) 1.3x slower than booked and v3 0.85x.
    lines = {line.split(":")[0].strip(): line for line in out.stdout.splitlines() if line.strip().startswith("vet")}
    assert "slower" in lines["vet v2"]
    assert "faster" in lines["vet v3"]


@pytest.mark.parametrize("suffix", [".json", ".csv", ".ics"])
def test_import_from_file(tmp_path: Path, suffix: str) -> None:
    src = Path(__file__).parent / "data" / ("schedule.json" if suffix == ".json" else f"day{suffix}")
    if not src.exists():
        pytest.fail(f"sample file {src} is missing")
    db = tmp_path / "w.db"
    subprocess.run([EXE, "clinic", "--db", str(db), "--name", "Test", "--timezone", "America/Chicago"], check=True)
    out = subprocess.run([EXE, "import", str(src), "--db", str(db)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)["imported"]
    assert counts["appointments"] > 0
    again = subprocess.run([EXE, "import", str(src), "--db", str(db)], capture_output=True, text=True)
    assert json.loads(again.stdout) == json.loads(out.stdout)  # re-import: same ids, nothing doubled
