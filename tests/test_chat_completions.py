"""Level 2 on a Chat Completions model: unique ids, and a second turn that works."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import level2.server
import pytest
from agents import function_tool
from chatkit_protocol import add_message, assistant_texts, call, new_thread, request, stream
from level2.app import create_app
from level2.chat_completions import chat_completions_model
from scripted_model_server import ScriptedModel, function_call_output


@function_tool
def order_status(order_id: str) -> str:
    """Look up an order."""
    return f"order {order_id} has shipped"


@pytest.fixture
def client(
    asgi_client: Callable[..., httpx.AsyncClient], model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[httpx.AsyncClient]:
    # What a user writes in server.py: the same agent, a Chat Completions model behind it.
    agent = level2.server.assistant.clone(model=chat_completions_model("llama3.1"), tools=[order_status])
    monkeypatch.setattr(level2.server, "assistant", agent)
    yield asgi_client(create_app())


async def test_every_answer_keeps_its_own_item(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, _ = await new_thread(client, "one")
    for text in ("two", "three"):
        events = await stream(client, add_message(thread_id, text))
        assert assistant_texts(events) == [f"You said: {text}"]  # turn 2+ used to end in stream.error
    stored = await call(client, request("items.list", thread_id=thread_id, order="asc"))
    answers = [i for i in stored["data"] if i["type"] == "assistant_message"]
    assert [a["content"][0]["text"] for a in answers] == ["You said: one", "You said: two", "You said: three"]
    assert len({a["id"] for a in answers}) == 3 and "__fake_id__" not in {a["id"] for a in answers}
    # The model got the earlier answers as plain assistant text, over /v1/chat/completions.
    history = model.requests[-1]["messages"]
    assert {"role": "assistant", "content": "You said: two"} in history


async def test_tool_calls_work_through_chat_completions(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script([function_call_output("order_status", {"order_id": "A17"})])
    _, events = await new_thread(client, "Where is my order A17?")
    assert assistant_texts(events) == ["Tool result: order A17 has shipped"]
    assert model.requests[-1]["messages"][-1]["role"] == "tool"


def test_the_model_is_made_at_import_without_a_key() -> None:
    """server.py calls chat_completions_model() at import: the app must still start without OPENAI_API_KEY."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    probe = "from level2.chat_completions import chat_completions_model; chat_completions_model('llama3.1')"
    examples = Path(__file__).resolve().parent.parent / "examples"
    out = subprocess.run([sys.executable, "-c", probe], cwd=examples, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
