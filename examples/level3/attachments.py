"""Level 3 attachments: bytes in PostgreSQL, both upload strategies, signed previews, cleanup.

Level 3 runs as several instances, so the bytes live where every instance reaches them: a bytea
table beside the metadata (see SCHEMA in store.py). Every read and write is scoped to the caller's
(tenant_id, user_id); another user's attachment is a 404, like an unknown one.

- Direct upload: the client POSTs multipart/form-data (field `file`) to /attachments with its token
  and gets the Attachment JSON back.
- Two-phase upload: `attachments.create` answers an Attachment whose `upload_descriptor` names a
  signed, expiring URL; the client POSTs the same multipart form there.
- Previews: an `<img src>` sends no Authorization header, so ImageAttachment.preview_url is a signed,
  expiring URL (HMAC over purpose, id and expiry with a secret every instance shares). It is re-signed
  whenever the store returns the attachment, so a thread reloaded tomorrow still shows its images.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

from chatkit.agents import ThreadItemConverter
from chatkit.store import AttachmentStore, NotFoundError
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
    Page,
    ThreadItem,
    UserMessageItem,
)
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from openai.types.responses import ResponseInputContentParam
from pydantic import AnyUrl, TypeAdapter
from starlette.datastructures import UploadFile

from .context import RequestContext
from .errors import RequestError, not_enabled
from .settings import Settings
from .store import DATABASE_UNAVAILABLE, PostgresStore, full_length_id

logger = logging.getLogger(__name__)

Purpose = Literal["upload", "preview"]
_ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)
URL_TTL_SECONDS = 3600  # how long a signed upload or preview URL stays valid
MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers around the file itself


def media_type(mime_type: str) -> str:
    """The bare type, lowercase ("image/png; x=y" gives "image/png"): limits and previews compare it."""
    return mime_type.split(";", 1)[0].strip().lower()


def storable(text: str) -> bool:
    """PostgreSQL text holds no NUL, and UTF-8 has no lone surrogates: asyncpg would fail on either."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


def require_known_id(attachment_id: str) -> None:
    """An id PostgreSQL cannot even hold names no attachment: 404 before any query."""
    if not storable(attachment_id):
        raise NotFoundError("attachment not found")


def checked_name(name: str) -> str:
    """A file name PostgreSQL can store, at most 255 characters."""
    if not storable(name):
        raise RequestError(400, "invalid_text", "the file name contains characters that cannot be stored")
    return name[:255] or "file"


# --8<-- [start:limits]
@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: int
    allowed_types: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> AttachmentLimits:
        return cls(settings.max_attachment_bytes, frozenset(media_type(t) for t in settings.allowed_attachment_types))

    def check(self, size: int, mime_type: str) -> None:
        """413 for a file that is too big, 415 for a type not on the list; checked before any byte is kept."""
        if size < 0:
            raise RequestError(400, "invalid_request", "size must not be negative")
        if size > self.max_bytes:
            raise RequestError(413, "too_large", f"attachments are limited to {self.max_bytes} bytes")
        if media_type(mime_type) not in self.allowed_types:
            raise RequestError(415, "unsupported_type", f"{media_type(mime_type)!r} files are not accepted here")


# --8<-- [end:limits]


# --8<-- [start:signed-urls]
class UrlSigner:
    """Signed, expiring URLs for the routes a browser reaches without a token (uploads, previews)."""

    def __init__(self, secret: bytes, ttl: int = URL_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("ATTACHMENT_URL_SECRET must be at least 32 bytes")
        self.secret, self.ttl, self.clock = secret, ttl, clock

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlSigner | None:
        """None when there is no secret (JWKS auth and no ATTACHMENT_URL_SECRET): attachments are off."""
        if settings.attachment_url_secret:
            return cls(settings.attachment_url_secret.encode())
        if settings.jwt_secret:  # a separate key derived from the shared JWT secret, never the secret itself
            return cls(hmac.new(settings.jwt_secret.encode(), b"chatkit attachment urls", hashlib.sha256).digest())
        return None

    def _mac(self, purpose: Purpose, attachment_id: str, expires: int) -> str:
        message = f"{purpose}\n{attachment_id}\n{expires}".encode()
        return base64.urlsafe_b64encode(hmac.new(self.secret, message, hashlib.sha256).digest()).decode().rstrip("=")

    def url(self, base: str, purpose: Purpose, attachment_id: str) -> str:
        expires = int(self.clock()) + self.ttl
        path = f"/attachments/{quote(attachment_id, safe='')}/{purpose}"
        return f"{base}{path}?expires={expires}&signature={self._mac(purpose, attachment_id, expires)}"

    def verify(self, purpose: Purpose, attachment_id: str, expires: str, signature: str) -> None:
        """Raise a 403 unless the signature is ours and the URL has not expired."""
        valid = expires.isdigit() and hmac.compare_digest(self._mac(purpose, attachment_id, int(expires)), signature)
        if not valid or int(expires) < self.clock():
            raise RequestError(403, "forbidden", "this link is invalid or has expired")


# --8<-- [end:signed-urls]


def _base_url(context: RequestContext) -> str:
    # The endpoints always set public_url; the fallback serves code that builds a context itself.
    return context.public_url or "http://localhost:8000"


# --8<-- [start:attachment-store]
class PostgresAttachmentStore(AttachmentStore[RequestContext]):
    """The bytes side of attachments; metadata goes through PostgresStore.save/load/delete_attachment."""

    def __init__(self, store: PostgresStore, signer: UrlSigner, limits: AttachmentLimits, ttl: timedelta) -> None:
        self.store, self.pool, self.signer, self.limits, self.ttl = store, store.pool, signer, limits, ttl

    @classmethod
    def for_settings(cls, store: PostgresStoreWithAttachments, settings: Settings) -> PostgresAttachmentStore | None:
        """The attachment store for the app, wired into `store`; None when no URL secret is configured."""
        signer = UrlSigner.from_settings(settings)
        if signer is None:
            return None
        ttl = timedelta(seconds=settings.attachment_ttl_seconds)
        store.attachments = cls(store, signer, AttachmentLimits.from_settings(settings), ttl)
        return store.attachments

    def generate_attachment_id(self, mime_type: str, context: RequestContext) -> str:
        return full_length_id("attachment")  # the SDK's 8 hex digits collide in a shared table

    def with_fresh_urls(self, attachment: Attachment, context: RequestContext) -> Attachment:
        """The attachment with a preview URL (images) and, while bytes are awaited, an upload URL, valid now."""
        base, update = _base_url(context), {}
        if isinstance(attachment, ImageAttachment):
            update["preview_url"] = AnyUrl(self.signer.url(base, "preview", attachment.id))
        if attachment.upload_descriptor is not None:
            url = self.signer.url(base, "upload", attachment.id)
            update["upload_descriptor"] = AttachmentUploadDescriptor(url=url, method="POST")
        return attachment.model_copy(update=update) if update else attachment

    def _new(self, name: str, mime_type: str, context: RequestContext, *, awaiting_bytes: bool) -> Attachment:
        attachment_id, base = self.generate_attachment_id(mime_type, context), _base_url(context)
        fields: dict[str, Any] = {"id": attachment_id, "name": checked_name(name), "mime_type": media_type(mime_type)}
        if awaiting_bytes:
            upload_url = self.signer.url(base, "upload", attachment_id)
            fields["upload_descriptor"] = AttachmentUploadDescriptor(url=upload_url, method="POST")
        if fields["mime_type"].startswith("image/"):
            return ImageAttachment(**fields, preview_url=self.signer.url(base, "preview", attachment_id))
        return FileAttachment(**fields)

    # Two-phase, step 1 (attachments.create): metadata now, bytes later at the signed upload URL.
    async def create_attachment(self, input: AttachmentCreateParams, context: RequestContext) -> Attachment:
        self.limits.check(input.size, input.mime_type)
        await self.sweep()
        return self._new(input.name, input.mime_type, context, awaiting_bytes=True)  # the SDK saves it

    # Two-phase, step 2: the signature proved the URL came from us; the row says whose it is.
    async def receive_bytes(self, attachment_id: str, data: bytes) -> Attachment:
        require_known_id(attachment_id)
        row = await self.pool.fetchrow(
            "SELECT tenant_id, user_id FROM chatkit_attachments WHERE id = $1", attachment_id
        )
        if row is None:
            raise NotFoundError(f"attachment {attachment_id} not found")
        owner = RequestContext(user_id=row["user_id"], tenant_id=row["tenant_id"])
        attachment = await self.store.load_attachment(attachment_id, owner)
        if attachment.upload_descriptor is None:
            raise RequestError(409, "conflict", "this attachment is already uploaded")
        self.limits.check(len(data), attachment.mime_type)
        await self._insert_bytes(attachment_id, data, owner)
        done = attachment.model_copy(update={"upload_descriptor": None})
        await self.store.save_attachment(done, owner)  # only now may a message use it
        return done

    # Direct upload: one request carries the bytes; the answer is the finished Attachment.
    async def upload(self, name: str, mime_type: str, data: bytes, context: RequestContext) -> Attachment:
        self.limits.check(len(data), mime_type)
        await self.sweep()
        attachment = self._new(name, mime_type, context, awaiting_bytes=False)
        await self.store.save_attachment(attachment, context)  # the metadata row first: the bytes reference it
        await self._insert_bytes(attachment.id, data, context)
        return attachment

    async def _insert_bytes(self, attachment_id: str, data: bytes, context: RequestContext) -> None:
        await self.pool.execute(
            """
            INSERT INTO chatkit_attachment_blobs (id, tenant_id, user_id, bytes) VALUES ($1, $2, $3, $4)
            ON CONFLICT (id) DO NOTHING
            """,
            attachment_id,
            context.tenant_id,
            context.user_id,
            data,
        )

    async def read(self, attachment_id: str, context: RequestContext | None) -> tuple[Attachment, bytes]:
        """The metadata and bytes; scoped to the caller, or unscoped (None) behind a verified signature."""
        require_known_id(attachment_id)
        row = await self.pool.fetchrow(
            """
            SELECT a.data::text AS data, b.bytes FROM chatkit_attachments AS a
            JOIN chatkit_attachment_blobs AS b ON b.id = a.id
            WHERE a.id = $1 AND ($2::text IS NULL OR (a.tenant_id = $2 AND a.user_id = $3))
            """,
            attachment_id,
            context.tenant_id if context else None,
            context.user_id if context else None,
        )
        if row is None:
            raise NotFoundError(f"attachment {attachment_id} not found")
        return _ATTACHMENT.validate_json(row["data"]), row["bytes"]

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        # The SDK then calls store.delete_attachment, which answers 404 for an unknown or foreign id.
        await self.pool.execute(
            "DELETE FROM chatkit_attachment_blobs WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
            attachment_id,
            context.tenant_id,
            context.user_id,
        )

    async def sweep(self) -> int:
        return await sweep_unused_attachments(self.pool, self.ttl)


# --8<-- [end:attachment-store]


# --8<-- [start:sweep]
async def sweep_unused_attachments(pool: Any, older_than: timedelta) -> int:
    """Delete uploads that no message uses once `older_than` has passed; returns how many.

    Runs on every upload, and an app can also call it on a schedule. It is cheap: a partial index
    holds only the unused uploads. The bytes go with their metadata row (ON DELETE CASCADE).
    """
    removed = await pool.fetchval(
        """
        WITH gone AS (
            DELETE FROM chatkit_attachments WHERE thread_id IS NULL AND created_at < now() - $1::interval
            RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        older_than,
    )
    return int(removed)


# --8<-- [end:sweep]


# --8<-- [start:store-with-attachments]
class PostgresStoreWithAttachments(PostgresStore):
    """PostgresStore plus what attachments need from it: URLs signed at read time, wherever the client
    reads an attachment, and a deleted thread's attachments deleted with it."""

    attachments: PostgresAttachmentStore | None = None  # set once the attachment store exists

    def _fresh(self, attachment: Attachment, context: RequestContext) -> Attachment:
        return self.attachments.with_fresh_urls(attachment, context) if self.attachments else attachment

    def _fresh_item(self, item: ThreadItem, context: RequestContext) -> ThreadItem:
        if not isinstance(item, UserMessageItem) or not item.attachments:
            return item
        return item.model_copy(update={"attachments": [self._fresh(a, context) for a in item.attachments]})

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        return self._fresh(await super().load_attachment(attachment_id, context), context)

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        return self._fresh_item(await super().load_item(thread_id, item_id, context), context)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: RequestContext
    ) -> Page[ThreadItem]:
        page = await super().load_thread_items(thread_id, after, limit, order, context)
        return page.model_copy(update={"data": [self._fresh_item(item, context) for item in page.data]})

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        # The metadata rows go, and their bytes with them (ON DELETE CASCADE); then the thread.
        await self.pool.execute(
            "DELETE FROM chatkit_attachments WHERE thread_id = $1 AND tenant_id = $2 AND user_id = $3",
            thread_id,
            context.tenant_id,
            context.user_id,
        )
        await super().delete_thread(thread_id, context)


# --8<-- [end:store-with-attachments]


# --8<-- [start:converter]
class AttachmentConverter(ThreadItemConverter):
    """Feeds attachments to the model: images as input_image, PDFs as input_file, text inline.

    Built per turn with the caller's context, so it can only read the caller's bytes.
    """

    def __init__(self, attachments: PostgresAttachmentStore, context: RequestContext) -> None:
        self.attachments, self.context = attachments, context

    async def attachment_to_message_content(self, attachment: Attachment) -> ResponseInputContentParam:
        try:
            stored, data = await self.attachments.read(attachment.id, self.context)
        except NotFoundError:  # deleted after the message was sent
            return {"type": "input_text", "text": f"[The attachment {attachment.name!r} was deleted.]"}
        data_url = f"data:{stored.mime_type};base64,{base64.b64encode(data).decode()}"
        if stored.mime_type.startswith("image/"):
            return {"type": "input_image", "detail": "auto", "image_url": data_url}
        if stored.mime_type == "application/pdf":
            return {"type": "input_file", "file_data": data_url, "filename": stored.name}
        text = data.decode("utf-8", errors="replace")
        return {"type": "input_text", "text": f"Attached file {stored.name!r}:\n{text}"}


# --8<-- [end:converter]


async def _database_outage_is_503() -> AsyncIterator[None]:
    """As on /chatkit: a database that is down or too slow is a 503 the client may retry, never a 500."""
    try:
        yield
    except DATABASE_UNAVAILABLE as exc:
        logger.warning("database unavailable: %r", exc)
        message = "the database is unavailable or too slow; retry shortly"
        raise RequestError(503, "unavailable", message, headers={"Retry-After": "2"}) from None


def _content_disposition(kind: str, name: str) -> str:
    return f"{kind}; filename*=UTF-8''{quote(name, safe='')}"


async def _one_file(request: Request, limits: AttachmentLimits) -> UploadFile:
    """The `file` part of a multipart form, refusing bodies over the limit before reading them."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():  # without a length the parser would spool any amount to disk
        raise RequestError(411, "length_required", "send the upload with a Content-Length")
    if int(declared) > limits.max_bytes + MULTIPART_OVERHEAD:
        raise RequestError(413, "too_large", f"attachments are limited to {limits.max_bytes} bytes")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:  # malformed multipart: the parser's errors vary by version
        raise RequestError(400, "invalid_request", "expected multipart/form-data with a 'file' field") from exc
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise RequestError(400, "invalid_request", "expected multipart/form-data with a 'file' field")
    return file


def _attachment_json(attachment: Attachment) -> Response:
    body = attachment.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True})
    return Response(body, media_type="application/json")


def _store(request: Request) -> PostgresAttachmentStore:
    attachments: PostgresAttachmentStore | None = request.app.state.attachments
    if attachments is None:
        raise not_enabled("attachments")
    return attachments


# --8<-- [start:routes]
def attachment_router(authenticate: Callable[..., Any], as_context: Callable[[object], RequestContext]) -> APIRouter:
    """Upload (direct and two-phase), download and preview. chatkit_router() includes it.

    `authenticate` is the dependency that authenticates /chatkit; `as_context` turns its user into a context.
    """
    router = APIRouter(dependencies=[Depends(_database_outage_is_503)])

    @router.post("/attachments")
    async def upload_direct(request: Request, user: object = Depends(authenticate)) -> Response:
        context = _with_public_url(request, as_context(user))
        attachments = _store(request)
        file = await _one_file(request, attachments.limits)
        data = await file.read()
        return _attachment_json(
            await attachments.upload(file.filename or "file", file.content_type or "", data, context)
        )

    @router.post("/attachments/{attachment_id}/upload")
    async def upload_second_phase(
        request: Request, attachment_id: str, expires: str = "", signature: str = ""
    ) -> Response:
        attachments = _store(request)
        attachments.signer.verify("upload", attachment_id, expires, signature)
        file = await _one_file(request, attachments.limits)
        try:
            done = await attachments.receive_bytes(attachment_id, await file.read())
        except NotFoundError as exc:
            raise RequestError(404, "not_found", str(exc)) from None
        return _attachment_json(attachments.with_fresh_urls(done, _with_public_url(request, None)))

    @router.get("/attachments/{attachment_id}")
    async def download(request: Request, attachment_id: str, user: object = Depends(authenticate)) -> Response:
        try:
            attachment, data = await _store(request).read(attachment_id, as_context(user))
        except NotFoundError as exc:
            raise RequestError(404, "not_found", str(exc)) from None
        headers = {"Content-Disposition": _content_disposition("attachment", attachment.name), **_SAFE}
        return Response(data, media_type=attachment.mime_type, headers=headers)

    @router.get("/attachments/{attachment_id}/preview")
    async def preview(request: Request, attachment_id: str, expires: str = "", signature: str = "") -> Response:
        attachments = _store(request)
        attachments.signer.verify("preview", attachment_id, expires, signature)
        try:
            attachment, data = await attachments.read(attachment_id, None)
        except NotFoundError as exc:
            raise RequestError(404, "not_found", str(exc)) from None
        if not attachment.mime_type.startswith("image/"):
            raise RequestError(404, "not_found", "only images have previews")
        headers = {"Cache-Control": "private, max-age=300", **_SAFE}
        return Response(data, media_type=attachment.mime_type, headers=headers)

    return router


# The browser must treat the bytes as the declared type, and never run them as a page.
_SAFE = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
# --8<-- [end:routes]


def public_url(request: Request) -> str:
    """PUBLIC_URL, else the URL this request reached (behind a proxy, run uvicorn with --proxy-headers)."""
    settings: Settings = request.app.state.settings
    return settings.public_url or str(request.base_url).rstrip("/")


def _with_public_url(request: Request, user: RequestContext | None) -> RequestContext:
    context = user or RequestContext(user_id="")
    return replace(context, public_url=public_url(request))
