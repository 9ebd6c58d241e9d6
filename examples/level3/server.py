"""The Level 3 ChatKitServer: agent turns, widget actions (streaming and sync), client tool results."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
from agents import Runner, UserError
from chatkit.actions import Action
from chatkit.agents import AgentContext, ThreadItemConverter, stream_agent_response
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    AudioInput,
    ChatKitReq,
    ClientToolCallItem,
    FeedbackKind,
    HiddenContextItem,
    SyncCustomActionResponse,
    ThreadItem,
    ThreadItemDoneEvent,
    ThreadItemReplacedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    TranscriptionResult,
    UserMessageItem,
    UserMessageTagContent,
    WidgetItem,
    is_streaming_req,
)
from openai.types.responses import ResponseInputContentParam, ResponseInputTextParam
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from .attachments import AttachmentConverter, PostgresAttachmentStore
from .context import RequestContext
from .dictation import Dictation
from .errors import not_enabled
from .tools import build_agent, lookup_forecast
from .widgets.forecast import forecast_widget

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 20
TITLE_LENGTH = 40
CHATKIT_REQUEST = TypeAdapter(ChatKitReq)  # build once: building one costs milliseconds of CPU


def title_from(message: UserMessageItem) -> str:
    """A thread title from a message: its text parts, whitespace collapsed, cut to 40 characters."""
    text = " ".join(" ".join(part.text for part in message.content).split())
    return text[:TITLE_LENGTH] or "New chat"


# --8<-- [start:action-types]
STREAMING_ACTIONS = frozenset({"forecast.subscribe"})  # threads.custom_action types that action() handles
SYNC_ACTIONS = frozenset({"forecast.units"})  # threads.sync_custom_action types that sync_action() handles
# --8<-- [end:action-types]


# --8<-- [start:action-payloads]
class SubscribePayload(BaseModel):
    """forecast.subscribe: payloads come from the browser, so they are untrusted input."""

    city: str = Field(min_length=1, max_length=100)
    units: Literal["C", "F"] = "C"


class UnitsPayload(SubscribePayload):
    """forecast.units (a sync action): switch the card between °C and °F."""

    subscribed: bool = False


# --8<-- [end:action-payloads]


# --8<-- [start:clicked-card]
def offered_payloads(sender: WidgetItem, action_type: str) -> list[Any]:
    """Every payload the stored card offers for `action_type`: none once it no longer shows that button.

    The server built and stored the card itself, so compare each click with it: a second or stale click
    (the card changed since it was rendered) and a payload forged for another record change nothing.
    A card (a list, say) may show several buttons of one type: a click must match one of them."""
    offered, pending = [], [sender.widget.model_dump(mode="json", exclude_none=True)]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == action_type and "payload" in node:
                offered.append(node["payload"])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return offered


# --8<-- [end:clicked-card]


# --8<-- [start:thread-status]
def refuse_unless_active(thread: ThreadMetadata) -> None:
    """A locked or closed thread only disables the composer in the UI; the server must refuse too."""
    if thread.status.type != "active":
        raise CustomStreamError(thread.status.reason or f"This conversation is {thread.status.type}.")


# --8<-- [end:thread-status]


# --8<-- [start:client-output]
class LocationResult(BaseModel):
    """What get_user_location's browser side must answer."""

    city: str = Field(min_length=1, max_length=100)


def checked_client_output(call: ClientToolCallItem) -> ClientToolCallItem:
    """A client tool's output comes from the browser: untrusted. The model gets it only if it fits."""
    if call.name != "get_user_location":
        return call
    try:
        LocationResult.model_validate(call.output)
    except ValidationError:
        logger.warning("invalid %s output from the client", call.name)
        return call.model_copy(update={"output": {"error": "the browser sent no usable location"}})
    return call


# --8<-- [end:client-output]


# --8<-- [start:converter]
class MentionsAsText(ThreadItemConverter):
    """Thread items to model input. The default converter raises on an @-mention (an input_tag part),
    after the message is stored: that thread would fail on every later turn. Give the model the tag."""

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> ResponseInputContentParam:
        return ResponseInputTextParam(type="input_text", text=f"@{tag.text} (id: {tag.id})")


class AttachmentsAndMentions(MentionsAsText, AttachmentConverter):
    """Images and files from PostgreSQL (attachments.py), and @-mentions as text."""


# --8<-- [end:converter]


# --8<-- [start:feedback-store]
@runtime_checkable
class FeedbackStore(Protocol):
    """A store that keeps items.feedback (PostgresStore does); with any other, feedback is not_enabled."""

    async def save_feedback(
        self, thread_id: str, item_ids: list[str], kind: FeedbackKind, context: RequestContext
    ) -> None: ...


# --8<-- [end:feedback-store]


class ProductionServer(ChatKitServer[RequestContext]):
    # --8<-- [start:server-init]
    def __init__(
        self,
        store: Store[RequestContext],
        attachments: PostgresAttachmentStore | None = None,  # None: attachments.* answer 400 not_enabled
        dictation: Dictation | None = None,  # None: input.transcribe answers 400 not_enabled
        model_timeout: float = 120.0,
    ) -> None:
        super().__init__(store, attachment_store=attachments)
        self.attachments = attachments
        self.dictation = dictation
        self.agent = build_agent(model_timeout)

    async def transcribe(self, audio_input: AudioInput, context: RequestContext) -> TranscriptionResult:
        if self.dictation is None:
            raise not_enabled("dictation requests")
        return await self.dictation.transcribe(audio_input)

    # --8<-- [end:server-init]

    # --8<-- [start:process]
    async def process(
        self, request: str | bytes | bytearray | ChatKitReq, context: RequestContext
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

    # --8<-- [start:respond]
    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,  # None after threads.add_client_tool_output
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        logger.info("turn starts (%s)", "user message" if input_user_message else "client tool output")
        refuse_unless_active(thread)
        if thread.title is None and input_user_message is not None:
            thread.title = title_from(input_user_message)  # saved and sent as thread.updated by the server
        page = await self.store.load_thread_items(thread.id, None, HISTORY_LIMIT, "desc", context)
        history = list(reversed(page.data))
        if input_user_message is None and history and isinstance(history[-1], ClientToolCallItem):
            checked = checked_client_output(history[-1])
            if checked is not history[-1]:
                history[-1] = checked
                yield ThreadItemReplacedEvent(item=checked)  # stored: later turns see the checked form
        # Attachments reach the model through the converter: images, PDFs and text files, read from PostgreSQL.
        converter = AttachmentsAndMentions(self.attachments, context) if self.attachments else MentionsAsText()
        input_items = await converter.to_agent_input(history)
        agent_context = AgentContext(thread=thread, store=self.store, request_context=context)
        result = Runner.run_streamed(self.agent, input_items, context=agent_context)
        try:
            async for event in stream_agent_response(agent_context, result):
                yield event
        except UserError as exc:
            # The Agents SDK wraps what a tool's failure handler raises ("Error running tool ...");
            # unwrap our CustomStreamError so the user reads its message (see tools.end_the_turn).
            if isinstance(exc.__cause__, CustomStreamError):
                raise exc.__cause__ from None
            raise

    # --8<-- [end:respond]

    # --8<-- [start:action]
    async def action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        refuse_unless_active(thread)
        if action.type != "forecast.subscribe" or sender is None:
            raise CustomStreamError(f"Unsupported action {action.type!r}.")
        try:
            payload = SubscribePayload.model_validate(action.payload)
        except ValidationError as exc:
            logger.warning("invalid %s payload: %s", action.type, exc.errors()[:1])
            raise CustomStreamError("That button sent an invalid request.") from exc
        offered = offered_payloads(sender, action.type)
        if not offered:  # a second click, or a click on an old render: already done, change nothing
            yield ThreadItemDoneEvent(
                item=AssistantMessageItem(
                    id=self.store.generate_item_id("message", thread, context),
                    thread_id=thread.id,
                    created_at=datetime.now(),
                    content=[AssistantMessageContent(text=f"The daily forecast for {payload.city} is already on.")],
                )
            )
            return
        if payload not in [SubscribePayload.model_validate(p) for p in offered]:  # not what this card's buttons send
            logger.warning("%s payload does not match the clicked card", action.type)
            raise CustomStreamError("That button sent an invalid request.")

        forecast = lookup_forecast(payload.city).in_units(payload.units).model_copy(update={"subscribed": True})
        # Replace the card in place: the server persists it with store.save_item().
        yield ThreadItemReplacedEvent(item=sender.model_copy(update={"widget": forecast_widget(forecast)}))
        # Hidden context is stored but never sent to the client; the model reads it next turn.
        yield ThreadItemDoneEvent(
            item=HiddenContextItem(
                id=self.store.generate_item_id("message", thread, context),
                thread_id=thread.id,
                created_at=datetime.now(),
                content=f"The user subscribed to the daily forecast for {forecast.city}.",
            )
        )
        yield ThreadItemDoneEvent(
            item=AssistantMessageItem(
                id=self.store.generate_item_id("message", thread, context),
                thread_id=thread.id,
                created_at=datetime.now(),
                content=[AssistantMessageContent(text=f"Subscribed: daily forecast for {forecast.city}.")],
            )
        )

    # --8<-- [end:action]

    # --8<-- [start:cancel]
    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: RequestContext
    ) -> None:
        # The stop button closes the connection and Starlette cancels the response task. anyio
        # cancellation would also cancel the SDK's cleanup writes (the partial answer, and the note
        # that tells the model the user stopped it) at their first await: shield them.
        with anyio.CancelScope(shield=True):
            await super().handle_stream_cancelled(thread, pending_items, context)

    # --8<-- [end:cancel]
    # --8<-- [start:sync-action]
    async def sync_action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: RequestContext,
    ) -> SyncCustomActionResponse:
        if action.type != "forecast.units" or sender is None:
            raise ValueError(f"unsupported sync action {action.type!r}")  # the endpoint answers 400
        payload = UnitsPayload.model_validate(action.payload)  # ValidationError is a ValueError: 400
        forecast = lookup_forecast(payload.city).in_units(payload.units)
        updated = sender.model_copy(
            update={"widget": forecast_widget(forecast.model_copy(update={"subscribed": payload.subscribed}))}
        )
        await self.store.save_item(thread.id, updated, context)  # the SDK does not persist sync results
        return SyncCustomActionResponse(updated_item=updated)

    # --8<-- [end:sync-action]

    # --8<-- [start:feedback]
    async def add_feedback(
        self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: RequestContext
    ) -> None:
        # The SDK's default drops feedback and answers {}. Here it is kept per item and user; an id
        # that is not the caller's raises NotFoundError, which the endpoint answers with a 404. With
        # a store that keeps no feedback the endpoint answers not_enabled before this runs.
        if not isinstance(self.store, FeedbackStore):
            raise NotImplementedError("this store keeps no feedback")
        await self.store.save_feedback(thread_id, item_ids, feedback, context)

    # --8<-- [end:feedback]
