"""Level 2: the agent's answer streams as deltas, is stored, and the model sees the last 20 items."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit_protocol import (
    add_message,
    assistant_texts,
    call,
    create_thread,
    new_thread,
    request,
    stream,
    stream_past_a_gate,
)
from level2.app import create_app
from level2.server import HISTORY_LIMIT
from live_server import serve_process
from scripted_model_server import ScriptedModel, text_output


@pytest.fixture
def client(asgi_client: Callable[..., httpx.AsyncClient], model: ScriptedModel) -> httpx.AsyncClient:
    return asgi_client(create_app())


def _texts(entry: dict[str, Any]) -> str:
    content = entry["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


async def test_text_arrives_as_item_updated_deltas(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script([text_output("Streaming works one word at a time.")])
    _, events = await new_thread(client, "hi")
    deltas = [
        e["update"]["delta"]
        for e in events
        if e["type"] == "thread.item.updated" and e["update"]["type"] == "assistant_message.content_part.text_delta"
    ]
    assert deltas == ["Streaming", " works", " one", " word", " at", " a", " time."]
    assert assistant_texts(events) == ["Streaming works one word at a time."]
    added = next(e for e in events if e["type"] == "thread.item.added")
    assert added["item"]["type"] == "assistant_message"


async def test_assistant_message_is_persisted(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, events = await new_thread(client, "remember me")
    stored = await call(client, request("items.list", thread_id=thread_id, order="asc"))
    assert [i["type"] for i in stored["data"]] == ["user_message", "assistant_message"]
    assert stored["data"][1]["content"][0]["text"] == "You said: remember me"
    assert stored["data"][1]["id"] == next(
        e["item"]["id"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    )


async def test_model_gets_the_last_20_items_in_order(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, _ = await new_thread(client, "turn 0")
    for n in range(1, 27):
        await stream(client, add_message(thread_id, f"turn {n}"))

    stored = await call(client, request("items.list", thread_id=thread_id, order="asc", limit=100))
    assert len(stored["data"]) == 54
    # The last request was made after "turn 26" was stored and before its answer existed.
    expected = [
        ("user" if i["type"] == "user_message" else "assistant", i["content"][0]["text"]) for i in stored["data"]
    ]
    expected = expected[:-1][-HISTORY_LIMIT:]
    sent = model.requests[-1]["input"]
    assert [(entry["role"], _texts(entry)) for entry in sent] == expected
    assert expected[0] == ("assistant", "You said: turn 16") and expected[-1] == ("user", "turn 26")


async def test_assistant_ids_are_unique_across_turns(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, _ = await new_thread(client, "same")
    for _ in range(4):
        await stream(client, add_message(thread_id, "same"))
    stored = await call(client, request("items.list", thread_id=thread_id, limit=100))
    ids = [i["id"] for i in stored["data"] if i["type"] == "assistant_message"]
    assert len(ids) == 5 and len(set(ids)) == 5


async def test_first_message_titles_the_thread(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, events = await new_thread(client, "  How do I   install\nthe CLI on an old laptop, please?")
    updated = [e["thread"]["title"] for e in events if e["type"] == "thread.updated"]
    assert updated == ["How do I install the CLI on an old lapto"]
    await stream(client, add_message(thread_id, "something else"))
    thread = await call(client, request("threads.get_by_id", thread_id=thread_id))
    assert thread["title"] == "How do I install the CLI on an old lapto"

    await call(client, request("threads.update", thread_id=thread_id, title="Mine"))
    events = await stream(client, add_message(thread_id, "and again"))
    assert "thread.updated" not in [e["type"] for e in events]  # a title, once set, is left alone
    assert (await call(client, request("threads.get_by_id", thread_id=thread_id)))["title"] == "Mine"


async def test_model_failure_is_an_error_event_not_an_http_error(
    client: httpx.AsyncClient, model: ScriptedModel
) -> None:
    model.fail_next(400)
    _, events = await new_thread(client, "hi")
    # The error ends the turn; the new title is saved and announced after it.
    assert [e["type"] for e in events][-2:] == ["error", "thread.updated"]
    assert events[-2] == {"type": "error", "code": "stream.error", "allow_retry": True}


async def test_instructions_and_model_name_reach_the_model(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    await new_thread(client, "hi")
    sent = model.requests[-1]
    assert sent["stream"] is True
    assert "concise" in sent["instructions"]
    assert sent["model"] == "gpt-5.6-luna"


async def test_uvicorn_streams_incrementally(model: ScriptedModel) -> None:
    """The first events reach the client while the model is still holding its answer back."""
    gate = model.hold_next()
    with serve_process("level2.app:app") as base_url:
        first, rest = await stream_past_a_gate(base_url, create_thread("hi"), gate)
    assert first["type"] == "thread.created"
    assert assistant_texts(rest) == ["You said: hi"]


@pytest.mark.parametrize(("env", "expected"), [({"CHAT_MODEL": "my-model"}, "my-model"), ({}, "sdk-default")])
def test_the_model_name_comes_from_the_projects_own_variable(env: dict[str, str], expected: str) -> None:
    """CHAT_MODEL first, then the SDK's OPENAI_DEFAULT_MODEL (here standing in for the SDK's default)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("CHAT_MODEL", "OPENAI_DEFAULT_MODEL")}
    probe = "import level2.server as s; print(s.assistant.model)"
    examples = Path(__file__).resolve().parent.parent / "examples"
    run_env = {**clean, "OPENAI_DEFAULT_MODEL": "sdk-default", **env}
    out = subprocess.run([sys.executable, "-c", probe], cwd=examples, env=run_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
