"""The Level 2 agent and the ChatKitServer that streams its answers."""

from __future__ import annotations

# --8<-- [start:imports]
import os
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, Runner
from agents.models import get_default_model
from chatkit.agents import AgentContext, ThreadItemConverter, stream_agent_response
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import (
    ChatKitReq,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTagContent,
    is_streaming_req,
)
from openai.types.responses import ResponseInputContentParam, ResponseInputTextParam
from pydantic import TypeAdapter

# --8<-- [end:imports]
# --8<-- [start:agent]
# The model name: CHAT_MODEL (your project's own variable: rename it, and put your project's default in
# place of get_default_model()), else OPENAI_DEFAULT_MODEL (the Agents SDK's variable), else the SDK's
# default. The key is read on the first request, not at import.
assistant = Agent[AgentContext[dict[str, Any]]](
    name="Assistant",
    instructions="You are a concise, friendly assistant. Answer in plain sentences.",
    model=os.environ.get("CHAT_MODEL") or get_default_model(),
)
# --8<-- [end:agent]

# --8<-- [start:title]
TITLE_LENGTH = 40


def title_from(message: UserMessageItem) -> str:
    """A thread title from a message: its text parts, whitespace collapsed, cut to 40 characters."""
    text = " ".join(" ".join(part.text for part in message.content).split())
    return text[:TITLE_LENGTH] or "New chat"


# --8<-- [end:title]
CHATKIT_REQUEST = TypeAdapter(ChatKitReq)  # build once: building one costs milliseconds of CPU


# --8<-- [start:converter]
class ToModel(ThreadItemConverter):
    """Thread items to model input. simple_to_agent_input() raises on an @-mention (an input_tag part),
    after the message is stored: that thread would fail on every later turn. Give the model the tag."""

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> ResponseInputContentParam:
        return ResponseInputTextParam(type="input_text", text=f"@{tag.text} (id: {tag.id})")


TO_MODEL = ToModel()
# --8<-- [end:converter]

# --8<-- [start:history]
HISTORY_LIMIT = 20  # items of context sent to the model on every turn


class AgentServer(ChatKitServer[dict[str, Any]]):
    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,  # None after a client tool output
        context: dict[str, Any],
    ) -> AsyncIterator[ThreadStreamEvent]:
        if thread.title is None and input_user_message is not None:
            # Changing `thread` is enough: the server saves it and sends thread.updated.
            thread.title = title_from(input_user_message)

        # The user message is already stored. "desc" + reversed() = the LAST 20 items,
        # oldest first; order="asc" would send the FIRST 20 of a long thread.
        page = await self.store.load_thread_items(thread.id, None, HISTORY_LIMIT, "desc", context)
        input_items = await TO_MODEL.to_agent_input(list(reversed(page.data)))

        agent_context = AgentContext(thread=thread, store=self.store, request_context=context)
        result = Runner.run_streamed(assistant, input_items, context=agent_context)
        async for event in stream_agent_response(agent_context, result):
            yield event

    # --8<-- [end:history]
    # --8<-- [start:process]
    async def process(
        self, request: str | bytes | bytearray | ChatKitReq, context: dict[str, Any]
    ) -> StreamingResult | NonStreamingResult:
        """The SDK's process(), minus its cost: it builds TypeAdapter(ChatKitReq) on every call (~6 ms
        of CPU per request). This one reuses an adapter built once, and takes a request the endpoint
        already parsed. tests/test_sdk_pins.py fails when the SDK's process() changes."""
        if isinstance(request, str | bytes | bytearray):
            request = CHATKIT_REQUEST.validate_json(request)
        if is_streaming_req(request):
            return StreamingResult(self._process_streaming(request, context))
        return NonStreamingResult(await self._process_non_streaming(request, context))

    # --8<-- [end:process]
