"""A throwaway PostgreSQL cluster for the test session (issue 13 item 5).

`make test` installs Debian's `postgresql` (15) when it is missing; the session starts one
cluster in a temporary folder on a free loopback port the first time a test asks for it, and
stops it at the end. `WAITROOM_TEST_DATABASE=postgresql://...` points the tests at an existing
server instead (its user needs CREATE on the database: each test gets a schema of its own).

When PostgreSQL cannot be had, its tests are skipped with the reason, but never under
`make test` (which sets WAITROOM_REQUIRE_PG=1) or CI (CI=true): there they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit


class NoPostgres(RuntimeError):
    """PostgreSQL could not be installed or started here."""


def required() -> bool:
    """PG tests must run (fail, never skip): under `make test` and in CI."""
    return os.environ.get("WAITROOM_REQUIRE_PG") == "1" or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise NoPostgres("no initdb under /usr/lib/postgresql/*/bin (make test installs Debian's postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running throwaway cluster: `url` reaches its `postgres` database as `postgres`."""

    url: str
    data: Path
    bin: Path
    as_postgres: list[str]

    def stop(self) -> None:
        # Immediate: a throwaway cluster needs no checkpoint at shutdown.
        subprocess.run([*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.data.parent, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb + pg_ctl start on a free port (about 1-2 s); NoPostgres with the reason if it cannot."""
    bindir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="waitroom-pg-"))
    # initdb refuses to run as root: as root, run the cluster as the `postgres` user.
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise NoPostgres("running as root without runuser: cannot start PostgreSQL as another user")
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, OSError) as e:
            raise NoPostgres(f"no postgres user to own the cluster: {e}") from e
        as_postgres = ["runuser", "-u", "postgres", "--"]
    os.chmod(root, 0o700)
    data = root / "data"
    port = _free_port()
    try:
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync", "--no-instructions"],
                       capture_output=True, text=True, timeout=120, check=True)
        # A throwaway cluster: durability settings off for speed (the tests kill servers, not PostgreSQL).
        opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200")
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                        "-o", opts, "-w", "-t", "60", "start"],
                       capture_output=True, text=True, timeout=90, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or ""
        log = root / "log"
        if log.exists():
            detail += log.read_text(errors="replace")[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        raise NoPostgres(f"PostgreSQL did not start: {e} {detail.strip()}") from e
    return Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", data, bindir, as_postgres)


def with_params(url: str, **params: str) -> str:
    """`url` with these query parameters added (asyncpg passes unknown ones as server settings)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def new_schema_name() -> str:
    return "t_" + uuid.uuid4().hex[:16]


def main(argv: list[str]) -> int:
    """`python -m tests.pg_cluster COMMAND...` (`make test-pg`): start a throwaway cluster, run
    COMMAND with WAITROOM_TEST_DATABASE set to it, and stop the cluster afterwards, whatever
    COMMAND did (a failure, Ctrl-C). Exits with COMMAND's code."""
    if not argv:
        print("usage: python -m tests.pg_cluster COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        cluster = start_cluster()
    except NoPostgres as e:
        print(f"pg_cluster: {e}", file=sys.stderr)
        return 2
    try:
        print(f"pg_cluster: WAITROOM_TEST_DATABASE={cluster.url} ({cluster.data})", file=sys.stderr, flush=True)
        env = {**os.environ, "WAITROOM_TEST_DATABASE": cluster.url}
        with subprocess.Popen(argv, env=env) as proc:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.wait()  # the command had the Ctrl-C too: let it finish its own clean-up
                return 130
    finally:
        cluster.stop()
        print("pg_cluster: stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
