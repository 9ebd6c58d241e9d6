"""The floors the examples are measured against, each a FastAPI app on POST /chatkit.

    bare_sse      FastAPI streaming N small SSE events: the transport's cost per event.
    sdk_hello     the SDK's hello world: a ChatKitServer whose respond() yields one message, served
                  the way chatkit's docs do (process() as shipped, the raw body, no checks).
    agents_bare   the Agents SDK alone: Runner.run_streamed on the same model and history length,
                  each raw event sent as one SSE event, no ChatKit.

Run with uvicorn from a folder where `level1` imports (the examples folder on PYTHONPATH).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from agents import Agent, Runner, set_tracing_disabled
from agents.models import get_default_model
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ThreadItemDoneEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from level1.app import MemoryStore

set_tracing_disabled(True)

bare_sse = FastAPI()
# About the size of a thread.item.updated text delta event.
_EVENT = (
    b'data: {"type":"thread.item.updated","item_id":"msg_0123456789abcdef0123456789abcdef",'
    b'"update":{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":" word"}}\n\n'
)


@bare_sse.post("/chatkit")
async def stream_events(request: Request) -> Response:
    count = int((await request.json())["events"])

    async def events() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield _EVENT

    return StreamingResponse(events(), media_type="text/event-stream")


class HelloServer(ChatKitServer[dict[str, Any]]):
    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: dict[str, Any]
    ) -> AsyncIterator[ThreadStreamEvent]:
        yield ThreadItemDoneEvent(
            item=AssistantMessageItem(
                id=self.store.generate_item_id("message", thread, context),
                thread_id=thread.id,
                created_at=datetime.now(),
                content=[AssistantMessageContent(text="Hello, world!")],
            )
        )


sdk_hello = FastAPI()
_hello = HelloServer(MemoryStore())


@sdk_hello.post("/chatkit")
async def hello(request: Request) -> Response:
    result = await _hello.process(await request.body(), {})
    if isinstance(result, StreamingResult):
        return StreamingResponse(result, media_type="text/event-stream")
    return Response(content=result.json, media_type="application/json")


agents_bare = FastAPI()
_agent: Agent[Any] = Agent(name="Assistant", instructions="You are concise.", model=get_default_model())


def history(turns: int, text: str) -> list[Any]:
    """`turns` earlier exchanges as Responses input items, then the new user message."""
    items: list[Any] = []
    for n in range(turns):
        items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"turn {n}"}]})
        items.append(
            {
                "type": "message",
                "role": "assistant",
                "id": f"msg_{n}",
                "status": "completed",
                "content": [{"type": "output_text", "text": f"You said: turn {n}", "annotations": []}],
            }
        )
    items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    return items


@agents_bare.post("/chatkit")
async def run_agent(request: Request) -> Response:
    body = await request.json()
    result = Runner.run_streamed(_agent, history(int(body.get("history_turns", 0)), body["text"]))

    async def events() -> AsyncIterator[bytes]:
        async for event in result.stream_events():
            if event.type == "raw_response_event":
                yield b"data: " + json.dumps({"type": event.data.type}).encode() + b"\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
