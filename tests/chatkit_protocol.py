"""Request bodies and SSE parsing for the ChatKit wire protocol, as a client sends and reads them."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

CHATKIT = "/chatkit"


def user_input(text: str) -> dict[str, Any]:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


def create_thread(text: str) -> dict[str, Any]:
    return {"type": "threads.create", "params": {"input": user_input(text)}}


def add_message(thread_id: str, text: str) -> dict[str, Any]:
    return {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input(text)}}


def request(kind: str, **params: Any) -> dict[str, Any]:
    return {"type": kind, "params": params}


def sse_events(body: str) -> list[dict[str, Any]]:
    """Every `data:` frame of an SSE body, decoded."""
    return [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: ")]


def assistant_texts(events: list[dict[str, Any]]) -> list[str]:
    return [
        "".join(part["text"] for part in e["item"]["content"])
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    ]


async def stream(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    """POST a streaming request; assert it streamed; return its events."""
    response = await client.post(CHATKIT, json=body, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


async def call(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> Any:
    """POST a JSON request; assert 200 JSON; return the decoded body."""
    response = await client.post(CHATKIT, json=body, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


async def new_thread(client: httpx.AsyncClient, text: str = "hello", **kwargs: Any) -> tuple[str, list[dict[str, Any]]]:
    events = await stream(client, create_thread(text), **kwargs)
    assert events[0]["type"] == "thread.created", events
    return events[0]["thread"]["id"], events


async def stream_past_a_gate(
    base_url: str, body: dict[str, Any], gate: threading.Event, **kwargs: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """POST to a live server whose reply is held behind `gate`; return the first event and the rest.

    The first event must arrive while the gate is still closed: that is incremental delivery, shown
    without a timing assert. Then the gate opens and the rest of the stream is read.
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=30, **kwargs) as http:
        async with http.stream("POST", CHATKIT, json=body) as response:
            assert response.status_code == 200
            frames = (json.loads(line[6:]) async for line in response.aiter_lines() if line.startswith("data: "))
            first = await anext(frames)
            assert not gate.is_set(), "the first event arrived only after the reply was released"
            gate.set()
            return first, [event async for event in frames]
