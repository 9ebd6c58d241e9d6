"""Support chat for ACME (uvicorn server:app). Written in a hurry last quarter; see bug_reports.md.

The user is the X-User header (the gateway in front sets it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from agents import Agent, Runner
from chatkit.agents import AgentContext, simple_to_agent_input, stream_agent_response
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata, ThreadStreamEvent, UserMessageItem
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

agent = Agent[AgentContext[dict[str, Any]]](name="Support", instructions="Help ACME customers. Be brief.")


def page_of(rows: list[Any], after: str | None, limit: int, order: str) -> Page[Any]:
    rows = sorted(rows, key=lambda r: r.created_at, reverse=order == "desc")
    start = [r.id for r in rows].index(after) + 1 if after else 0
    data = rows[start : start + limit]
    return Page(data=data, has_more=start + limit < len(rows))


class DictStore(Store[dict[str, Any]]):
    def __init__(self) -> None:
        self.threads: dict[str, ThreadMetadata] = {}
        self.items: dict[str, list[ThreadItem]] = {}

    async def load_thread(self, thread_id: str, context: dict[str, Any]) -> ThreadMetadata:
        if thread_id not in self.threads:
            raise NotFoundError(thread_id)
        return self.threads[thread_id]

    async def save_thread(self, thread: ThreadMetadata, context: dict[str, Any]) -> None:
        self.threads[thread.id] = ThreadMetadata.model_validate(thread.model_dump(exclude={"items"}))
        self.items.setdefault(thread.id, [])

    async def load_threads(self, limit: int, after: str | None, order: str, context: dict[str, Any]) -> Page[Any]:
        return page_of(list(self.threads.values()), after, limit, order)

    async def delete_thread(self, thread_id: str, context: dict[str, Any]) -> None:
        self.threads.pop(thread_id, None)
        self.items.pop(thread_id, None)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: dict[str, Any]
    ) -> Page[Any]:
        await self.load_thread(thread_id, context)
        return page_of(self.items[thread_id], after, limit, order)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: dict[str, Any]) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: dict[str, Any]) -> None:
        rows = [i for i in self.items[thread_id] if i.id != item.id]
        self.items[thread_id] = [*rows, item]

    async def load_item(self, thread_id: str, item_id: str, context: dict[str, Any]) -> ThreadItem:
        for item in self.items.get(thread_id, []):
            if item.id == item_id:
                return item
        raise NotFoundError(item_id)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: dict[str, Any]) -> None:
        self.items[thread_id] = [i for i in self.items[thread_id] if i.id != item_id]

    async def save_attachment(self, attachment: Attachment, context: dict[str, Any]) -> None:
        raise NotImplementedError

    async def load_attachment(self, attachment_id: str, context: dict[str, Any]) -> Attachment:
        raise NotImplementedError

    async def delete_attachment(self, attachment_id: str, context: dict[str, Any]) -> None:
        raise NotImplementedError


class SupportServer(ChatKitServer[dict[str, Any]]):
    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: dict[str, Any]
    ) -> AsyncIterator[ThreadStreamEvent]:
        history = await self.store.load_thread_items(thread.id, None, 20, "asc", context)
        agent_context = AgentContext(thread=thread, store=self.store, request_context=context)
        result = Runner.run_streamed(agent, await simple_to_agent_input(history.data), context=agent_context)
        async for event in stream_agent_response(agent_context, result):
            yield event


server = SupportServer(DictStore())
app = FastAPI()
started = datetime.now()


@app.post("/chatkit")
async def chatkit(request: Request) -> Response:
    context = {"user_id": request.headers.get("x-user", "anonymous")}
    result = await server.process(await request.body(), context)
    if isinstance(result, StreamingResult):
        return StreamingResponse(result, media_type="text/event-stream")
    return JSONResponse(result.json)
