"""A real PostgreSQL on 127.0.0.1 without Docker, from the distribution's server binaries.

    python scripts/local_postgres.py                 # a throwaway cluster until Ctrl-C; prints its URL
    python scripts/local_postgres.py --dir var/pg    # a persistent cluster in var/pg (created on first use)
    python scripts/local_postgres.py --port 5433     # either kind, on the port you choose

Debian: `apt-get install postgresql` provides the binaries (`make test` and `make run LEVEL=3` do it).
initdb and postgres refuse to run as root, so as root they run as the `postgres` system user (created by
the package) through `runuser`. The server listens on loopback only, with trust authentication: for
tests and local development, never for production.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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


# --8<-- [start:throwaway]
@contextmanager
def throwaway_cluster(attempts: int = 3, port: int | None = None) -> Iterator[str]:
    """Start a private cluster and yield its URL (database `postgres`, user `postgres`, no password).

    Without `port`, it picks a free one.
    """
    bindir = server_bindir()
    base = Path(tempfile.mkdtemp(prefix="chatkit-pg-"))
    data, log = base / "data", base / "server.log"
    started = False
    try:
        prefix = _as_server_user(base)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        _run([*prefix, *initdb, "--no-sync"])
        pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "30"]
        tries = 1 if port else attempts  # a port the caller chose is tried once, and its failure reported
        for attempt in range(tries):
            # A port free now may be bound by another process first: then try another one.
            chosen = port or _free_port()
            options = f"-p {chosen} -k {base} -c listen_addresses=127.0.0.1 {_FAST}"
            try:
                _run([*pg_ctl, "-l", str(log), "-o", options, "start"])
            except RuntimeError as exc:
                if attempt == tries - 1:
                    server_log = log.read_text(errors="replace") if log.exists() else "(no log)"
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{server_log}") from exc
                continue
            started = True
            break
        yield f"postgresql://postgres@127.0.0.1:{chosen}/postgres"
    finally:
        if started:
            # Immediate: the data is thrown away, so there is nothing to flush.
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


# --8<-- [end:throwaway]


# --8<-- [start:fresh-database]
@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server for one test; dropped afterwards, connections and all."""
    import asyncpg  # only this helper needs a driver

    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server_url)
    try:
        # FILE_COPY (PostgreSQL 15+) copies the small template in milliseconds; WAL_LOG is slower.
        strategy = " STRATEGY file_copy" if admin.get_server_version().major >= 15 else ""
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
    finally:
        await admin.close()
    try:
        yield urlsplit(server_url)._replace(path=f"/{name}").geturl()
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --8<-- [end:fresh-database]


@dataclass
class Cluster:
    """A running cluster: its URL and how to stop (and start) it."""

    url: str
    data: Path
    prefix: list[str]
    bindir: Path
    options: str = ""  # the server options start() passes (port, socket directory, settings)

    def _pg_ctl(self) -> list[str]:
        return [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30"]

    def stop(self) -> None:
        subprocess.run([*self._pg_ctl(), "-m", "fast", "stop"], capture_output=True, timeout=60)

    def start(self) -> None:
        _run([*self._pg_ctl(), "-l", str(self.data.parent / "server.log"), "-o", self.options, "start"])


@contextmanager
def restartable_cluster() -> Iterator[Cluster]:
    """A throwaway cluster that a test may stop() and start() again, on the same port: an outage."""
    bindir = server_bindir()
    base = Path(tempfile.mkdtemp(prefix="chatkit-pg-"))
    try:
        prefix = _as_server_user(base)
        data = base / "data"
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
        port = _free_port()
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 {_FAST}"
        cluster = Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", data, prefix, bindir, options)
        cluster.start()
        try:
            yield cluster
        finally:
            subprocess.run([*cluster._pg_ctl(), "-m", "immediate", "stop"], capture_output=True, timeout=60)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _reachable_by_server_user(directory: Path) -> Path:
    """As root, the `postgres` user must reach the data directory. A checkout under /root (mode 700)
    is out of its reach: then keep the data under /var/tmp and leave a link at `directory`."""
    if os.geteuid() != 0 or directory.is_symlink():
        return directory.resolve()
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(directory.parent)])
    if probe.returncode == 0:
        return directory
    elsewhere = Path("/var/tmp/chatkit-server") / hashlib.sha1(str(directory).encode()).hexdigest()[:12]
    elsewhere.mkdir(parents=True, exist_ok=True)
    Path("/var/tmp/chatkit-server").chmod(0o755)
    directory.symlink_to(elsewhere, target_is_directory=True)
    return elsewhere


def persistent_cluster(directory: Path, port: int = 54329) -> Cluster:
    """Start (creating on first use) a cluster whose data survives restarts, e.g. for `make run LEVEL=3`."""
    bindir = server_bindir()
    directory = directory.absolute()
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory = _reachable_by_server_user(directory)
    directory.mkdir(parents=True, exist_ok=True)
    prefix = _as_server_user(directory)
    data, log = directory / "data", directory / "server.log"
    if not (data / "PG_VERSION").exists():
        _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "30"]
    if subprocess.run([*pg_ctl, "status"], capture_output=True).returncode != 0:
        options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1"
        _run([*pg_ctl, "-l", str(log), "-o", options, "start"])
    return Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", data, prefix, bindir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="keep the data here (default: a temporary directory, deleted)")
    parser.add_argument("--port", type=int, help="the port to listen on (default: 54329 with --dir, else a free one)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the cluster on SIGTERM too
    if args.dir:
        cluster = persistent_cluster(args.dir, args.port or 54329)
        print(f"DATABASE_URL={cluster.url}", flush=True)
        try:
            signal.pause()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            cluster.stop()
        return 0
    with throwaway_cluster(port=args.port) as url:
        print(f"DATABASE_URL={url}", flush=True)
        try:
            signal.pause()
        except (KeyboardInterrupt, SystemExit):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
