"""Shared fixtures: an offline model server on loopback, and HTTP clients for the example apps.

The environment is set before any example is imported, the way a deployment sets it: the real
`openai` client inside the Agents SDK reaches the scripted model server through OPENAI_BASE_URL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from live_server import free_port, serve
from scripted_model_server import ScriptedModel
from scripted_model_server import create_app as create_model_app

MODEL_PORT = free_port()
os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{MODEL_PORT}/v1"
os.environ["OPENAI_API_KEY"] = "sk-offline-not-a-real-key"
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # belt and braces: never export traces from tests
os.environ.pop("OPENAI_ORG_ID", None)
os.environ.pop("OPENAI_PROJECT_ID", None)


@pytest.fixture(scope="session")
def model_server() -> Iterator[ScriptedModel]:
    state = ScriptedModel()
    with serve(create_model_app(state), port=MODEL_PORT):
        yield state


@pytest.fixture
def model(model_server: ScriptedModel) -> Iterator[ScriptedModel]:
    """The scripted model, empty at the start of each test."""
    model_server.reset()
    yield model_server
    model_server.reset()


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def asgi_client() -> AsyncIterator[ClientFactory]:
    """asgi_client(app) -> an httpx client that drives the app in-process over HTTP semantics."""
    clients: list[httpx.AsyncClient] = []

    def make(app: Any, **kwargs: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
