"""kiosk-web.service and kiosk-browser.service are units systemd accepts, with the settings a
lobby box with Chromium relies on (as tests/test_kiosk_service.py does for kiosk.service)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def settings(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (ROOT / name).read_text().splitlines():
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            out.setdefault(m[1], []).append(m[2])
    return out


def test_web_unit_serves_the_kiosk_unprivileged_with_the_token_and_queue_on_the_box() -> None:
    s = settings("kiosk-web.service")
    assert s["User"] == ["waitroom-kiosk"]
    assert s["EnvironmentFile"] == ["/etc/waitroom/kiosk.env"]  # the token: never on a command line
    assert "WAITROOM_KIOSK_QUEUE=/var/lib/waitroom-kiosk/kiosk-queue.db" in s["Environment"]
    assert "WAITROOM_WEB_HOST=127.0.0.1" in s["Environment"]  # tablets only when the env file says so
    assert s["ExecStart"] == ["/opt/waitroom/.venv/bin/waitroom kiosk --web --host ${WAITROOM_WEB_HOST} "
                              "--port ${WAITROOM_WEB_PORT}"]


def test_browser_unit_runs_chromium_in_kiosk_mode_under_cage_on_tty1_against_the_local_server() -> None:
    s = settings("kiosk-browser.service")
    assert s["User"] == ["waitroom-kiosk"]
    assert s["TTYPath"] == ["/dev/tty1"]
    assert s["Requires"] == ["kiosk-web.service"] and "kiosk-web.service" in s["After"][0]
    start = s["ExecStart"][0]
    assert start.startswith("/usr/bin/cage -- /usr/bin/chromium --kiosk ")
    assert start.endswith(" http://127.0.0.1:${WAITROOM_WEB_PORT}/")
    assert s["ExecStartPre"] == ["/opt/waitroom/.venv/bin/python -m kiosk.web wait ${WAITROOM_WEB_PORT} 60"]
    assert "--disable-pinch" in start and "--touch-events=enabled" in start
    assert "WAITROOM_TOKEN" not in (ROOT / "kiosk-browser.service").read_text().split("[Unit]")[1]
    assert "graphical.target" in s["WantedBy"]


@pytest.mark.parametrize("name", ["kiosk-web.service", "kiosk-browser.service"])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    # cage, chromium and /opt/waitroom are on the lobby box, not on a build machine, and verify
    # refuses an ExecStart binary that does not exist: check copies that run /bin/true instead.
    for unit in ("kiosk-web.service", "kiosk-browser.service"):
        text = (ROOT / unit).read_text()
        text = re.sub(r"^(ExecStart|ExecStartPre)=.*$", r"\1=/bin/true", text, flags=re.M)
        (tmp_path / unit).write_text(text)
    proc = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in proc.stderr.splitlines() if name in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_the_browser_waits_for_the_kiosk_page_and_gives_up_after_its_bound() -> None:
    from tests.conftest import _free_port

    port = _free_port()  # nothing listens
    done = subprocess.run([sys.executable, "-m", "kiosk.web", "wait", str(port), "0.5"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1 and "not answering" in done.stderr
