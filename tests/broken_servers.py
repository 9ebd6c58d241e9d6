"""Deliberately broken ChatKit servers, one defect each, that scripts/chatkit_check.py must catch.

`create_app(None)` is the control: Level 2's store and agent, users from an `X-User` header, and an
endpoint that refuses what it doesn't implement. `create_app(defect)` breaks exactly one thing, the
way users' servers break (SKILL.md's symptom table).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, OpenAIChatCompletionsModel, Runner
from agents.models.interface import Model
from chatkit.agents import AgentContext, simple_to_agent_input, stream_agent_response
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import Page, ThreadMetadata, ThreadStreamEvent, UserMessageItem
from fastapi import FastAPI, Request
from fastapi.responses import Response
from level2.app import describe, error_response, guarded_stream
from level2.chat_completions import _plain_history
from level2.server import CHATKIT_REQUEST, AgentServer, assistant, title_from
from level2.store import MemoryStore
from openai import AsyncOpenAI
from pydantic import ValidationError

DEFECTS = (
    "asc_history",  # history loaded with order="asc": the model sees the first 20 items
    "has_more_without_after",  # pages say has_more=true with after=null
    "no_user_scoping",  # the store ignores the context: every user sees every thread
    "buffered_stream",  # the endpoint collects the whole stream before it answers
    "500_on_empty_object",  # process() without the 400 mapping: `{}` is a 500
    "fake_ids",  # a Chat Completions model without the id fix: every answer is __fake_id__
)
NOT_HERE = {
    "attachments.create",
    "attachments.delete",
    "input.transcribe",
    "items.feedback",
    "threads.custom_action",
    "threads.sync_custom_action",
    "threads.add_structured_input",
}


class UnscopedStore(MemoryStore):
    @staticmethod
    def _owner(context: dict[str, Any]) -> str:
        return ""  # the defect: one owner for everybody


class NoCursorStore(MemoryStore):
    async def load_threads(
        self, limit: int, after: str | None, order: str, context: dict[str, Any]
    ) -> Page[ThreadMetadata]:
        page = await super().load_threads(limit, after, order, context)
        return page.model_copy(update={"after": None})  # the defect

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: dict[str, Any]
    ) -> Page[Any]:
        page = await super().load_thread_items(thread_id, after, limit, order, context)
        return page.model_copy(update={"after": None})  # the defect


class IdlessChatCompletionsModel(Model):
    """Earlier answers sent as text (so turn 2 works), but the SDK's `__fake_id__` left in place."""

    def __init__(self) -> None:
        self.inner = OpenAIChatCompletionsModel(model="scripted", openai_client=AsyncOpenAI())

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.inner.get_response(system_instructions, _plain_history(input), *args, **kwargs)

    async def stream_response(  # type: ignore[override]
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for event in self.inner.stream_response(system_instructions, _plain_history(input), *args, **kwargs):
            yield event


class ConfigurableServer(AgentServer):
    """Level 2's respond() with the agent and the history order as settings."""

    def __init__(self, store: MemoryStore, agent: Agent[Any], order: str) -> None:
        super().__init__(store)
        self.agent, self.order = agent, order

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: dict[str, Any]
    ) -> AsyncIterator[ThreadStreamEvent]:
        if thread.title is None and input_user_message is not None:
            thread.title = title_from(input_user_message)
        page = await self.store.load_thread_items(thread.id, None, 20, self.order, context)
        rows = page.data if self.order == "asc" else list(reversed(page.data))
        input_items = await simple_to_agent_input(rows)
        agent_context = AgentContext(thread=thread, store=self.store, request_context=context)
        result = Runner.run_streamed(self.agent, input_items, context=agent_context)
        async for event in stream_agent_response(agent_context, result):
            yield event


def create_app(defect: str | None = None) -> FastAPI:
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}")
    store = {"no_user_scoping": UnscopedStore, "has_more_without_after": NoCursorStore}.get(defect or "", MemoryStore)()
    agent = assistant.clone(model=IdlessChatCompletionsModel()) if defect == "fake_ids" else assistant
    server = ConfigurableServer(store, agent, "asc" if defect == "asc_history" else "desc")
    app = FastAPI()

    @app.post("/chatkit")
    async def chatkit_endpoint(request: Request) -> Response:
        user = request.headers.get("x-user")
        if not user:
            return error_response(401, "unauthorized", "send an X-User header")
        body = await request.body()
        if defect != "500_on_empty_object":
            try:
                parsed = CHATKIT_REQUEST.validate_json(body)
            except ValidationError as exc:
                return error_response(400, "invalid_request", describe(exc))
            if parsed.type in NOT_HERE:
                return error_response(400, "not_enabled", f"{parsed.type} is not enabled on this server")
            if (getattr(parsed.params, "limit", None) or 1) < 1:
                return error_response(400, "invalid_request", "limit must be at least 1")
        try:
            result = await server.process(body, context={"user_id": user})
        except NotFoundError as exc:
            return error_response(404, "not_found", str(exc))
        if not isinstance(result, StreamingResult):
            return Response(content=result.json, media_type="application/json")
        if defect != "buffered_stream":
            return await guarded_stream(result)
        try:
            whole = b"".join([chunk async for chunk in result])  # the defect: wait for the end
        except NotFoundError as exc:
            return error_response(404, "not_found", str(exc))
        except ValueError as exc:
            return error_response(409, "conflict", str(exc))
        if not whole:  # a retry of an unknown item streams nothing
            return error_response(404, "not_found", "nothing to answer")
        return Response(content=whole, media_type="text/event-stream")

    return app
