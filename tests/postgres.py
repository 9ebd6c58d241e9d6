"""A real PostgreSQL for tests: a throwaway cluster on 127.0.0.1, or the server named by TEST_DATABASE_URL.

The cluster comes from the distribution's server binaries (Debian: `apt-get install postgresql`, which
`make test` does). It is created in a temporary directory with durability switched off, listens on a free
loopback port only, and is stopped and deleted on exit. initdb and postgres refuse to run as root, so as
root they run as the `postgres` system user (created by the package) through `runuser`.

Missing binaries are an error, never a skip: a store test that silently does not run proves nothing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found. Run `make test` (it installs them), "
    "or `apt-get install -y postgresql`, or set PG_BINDIR to the directory holding initdb, "
    "or point TEST_DATABASE_URL at a server where this user may CREATE DATABASE."
)

# Durability costs time and buys nothing for a cluster that is deleted after the run.
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def server_bindir() -> Path:
    """The directory with initdb and pg_ctl: $PG_BINDIR, the newest Debian version, or $PATH."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if on_path := shutil.which("initdb"):
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise RuntimeError(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(base: Path) -> list[str]:
    """The command prefix that runs the server binaries as a non-root user (none when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root, but there is no 'postgres' user to run the server as. " + INSTALL_HINT
        ) from None
    shutil.chown(base, "postgres", "postgres")
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


@contextmanager
def throwaway_cluster(attempts: int = 3) -> Iterator[str]:
    """Start a private cluster and yield its URL (database `postgres`, user `postgres`, no password)."""
    bindir = server_bindir()
    base = Path(tempfile.mkdtemp(prefix="chatkit-pg-"))
    data, log = base / "data", base / "server.log"
    started = False
    try:
        prefix = _as_server_user(base)
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        for attempt in range(attempts):
            # The port is free now; another process may take it before the server binds, so retry.
            port = _free_port()
            options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 {_FAST}"
            start = [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "30",
                "-o",
                options,
                "start",
            ]
            try:
                _run(start)
            except RuntimeError as exc:
                if attempt == attempts - 1:
                    server_log = log.read_text(errors="replace") if log.exists() else "(no log)"
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{server_log}") from exc
                continue
            started = True
            break
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            # Immediate: the data is thrown away, so there is nothing to flush.
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def postgres_url() -> Iterator[str]:
    """TEST_DATABASE_URL when set (an existing server), else a throwaway cluster for the duration."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    with throwaway_cluster() as url:
        yield url
