"""The programs under scripts/: each answers --help, and `make run`'s runner serves a working example."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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


def test_make_run_level2_offline_answers_the_printed_command() -> None:
    port, model_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    runner = subprocess.Popen(
        [sys.executable, "scripts/run_example.py", "--port", str(port), "--model-port", str(model_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed = _wait_for_output(runner, "Stop with Ctrl-C.")
        assert "OFFLINE DEMO replies" in printed
        command = next(line.strip() for line in printed.splitlines() if "chatkit_smoke.py" in line)
        command = command.replace(".venv/bin/python", sys.executable)
        answer = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == "You said: Hello!"
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
    assert runner.returncode == 0


def test_make_run_level3_starts_postgres_and_prints_a_working_token() -> None:
    state = tempfile.mkdtemp(prefix="chatkit-run-")  # /tmp, so the postgres user can reach it
    port, model_port, pg_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "JWT_SECRET")}
    command = [sys.executable, "scripts/run_example.py", "--level", "3", "--port", str(port)]
    command += ["--model-port", str(model_port), "--state-dir", state, "--pg-port", str(pg_port)]
    runner = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed = _wait_for_output(runner, "Stop with Ctrl-C.")
        assert "dev token (user dev-user" in printed
        smoke = next(line.strip() for line in printed.splitlines() if "chatkit_smoke.py" in line)
        assert "--token" in smoke
        answer = subprocess.run(
            smoke.replace(".venv/bin/python", sys.executable), shell=True, cwd=ROOT, capture_output=True, text=True
        )
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == "You said: Hello!"
        unauthenticated = subprocess.run(
            [sys.executable, "scripts/chatkit_smoke.py", "--url", f"http://127.0.0.1:{port}/chatkit", "hi"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert unauthenticated.returncode == 2 and "401" in unauthenticated.stderr
        token = shlex.split(smoke)[shlex.split(smoke).index("--token") + 1]
        with_header = [sys.executable, "scripts/chatkit_smoke.py", "--url", f"http://127.0.0.1:{port}/chatkit"]
        with_header += ["-H", f"Authorization: Bearer {token}", "hi"]
        assert subprocess.run(with_header, cwd=ROOT, capture_output=True, text=True).returncode == 0

        # A client tool through the smoke script: the offline model calls it on "/call <tool> {json}".
        base = [sys.executable, *shlex.split(smoke)[1:-1]]
        pending = subprocess.run([*base, "/call get_user_location {}"], cwd=ROOT, capture_output=True, text=True)
        assert pending.returncode == 0, pending.stderr
        assert pending.stdout.strip() == 'client tool pending: get_user_location({"precision": "city"})'
        thread_id = pending.stderr.split("thread: ")[1].split()[0]
        answer = [*base, "--thread", thread_id, "--tool-output", '{"city": "Oslo"}']
        answered = subprocess.run(answer, cwd=ROOT, capture_output=True, text=True)
        assert answered.returncode == 0, answered.stderr
        assert answered.stdout.strip() == 'Tool result: {"city": "Oslo"}'
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
        shutil.rmtree(state, ignore_errors=True)
    assert runner.returncode == 0


def test_run_example_serves_a_copied_example_as_your_own_app(tmp_path: Path) -> None:
    """The documented path for a user's project: copy a level, then run it with --app."""
    shutil.copytree(ROOT / "examples" / "level2", tmp_path / "chat", ignore=shutil.ignore_patterns("__pycache__"))
    port, model_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    command = [sys.executable, str(ROOT / "scripts" / "run_example.py"), "--app", "chat.app:app"]
    command += ["--port", str(port), "--model-port", str(model_port)]
    runner = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        printed = _wait_for_output(runner, "Stop with Ctrl-C.")
        assert "chat.app:app (level 2) is answering" in printed
        smoke = next(line.strip() for line in printed.splitlines() if "chatkit_smoke.py" in line)
        answer = subprocess.run(smoke, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == "You said: Hello!"
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
