"""A throwaway PostgreSQL server for tests: initdb + pg_ctl on a free port in a tmp dir.

Uses the binaries on PATH or Debian's ``/usr/lib/postgresql/<version>/bin``
(``apt-get install postgresql``). PostgreSQL refuses to run as root, so as
root the cluster belongs to the ``postgres`` user and every command runs
through ``runuser``. Callers skip their tests when :func:`find_pg_bin` is None.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def find_pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, newest Debian version first; None if absent."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as(user: str | None, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    command = ["runuser", "-u", user, "--", *args] if user else args
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


class PostgresServer:
    """A running throwaway cluster; ``create_database`` hands out fresh, empty databases."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._count = 0

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE and return its SQLAlchemy URL (psycopg 3 driver)."""
        import psycopg

        self._count += 1
        name = name or f"facesense_{self._count}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private cluster (trust auth, 127.0.0.1, free port); stop and delete it afterwards."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    user = None
    root = Path(tempfile.mkdtemp(prefix="facesense-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = root / "data", _free_port()
    try:
        _run_as(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                       "--encoding=UTF8", "--no-sync"])
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        _run_as(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                       "-w", "-t", "60", "start"])
        try:
            yield PostgresServer(port)
        finally:
            _run_as(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
