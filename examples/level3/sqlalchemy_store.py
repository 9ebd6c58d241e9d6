"""Level 3: the same ChatKit Store as store.py, on an app's SQLAlchemy 2 AsyncEngine (asyncpg driver).

Pick it when the app already talks to PostgreSQL through SQLAlchemy: ChatKit then shares the app's
engine, its pool and its settings, and `chatkit_metadata` can join the app's Alembic migrations. The
tables, the rules and the JSON are those of PostgresStore, so the two stores read each other's rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    and_,
    delete,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .context import RequestContext
from .store import full_length_id

# --8<-- [start:sa-tables]
# The tables of store.py's SCHEMA, as SQLAlchemy Core. Alembic users add chatkit_metadata to
# target_metadata; everyone else lets create_schema() make them at startup.
chatkit_metadata = MetaData()

threads = Table(
    "chatkit_threads",
    chatkit_metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("data", JSONB, nullable=False),  # ThreadMetadata, without items
    Index("chatkit_threads_page", "tenant_id", "user_id", "created_at", "id"),
)

items = Table(
    "chatkit_items",
    chatkit_metadata,
    Column("thread_id", Text, ForeignKey("chatkit_threads.id", ondelete="CASCADE"), primary_key=True),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("data", JSONB, nullable=False),  # one ThreadItem, tagged by its "type"
    Index("chatkit_items_page", "thread_id", "created_at", "id"),
)

attachments = Table(
    "chatkit_attachments",
    chatkit_metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("thread_id", Text),  # set when the message carrying it is saved
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("data", JSONB, nullable=False),
)
# --8<-- [end:sa-tables]

_ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
_ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)
_START: dict[str, tuple[datetime, str]] = {
    "asc": (datetime.min.replace(tzinfo=UTC), ""),
    "desc": (datetime.max.replace(tzinfo=UTC), ""),
}


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)  # the SDK stamps naive local times; the column holds UTC


def _page(rows: list[Any], limit: int) -> Page[Any]:
    data = rows[:limit]
    has_more = len(rows) > limit
    return Page(data=data, has_more=has_more, after=data[-1].id if has_more and data else None)


# --8<-- [start:sa-store]
class SQLAlchemyStore(Store[RequestContext]):
    """Threads, items and attachment metadata on the app's AsyncEngine, scoped to (tenant_id, user_id).

    JSON goes in as Python dicts (model_dump(mode="json")) and the engine's JSONB type encodes it, so
    a custom json_serializer on the engine keeps working.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            # Several workers may start at once: one creates the tables, the others wait and find them.
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('chatkit_schema'))"))
            await conn.run_sync(chatkit_metadata.create_all)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def generate_thread_id(self, context: RequestContext) -> str:
        return full_length_id("thread")

    def generate_item_id(self, item_type: StoreItemType, thread: ThreadMetadata, context: RequestContext) -> str:
        return full_length_id(item_type)

    @staticmethod
    def _owns(table: Table, context: RequestContext) -> Any:
        return and_(table.c.tenant_id == context.tenant_id, table.c.user_id == context.user_id)

    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        query = select(threads.c.data).where(threads.c.id == thread_id, self._owns(threads, context))
        async with self.engine.connect() as conn:
            data = await conn.scalar(query)
        if data is None:
            raise NotFoundError(f"thread {thread_id} not found")
        return ThreadMetadata.model_validate(data)

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        # The server passes a Thread (with .items) at times: store the metadata only.
        values = {
            "id": thread.id,
            "tenant_id": context.tenant_id,
            "user_id": context.user_id,
            "created_at": _utc(thread.created_at),
            "data": thread.model_dump(mode="json", exclude={"items"}),
        }
        statement = insert(threads).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[threads.c.id],
            set_={"created_at": statement.excluded.created_at, "data": statement.excluded.data},
            where=self._owns(threads, context),  # someone else's id: no row, NotFoundError below
        ).returning(threads.c.id)
        async with self.engine.begin() as conn:
            saved = await conn.scalar(statement)
        if saved is None:
            raise NotFoundError(f"thread {thread.id} not found")

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        order = "desc" if order == "desc" else "asc"
        async with self.engine.connect() as conn:
            cursor = _START[order]
            if after is not None:
                row = (
                    await conn.execute(
                        select(threads.c.created_at, threads.c.id).where(
                            threads.c.id == after, self._owns(threads, context)
                        )
                    )
                ).first()
                if row is None:
                    raise NotFoundError(f"cursor {after} not found")
                cursor = (row.created_at, row.id)
            key = tuple_(threads.c.created_at, threads.c.id)
            query = select(threads.c.data).where(self._owns(threads, context))
            if order == "asc":
                query = query.where(key > tuple_(*cursor)).order_by(threads.c.created_at, threads.c.id)
            else:
                query = query.where(key < tuple_(*cursor)).order_by(threads.c.created_at.desc(), threads.c.id.desc())
            rows = (await conn.scalars(query.limit(limit + 1))).all()
        return _page([ThreadMetadata.model_validate(data) for data in rows], limit)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        # ON DELETE CASCADE removes the thread's items in the same statement.
        statement = delete(threads).where(threads.c.id == thread_id, self._owns(threads, context))
        async with self.engine.begin() as conn:
            deleted = await conn.scalar(statement.returning(threads.c.id))
        if deleted is None:
            raise NotFoundError(f"thread {thread_id} not found")

    async def _require_thread(self, conn: AsyncConnection, thread_id: str, context: RequestContext) -> None:
        found = await conn.scalar(select(threads.c.id).where(threads.c.id == thread_id, self._owns(threads, context)))
        if found is None:
            raise NotFoundError(f"thread {thread_id} not found")

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: RequestContext
    ) -> Page[ThreadItem]:
        order = "desc" if order == "desc" else "asc"
        mine = and_(items.c.thread_id == thread_id, self._owns(items, context))
        async with self.engine.connect() as conn:
            await self._require_thread(conn, thread_id, context)
            cursor = _START[order]
            if after is not None:
                row = (
                    await conn.execute(select(items.c.created_at, items.c.id).where(mine, items.c.id == after))
                ).first()
                if row is None:
                    raise NotFoundError(f"cursor {after} not found in thread {thread_id}")
                cursor = (row.created_at, row.id)
            key = tuple_(items.c.created_at, items.c.id)
            query = select(items.c.data).where(mine)
            if order == "asc":
                query = query.where(key > tuple_(*cursor)).order_by(items.c.created_at, items.c.id)
            else:
                query = query.where(key < tuple_(*cursor)).order_by(items.c.created_at.desc(), items.c.id.desc())
            rows = (await conn.scalars(query.limit(limit + 1))).all()
        return _page([_ITEM.validate_python(data) for data in rows], limit)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        await self.save_item(thread_id, item, context)  # an upsert: a done event can arrive twice

    async def save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        # INSERT ... SELECT from the caller's own thread: no thread, no row, nothing written elsewhere.
        statement = insert(items).from_select(
            ["thread_id", "id", "tenant_id", "user_id", "created_at", "data"],
            select(
                threads.c.id,
                literal(item.id, Text()),
                threads.c.tenant_id,
                threads.c.user_id,
                literal(_utc(item.created_at), DateTime(timezone=True)),
                literal(_ITEM.dump_python(item, mode="json"), JSONB()),
            ).where(threads.c.id == thread_id, self._owns(threads, context)),
        )
        statement = statement.on_conflict_do_update(
            index_elements=[items.c.thread_id, items.c.id],
            set_={"created_at": statement.excluded.created_at, "data": statement.excluded.data},
        ).returning(items.c.id)
        async with self.engine.begin() as conn:
            saved = await conn.scalar(statement)
        if saved is None:
            raise NotFoundError(f"thread {thread_id} not found")

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        query = select(items.c.data).where(
            items.c.thread_id == thread_id, items.c.id == item_id, self._owns(items, context)
        )
        async with self.engine.connect() as conn:
            data = await conn.scalar(query)
        if data is None:
            raise NotFoundError(f"item {item_id} not found in thread {thread_id}")
        return _ITEM.validate_python(data)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: RequestContext) -> None:
        async with self.engine.begin() as conn:
            await self._require_thread(conn, thread_id, context)
            await conn.execute(
                delete(items).where(items.c.thread_id == thread_id, items.c.id == item_id, self._owns(items, context))
            )

    async def save_attachment(self, attachment: Attachment, context: RequestContext) -> None:
        statement = insert(attachments).values(
            id=attachment.id,
            tenant_id=context.tenant_id,
            user_id=context.user_id,
            thread_id=attachment.thread_id,
            data=_ATTACHMENT.dump_python(attachment, mode="json"),  # keeps `metadata`
        )
        statement = statement.on_conflict_do_update(
            index_elements=[attachments.c.id],
            set_={"thread_id": statement.excluded.thread_id, "data": statement.excluded.data},
            where=self._owns(attachments, context),
        ).returning(attachments.c.id)
        async with self.engine.begin() as conn:
            saved = await conn.scalar(statement)
        if saved is None:
            raise NotFoundError(f"attachment {attachment.id} not found")

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        query = select(attachments.c.data).where(attachments.c.id == attachment_id, self._owns(attachments, context))
        async with self.engine.connect() as conn:
            data = await conn.scalar(query)
        if data is None:
            raise NotFoundError(f"attachment {attachment_id} not found")
        return _ATTACHMENT.validate_python(data)

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        statement = delete(attachments).where(attachments.c.id == attachment_id, self._owns(attachments, context))
        async with self.engine.begin() as conn:
            deleted = await conn.scalar(statement.returning(attachments.c.id))
        if deleted is None:
            raise NotFoundError(f"attachment {attachment_id} not found")


# --8<-- [end:sa-store]
