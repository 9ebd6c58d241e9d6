"""A real nginx on 127.0.0.1 in front of an app, with stock proxy settings plus gzip for event streams."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from live_server import free_port

CONFIG = """
daemon off;
master_process off;
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    gzip on;
    gzip_types text/event-stream;
    server {{
        listen 127.0.0.1:{port};
{location}
    }}
}}
"""
STOCK_LOCATION = """
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            {extra}
        }}
"""


@contextmanager
def nginx_in_front(upstream: str, extra: str = "", location: str | None = None) -> Iterator[str]:
    """Yield the base URL of an nginx that proxies to `upstream`; `extra` goes into its location block.

    `location` replaces that block with one of your own (its `proxy_pass` is used as written)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    base = Path(tempfile.mkdtemp(prefix="chatkit-nginx-"))
    port = free_port()
    location = location or STOCK_LOCATION.format(upstream=upstream, extra=extra)
    (base / "nginx.conf").write_text(CONFIG.format(dir=base, port=port, location=location))
    process = subprocess.Popen([binary, "-p", str(base), "-c", str(base / "nginx.conf")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not listen") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
