"""The programs under scripts/: each answers --help, and `make run`'s runner serves a working example."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from live_server import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script: str) -> None:
    out = subprocess.run([sys.executable, f"scripts/{script}", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def _wait_for_output(process: subprocess.Popen[str], needle: str, seconds: float = 60) -> str:
    seen = ""
    deadline = time.monotonic() + seconds
    assert process.stdout is not None
    while needle not in seen:
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"never printed {needle!r}:\n{seen}")
        seen += process.stdout.readline()
    return seen


@contextmanager
def run_example(args: list[str], cwd: Path = ROOT) -> Iterator[tuple[str, list[str]]]:
    """`scripts/run_example.py ARGS` without an API key: yield what it printed and its smoke command."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "JWT_SECRET")}
    command = [sys.executable, str(ROOT / "scripts" / "run_example.py"), "--model-port", str(free_port()), *args]
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    runner = subprocess.Popen(command, cwd=cwd, env=env, **output)  # type: ignore[call-overload]
    try:
        printed = _wait_for_output(runner, "Stop with Ctrl-C.")
        line = next(line.strip() for line in printed.splitlines() if "chatkit_smoke.py" in line)
        smoke = shlex.split(line)
        if smoke[0] == ".venv/bin/python":  # printed relative to the skill's folder
            smoke[0] = sys.executable
        yield printed, smoke
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
    assert runner.returncode == 0


def _run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_make_run_level2_offline_answers_the_printed_command() -> None:
    with run_example(["--port", str(free_port())]) as (printed, smoke):
        assert "OFFLINE DEMO replies" in printed
        answer = _run(smoke)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout == "You said: Hello!\n"  # the answer alone, ending with a newline
        assert answer.stderr.startswith("thread: thr_")  # the rest goes to stderr


def test_make_run_level3_starts_postgres_and_prints_a_working_token() -> None:
    state = tempfile.mkdtemp(prefix="chatkit-run-")  # /tmp, so the postgres user can reach it
    port = free_port()
    args = ["--level", "3", "--port", str(port), "--state-dir", state, "--pg-port", str(free_port())]
    try:
        with run_example(args) as (printed, smoke):
            assert "dev token (user dev-user" in printed
            answer = _run(smoke)
            assert answer.returncode == 0, answer.stderr
            assert answer.stdout.strip() == "You said: Hello!"

            url = f"http://127.0.0.1:{port}/chatkit"
            unauthenticated = _run([sys.executable, "scripts/chatkit_smoke.py", "--url", url, "hi"])
            assert unauthenticated.returncode == 2 and "401" in unauthenticated.stderr
            token = smoke[smoke.index("--token") + 1]
            with_header = [
                sys.executable,
                "scripts/chatkit_smoke.py",
                "--url",
                url,
                "-H",
                f"Authorization: Bearer {token}",
            ]
            assert _run([*with_header, "hi"]).returncode == 0

            # A client tool through the smoke script: the offline model calls it on "/call <tool> {json}".
            base = smoke[:-1]
            pending = _run([*base, "/call get_user_location {}"])
            assert pending.returncode == 0, pending.stderr
            assert pending.stdout.strip() == 'client tool pending: get_user_location({"precision": "city"})'
            thread_id = pending.stderr.split("thread: ")[1].split()[0]
            answered = _run([*base, "--thread", thread_id, "--tool-output", '{"city": "Oslo"}'])
            assert answered.returncode == 0, answered.stderr
            assert answered.stdout.strip() == 'Tool result: {"city": "Oslo"}'
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_run_example_serves_a_copied_example_as_your_own_app(tmp_path: Path) -> None:
    """The documented path for a user's project: copy a level, then run it with --app."""
    shutil.copytree(ROOT / "examples" / "level2", tmp_path / "chat", ignore=shutil.ignore_patterns("__pycache__"))
    with run_example(["--app", "chat.app:app", "--port", str(free_port())], cwd=tmp_path) as (printed, smoke):
        assert "chat.app:app (level 2) is answering" in printed
        answer = _run(smoke, cwd=tmp_path)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == "You said: Hello!"


async def _server_port(url: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return str(await connection.fetchval("SHOW port"))
    finally:
        await connection.close()


def test_local_postgres_listens_on_the_port_it_is_given() -> None:
    port = free_port()
    command = [sys.executable, "scripts/local_postgres.py", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        printed = _wait_for_output(process, "DATABASE_URL=")
        url = printed.strip().splitlines()[-1].removeprefix("DATABASE_URL=")
        assert url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        assert asyncio.run(_server_port(url)) == str(port)
    finally:
        process.send_signal(signal.SIGTERM)  # the script stops its cluster on SIGTERM
        assert process.wait(timeout=60) == 0
