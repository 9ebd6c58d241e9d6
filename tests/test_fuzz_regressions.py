"""Every failure tests/test_fuzz.py found, as a plain test that names the input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from chatkit_protocol import CHATKIT, add_message, assistant_texts, create_thread, new_thread, request, stream
from level_apps import level_client
from scripted_model_server import ScriptedModel


@pytest.fixture
async def client(level_and_dsn: tuple[str, str], model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with level_client(*level_and_dsn) as client:
        yield client


async def test_an_at_mention_reaches_the_model_and_the_thread_keeps_working(
    client: httpx.AsyncClient, model: ScriptedModel
) -> None:
    """Found by the fuzzer: an input_tag part made simple_to_agent_input raise NotImplementedError after
    the message was stored, so this turn and every later turn of the thread ended in stream.error."""
    body = create_thread("weather for")
    tag = {"type": "input_tag", "id": "city_7", "text": "Oslo", "data": {"country": "NO"}, "interactive": False}
    body["params"]["input"]["content"].append(tag)
    events = await stream(client, body)
    assert not [e for e in events if e["type"] == "error"], events
    assert len(assistant_texts(events)) == 1
    again = await stream(client, add_message(events[0]["thread"]["id"], "and tomorrow?"))
    assert len(assistant_texts(again)) == 1 and not [e for e in again if e["type"] == "error"]
    if model.requests:  # Level 1 has no model
        assert "@Oslo (id: city_7)" in json.dumps(model.requests[0]["input"])


@pytest.mark.parametrize("kind", ["threads.custom_action", "threads.sync_custom_action"])
async def test_an_action_without_a_type_is_400(client: httpx.AsyncClient, kind: str) -> None:
    """Found by the fuzzer: chatkit's Action gives a missing "type" its TypeVar as the default, so
    {"action": {}} validates, and Level 3's check of the action type raised TypeError (a 500)."""
    thread_id, _ = await new_thread(client)
    response = await client.post(CHATKIT, json=request(kind, thread_id=thread_id, action={}))
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("not_enabled", "invalid_request")  # Levels 1-2: no actions at all
