"""Start one of the example servers (or your own app) on localhost, with everything it needs.

    python scripts/run_example.py              # Level 2 on http://127.0.0.1:8000/chatkit
    python scripts/run_example.py --level 3    # + a local PostgreSQL cluster and a dev token
    python scripts/run_example.py --level 3 --app chat.app:app --app-dir ~/myproject   # your own app

--level says what the app needs: 1 nothing, 2 a model, 3 a model, PostgreSQL (DATABASE_URL) and a
JWT_SECRET with a development token for it.

Without OPENAI_API_KEY it also starts the offline scripted model server and points the example at
it through OPENAI_BASE_URL: the replies are canned demo replies, not a real model.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "scripts" / "chatkit_smoke.py"
STATE = ROOT / "var"  # git-ignored: the dev database and the dev secret live here by default


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not start listening on port {port}")


def banner(*lines: str) -> None:
    width = max(len(line) for line in lines) + 4
    print("\n" + "=" * width, *(f"  {line}" for line in lines), "=" * width + "\n", sep="\n", flush=True)


def start_offline_model(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    model = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "scripted_model_server.py"), "--port", str(port)])
    wait_for_port(port, model, "the scripted model server")
    env.update(
        OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
        OPENAI_API_KEY="offline-demo",
        OPENAI_AGENTS_DISABLE_TRACING="1",
    )
    banner(
        "OPENAI_API_KEY is not set: replies are OFFLINE DEMO replies",
        f"from scripts/scripted_model_server.py on 127.0.0.1:{port}, not from a model.",
        "Export OPENAI_API_KEY and run again to talk to OpenAI.",
    )
    return model


def dev_secret(state: Path) -> str:
    path = state / "dev-jwt-secret"
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the children as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--level", type=int, choices=(1, 2, 3), default=2, help="which example (default: 2)")
    parser.add_argument("--port", type=int, default=8000, help="port for the example (default: 8000)")
    parser.add_argument("--model-port", type=int, default=8765, help="port for the offline model (default: 8765)")
    parser.add_argument("--app", help="your own app instead of an example, e.g. chat.app:app")
    parser.add_argument("--app-dir", type=Path, help="the folder to run --app from (default: the current one)")
    parser.add_argument("--state-dir", type=Path, help="Level 3 database and dev secret (default: var/ beside the app)")
    parser.add_argument("--pg-port", type=int, default=54329, help="Level 3 PostgreSQL port (default: 54329)")
    args = parser.parse_args(argv)
    app = args.app or f"level{args.level}.app:app"
    app_dir = (args.app_dir or Path.cwd()) if args.app else ROOT / "examples"
    state = args.state_dir or ((app_dir / "var") if args.app else STATE)

    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []
    cleanups: list[Callable[[], None]] = []
    token = None
    if args.level >= 2 and not env.get("OPENAI_API_KEY"):
        children.append(start_offline_model(env, args.model_port))
    if args.level == 3:
        from local_postgres import persistent_cluster  # only Level 3 needs it

        cluster = persistent_cluster(state / "postgres", args.pg_port)
        print(f"PostgreSQL for level 3: {cluster.url} (data in {state / 'postgres'})", flush=True)
        env["DATABASE_URL"] = cluster.url
        cleanups.append(cluster.stop)
        env.setdefault("JWT_SECRET", dev_secret(state))
        sys.path.insert(0, str(ROOT / "examples"))
        from level3.auth import issue_dev_token

        token = issue_dev_token(env["JWT_SECRET"], user_id="dev-user")

    url = f"http://127.0.0.1:{args.port}/chatkit"
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(args.port)]
    server = subprocess.Popen(command, cwd=app_dir, env=env)
    children.append(server)
    wait_for_port(args.port, server, app)
    here = Path.cwd() == ROOT  # from the skill's folder (make run), short relative paths
    python, script = (".venv/bin/python", "scripts/chatkit_smoke.py") if here else (sys.executable, SMOKE)
    smoke = [python, str(script), "--url", url]
    if token:
        smoke += ["--token", token]
    banner(
        f"{app} (level {args.level}) is answering on {url}",
        *([f"dev token (user dev-user, 1 h): {token}"] if token else []),
        "Send a message and watch the answer stream (in another terminal):",
        shlex.join([*smoke, "Hello!"]),
        "Stop with Ctrl-C.",
    )
    status = 0
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        status = server.wait()  # returns only if the server dies on its own
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        for cleanup in cleanups:
            cleanup()
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
