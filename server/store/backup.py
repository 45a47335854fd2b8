"""Online backup of the SQLite backend's file, safe while `waitroom serve` is writing.

SQLite's backup API copies the database as one consistent snapshot (a read transaction on
the WAL-mode source: writers go on meanwhile, and the copy holds exactly the transactions
committed before it began). The copy is written beside the destination and renamed into
place only once it passes `PRAGMA integrity_check`, so a half-written backup never replaces
a good one.

Restore: stop the server, copy the backup file over the database file (and delete any
`<db>-wal` / `<db>-shm` left beside it), start the server.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path


class BackupError(Exception):
    pass


def backup(db: str | Path, dest: str | Path) -> int:
    """Copy `db` to `dest` with the online backup API; returns the number of events in the copy."""
    db, dest = Path(db), Path(dest)
    if not db.exists():
        raise BackupError(f"no database at {db}")
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as src, \
                contextlib.closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)  # all pages in one step: one snapshot, never restarted by a writer
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                raise BackupError(f"the copy failed its integrity check: {ok}")
            events = int(dst.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        os.replace(tmp, dest)
    except sqlite3.Error as e:
        raise BackupError(f"backup of {db} failed: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return events
