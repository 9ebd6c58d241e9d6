"""Level 3: a ChatKit Store in PostgreSQL, on asyncpg.

Every row carries its owner (tenant_id, user_id) and every statement filters on the caller's, so one
user can never read, list, overwrite or delete another user's threads, items or attachments: to them
those rows simply do not exist (NotFoundError). All the SQL of the example lives in this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
from chatkit.store import NotFoundError, Store, StoreItemType, default_generate_id
from chatkit.types import Attachment, FeedbackKind, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter

from .context import RequestContext

# --8<-- [start:pg-schema]
SCHEMA = """
CREATE TABLE IF NOT EXISTS chatkit_threads (
    id          text        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    user_id     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    data        jsonb       NOT NULL  -- ThreadMetadata, without items
);
-- load_threads: one owner's threads in (created_at, id) order, a page at a time.
CREATE INDEX IF NOT EXISTS chatkit_threads_page
    ON chatkit_threads (tenant_id, user_id, created_at, id);

CREATE TABLE IF NOT EXISTS chatkit_items (
    thread_id   text        NOT NULL REFERENCES chatkit_threads (id) ON DELETE CASCADE,
    id          text        NOT NULL,
    tenant_id   text        NOT NULL,  -- copied from the thread: every query can filter on the owner
    user_id     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    data        jsonb       NOT NULL,  -- one ThreadItem (any type), tagged by its "type"
    PRIMARY KEY (thread_id, id)
);
-- load_thread_items: a thread's history in (created_at, id) order, scanned forwards or backwards.
CREATE INDEX IF NOT EXISTS chatkit_items_page
    ON chatkit_items (thread_id, created_at, id);

CREATE TABLE IF NOT EXISTS chatkit_attachments (
    id          text        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    user_id     text        NOT NULL,
    thread_id   text,  -- set when the message carrying it is saved; no FK, uploads come first
    created_at  timestamptz NOT NULL DEFAULT now(),
    data        jsonb       NOT NULL
);
-- Attachment bytes (attachments.py): every instance reads them, so no local folder. Deleting the
-- metadata row deletes the bytes.
CREATE TABLE IF NOT EXISTS chatkit_attachment_blobs (
    id          text        PRIMARY KEY REFERENCES chatkit_attachments (id) ON DELETE CASCADE,
    tenant_id   text        NOT NULL,
    user_id     text        NOT NULL,
    bytes       bytea       NOT NULL
);
-- The cleanup sweep: uploads no message uses, oldest first. And a deleted thread's attachments.
CREATE INDEX IF NOT EXISTS chatkit_attachments_unused ON chatkit_attachments (created_at) WHERE thread_id IS NULL;
CREATE INDEX IF NOT EXISTS chatkit_attachments_thread ON chatkit_attachments (thread_id);

-- items.feedback: one verdict per item and user; it goes when the item goes (a retry deletes items).
CREATE TABLE IF NOT EXISTS chatkit_feedback (
    thread_id   text        NOT NULL,
    item_id     text        NOT NULL,
    tenant_id   text        NOT NULL,
    user_id     text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('positive', 'negative')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, item_id, tenant_id, user_id),
    FOREIGN KEY (thread_id, item_id) REFERENCES chatkit_items (thread_id, id) ON DELETE CASCADE
);
"""


async def create_schema(pool: asyncpg.Pool) -> None:
    """Create the tables and indexes if they are missing. Safe to run at every start."""
    async with pool.acquire() as conn, conn.transaction():
        # Several workers may start at once, and concurrent CREATE ... IF NOT EXISTS can still
        # collide in the catalog: take a lock for the length of this transaction.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('chatkit_schema'))")
        await conn.execute(SCHEMA)


# --8<-- [end:pg-schema]


# --8<-- [start:pg-pool]
async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, timeout_seconds: float = 10.0
) -> asyncpg.Pool:
    """One pool per process, opened in the app's lifespan and closed when it ends.

    `timeout_seconds` bounds every statement and every new connection (asyncpg waits 60 s to connect,
    and forever for a statement, by default): a slow or unreachable database ends a request with an
    error in seconds instead of holding it, and its connection, indefinitely. asyncpg enforces it and
    cancels the statement on the server, so it needs no server setting.

    The store needs nothing from the pool beyond a connection: no init hook, no codec. An app that
    already has an asyncpg pool passes that one to PostgresStore instead.
    """
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_seconds,
        command_timeout=timeout_seconds,
        reset=keep_session_as_is,
    )


async def keep_session_as_is(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query, a round trip on every release (5 per turn).

    That query undoes session state: SET, LISTEN, session advisory locks, open cursors. The store
    leaves none (its one advisory lock is transaction-scoped), and asyncpg still rolls back an open
    transaction before calling this. Code that sets session state on these connections needs the
    default back: leave `reset` out.
    """


# What a database outage or a timed-out statement raises: the app answers these with 503, not 500.
# OSError: refused or reset connections; PostgresConnectionError: a connection that died (class 08);
# OperatorInterventionError: a shutdown, a restart in progress, a cancelled statement (class 57).
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


# --8<-- [end:pg-pool]

_ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
_ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)


# --8<-- [start:pg-keyset]
# Keyset pagination: a page starts after the (created_at, id) of the `after` row. Comparing the pair,
# not created_at alone, keeps rows that share a timestamp: each is returned exactly once. Each query
# is one range scan of its index (see SCHEMA), forwards for "asc" and backwards for "desc".
_THREADS_PAGE = {
    "asc": """
        SELECT data::text FROM chatkit_threads
        WHERE tenant_id = $1 AND user_id = $2 AND (created_at, id) > ($3, $4)
        ORDER BY created_at, id LIMIT $5
        """,
    "desc": """
        SELECT data::text FROM chatkit_threads
        WHERE tenant_id = $1 AND user_id = $2 AND (created_at, id) < ($3, $4)
        ORDER BY created_at DESC, id DESC LIMIT $5
        """,
}
# The thread row comes first: no row at all means the caller does not own the thread (an empty page
# would hide that), one row with a NULL item means an empty page. One statement, one round trip.
_ITEMS_PAGE = {
    "asc": """
        SELECT i.data::text FROM chatkit_threads AS t
        LEFT JOIN LATERAL (
            SELECT created_at, id, data FROM chatkit_items
            WHERE thread_id = t.id AND (created_at, id) > ($4, $5)
            ORDER BY created_at, id LIMIT $6
        ) AS i ON true
        WHERE t.id = $1 AND t.tenant_id = $2 AND t.user_id = $3
        ORDER BY i.created_at, i.id
        """,
    "desc": """
        SELECT i.data::text FROM chatkit_threads AS t
        LEFT JOIN LATERAL (
            SELECT created_at, id, data FROM chatkit_items
            WHERE thread_id = t.id AND (created_at, id) < ($4, $5)
            ORDER BY created_at DESC, id DESC LIMIT $6
        ) AS i ON true
        WHERE t.id = $1 AND t.tenant_id = $2 AND t.user_id = $3
        ORDER BY i.created_at DESC, i.id DESC
        """,
}
# The first page's cursor: before every row (ascending) or after every row (descending).
_START: dict[str, tuple[datetime, str]] = {
    "asc": (datetime.min.replace(tzinfo=UTC), ""),
    "desc": (datetime.max.replace(tzinfo=UTC), ""),
}


def _utc(moment: datetime) -> datetime:
    # The SDK stamps naive local times (datetime.now()). astimezone() reads a naive value as local
    # time and keeps an aware one, so both kinds land on one UTC timeline in the column.
    return moment.astimezone(UTC)


MAX_PAGE = 100  # the endpoint clamps `limit` already; the store does too, so SQL never sees LIMIT -4


def _bounded(limit: int) -> int:
    return min(max(limit, 1), MAX_PAGE)


def _page(rows: list[Any], limit: int) -> Page[Any]:
    """A page from `limit + 1` fetched rows: the extra row only says that there is more."""
    data = rows[:limit]
    has_more = len(rows) > limit
    # `after` names the last row returned, or the SDK's pagination never ends.
    return Page(data=data, has_more=has_more, after=data[-1].id if has_more and data else None)


# --8<-- [end:pg-keyset]


# --8<-- [start:pg-ids]
def full_length_id(kind: StoreItemType) -> str:
    """The SDK's prefix ("thr", "msg", ...) with the whole uuid4: 32 hex digits, 122 random bits.

    The SDK default is the prefix and 8 hex digits, 32 bits: a table that every user shares reaches
    even odds of a collision at about 77,000 ids, and then a new thread is refused (the id is another
    user's) or a new item overwrites an older one of the same thread.
    """
    prefix = default_generate_id(kind).partition("_")[0]  # the SDK's own prefix, for every kind
    return f"{prefix}_{uuid4().hex}"


# --8<-- [end:pg-ids]


# --8<-- [start:pg-store]
class PostgresStore(Store[RequestContext]):
    """Threads, items and attachment metadata in PostgreSQL, scoped to (tenant_id, user_id)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_schema(self) -> None:
        await create_schema(self.pool)

    async def ping(self) -> None:
        """One round trip, for /healthz: raises if the database can't be reached."""
        async with self.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")

    # Override both id generators: the SDK's 8-hex-digit ids collide in a shared table.
    def generate_thread_id(self, context: RequestContext) -> str:
        return full_length_id("thread")

    def generate_item_id(self, item_type: StoreItemType, thread: ThreadMetadata, context: RequestContext) -> str:
        return full_length_id(item_type)

    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        data = await self.pool.fetchval(
            "SELECT data::text FROM chatkit_threads WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
            thread_id,
            context.tenant_id,
            context.user_id,
        )
        if data is None:
            raise NotFoundError(f"thread {thread_id} not found")
        return ThreadMetadata.model_validate_json(data)

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        # The server passes a Thread (with .items) at times: store the metadata only.
        data = thread.model_dump_json(exclude={"items"})
        saved = await self.pool.fetchval(
            """
            INSERT INTO chatkit_threads AS t (id, tenant_id, user_id, created_at, data)
            VALUES ($1, $2, $3, $4, $5::text::jsonb)
            ON CONFLICT (id) DO UPDATE SET created_at = EXCLUDED.created_at, data = EXCLUDED.data
                WHERE t.tenant_id = EXCLUDED.tenant_id AND t.user_id = EXCLUDED.user_id
            RETURNING id
            """,
            thread.id,
            context.tenant_id,
            context.user_id,
            _utc(thread.created_at),
            data,
        )
        if saved is None:  # the id is taken by someone else's thread: not theirs to overwrite
            raise NotFoundError(f"thread {thread.id} not found")

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        order, limit = ("desc" if order == "desc" else "asc"), _bounded(limit)
        async with self.pool.acquire() as conn:
            cursor = _START[order]
            if after is not None:
                row = await conn.fetchrow(
                    "SELECT created_at, id FROM chatkit_threads WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
                    after,
                    context.tenant_id,
                    context.user_id,
                )
                if row is None:
                    raise NotFoundError(f"cursor {after} not found")
                cursor = (row["created_at"], row["id"])
            rows = await conn.fetch(_THREADS_PAGE[order], context.tenant_id, context.user_id, *cursor, limit + 1)
        return _page([ThreadMetadata.model_validate_json(r["data"]) for r in rows], limit)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        # ON DELETE CASCADE removes the thread's items in the same statement.
        deleted = await self.pool.fetchval(
            "DELETE FROM chatkit_threads WHERE id = $1 AND tenant_id = $2 AND user_id = $3 RETURNING id",
            thread_id,
            context.tenant_id,
            context.user_id,
        )
        if deleted is None:
            raise NotFoundError(f"thread {thread_id} not found")

    async def _require_thread(self, conn: asyncpg.Connection, thread_id: str, context: RequestContext) -> None:
        """Raise NotFoundError unless the caller owns the thread (an empty page would hide that)."""
        found = await conn.fetchval(
            "SELECT 1 FROM chatkit_threads WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
            thread_id,
            context.tenant_id,
            context.user_id,
        )
        if found is None:
            raise NotFoundError(f"thread {thread_id} not found")

    # --8<-- [start:pg-pagination]
    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: RequestContext
    ) -> Page[ThreadItem]:
        order, limit = ("desc" if order == "desc" else "asc"), _bounded(limit)
        owner = (context.tenant_id, context.user_id)
        cursor = _START[order]  # the first page starts before (asc) or after (desc) every row
        if after is not None:
            row = await self.pool.fetchrow(
                "SELECT created_at, id FROM chatkit_items"
                " WHERE thread_id = $1 AND id = $2 AND tenant_id = $3 AND user_id = $4",
                thread_id,
                after,
                *owner,
            )
            if row is None:
                raise NotFoundError(f"cursor {after} not found in thread {thread_id}")
            cursor = (row["created_at"], row["id"])
        # limit + 1 rows: the extra one only tells whether another page exists.
        rows = await self.pool.fetch(_ITEMS_PAGE[order], thread_id, *owner, *cursor, limit + 1)
        if not rows:
            raise NotFoundError(f"thread {thread_id} not found")
        return _page([_ITEM.validate_json(r["data"]) for r in rows if r["data"] is not None], limit)

    # --8<-- [end:pg-pagination]
    # --8<-- [start:pg-add-item]
    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        # An upsert, not a plain INSERT: a done event can arrive twice for the same item.
        await self.save_item(thread_id, item, context)

    # --8<-- [end:pg-add-item]
    # --8<-- [start:pg-upsert]
    async def save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        # One statement: the SELECT yields a row only if the caller owns the thread, so nothing is
        # written into someone else's thread. The key is (thread_id, id), and that thread is the
        # caller's, so the row an id collides with is always the caller's own.
        saved = await self.pool.fetchval(
            """
            INSERT INTO chatkit_items AS i (thread_id, id, tenant_id, user_id, created_at, data)
            SELECT t.id, $2, t.tenant_id, t.user_id, $5, $6::text::jsonb
            FROM chatkit_threads AS t
            WHERE t.id = $1 AND t.tenant_id = $3 AND t.user_id = $4
            ON CONFLICT (thread_id, id) DO UPDATE SET created_at = EXCLUDED.created_at, data = EXCLUDED.data
            RETURNING i.id
            """,
            thread_id,
            item.id,
            context.tenant_id,
            context.user_id,
            _utc(item.created_at),
            _ITEM.dump_json(item).decode(),
        )
        if saved is None:
            raise NotFoundError(f"thread {thread_id} not found")

    # --8<-- [end:pg-upsert]
    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        data = await self.pool.fetchval(
            "SELECT data::text FROM chatkit_items WHERE thread_id = $1 AND id = $2 AND tenant_id = $3 AND user_id = $4",
            thread_id,
            item_id,
            context.tenant_id,
            context.user_id,
        )
        if data is None:
            raise NotFoundError(f"item {item_id} not found in thread {thread_id}")
        return _ITEM.validate_json(data)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: RequestContext) -> None:
        async with self.pool.acquire() as conn:
            await self._require_thread(conn, thread_id, context)
            await conn.execute(
                "DELETE FROM chatkit_items WHERE thread_id = $1 AND id = $2 AND tenant_id = $3 AND user_id = $4",
                thread_id,
                item_id,
                context.tenant_id,
                context.user_id,
            )

    async def save_attachment(self, attachment: Attachment, context: RequestContext) -> None:
        saved = await self.pool.fetchval(
            """
            INSERT INTO chatkit_attachments AS a (id, tenant_id, user_id, thread_id, data)
            VALUES ($1, $2, $3, $4, $5::text::jsonb)
            ON CONFLICT (id) DO UPDATE SET thread_id = EXCLUDED.thread_id, data = EXCLUDED.data
                WHERE a.tenant_id = EXCLUDED.tenant_id AND a.user_id = EXCLUDED.user_id
            RETURNING id
            """,
            attachment.id,
            context.tenant_id,
            context.user_id,
            attachment.thread_id,
            _ATTACHMENT.dump_json(attachment).decode(),  # keeps `metadata`, unlike responses
        )
        if saved is None:
            raise NotFoundError(f"attachment {attachment.id} not found")

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        data = await self.pool.fetchval(
            "SELECT data::text FROM chatkit_attachments WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
            attachment_id,
            context.tenant_id,
            context.user_id,
        )
        if data is None:
            raise NotFoundError(f"attachment {attachment_id} not found")
        return _ATTACHMENT.validate_json(data)

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        deleted = await self.pool.fetchval(
            "DELETE FROM chatkit_attachments WHERE id = $1 AND tenant_id = $2 AND user_id = $3 RETURNING id",
            attachment_id,
            context.tenant_id,
            context.user_id,
        )
        if deleted is None:
            raise NotFoundError(f"attachment {attachment_id} not found")

    # --8<-- [start:pg-feedback]
    async def save_feedback(
        self, thread_id: str, item_ids: list[str], kind: FeedbackKind, context: RequestContext
    ) -> None:
        """Record the caller's verdict on items of their thread; a later verdict replaces an earlier one.

        All or nothing: an id that is not an item of this thread (or a thread that is not the caller's)
        is NotFoundError, and nothing is written.
        """
        wanted = sorted(set(item_ids))
        owner = (context.tenant_id, context.user_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._require_thread(conn, thread_id, context)
            found = await conn.fetch(
                "SELECT id FROM chatkit_items WHERE thread_id = $1 AND id = ANY($2::text[])"
                " AND tenant_id = $3 AND user_id = $4",
                thread_id,
                wanted,
                *owner,
            )
            if missing := set(wanted) - {row["id"] for row in found}:
                raise NotFoundError(f"item {min(missing)} not found in thread {thread_id}")
            await conn.execute(
                """
                INSERT INTO chatkit_feedback (thread_id, item_id, tenant_id, user_id, kind)
                SELECT $1, unnest($2::text[]), $3, $4, $5
                ON CONFLICT (thread_id, item_id, tenant_id, user_id)
                    DO UPDATE SET kind = EXCLUDED.kind, created_at = now()
                """,
                thread_id,
                wanted,
                *owner,
                kind,
            )

    async def load_feedback(self, thread_id: str, context: RequestContext) -> dict[str, FeedbackKind]:
        """The caller's verdicts on a thread's items, by item id (for reports, or to show them again)."""
        rows = await self.pool.fetch(
            "SELECT item_id, kind FROM chatkit_feedback WHERE thread_id = $1 AND tenant_id = $2 AND user_id = $3",
            thread_id,
            context.tenant_id,
            context.user_id,
        )
        return {row["item_id"]: row["kind"] for row in rows}

    # --8<-- [end:pg-feedback]


# --8<-- [end:pg-store]
