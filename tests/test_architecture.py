"""The import rules of the house style: server -> notifier only; the kiosk is a pure HTTP client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_notifier_imports_nothing_from_server_or_kiosk() -> None:
    assert not _imports("notifier") & {"server", "kiosk"}


def test_kiosk_imports_neither_server_nor_notifier() -> None:
    assert not _imports("kiosk") & {"server", "notifier"}


def test_server_never_loads_textual() -> None:
    code = ("import sys, server.app, server.cli, server.replay, server.web; "
            "from server.app import create_app; from server.config import Config; create_app(Config()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'kiosk')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_pyproject_license_is_an_spdx_string() -> None:
    """setuptools deprecates the `{ text = ... }` table and warns on every install (issue 15 item 7)."""
    import tomllib

    meta = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"


def test_handlers_take_their_keys_from_the_keys_module_not_the_app_factory() -> None:
    # server/app.py builds the app and loads the handlers (setup_routes); a handler importing
    # from it made the factory <-> handler circle issue 12 item 5 removes. Keys live in
    # server/keys.py, request helpers in server/http.py; only the CLI may start the app.
    found = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("server/app.py", "server/cli.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "server.app" or (
                    isinstance(node, ast.Import) and any(a.name == "server.app" for a in node.names)):
                found.append(f"{rel}:{node.lineno}")
    assert found == []
