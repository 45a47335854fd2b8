"""The group benchmark (bench/bench_group.py, issue 13 item 6) still runs: a smoke run with 3
clinics on 2 group-mode processes, one killed with SIGKILL mid-run. Not timed: its figures are
the benchmark's to print; what is checked is what must hold at any speed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT.parent / "shared" / "replay" / "public").is_dir(),
                    reason="the shared replay days (../shared/replay/public) are not next to this checkout")
def test_the_group_benchmark_runs_and_a_killed_process_loses_nothing(pg_server: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_group.py"), "--quick", "--procs", "2", "--sqlite-seconds", "0",
         "--seconds", "4", "--full-seconds", "2"],
        capture_output=True, text=True, timeout=240, env={**os.environ, "WAITROOM_TEST_DATABASE": pg_server})
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert re.search(r"PostgreSQL, 3 clinics, 2 processes: \d+\.\d events/s", text), text
    assert "killed the process on port" in text
    lost = re.search(r"after the kill: 0 of (\d+) acknowledged events lost", text)
    assert lost and int(lost.group(1)) > 10, text
    assert "0 outbox rows twice, 0 (number, words) twice" in text
    assert re.search(r"the 1 other processes answered [1-9]\d* requests after it", text), text
