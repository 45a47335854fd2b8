"""The kiosk's screens post messages to the app instead of reaching into it (issue 12 item 5).

A screen (or widget) reads only what `KioskView` lists (the client's session and a few
settings) and asks for everything else with a message from kiosk/messages.py; none imports
kiosk.app, so there is no screens <-> app import circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kiosk.app import make_kiosk
from kiosk.fake import FakeClinic
from kiosk.view import KioskView

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = set(KioskView.__annotations__)
FOLDERS = ("kiosk/screens", "kiosk/widgets")


def _is_self_app(node: ast.AST) -> bool:
    """`self.app` or `self.kiosk` (the screens' typed view of it)."""
    return (isinstance(node, ast.Attribute) and node.attr in ("app", "kiosk")
            and isinstance(node.value, ast.Name) and node.value.id == "self")


def reaches_into_the_app(source: str) -> list[str]:
    """Each use of the app in `source` beyond reading what `KioskView` lists: another attribute,
    an assignment to one, the app handed to anything but `cast(KioskView, ...)` or
    `self.watch(..., "<a listed name>")`, or an import of kiosk.app."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kiosk.app"):
            found.append(f"line {node.lineno}: imports {node.module}")
        elif isinstance(node, ast.Import) and any(a.name.startswith("kiosk.app") for a in node.names):
            found.append(f"line {node.lineno}: imports kiosk.app")
        if not _is_self_app(node):
            continue
        assert isinstance(node, ast.Attribute)
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute):
            if parent.attr not in ALLOWED:
                found.append(f"line {node.lineno}: self.{node.attr}.{parent.attr}")
            elif isinstance(parent.ctx, ast.Store):
                found.append(f"line {node.lineno}: sets self.{node.attr}.{parent.attr}")
            continue
        if isinstance(parent, ast.Call):
            func, args = parent.func, parent.args
            if isinstance(func, ast.Name) and func.id == "cast" and ast.unparse(args[0]).strip("'\"") == "KioskView":
                continue
            if (isinstance(func, ast.Attribute) and func.attr == "watch" and len(args) >= 2
                    and isinstance(args[1], ast.Constant) and args[1].value in ALLOWED):
                continue
        found.append(f"line {node.lineno}: self.{node.attr} handed on ({ast.unparse(parent) if parent else ''})")
    return found


def test_screens_and_widgets_use_only_the_kiosk_view_and_messages() -> None:
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).glob("*.py")):
            found += [f"{path.relative_to(ROOT)} {p}" for p in reaches_into_the_app(path.read_text())]
    assert found == []


def test_the_check_catches_a_screen_reaching_into_the_app() -> None:
    assert reaches_into_the_app("self.kiosk.session.lang = 'es'\nself.watch(self.app, 'queued', f)\n") == []
    assert reaches_into_the_app("self.kiosk.go(WelcomeScreen())") == ["line 1: self.kiosk.go"]
    assert reaches_into_the_app("self.app.push_screen(Ask())") == ["line 1: self.app.push_screen"]
    assert reaches_into_the_app("app = self.app\napp.start_over()") != []
    assert reaches_into_the_app("run(self.kiosk)") != []
    assert reaches_into_the_app("self.watch(self.app, 'speaker', f)") != []
    assert reaches_into_the_app("self.kiosk.online = False") == ["line 1: sets self.kiosk.online"]
    assert reaches_into_the_app("from kiosk.app import KioskApp") == ["line 1: imports kiosk.app"]


def test_the_app_offers_everything_the_view_lists(tmp_path: Path) -> None:
    app = make_kiosk("http://fake", "token", tmp_path / "queue.db", api=FakeClinic())
    assert ALLOWED == {"session", "region", "poll_s", "demo", "clinic_name", "online", "queued"}
    assert all(hasattr(app, name) for name in ALLOWED)
