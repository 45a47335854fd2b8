"""kiosk.service is a unit systemd accepts, with the settings the lobby box relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "kiosk.service"


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            out.setdefault(m[1], []).append(m[2])
    return out


def test_unit_runs_the_kiosk_unprivileged_on_tty1_from_an_env_file() -> None:
    s = settings()
    assert s["User"] == ["waitroom-kiosk"]
    assert s["TTYPath"] == ["/dev/tty1"]
    assert s["EnvironmentFile"] == ["/etc/waitroom/kiosk.env"]
    assert s["Restart"] == ["on-failure"]
    assert s["ExecStart"][0].startswith("/usr/bin/cage -- /usr/bin/foot ")
    assert s["ExecStart"][0].endswith("-- /opt/waitroom/.venv/bin/waitroom kiosk")
    assert "graphical.target" in s["WantedBy"]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    # cage, foot and /opt/waitroom are on the lobby box, not on a build machine, and verify
    # refuses an ExecStart binary that does not exist: check a copy that runs /bin/true instead.
    text = UNIT.read_text()
    text = re.sub(r"^ExecStart=.*$", "ExecStart=/bin/true", text, flags=re.M)
    unit = tmp_path / "kiosk.service"
    unit.write_text(text)
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in proc.stderr.splitlines() if "kiosk.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr
