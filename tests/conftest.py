"""Shared fixtures: an offline model server on loopback, and HTTP clients for the example apps.

The environment is set before any example is imported, the way a deployment sets it: the real
`openai` client inside the Agents SDK reaches the scripted model server through OPENAI_BASE_URL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from live_server import free_port
from local_postgres import fresh_database, throwaway_cluster
from scripted_model_server import ScriptedModel, serve_in_background

MODEL_PORT = free_port()
os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{MODEL_PORT}/v1"
os.environ["OPENAI_API_KEY"] = "sk-offline-not-a-real-key"
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # belt and braces: never export traces from tests
os.environ.pop("OPENAI_ORG_ID", None)
os.environ.pop("OPENAI_PROJECT_ID", None)


@pytest.fixture(scope="session")
def model_server() -> Iterator[ScriptedModel]:
    with serve_in_background(port=MODEL_PORT) as (_, model):
        yield model


@pytest.fixture
def model(model_server: ScriptedModel) -> Iterator[ScriptedModel]:
    """The scripted model, empty at the start of each test."""
    model_server.reset()
    yield model_server
    model_server.reset()


@pytest.fixture
def paced_model(model: ScriptedModel) -> Iterator[ScriptedModel]:
    """The offline model with 20 ms between streamed events, as a real model paces its tokens."""
    model.delay = 0.02
    yield model
    model.delay = 0.0


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


# PostgreSQL: one real server per session (a throwaway cluster, or TEST_DATABASE_URL), one database per test.
@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """TEST_DATABASE_URL, else a throwaway cluster. Missing PostgreSQL binaries fail the tests: never a skip."""
    if external := os.environ.get("TEST_DATABASE_URL"):
        yield external
        return
    with ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_cluster())
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield url


@pytest.fixture
async def pg_dsn(database_url: str) -> AsyncIterator[str]:
    """The DSN of a new, empty database for this test; dropped (connections and all) afterwards."""
    async with fresh_database(database_url) as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def level3_instances(database_url: str) -> AsyncIterator[tuple[list[str], str]]:
    """Two Level 3 instances under real uvicorn processes on one database: (their URLs, its DSN).

    Shared by the tests that need a real server (a proxy in front, a dropped connection, scale-out),
    because each process takes seconds to start. Tokens are signed with test_level3.SECRET.
    """
    from live_server import serve_process
    from test_level3 import SECRET

    async with fresh_database(database_url) as dsn:
        env = {"DATABASE_URL": dsn, "JWT_SECRET": SECRET}
        with ExitStack() as stack, ThreadPoolExecutor(2) as starter:  # the two start side by side
            servers = [serve_process("level3.app:app", env=env) for _ in range(2)]
            yield list(starter.map(stack.enter_context, servers)), dsn


@pytest.fixture(params=["Level 1", "Level 2", "Level 3"])
def level_and_dsn(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Each example level in turn, with a fresh database for Level 3 only (see tests/level_apps.py)."""
    return request.param, request.getfixturevalue("pg_dsn") if request.param == "Level 3" else ""
