"""An in-memory ChatKit Store: threads and items live in process memory and vanish on restart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata


# --8<-- [start:store]
# --8<-- [start:sort-key]
def _sort_key(row: ThreadMetadata | ThreadItem) -> datetime:
    # The SDK stamps naive local datetimes; astimezone() makes naive and aware comparable.
    return row.created_at.astimezone(UTC)


# --8<-- [end:sort-key]
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
