"""Level 3: the production app. Auth, PostgreSQL, CORS, limits, health, error mapping, logging.

Run from the folder that holds this package:
    DATABASE_URL=postgresql://... JWT_SECRET=... uvicorn level3.app:app --port 8000
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from agents import set_tracing_disabled
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    ChatKitReq,
    InputTranscribeReq,
    ItemsFeedbackReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
)
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from .attachments import (
    PostgresAttachmentStore,
    PostgresStoreWithAttachments,
    attachment_router,
    public_url,
    require_known_id,
)
from .auth import Authenticator, AuthError, auth_error_handler, get_current_user
from .boundary import Refused, admit
from .context import RequestContext
from .dictation import Dictation
from .errors import RequestError, not_enabled, request_error_handler
from .server import FeedbackStore, ProductionServer
from .settings import Settings
from .store import DATABASE_UNAVAILABLE, create_pool

logger = logging.getLogger(__name__)


# --8<-- [start:logging]
_log_fields: dict[str, ContextVar[str]] = {
    name: ContextVar(name, default="-") for name in ("request_id", "user_id", "thread_id")
}


def install_log_context() -> None:
    """Stamp every log record, the SDK's included, with the current request, user and thread."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "chatkit_fields", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        for name, var in _log_fields.items():
            setattr(record, name, var.get())
        return record

    factory.chatkit_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    logging.getLogger("chatkit").addFilter(_drop_answered_not_found)


def _drop_answered_not_found(record: logging.LogRecord) -> bool:
    # The SDK logs a traceback when a stream fails before its first event. The endpoint answers those it
    # maps (404 for NotFoundError; 409 for a client tool output with no tool call pending), so their
    # tracebacks are noise: one per mistyped id or repeated post.
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, ValueError) and "was not a ClientToolCallItem" in str(error):
        return False
    return not isinstance(error, NotFoundError)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s req=%(request_id)s user=%(user_id)s thread=%(thread_id)s %(message)s"
# --8<-- [end:logging]


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


def database_unavailable(exc: BaseException) -> JSONResponse:
    """503 with Retry-After: a client may retry a request that failed on the database, never a 500."""
    logger.warning("database unavailable: %r", exc)
    response = error_response(503, "unavailable", "the database is unavailable or too slow; retry shortly")
    response.headers["Retry-After"] = "2"
    return response


async def guarded_stream(result: StreamingResult) -> Response:
    """Commit to a 200 stream only once the first event exists: early failures get a real status."""
    events = aiter(result)
    try:
        first = await anext(events)
    except StopAsyncIteration:  # only a retry of an item the thread doesn't have ends with no event
        return error_response(404, "not_found", "nothing to answer: the item is not in this thread")
    except NotFoundError as exc:  # unknown thread, or another user's: the same answer
        return error_response(404, "not_found", str(exc))
    except ValueError as exc:  # e.g. a client tool output when no tool call is pending
        return error_response(409, "conflict", str(exc))
    except DATABASE_UNAVAILABLE as exc:  # down, restarting, or too slow: nothing was answered yet
        return database_unavailable(exc)
    if first.startswith(b'data: {"type":"error"'):  # e.g. an action aimed at a non-widget item
        return error_response(400, "invalid_action", "the item is not a widget that accepts actions")
    if first.startswith(b'data: {"type":"thread.created"'):
        _log_fields["thread_id"].set(json.loads(first[len(b"data: ") :])["thread"]["id"])

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


# --8<-- [start:body-limit]
class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes even when Content-Length lies or is absent."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


# --8<-- [end:body-limit]


# --8<-- [start:before-processing]
MAX_ATTACHMENTS_PER_MESSAGE = 20  # each is a query here and a part of the model's input


async def check_before_processing(parsed: ChatKitReq, server: ProductionServer, context: RequestContext) -> None:
    """Refuse what the SDK would only find out mid-stream (after a 200), or would answer with a 500."""
    match parsed:
        case ItemsFeedbackReq() if not isinstance(server.store, FeedbackStore):  # the app's own store
            raise RequestError(400, "not_enabled", "feedback is not enabled on this server")
        case AttachmentsCreateReq() | AttachmentsDeleteReq() if server.attachments is None:
            raise not_enabled("attachments")
        case AttachmentsDeleteReq():
            require_known_id(parsed.params.attachment_id)
        case ThreadsCreateReq() | ThreadsAddUserMessageReq() if server.attachments is None:
            if parsed.params.input.attachments:
                raise not_enabled("attachments")
        case InputTranscribeReq() if server.dictation is None:
            raise not_enabled("dictation requests")
        case InputTranscribeReq():
            server.dictation.check(parsed.params)  # bad base64 400, too long 413, wrong format 415
        case ThreadsCreateReq() | ThreadsAddUserMessageReq():
            if len(parsed.params.input.attachments) > MAX_ATTACHMENTS_PER_MESSAGE:
                raise RequestError(400, "invalid_request", f"at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments")
            # An unknown or foreign attachment: 404 now, before threads.create has made a thread.
            for attachment_id in parsed.params.input.attachments:
                require_known_id(attachment_id)
                attachment = await server.store.load_attachment(attachment_id, context)
                if attachment.upload_descriptor is not None:
                    raise RequestError(409, "conflict", f"attachment {attachment_id} has no bytes yet")


# --8<-- [end:before-processing]


# --8<-- [start:hooks]
# Hooks for an app that already has a database and a login (both optional; see add_chatkit).
StoreFactory = Callable[[FastAPI], Store[RequestContext]]  # called once at startup, inside the app's lifespan
UserDependency = Callable[..., Any]  # a FastAPI dependency returning a user id (str) or a RequestContext


@runtime_checkable
class ManagedStore(Protocol):
    """What the router uses when a store has it: tables it creates at startup, and a probe for /healthz."""

    async def create_schema(self) -> None: ...
    async def ping(self) -> None: ...


def as_context(user: object) -> RequestContext:
    """The app's user, as the RequestContext the server, the store and the tools receive."""
    if isinstance(user, RequestContext):
        return user
    if isinstance(user, str) and user:
        return RequestContext(user_id=user)
    if user is None or user == "":  # an optional-user dependency saying "nobody is signed in"
        raise AuthError("not signed in")
    raise TypeError(f"the user dependency returned {type(user).__name__}; return a user id (str) or a RequestContext")


# --8<-- [end:hooks]


# --8<-- [start:router]
def chatkit_router(
    settings: Settings, *, store: StoreFactory | None = None, current_user: UserDependency | None = None
) -> APIRouter:
    """POST /chatkit and GET /healthz, with a lifespan that gets the store ready.

    Include it in any FastAPI app: FastAPI runs a router's lifespan inside the app's own, so `store`
    can return a store on a pool or engine that the app's lifespan opened. Without `store` the router
    opens (and closes) its own pool on DATABASE_URL; without `current_user` it verifies JWTs itself.
    """
    # Agents SDK traces carry conversation content to OpenAI even when OPENAI_BASE_URL points
    # elsewhere: they stay off unless CHATKIT_TRACING=1.
    set_tracing_disabled(not settings.tracing)
    install_log_context()

    async def start(app: FastAPI, chat_store: Store[RequestContext]) -> None:
        if isinstance(chat_store, ManagedStore):
            await chat_store.create_schema()  # idempotent: safe on every start
        attachments = None  # attachments.* answer 400 not_enabled
        if isinstance(chat_store, PostgresStoreWithAttachments):  # and a URL secret is configured
            attachments = PostgresAttachmentStore.for_settings(chat_store, settings)
        app.state.settings, app.state.attachments = settings, attachments
        app.state.chatkit = ProductionServer(
            chat_store, attachments, Dictation(settings), model_timeout=settings.model_timeout
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Misconfiguration fails here, at startup, not at import and not on the first request.
        if current_user is None:
            app.state.authenticator = Authenticator(settings)
        if store is not None:  # the app's own database: the app opened it and the app closes it
            await start(app, store(app))
            yield
            return
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set")
        pool = await create_pool(settings.database_url, timeout_seconds=settings.database_timeout)
        try:
            app.state.pool = pool
            await start(app, PostgresStoreWithAttachments(pool))  # attachments need the subclass
            yield
        finally:
            await pool.close()

    router = APIRouter(lifespan=lifespan)
    authenticate = current_user or get_current_user  # the app's own login, or the JWT Authenticator

    router.include_router(attachment_router(authenticate, as_context))  # /attachments: upload, download, preview

    @router.post("/chatkit")
    async def chatkit_endpoint(request: Request, user: object = Depends(authenticate)) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        context = replace(as_context(user), request_id=request_id, public_url=public_url(request))
        _log_fields["request_id"].set(context.request_id)
        _log_fields["user_id"].set(context.user_id)
        try:
            parsed = admit(await read_body(request, settings.max_body_bytes))  # see boundary.py
        except BodyTooLarge:
            return error_response(413, "too_large", f"the body exceeds {settings.max_body_bytes} bytes")
        except ValidationError as exc:
            return error_response(400, "invalid_request", describe(exc))
        except Refused as exc:
            return error_response(exc.status, exc.code, str(exc))
        if thread_id := getattr(parsed.params, "thread_id", None):
            _log_fields["thread_id"].set(thread_id)
        logger.info("chatkit %s", parsed.type)

        server: ProductionServer = request.app.state.chatkit
        try:
            await check_before_processing(parsed, server, context)
            result = await server.process(parsed, context)  # parsed once, here
        except NotFoundError as exc:
            return error_response(404, "not_found", str(exc))
        except ValueError as exc:  # e.g. a sync action with a bad payload or a non-widget sender
            return error_response(400, "invalid_request", str(exc))
        except DATABASE_UNAVAILABLE as exc:
            return database_unavailable(exc)
        if isinstance(result, StreamingResult):
            return await guarded_stream(result)
        return Response(content=result.json, media_type="application/json")

    @router.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        chat_store = request.app.state.chatkit.store
        if not isinstance(chat_store, ManagedStore):  # a store of the app's own, without ping()
            return JSONResponse({"status": "ok", "database": "unchecked"})
        try:
            await asyncio.wait_for(chat_store.ping(), timeout=2)
        except Exception as exc:  # any database failure means "not ready"
            logger.warning("health check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "up"})

    return router


# --8<-- [end:router]


# --8<-- [start:app]
def add_chatkit(
    app: FastAPI, settings: Settings, *, store: StoreFactory | None = None, current_user: UserDependency | None = None
) -> None:
    """Add Level 3 to an app: the routes, the JSON 401s, and CORS for the listed origins.

    store: `lambda app: PostgresStore(app.state.pool)` (or SQLAlchemyStore on an AsyncEngine) to use
    the app's own database. current_user: the app's own auth dependency.
    """
    if "*" in settings.cors_origins:
        raise ValueError("CORS_ORIGINS must list origins; '*' would let any site call the API as the user")
    app.include_router(chatkit_router(settings, store=store, current_user=current_user))
    app.add_exception_handler(AuthError, auth_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestError, request_error_handler)  # type: ignore[arg-type]
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),  # an explicit list, never "*" with credentials
            allow_credentials=bool(settings.auth_cookie_name),
            allow_methods=["POST", "GET"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """A standalone app; settings come from the environment unless given."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)  # no-op if logging is configured already
    # No /docs, /redoc or /openapi.json: they would be the only routes without auth.
    app = FastAPI(title="ChatKit level 3", docs_url=None, redoc_url=None, openapi_url=None)
    add_chatkit(app, settings or Settings())
    return app


# --8<-- [end:app]


app = create_app()
