"""The store rule (issue 12): SQL and database connections live in server/store/ only.

Every other module of `server` and `notifier` reaches the database through the store's named
operations (server/store/interface.py, notifier/store.py). A string literal that reads as SQL, an
import of a database driver, or a reach for a store's raw connection (`.conn`) anywhere else
fails this test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+"
                 r"(TABLE|INDEX)|PRAGMA\s|BEGIN(\s+IMMEDIATE)?$)\b", re.DOTALL)  # SQL is written in capitals here
DRIVERS = {"aiosqlite", "sqlite3", "asyncpg", "psycopg", "psycopg2"}
# A backend's raw-SQL methods (kept for that backend's own tests): never called from elsewhere.
RAW = {"execute", "executemany", "execute_fetchall", "executescript", "fetchrow", "fetchval"}


def _modules() -> list[Path]:
    out = []
    for package in ("server", "notifier"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith("server/store/"):
                out.append(path)
    return out


def breaches(path: Path) -> list[str]:
    """Where a module breaks the store rule (line: what)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"{node.lineno}: SQL {node.value[:60]!r}")
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if SQL.search(text):
                found.append(f"{node.lineno}: SQL f-string {text[:60]!r}")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: imports {a.name}" for a in node.names if a.name.split(".")[0] in DRIVERS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in DRIVERS:
            found.append(f"{node.lineno}: imports from {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr == "conn":
            found.append(f"{node.lineno}: reaches for a raw connection (.conn)")
        elif isinstance(node, ast.Attribute) and node.attr in RAW:
            found.append(f"{node.lineno}: runs raw SQL (.{node.attr})")
    by_line: dict[int, str] = {}
    for b in found:
        by_line.setdefault(int(b.split(":")[0]), b)
    return [by_line[n] for n in sorted(by_line)]


def test_no_sql_or_connection_outside_the_store() -> None:
    bad = {p.relative_to(ROOT).as_posix(): b for p in _modules() if (b := breaches(p))}
    assert bad == {}


def test_the_rule_catches_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text('import aiosqlite\nq = "SELECT id FROM vets"\nf"DELETE FROM {t}"\nx = store.conn\n'
                      'ok = "Select a vet from the list"\nawait tx.execute(q)\n')
    assert [b.split(":")[0] for b in breaches(sample)] == ["1", "2", "3", "4", "6"]


def test_the_store_package_offers_named_operations_only() -> None:
    """No module-level shortcut around the interface (the transitional helpers that took a raw
    connection are gone); the SQLite backend's raw `fetch` is for its own tests."""
    import server.store as store

    assert set(store.__all__) == {"ROLES", "Clinic", "LoggedEvent", "LoginAttempt", "SqliteStore", "Store",
                                  "StoredVisit", "TextContact", "TextsPaused", "Tx", "hash_token", "open_store"}
    for gone in ("fetch", "set_clinic", "load_day", "booked_lengths", "create_token", "token_role"):
        assert not hasattr(store, gone), gone
