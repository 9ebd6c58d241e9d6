"""Level 1: a ChatKit server that answers every message with "Hello, world!".

Run from the folder that holds this package:  uvicorn level1.app:app --port 8000
It imports nothing of its own, so it also runs copied alone as app.py:  uvicorn app:app --port 8000
"""

from __future__ import annotations

# --8<-- [start:imports]
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    ChatKitReq,
    ItemsListReq,
    Page,
    ThreadItem,
    ThreadItemDoneEvent,
    ThreadMetadata,
    ThreadsListReq,
    ThreadStreamEvent,
    UserMessageInput,
    UserMessageItem,
    is_streaming_req,
)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError

# --8<-- [end:imports]
logger = logging.getLogger(__name__)


# --8<-- [start:store]
def _sort_key(row: ThreadMetadata | ThreadItem) -> datetime:
    # The SDK stamps naive local datetimes; astimezone() makes naive and aware comparable.
    return row.created_at.astimezone(UTC)


def _page(rows: list[Any], after: str | None, limit: int, order: str) -> Page[Any]:
    """One page of rows ordered by created_at, ties by insertion; "desc" is exactly "asc" reversed."""
    rows = sorted(rows, key=_sort_key)
    if order == "desc":
        rows.reverse()  # not sorted(reverse=True): that keeps ties in insertion order both ways
    start = 0
    if after is not None:
        ids = [row.id for row in rows]
        if after not in ids:
            raise NotFoundError(f"cursor {after} not found")
        start = ids.index(after) + 1
    data = rows[start : start + limit]
    has_more = start + limit < len(rows)
    # `after` must name the last row returned, or the SDK's pagination loops forever.
    return Page(data=data, has_more=has_more, after=data[-1].id if has_more and data else None)


class MemoryStore(Store[dict[str, Any]]):
    """A Store that keeps threads in process memory (lost on restart). chatkit ships none."""

    def __init__(self) -> None:
        self.threads: dict[str, tuple[str, ThreadMetadata]] = {}  # id -> (owner, thread)
        self.items: dict[str, list[ThreadItem]] = {}  # thread id -> items, insertion order
        self.attachments: dict[str, tuple[str, Attachment]] = {}

    @staticmethod
    def _owner(context: dict[str, Any]) -> str:
        # An empty context is the single-user demo. A context that names its user under another key
        # must not silently make every caller the same user: fail instead.
        if context and "user_id" not in context:
            raise TypeError(f"MemoryStore scopes threads by context['user_id']; got keys {sorted(context)}")
        return str(context.get("user_id", ""))

    def _thread(self, thread_id: str, context: dict[str, Any]) -> ThreadMetadata:
        owner, thread = self.threads.get(thread_id, (None, None))
        if thread is None or owner != self._owner(context):
            raise NotFoundError(f"thread {thread_id} not found")  # another user's thread: not found
        return thread

    async def load_thread(self, thread_id: str, context: dict[str, Any]) -> ThreadMetadata:
        return self._thread(thread_id, context).model_copy(deep=True)

    async def save_thread(self, thread: ThreadMetadata, context: dict[str, Any]) -> None:
        owner, _ = self.threads.get(thread.id, (self._owner(context), None))
        if owner != self._owner(context):
            raise NotFoundError(f"thread {thread.id} not found")
        # The server may pass a Thread (with .items): keep only the metadata.
        metadata = ThreadMetadata.model_validate(thread.model_dump(exclude={"items"}))
        self.threads[thread.id] = (owner, metadata)
        self.items.setdefault(thread.id, [])

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: dict[str, Any]
    ) -> Page[ThreadMetadata]:
        me = self._owner(context)
        mine = [t for owner, t in self.threads.values() if owner == me]
        return _page(mine, after, limit, order)

    async def delete_thread(self, thread_id: str, context: dict[str, Any]) -> None:
        self._thread(thread_id, context)
        del self.threads[thread_id]
        self.items.pop(thread_id, None)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: dict[str, Any]
    ) -> Page[ThreadItem]:
        self._thread(thread_id, context)
        return _page(self.items[thread_id], after, limit, order)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: dict[str, Any]) -> None:
        await self.save_item(thread_id, item, context)  # a repeated done event must not duplicate

    async def save_item(self, thread_id: str, item: ThreadItem, context: dict[str, Any]) -> None:
        self._thread(thread_id, context)
        rows = self.items[thread_id]
        for i, old in enumerate(rows):
            if old.id == item.id:
                rows[i] = item
                return
        rows.append(item)

    async def load_item(self, thread_id: str, item_id: str, context: dict[str, Any]) -> ThreadItem:
        self._thread(thread_id, context)
        for item in self.items[thread_id]:
            if item.id == item_id:
                return item
        raise NotFoundError(f"item {item_id} not found in thread {thread_id}")

    async def delete_thread_item(self, thread_id: str, item_id: str, context: dict[str, Any]) -> None:
        self._thread(thread_id, context)
        self.items[thread_id] = [i for i in self.items[thread_id] if i.id != item_id]

    async def save_attachment(self, attachment: Attachment, context: dict[str, Any]) -> None:
        owner, _ = self.attachments.get(attachment.id, (self._owner(context), None))
        if owner != self._owner(context):
            raise NotFoundError(f"attachment {attachment.id} not found")
        self.attachments[attachment.id] = (owner, attachment)

    async def load_attachment(self, attachment_id: str, context: dict[str, Any]) -> Attachment:
        owner, attachment = self.attachments.get(attachment_id, (None, None))
        if attachment is None or owner != self._owner(context):
            raise NotFoundError(f"attachment {attachment_id} not found")
        return attachment

    async def delete_attachment(self, attachment_id: str, context: dict[str, Any]) -> None:
        await self.load_attachment(attachment_id, context)
        del self.attachments[attachment_id]


# --8<-- [end:store]


# --8<-- [start:server]
class HelloServer(ChatKitServer[dict[str, Any]]):
    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: dict[str, Any],
    ) -> AsyncIterator[ThreadStreamEvent]:
        # There is no text_event(): a finished message is a ThreadItemDoneEvent,
        # and the server stores it with store.add_thread_item().
        yield ThreadItemDoneEvent(
            item=AssistantMessageItem(
                id=self.store.generate_item_id("message", thread, context),
                thread_id=thread.id,
                created_at=datetime.now(),  # naive, like every timestamp the SDK makes
                content=[AssistantMessageContent(text="Hello, world!")],
            )
        )

    # --8<-- [end:server]
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


# --8<-- [start:boundary]
class Refused(Exception):
    """A deliberate 4xx: the endpoint answers {"error": code, "message": str(self)}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


# Hello world answers messages and nothing else. The SDK's defaults for these would raise (a 500) or
# silently drop the request (a 200 that lies), so the endpoint refuses them by name.
NOT_ENABLED = {
    "threads.add_client_tool_output": "client tools are not enabled on this server",
    "threads.add_structured_input": "structured input is not enabled on this server",
    "threads.custom_action": "widget actions are not enabled on this server",
    "threads.sync_custom_action": "widget actions are not enabled on this server",
    "items.feedback": "feedback is not enabled on this server",
    "attachments.create": "attachments are not enabled on this server",
    "attachments.delete": "attachments are not enabled on this server",
    "input.transcribe": "dictation is not enabled on this server",
}
MAX_PAGE = 100  # threads.list and items.list: null or 0 means the SDK default (20); above 100, 100
INVALID_TEXT = "text must not contain NUL (\\u0000) or unpaired surrogates (\\ud800-\\udfff)"
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a decoded str, any of these is unpaired
CHATKIT_REQUEST = TypeAdapter(ChatKitReq)  # build once: building one costs milliseconds of CPU


def unstorable(value: Any) -> bool:
    """True if any string in a JSON value (keys included) holds NUL or a lone surrogate.

    PostgreSQL stores neither, and a lone surrogate cannot even be encoded as UTF-8: refusing them here
    keeps a client that works against this server working when the store moves to PostgreSQL.
    """
    if isinstance(value, str):
        return "\x00" in value or _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(unstorable(key) or unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    return False


def has_lone_surrogate_escape(body: bytes) -> bool:
    """pydantic's parser rejects "\\ud800" as bad JSON; Python's accepts it, so ask Python which it was."""
    try:
        return unstorable(json.loads(body))
    except (ValueError, RecursionError):  # really not JSON, or nested too deep to matter
        return False


def admit(body: bytes) -> ChatKitReq:
    """The parsed request, for process(); raises Refused or ValidationError."""
    try:
        request = CHATKIT_REQUEST.validate_json(body)  # process() would raise the same error as a 500
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid" and has_lone_surrogate_escape(body):
            raise Refused(400, "invalid_text", INVALID_TEXT) from None
        raise
    if request.type in NOT_ENABLED:
        raise Refused(400, "not_enabled", NOT_ENABLED[request.type])
    message = getattr(request.params, "input", None)
    if isinstance(message, UserMessageInput) and message.attachments:
        raise Refused(400, "not_enabled", NOT_ENABLED["attachments.create"])
    if unstorable(request.model_dump()):
        raise Refused(400, "invalid_text", INVALID_TEXT)
    if isinstance(request, ThreadsListReq | ItemsListReq) and request.params.limit is not None:
        if request.params.limit < 0:
            raise Refused(400, "invalid_request", "params.limit: must be 0 (the default page) or more")
        request.params.limit = min(request.params.limit, MAX_PAGE)
    return request


# --8<-- [end:boundary]


# --8<-- [start:errors]
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # proxies must not buffer the stream


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def describe(exc: ValidationError) -> str:
    """One line that tells a client what is wrong with its body."""
    first = exc.errors()[0]
    if first["type"] == "union_tag_not_found":
        return 'missing "type": a ChatKit request looks like {"type": "threads.create", "params": {...}}'
    if first["type"] == "union_tag_invalid":
        return f"unknown type {first['ctx']['tag']!r}; expected one of {first['ctx']['expected_tags']}"
    where = ".".join(str(part) for part in first["loc"][1:]) or "body"
    return f"{where}: {first['msg']}" + (f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


async def guarded_stream(result: StreamingResult) -> Response:
    """Start the SSE response only once the first event exists, so early errors get a status."""
    events = aiter(result)
    try:
        first = await anext(events)
    except StopAsyncIteration:  # only a retry of an item the thread doesn't have ends with no event
        return error_response(404, "not_found", "nothing to answer: the item is not in this thread")
    except NotFoundError as exc:
        return error_response(404, "not_found", str(exc))
    except ValueError as exc:  # e.g. a client tool output when no tool call is pending
        return error_response(409, "conflict", str(exc))

    async def body() -> AsyncIterator[bytes]:
        yield first
        try:
            async for chunk in events:
                yield chunk
        except Exception:
            # Headers are sent: report the failure in-band instead of dropping the connection.
            logger.exception("stream failed after it started")
            yield b'data: {"type":"error","code":"stream.error","allow_retry":true}\n\n'

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


# --8<-- [end:errors]


# --8<-- [start:endpoint]
def create_app(store: Store[dict[str, Any]] | None = None) -> FastAPI:
    """The ASGI app; pass a store to share one between app instances (or to use your own)."""
    server = HelloServer(store=store or MemoryStore())
    app = FastAPI(title="ChatKit level 1")

    @app.post("/chatkit")
    async def chatkit_endpoint(request: Request) -> Response:
        try:
            parsed = admit(await request.body())  # not enabled, unstorable text, paging: see admit()
        except ValidationError as exc:
            return error_response(400, "invalid_request", describe(exc))
        except Refused as exc:
            return error_response(exc.status, exc.code, str(exc))
        try:
            result = await server.process(parsed, context={})
        except NotFoundError as exc:
            return error_response(404, "not_found", str(exc))
        if isinstance(result, StreamingResult):
            return await guarded_stream(result)
        return Response(content=result.json, media_type="application/json")

    return app


app = create_app()
# --8<-- [end:endpoint]
