"""Modules use each other's public names only (issue 12 item 5): an import of a `_private` name
from another module of `server` or `notifier` fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for package in ("server", "notifier"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in (
                        "server", "notifier")):
                    found += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []
