"""Each level overrides ChatKitServer.process() to skip a per-request schema build. These tests pin
the override to the SDK code it replaces, and show it never builds an adapter per request."""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any

import chatkit.server
import pytest
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit_protocol import create_thread
from level1.app import HelloServer
from level1.app import MemoryStore as Level1Store
from level2.server import AgentServer
from level2.store import MemoryStore as Level2Store
from level3.server import CHATKIT_REQUEST, ProductionServer

# sha256 of inspect.getsource(ChatKitServer.process) in openai-chatkit 1.6.5.
SDK_PROCESS_SHA256 = "ca6328c8189fdb02b19347d1126dc38937d499874ffef900d9230cf97166f9dd"


def test_the_sdk_process_is_the_one_the_overrides_replace() -> None:
    """If this fails, chatkit's process() changed: re-read it, carry the change into the three
    overrides (level1/app.py, level2/server.py, level3/server.py), then update the hash."""
    source = inspect.getsource(ChatKitServer.process)
    assert hashlib.sha256(source.encode()).hexdigest() == SDK_PROCESS_SHA256, source
    # The private methods the overrides call, with the arguments they pass.
    for name in ("_process_streaming", "_process_non_streaming"):
        assert list(inspect.signature(getattr(ChatKitServer, name)).parameters) == ["self", "request", "context"]


def _servers() -> list[ChatKitServer[Any]]:
    from level3.store import PostgresStore

    return [HelloServer(Level1Store()), AgentServer(Level2Store()), ProductionServer(PostgresStore(pool=None))]  # type: ignore[arg-type]


@pytest.mark.parametrize("server", _servers(), ids=["level1", "level2", "level3"])
async def test_process_builds_no_adapter_per_request(
    server: ChatKitServer[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw body (bytes or str) and an already parsed request all route without building a TypeAdapter."""

    def no_build(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("process() built a TypeAdapter for one request")

    monkeypatch.setattr(chatkit.server, "TypeAdapter", no_build)
    body = json.dumps(create_thread("hi")).encode()
    for request in (body, body.decode(), CHATKIT_REQUEST.validate_json(body)):
        result = await server.process(request, None)
        assert isinstance(result, StreamingResult)  # routed; the stream has not started, so no store call
    listing = await HelloServer(Level1Store()).process(b'{"type": "threads.list", "params": {}}', {})
    assert isinstance(listing, NonStreamingResult) and listing.json.startswith(b'{"data":[]')
