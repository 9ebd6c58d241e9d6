"""Tests that travel with the Level 2 example: no network, no key, the real openai client.

In your project: `pip install pytest pytest-asyncio httpx` (openai 3.x brings httpx2, not httpx), put
scripts/scripted_model_server.py in the folder that holds this package (pytest puts that folder on
sys.path), configure pytest-asyncio as testing.md shows (`asyncio_mode = "auto"`, session loop scopes),
then run `python -m pytest` from that folder.
"""

from __future__ import annotations

# --8<-- [start:offline-env]
import json
import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from scripted_model_server import ScriptedModel, serve_in_background


@pytest.fixture(scope="session")
def model() -> Iterator[ScriptedModel]:
    """An offline Responses API; the app's openai client finds it through OPENAI_BASE_URL."""
    with serve_in_background() as (base_url, scripted):
        saved = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_AGENTS_DISABLE_TRACING")}
        os.environ.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="offline", OPENAI_AGENTS_DISABLE_TRACING="1")
        yield scripted
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --8<-- [end:offline-env]


# --8<-- [start:client]
@pytest.fixture
async def client(model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    from .app import create_app  # after the environment points at the offline model

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def events(response: httpx.Response) -> list[dict]:
    """SSE frames are `data: {json}` lines; there are no event: lines and no [DONE]."""
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def message(text: str) -> dict:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


# --8<-- [end:client]


# --8<-- [start:tests]
async def test_answer_streams_and_is_stored(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script([{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}])  # fmt: skip
    response = await client.post("/chatkit", json={"type": "threads.create", "params": {"input": message("hi")}})
    sent = events(response)
    deltas = [e["update"]["delta"] for e in sent if e["type"] == "thread.item.updated" and "delta" in e["update"]]
    assert deltas == ["Hi", " there"]

    thread_id = sent[0]["thread"]["id"]
    items = await client.post("/chatkit", json={"type": "items.list", "params": {"thread_id": thread_id}})
    assert [i["type"] for i in items.json()["data"]] == ["assistant_message", "user_message"]  # newest first


async def test_model_failure_is_an_error_event(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.fail_next(400)
    response = await client.post("/chatkit", json={"type": "threads.create", "params": {"input": message("hi")}})
    assert response.status_code == 200  # the stream had started: errors arrive in-band
    # The error is the last item event; a thread.updated (the new title) may still follow it.
    assert [e["type"] for e in events(response) if e["type"] != "thread.updated"][-1] == "error"


async def test_bad_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/chatkit", json={"action": "send_message", "content": "hi"})
    assert response.status_code == 400 and "type" in response.json()["message"]


# --8<-- [end:tests]
