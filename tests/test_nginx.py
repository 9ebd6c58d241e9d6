"""Level 3 behind a real nginx (the Debian package; `make test` installs it), configured with the
`location` block that references/production.md recommends, copied from the doc at test time.

Each nginx is a throwaway (tests/nginx_proxy.py): its own config, pid file, logs and temp directories
in a temp dir, on a free loopback port, stopped at the end. The http block around the location turns
gzip on for text/event-stream, the setting that makes buffering worst: the documented block must undo it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit_protocol import CHATKIT, assistant_texts, create_thread, stream_past_a_gate
from nginx_proxy import nginx_in_front
from scripted_model_server import ScriptedModel
from test_level3 import auth

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED_UPSTREAM = "proxy_pass http://127.0.0.1:8000;"
GRACE = 1.0  # seconds a buffering proxy gets to pass on events the app has already sent


def documented_location() -> str:
    """The nginx block under "Streaming through proxies" in production.md, verbatim."""
    doc = (ROOT / "references/production.md").read_text()
    section = doc.split("## Streaming through proxies", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert found, "production.md lost its nginx block"
    block = found.group(1)
    assert DOCUMENTED_UPSTREAM in block
    return block


@contextmanager
def nginx(location: str, upstream: str) -> Iterator[str]:
    """nginx (tests/nginx_proxy.py) in front of `upstream` with this location block; yield its base URL."""
    with nginx_in_front(upstream, location=location.replace(DOCUMENTED_UPSTREAM, f"proxy_pass {upstream};")) as url:
        yield url


@pytest.fixture
def level3_url(level3_instances: tuple[list[str], str]) -> str:
    return level3_instances[0][0]


async def test_the_documented_block_streams_incrementally(level3_url: str, model: ScriptedModel) -> None:
    gate = model.hold_next()
    with nginx(documented_location(), level3_url) as proxy:
        first, rest = await stream_past_a_gate(proxy, create_thread("hi"), gate, headers=auth())
    assert first["type"] == "thread.created"
    assert assistant_texts(rest) == ["You said: hi"]


async def test_the_apps_header_alone_turns_buffering_off(level3_url: str, model: ScriptedModel) -> None:
    """Without `proxy_buffering off` and `gzip off`, nginx still streams: Level 3 sends `X-Accel-Buffering: no`."""
    location = documented_location().replace("proxy_buffering off;", "").replace("gzip off;", "")
    gate = model.hold_next()
    with nginx(location, level3_url) as proxy:
        first, _ = await stream_past_a_gate(proxy, create_thread("hi"), gate, headers=auth())
    assert first["type"] == "thread.created"


# An app that does not send X-Accel-Buffering (ignoring the header stages one), behind nginx's default.
BUFFERING_ON = "proxy_buffering on;\n    proxy_ignore_headers X-Accel-Buffering;"


async def test_buffering_left_on_with_gzip_holds_every_event_until_the_turn_ends(
    level3_url: str, model: ScriptedModel
) -> None:
    """The failure production.md warns about, staged: buffering on, gzip on for text/event-stream, no
    header to lift them. Nothing reaches the client while the model is held, although the app has sent
    its first events; all of them come at once when the turn ends."""
    location = documented_location().replace("proxy_buffering off;", BUFFERING_ON).replace("gzip off;", "")
    gate = model.hold_next()
    with nginx(location, level3_url) as proxy:
        arrived_while_held, events = await first_event_while_held(proxy, gate, model)
    assert not arrived_while_held, "buffered and gzipped, yet the first event came through while the model was held"
    assert events[0]["type"] == "thread.created" and assistant_texts(events) == ["You said: hi"]


async def test_buffering_on_without_gzip_still_streams(level3_url: str, model: ScriptedModel) -> None:
    """What holds the events is the pair: nginx 1.22 with buffering on but gzip off passes each on."""
    location = documented_location().replace("proxy_buffering off;", BUFFERING_ON)
    gate = model.hold_next()
    with nginx(location, level3_url) as proxy:
        first, _ = await stream_past_a_gate(proxy, create_thread("hi"), gate, headers=auth())
    assert first["type"] == "thread.created"


async def first_event_while_held(
    base_url: str, gate: threading.Event, model: ScriptedModel
) -> tuple[bool, list[dict[str, Any]]]:
    """Whether any event reached the client before the gate opened, and every event of the stream.

    By the time the model is asked, the app has written thread.created and stream_options to its socket.
    A proxy that passes them on delivers them within GRACE; this one gets GRACE before the gate opens. A
    slow machine can only make this check weaker (nothing yet, buffered or not), never fail it wrongly.
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=auth()) as http:
        received: list[dict[str, Any]] = []
        first_seen = asyncio.Event()

        async def read() -> None:
            async with http.stream("POST", CHATKIT, json=create_thread("hi")) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        received.append(json.loads(line[len("data: ") :]))
                        first_seen.set()

        reader = asyncio.create_task(read())
        for _ in range(1500):  # until the model is asked (30 s at most)
            if model.requests:
                break
            await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(first_seen.wait(), GRACE)
        except TimeoutError:
            pass
        arrived_while_held = bool(received)
        gate.set()
        await asyncio.wait_for(reader, 30)
    return arrived_while_held, received
