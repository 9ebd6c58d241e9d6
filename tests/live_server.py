"""Run an app under a real uvicorn on 127.0.0.1: in a thread (`serve`), or as its own process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from scripted_model_server import serve_app_in_background as serve  # noqa: F401 - re-exported


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(
    app_path: str, env: dict[str, str] | None = None, cwd: str = "examples", extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Yield the base URL of `uvicorn <app_path> [extra_args]` running as its own process, as in production."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app_path, "--host", "127.0.0.1", "--port", str(port), *extra_args]
    # Output goes to a file, not a pipe: nobody reads a pipe while the server runs, and a full one
    # (64 KiB of log lines under load) would block the server.
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60  # a loaded machine: --workers N import the app N times at once
            while True:
                if process.poll() is not None:
                    output.seek(0)
                    raise RuntimeError(
                        f"uvicorn {app_path} exited with {process.returncode}:\n{output.read().decode()}"
                    )
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        output.seek(0)
                        log = output.read().decode(errors="replace")
                        raise RuntimeError(f"uvicorn {app_path} did not listen on {port}:\n{log}") from None
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
