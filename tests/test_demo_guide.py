"""The demo's guide (issue 15 item 4): what `waitroom demo` prints is kept in
demo-data/README.txt, since the kiosk covers the terminal at once, and what it says works."""

from __future__ import annotations

import csv
import io
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.demo import PLAYED_DAYS, past_weekdays
from tests.test_cli import _port

EXE = str(Path(sys.executable).parent / "waitroom")


@pytest.mark.sqlite_only("`waitroom demo` makes its own SQLite file (demo-data/demo.db) by design")
def test_the_demo_guide_in_the_folder_gives_working_addresses_and_a_reply_command(tmp_path: Path) -> None:
    folder, port = tmp_path / "demo-data", _port()
    proc = subprocess.Popen([EXE, "demo", "--no-kiosk", "--dir", str(folder), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the demo server did not come up"
                time.sleep(0.2)
        guide = (folder / "README.txt").read_text()
        display = re.search(r"Lobby display\s+(\S+)", guide)
        assert display, guide
        with urllib.request.urlopen(display.group(1), timeout=10) as resp:
            assert resp.status == 200 and "Riverside Animal Clinic" in resp.read().decode()
        assert "demo / demo-password" in guide and "312-555-0102" in guide
        # The reply command, typed as the guide gives it, in the folder it names.
        line = next(x for x in guide.splitlines() if " sms receive " in x)
        cwd = re.search(r"STOP\), in (.+):$", guide, re.MULTILINE)
        assert cwd, guide
        got = subprocess.run(shlex.split(line.strip()), cwd=cwd.group(1), capture_output=True, text=True,
                             timeout=60)
        assert got.returncode == 0, got.stderr
        assert "keeps their place" in got.stdout
        # The last days were played through the real write path: the manager's report has the
        # estimates told at check-in and the texts of those days from the first start.
        days = past_weekdays(datetime.now(ZoneInfo("America/Chicago")).date(), PLAYED_DAYS)  # the demo's clinic
        report = subprocess.run([EXE, "report", "--db", str(folder / "demo.db"), "--from", days[0].isoformat(),
                                 "--to", days[-1].isoformat(), "--format", "csv", "--table", "accuracy"],
                                capture_output=True, text=True, timeout=120, check=True)
        rows = list(csv.DictReader(io.StringIO(report.stdout)))
        assert len(rows) == PLAYED_DAYS and all(int(r["estimates"]) > 20 for r in rows), report.stdout
        mae = [float(r["estimate MAE (min)"]) for r in rows]
        base = [float(r["booked-length baseline MAE (min)"]) for r in rows]
        assert sum(mae) < sum(base), (mae, base)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
