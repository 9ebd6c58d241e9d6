"""Level 2: an Agents SDK agent behind a ChatKit endpoint.

Run from the folder that holds this package:  uvicorn level2.app:app --port 8000
Needs OPENAI_API_KEY at request time (or OPENAI_BASE_URL pointing at a compatible server).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from agents import set_tracing_disabled
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError, Store
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from .boundary import Refused, admit
from .server import AgentServer
from .store import MemoryStore

logger = logging.getLogger(__name__)


# --8<-- [start:tracing]
def configure_tracing() -> None:
    """Agents SDK traces carry the conversation to OpenAI, whatever OPENAI_BASE_URL says: off unless CHATKIT_TRACING=1.

    set_tracing_disabled() overrides OPENAI_AGENTS_DISABLE_TRACING, so CHATKIT_TRACING alone decides.
    """
    enabled = os.environ.get("CHATKIT_TRACING", "").strip().lower() in {"1", "true", "yes", "on"}
    set_tracing_disabled(not enabled)


# --8<-- [end:tracing]


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
async def no_login() -> str:
    return ""  # one shared history: fine for a demo, never for an app with users


def chatkit_router(
    store: Store[dict[str, Any]] | None = None, *, current_user: Callable[..., Any] | None = None
) -> APIRouter:
    """POST /chatkit as a router; pass a store to share one between apps (or to use your own).

    current_user: the app's own dependency returning the caller's user id (a header a gateway sets, a
    session): the store then keeps each user's threads apart, and a request without one is a 401.
    """
    configure_tracing()
    server = AgentServer(store=store or MemoryStore())
    router = APIRouter()

    identify = current_user or no_login  # used as a default: a postponed annotation could not see this local

    @router.post("/chatkit")
    async def chatkit_endpoint(request: Request, user_id: object = Depends(identify)) -> Response:
        if current_user is not None and not user_id:
            return error_response(401, "unauthorized", "not signed in")
        context = {"user_id": str(user_id)} if user_id else {}  # MemoryStore scopes by context["user_id"]
        try:
            parsed = admit(await request.body())  # refusals, text and paging rules: boundary.py
        except ValidationError as exc:
            return error_response(400, "invalid_request", describe(exc))
        except Refused as exc:
            return error_response(exc.status, exc.code, str(exc))
        try:
            result = await server.process(parsed, context=context)
        except NotFoundError as exc:
            return error_response(404, "not_found", str(exc))
        if isinstance(result, StreamingResult):
            return await guarded_stream(result)
        return Response(content=result.json, media_type="application/json")

    return router


def add_chatkit(
    app: FastAPI, store: Store[dict[str, Any]] | None = None, *, current_user: Callable[..., Any] | None = None
) -> None:
    """Add Level 2 to an existing app: it keeps its own routes, lifespan and middleware."""
    app.include_router(chatkit_router(store, current_user=current_user))


def create_app(store: Store[dict[str, Any]] | None = None) -> FastAPI:
    """The standalone app."""
    app = FastAPI(title="ChatKit level 2")
    add_chatkit(app, store)
    return app


app = create_app()
# --8<-- [end:endpoint]
