"""Level 3 attachments over HTTP against a real PostgreSQL: both upload strategies, limits, previews,
isolation, deletion, cleanup, and the model receiving the bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from chatkit_protocol import CHATKIT, request, user_input
from level3.app import create_app
from scripted_model_server import ScriptedModel
from test_level3 import auth, running, settings_for


@pytest.fixture
async def client(pg_dsn: str, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings_for(pg_dsn))) as client:
        yield client


def create_with(attachments: list[str], text: str = "look") -> dict[str, Any]:
    return {"type": "threads.create", "params": {"input": {**user_input(text), "attachments": attachments}}}


async def thread_count(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    listed = await client.post(CHATKIT, json=request("threads.list"), headers=headers)
    return len(listed.json()["data"])


async def test_threads_create_with_an_unknown_attachment_is_404_and_creates_no_thread(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(CHATKIT, json=create_with(["atc_does_not_exist"]))
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    assert await thread_count(client) == 0
