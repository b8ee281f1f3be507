"""A throwaway PostgreSQL cluster for the back end's tests and bench/claims_load.py.

Debian's server binaries (`apt-get install postgresql`: /usr/lib/postgresql/<version>/bin,
not on PATH) make a cluster in a temporary folder with `initdb`, and `pg_ctl` runs it on
127.0.0.1 and a free port; stopping removes the folder. The server refuses to run as
root, so as root the binaries run as the `postgres` user (`runuser`), which owns the
folder. Nothing of the machine's own clusters is used or touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

import psycopg

SUPERUSER = "postgres"


def server_binaries() -> Path | None:
    """The bin folder of the newest PostgreSQL installed, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """`with PostgresCluster(bin_dir) as cluster:` a running server; `cluster.new_database()`
    is the URL of a fresh, empty database. `durable=False` (tests) turns fsync off: the
    data is thrown away anyway, and the tests run several times faster; the bench keeps
    PostgreSQL's defaults."""

    def __init__(self, bin_dir: Path, *, durable: bool = False, max_connections: int = 200) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        self.max_connections = max_connections
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="mpforge-pg-"))
        self.data = self.folder / "data"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def __enter__(self) -> PostgresCluster:
        if os.geteuid() == 0:
            shutil.chown(self.folder, SUPERUSER, SUPERUSER)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} "
                       f"-c max_connections={self.max_connections}")
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"),
                      "-w", "-t", "60", "start")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = SUPERUSER) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        """A superuser connection to the maintenance database, in autocommit."""
        return psycopg.connect(self.url(), autocommit=True)

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def set_reachable(self, url: str, reachable: bool) -> None:
        """Take a database down (refuse new connections, end the open ones) or bring it back."""
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(reachable).lower()}')
            if not reachable:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
