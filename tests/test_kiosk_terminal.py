"""The kiosk in a real terminal (a pty): it leaves when the terminal goes away."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

EXE = Path(sys.executable).with_name("waitroom")


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def test_the_kiosk_exits_when_its_terminal_hangs_up_even_without_a_hangup_signal(tmp_path: Path) -> None:
    # Under `make demo` the kiosk is not sent SIGHUP when its terminal closes; it used to keep
    # running with Textual's input thread spinning on the dead tty (a core at 100 %).
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    proc = subprocess.Popen(
        [str(EXE), "kiosk", "--server", "http://127.0.0.1:9", "--token", "wr_kiosk_test",
         "--queue", str(tmp_path / "queue.db")],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)  # no controlling tty: no SIGHUP
    os.close(slave)
    try:
        shown = _read_until(master, b"Welcome", timeout=20)
        assert b"Welcome" in shown, "the kiosk did not draw its welcome screen"
        assert proc.poll() is None
        os.close(master)  # the terminal window closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the kiosk outlived its terminal") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
