"""The Store contract: one suite that every chatkit Store in this project passes, and yours can too.

Each test gets a fresh, empty store ("subject") and runs once per store: the Level 1 and Level 2
in-memory stores and the Level 3 PostgresStore (on a real throwaway PostgreSQL, never mocked).

Run it against YOUR store with one command:

    CHATKIT_STORE_FACTORY=myapp.testing:store_subject .venv/bin/python -m pytest tests/test_store_contract.py -k custom

`myapp.testing` must be importable (installed, or under the directory you run from) and
`store_subject` is called with no arguments once per test. It may be

  * an async function returning a subject, or
  * a function returning an async context manager that yields one (e.g. an @asynccontextmanager),
    for stores that must be opened and closed (a connection pool).

If it takes a parameter named `dsn`, it receives the DSN of a new, empty PostgreSQL database for that
test (on the same throwaway cluster this suite uses, or on TEST_DATABASE_URL's server).

A subject is any object with:

    subject.store                               your Store, empty
    subject.context(user_id, tenant_id="t1")    the context your server passes for that caller
    subject.tenants                             optional (default True): False if the store has no tenants,
                                                which skips the tenant test

tests/store_factories.py has a StoreSubject dataclass and working examples.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

import level3.store as level3_store
import pytest
import store_factories
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    FileAttachment,
    HiddenContextItem,
    ImageAttachment,
    InferenceOptions,
    LockedStatus,
    Page,
    Thread,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
    WidgetItem,
)
from chatkit.widgets import WidgetTemplate
from level3.sqlalchemy_store import SQLAlchemyStore
from level3.store import PostgresStore, create_pool, create_schema
from pydantic import TypeAdapter

ENV = "CHATKIT_STORE_FACTORY"

PROJECT_STORES: dict[str, Callable[..., Any]] = {
    "level1-memory": store_factories.level1_memory,
    "level2-memory": store_factories.level2_memory,
    "level3-postgres": store_factories.level3_postgres,  # create_pool(): a plain pool, no codecs
    "level3-postgres-app-pool": store_factories.level3_postgres_on_app_pool,
    "level3-sqlalchemy": store_factories.level3_sqlalchemy,  # SQLAlchemyStore on an AsyncEngine
}
SUBJECTS = [*PROJECT_STORES, *(["custom"] if os.environ.get(ENV) else [])]


def load_factory(spec: str) -> Callable[..., Any]:
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"{ENV} must look like package.module:function, not {spec!r}")
    return getattr(importlib.import_module(module_name), attribute)


@pytest.fixture(params=SUBJECTS)
def open_subject(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """The factory for this run's store, with a fresh database bound in when it asks for `dsn`."""
    factory = load_factory(os.environ[ENV]) if request.param == "custom" else PROJECT_STORES[request.param]
    if "dsn" in inspect.signature(factory).parameters:
        return partial(factory, dsn=request.getfixturevalue("pg_dsn"))
    return factory


@pytest.fixture
async def subject(open_subject: Callable[[], Any]) -> AsyncIterator[Any]:
    made = open_subject()
    if hasattr(made, "__aenter__"):
        async with made as opened:
            yield opened
    else:
        yield await made if inspect.isawaitable(made) else made


# ---------------------------------------------------------------------------------------- helpers

_ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
_ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)
_GREETING = WidgetTemplate(
    {
        "version": "1.0",
        "name": "greeting",
        "template": '{"type": "Card", "children": [{"type": "Text", "value": "Hello, {{ name }}"}]}',
        "jsonSchema": {},
    }
)


def new_id(prefix: str) -> str:
    # Unique per call, so a store that is not emptied between tests still gives clean answers.
    return f"{prefix}_{uuid4().hex}"


def users(subject: Any, *names: str, tenant_id: str = "t1") -> list[Any]:
    return [subject.context(new_id(name), tenant_id) for name in names]


def dump(value: Any) -> Any:
    """What the client would see: JSON, without None fields (as ChatKitServer serializes)."""
    if isinstance(value, list):
        return [dump(v) for v in value]
    adapter = _ATTACHMENT if isinstance(value, FileAttachment | ImageAttachment) else _ITEM
    if isinstance(value, ThreadMetadata):
        return value.model_dump(mode="json", exclude_none=True)
    return adapter.dump_python(value, mode="json", exclude_none=True)


def thread(created_at: datetime | None = None, **fields: Any) -> ThreadMetadata:
    return ThreadMetadata(id=new_id("thr"), created_at=created_at or datetime.now(), **fields)


def user_message(thread_id: str, text: str, created_at: datetime | None = None) -> UserMessageItem:
    return UserMessageItem(
        id=new_id("msg"),
        thread_id=thread_id,
        created_at=created_at or datetime.now(),
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def assistant_message(thread_id: str, text: str, created_at: datetime | None = None) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=new_id("msg"),
        thread_id=thread_id,
        created_at=created_at or datetime.now(),
        content=[AssistantMessageContent(text=text)],
    )


def widget_item(thread_id: str, name: str, created_at: datetime | None = None) -> WidgetItem:
    return WidgetItem(
        id=new_id("msg"),
        thread_id=thread_id,
        created_at=created_at or datetime.now(),
        widget=_GREETING.build({"name": name}),
        copy_text=f"Hello, {name}",
    )


def hidden_item(thread_id: str, content: Any, created_at: datetime | None = None) -> HiddenContextItem:
    return HiddenContextItem(
        id=new_id("hc"), thread_id=thread_id, created_at=created_at or datetime.now(), content=content
    )


async def saved_thread(store: Store[Any], context: Any, **fields: Any) -> ThreadMetadata:
    created = thread(**fields)
    await store.save_thread(created, context)
    return created


async def walk(load: Callable[[str | None], Awaitable[Page[Any]]], limit: int) -> tuple[list[str], list[int]]:
    """Follow `after` cursors to the end: every id in order, and the size of each page."""
    ids: list[str] = []
    sizes: list[int] = []
    after: str | None = None
    for _ in range(1000):
        page = await load(after)
        page_ids = [row.id for row in page.data]
        assert len(page_ids) <= limit, "a page holds at most `limit` rows"
        ids += page_ids
        sizes.append(len(page_ids))
        if not page.has_more:
            assert page.after is None, "the last page has after=None"
            return ids, sizes
        assert page_ids, "has_more=True with an empty page never ends"
        assert page.after == page_ids[-1], "`after` is the id of the last row returned"
        after = page.after
    raise AssertionError("pagination did not terminate after 1000 pages")


def walk_items(store: Store[Any], thread_id: str, limit: int, order: str, context: Any) -> Awaitable[Any]:
    # Positional, as ChatKitServer calls it: (thread_id, after, limit, order, context).
    return walk(lambda after: store.load_thread_items(thread_id, after, limit, order, context), limit)


def walk_threads(store: Store[Any], limit: int, order: str, context: Any) -> Awaitable[Any]:
    # By keyword, as ChatKitServer calls it: note limit comes before after here.
    return walk(lambda after: store.load_threads(limit=limit, after=after, order=order, context=context), limit)


async def all_items(store: Store[Any], thread_id: str, context: Any) -> list[ThreadItem]:
    return (await store.load_thread_items(thread_id, None, 1000, "asc", context)).data


# ------------------------------------------------------------------------------------------ threads


async def test_save_and_load_thread(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    created = thread(title="Trip plans", metadata={"topic": "travel"}, status=LockedStatus(reason="archived"))
    await subject.store.save_thread(created, alice)
    loaded = await subject.store.load_thread(created.id, alice)
    assert dump(loaded) == dump(created)


async def test_save_thread_overwrites(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice, title="first")
    await subject.store.save_thread(created.model_copy(update={"title": "second"}), alice)
    assert (await subject.store.load_thread(created.id, alice)).title == "second"
    page = await subject.store.load_threads(limit=10, after=None, order="asc", context=alice)
    assert [t.id for t in page.data] == [created.id]


async def test_save_thread_accepts_a_thread_with_items(subject: Any) -> None:
    """The server saves a Thread (metadata + a page of items) at times; only the metadata is stored."""
    (alice,) = users(subject, "alice")
    thread_id = new_id("thr")
    items = Page[ThreadItem](data=[user_message(thread_id, "hi")])
    full = Thread(id=thread_id, created_at=datetime.now(), title="with items", items=items)
    await subject.store.save_thread(full, alice)
    loaded = await subject.store.load_thread(thread_id, alice)
    # The server rebuilds Thread(**loaded.model_dump(), items=...): an `items` key would collide.
    assert "items" not in loaded.model_dump()
    assert loaded.title == "with items"


async def test_load_missing_thread_raises_not_found(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    with pytest.raises(NotFoundError):
        await subject.store.load_thread(new_id("thr"), alice)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_load_threads_pages_in_both_orders(subject: Any, order: str) -> None:
    (alice,) = users(subject, "alice")
    start = datetime.now()
    created = [thread(start + timedelta(seconds=n)) for n in range(7)]
    for t in reversed(created):  # insertion order must not matter
        await subject.store.save_thread(t, alice)
    expected = [t.id for t in created][:: -1 if order == "desc" else 1]

    ids, sizes = await walk_threads(subject.store, 3, order, alice)
    assert ids == expected
    assert sizes == [3, 3, 1]
    ids, sizes = await walk_threads(subject.store, 7, order, alice)
    assert (ids, sizes) == (expected, [7])


async def test_load_threads_with_equal_timestamps_visits_each_once(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    same = datetime.now()
    created = {t.id for t in [await saved_thread(subject.store, alice, created_at=same) for _ in range(9)]}
    for order in ("asc", "desc"):
        ids, _ = await walk_threads(subject.store, 2, order, alice)
        assert sorted(ids) == sorted(created), order


async def test_load_threads_unknown_cursor_raises_not_found(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    await saved_thread(subject.store, alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_threads(limit=10, after=new_id("thr"), order="asc", context=alice)


async def test_delete_thread_removes_its_items(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    item = user_message(created.id, "bye")
    await subject.store.add_thread_item(created.id, item, alice)

    await subject.store.delete_thread(created.id, alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_thread(created.id, alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_thread_items(created.id, None, 10, "asc", alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_item(created.id, item.id, alice)
    # A thread saved again under the same id starts empty: the items are gone, not hidden.
    await subject.store.save_thread(created, alice)
    assert await all_items(subject.store, created.id, alice) == []


async def test_delete_unknown_thread_raises_not_found(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    with pytest.raises(NotFoundError):
        await subject.store.delete_thread(new_id("thr"), alice)


# -------------------------------------------------------------------------------------------- items


async def test_every_item_type_round_trips_including_hidden_context(subject: Any) -> None:
    """The store returns hidden context items too: ChatKitServer, not the store, hides them from clients."""
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    start = datetime.now()
    items: list[ThreadItem] = [
        user_message(created.id, "Greet Ada", start),
        hidden_item(created.id, {"note": "user prefers formal greetings"}, start + timedelta(seconds=1)),
        widget_item(created.id, "Ada", start + timedelta(seconds=2)),
        assistant_message(created.id, "Done.", start + timedelta(seconds=3)),
    ]
    for item in items:
        await subject.store.add_thread_item(created.id, item, alice)

    assert dump(await all_items(subject.store, created.id, alice)) == dump(items)
    for item in items:
        assert dump(await subject.store.load_item(created.id, item.id, alice)) == dump(item)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_items_come_in_created_at_order(subject: Any, order: str) -> None:
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    start = datetime.now()
    items = [assistant_message(created.id, f"#{n}", start + timedelta(seconds=n)) for n in range(6)]
    for n in (3, 0, 5, 1, 4, 2):  # insertion order must not matter
        await subject.store.add_thread_item(created.id, items[n], alice)
    page = await subject.store.load_thread_items(created.id, None, 100, order, alice)
    expected = [i.id for i in items][:: -1 if order == "desc" else 1]
    assert [i.id for i in page.data] == expected
    assert (page.has_more, page.after) == (False, None)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_item_pages_visit_every_item_once_and_end(subject: Any, order: str) -> None:
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    start = datetime.now()
    items = [user_message(created.id, f"#{n}", start + timedelta(milliseconds=n)) for n in range(23)]
    for item in items:
        await subject.store.add_thread_item(created.id, item, alice)
    expected = [i.id for i in items][:: -1 if order == "desc" else 1]

    for limit, sizes in [(1, [1] * 23), (5, [5, 5, 5, 5, 3]), (20, [20, 3]), (23, [23]), (50, [23])]:
        assert await walk_items(subject.store, created.id, limit, order, alice) == (expected, sizes), limit


async def test_item_pages_with_equal_timestamps_visit_each_once(subject: Any) -> None:
    """Ordering by created_at alone would skip or repeat rows that share a timestamp."""
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    same = datetime.now()
    items = [assistant_message(created.id, f"#{n}", same) for n in range(25)]
    for item in items:
        await subject.store.add_thread_item(created.id, item, alice)
    for order in ("asc", "desc"):
        for limit in (1, 4, 25):
            ids, _ = await walk_items(subject.store, created.id, limit, order, alice)
            assert len(ids) == 25 and set(ids) == {i.id for i in items}, (order, limit)


async def test_naive_and_aware_timestamps_sort_on_one_timeline(subject: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK stamps naive local times; an aware value from elsewhere must sort among them by the clock."""
    # Off UTC on purpose: a store that read naive times as UTC would misplace them by 5.5 hours.
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    try:
        (alice,) = users(subject, "alice")
        created = await saved_thread(subject.store, alice)
        start = datetime.now(UTC)
        moments = [start + timedelta(minutes=n) for n in range(6)]
        # Even steps naive local (like datetime.now()), odd steps aware UTC.
        stamps = [m.astimezone().replace(tzinfo=None) if n % 2 == 0 else m for n, m in enumerate(moments)]
        items = [user_message(created.id, f"#{n}", stamp) for n, stamp in enumerate(stamps)]
        for item in reversed(items):
            await subject.store.add_thread_item(created.id, item, alice)

        ascending = await subject.store.load_thread_items(created.id, None, 10, "asc", alice)
        assert [i.id for i in ascending.data] == [i.id for i in items]
        assert dump(ascending.data) == dump(items)  # each value comes back as it was given
        descending, _ = await walk_items(subject.store, created.id, 2, "desc", alice)
        assert descending == [i.id for i in reversed(items)]
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_save_item_is_an_upsert(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    item = widget_item(created.id, "Ada")
    await subject.store.save_item(created.id, item, alice)  # a missing row is inserted, not an error
    updated = item.model_copy(update={"widget": _GREETING.build({"name": "Grace"}), "copy_text": "Hello, Grace"})
    await subject.store.save_item(created.id, updated, alice)

    stored = await all_items(subject.store, created.id, alice)
    assert dump(stored) == dump([updated])
    assert dump(await subject.store.load_item(created.id, item.id, alice)) == dump(updated)


async def test_add_thread_item_twice_keeps_one_row(subject: Any) -> None:
    """Done events can repeat: adding the same item again must not duplicate it."""
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    item = assistant_message(created.id, "draft")
    await subject.store.add_thread_item(created.id, item, alice)
    final = item.model_copy(update={"content": [AssistantMessageContent(text="final")]})
    await subject.store.add_thread_item(created.id, final, alice)
    await asyncio.gather(*(subject.store.add_thread_item(created.id, final, alice) for _ in range(5)))

    assert dump(await all_items(subject.store, created.id, alice)) == dump([final])


async def test_missing_item_and_unknown_cursor_raise_not_found(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    await subject.store.add_thread_item(created.id, user_message(created.id, "hi"), alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_item(created.id, new_id("msg"), alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_item(new_id("thr"), new_id("msg"), alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_thread_items(created.id, new_id("msg"), 10, "asc", alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_thread_items(new_id("thr"), None, 10, "asc", alice)
    with pytest.raises(NotFoundError):
        await subject.store.add_thread_item(new_id("thr"), user_message(created.id, "lost"), alice)


async def test_delete_thread_item(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    created = await saved_thread(subject.store, alice)
    keep, drop = user_message(created.id, "keep"), user_message(created.id, "drop")
    for item in (keep, drop):
        await subject.store.add_thread_item(created.id, item, alice)
    await subject.store.delete_thread_item(created.id, drop.id, alice)
    assert [i.id for i in await all_items(subject.store, created.id, alice)] == [keep.id]
    with pytest.raises(NotFoundError):
        await subject.store.load_item(created.id, drop.id, alice)


# ---------------------------------------------------------------------------------------- isolation


async def test_other_users_cannot_read_a_thread(subject: Any) -> None:
    alice, bob = users(subject, "alice", "bob")
    mine = await saved_thread(subject.store, alice)
    item = user_message(mine.id, "private")
    await subject.store.add_thread_item(mine.id, item, alice)
    theirs = await saved_thread(subject.store, bob)

    with pytest.raises(NotFoundError):
        await subject.store.load_thread(mine.id, bob)
    with pytest.raises(NotFoundError):
        await subject.store.load_thread_items(mine.id, None, 10, "asc", bob)
    with pytest.raises(NotFoundError):
        await subject.store.load_item(mine.id, item.id, bob)
    with pytest.raises(NotFoundError):  # a cursor naming someone else's thread is not a way in
        await subject.store.load_threads(limit=10, after=mine.id, order="asc", context=bob)
    bobs = await subject.store.load_threads(limit=10, after=None, order="asc", context=bob)
    alices = await subject.store.load_threads(limit=10, after=None, order="asc", context=alice)
    assert [t.id for t in bobs.data] == [theirs.id]
    assert [t.id for t in alices.data] == [mine.id]


async def test_other_users_cannot_change_a_thread(subject: Any) -> None:
    alice, bob = users(subject, "alice", "bob")
    mine = await saved_thread(subject.store, alice, title="mine")
    item = user_message(mine.id, "private")
    await subject.store.add_thread_item(mine.id, item, alice)

    with pytest.raises(NotFoundError):
        await subject.store.save_thread(mine.model_copy(update={"title": "hijacked"}), bob)
    with pytest.raises(NotFoundError):
        await subject.store.add_thread_item(mine.id, user_message(mine.id, "injected"), bob)
    with pytest.raises(NotFoundError):
        await subject.store.save_item(mine.id, item.model_copy(update={"content": []}), bob)
    with pytest.raises(NotFoundError):
        await subject.store.delete_thread_item(mine.id, item.id, bob)
    with pytest.raises(NotFoundError):
        await subject.store.delete_thread(mine.id, bob)

    assert (await subject.store.load_thread(mine.id, alice)).title == "mine"
    assert dump(await all_items(subject.store, mine.id, alice)) == dump([item])


async def test_tenants_are_isolated_even_for_the_same_user_id(subject: Any) -> None:
    if not getattr(subject, "tenants", True):
        pytest.skip("this store keeps users apart but has no notion of tenants")
    user_id = new_id("alice")
    home, other = subject.context(user_id, "tenant-a"), subject.context(user_id, "tenant-b")
    mine = await saved_thread(subject.store, home)
    await subject.store.add_thread_item(mine.id, user_message(mine.id, "hi"), home)

    with pytest.raises(NotFoundError):
        await subject.store.load_thread(mine.id, other)
    with pytest.raises(NotFoundError):
        await subject.store.load_thread_items(mine.id, None, 10, "asc", other)
    with pytest.raises(NotFoundError):
        await subject.store.save_thread(mine, other)
    with pytest.raises(NotFoundError):
        await subject.store.delete_thread(mine.id, other)
    assert (await subject.store.load_threads(limit=10, after=None, order="asc", context=other)).data == []
    intruder = user_message(mine.id, "written from the other tenant")
    for write in (subject.store.add_thread_item, subject.store.save_item):
        with pytest.raises(NotFoundError):
            await write(mine.id, intruder, other)
    first = (await all_items(subject.store, mine.id, home))[0]
    with pytest.raises(NotFoundError):
        await subject.store.load_item(mine.id, first.id, other)
    with pytest.raises(NotFoundError):
        await subject.store.delete_thread_item(mine.id, first.id, other)
    assert [item.id for item in await all_items(subject.store, mine.id, home)] == [first.id]

    attachment = file_attachment()
    await subject.store.save_attachment(attachment, home)
    with pytest.raises(NotFoundError):
        await subject.store.load_attachment(attachment.id, other)
    with pytest.raises(NotFoundError):
        await subject.store.save_attachment(attachment, other)
    assert (await subject.store.load_attachment(attachment.id, home)).id == attachment.id


# -------------------------------------------------------------------------------------- attachments


def file_attachment(thread_id: str | None = None) -> FileAttachment:
    return FileAttachment(
        id=new_id("atc"), name="notes.txt", mime_type="text/plain", thread_id=thread_id, metadata={"key": "s3://b/k"}
    )


async def test_attachment_metadata_save_load_delete(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    uploaded = file_attachment()
    image = ImageAttachment(
        id=new_id("atc"), name="cat.png", mime_type="image/png", preview_url="https://files.example/cat.png"
    )
    for attachment in (uploaded, image):
        await subject.store.save_attachment(attachment, alice)
        loaded = await subject.store.load_attachment(attachment.id, alice)
        assert loaded.model_dump(mode="json") == attachment.model_dump(mode="json")  # metadata included

    # The server saves it again once the message that carries it names a thread.
    attached = uploaded.model_copy(update={"thread_id": new_id("thr")})
    await subject.store.save_attachment(attached, alice)
    assert (await subject.store.load_attachment(uploaded.id, alice)).thread_id == attached.thread_id

    await subject.store.delete_attachment(uploaded.id, alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_attachment(uploaded.id, alice)
    with pytest.raises(NotFoundError):
        await subject.store.load_attachment(new_id("atc"), alice)


async def test_other_users_cannot_touch_an_attachment(subject: Any) -> None:
    alice, bob = users(subject, "alice", "bob")
    mine = file_attachment()
    await subject.store.save_attachment(mine, alice)

    with pytest.raises(NotFoundError):
        await subject.store.load_attachment(mine.id, bob)
    with pytest.raises(NotFoundError):
        await subject.store.delete_attachment(mine.id, bob)
    with pytest.raises(NotFoundError):
        await subject.store.save_attachment(mine.model_copy(update={"name": "hijacked.txt"}), bob)
    assert (await subject.store.load_attachment(mine.id, alice)).model_dump() == mine.model_dump()


# ---------------------------------------------------------------------------------------------- ids


async def test_generated_ids_keep_the_sdk_prefixes_and_do_not_repeat(subject: Any) -> None:
    (alice,) = users(subject, "alice")
    store = subject.store
    owner = thread()
    prefixes = {"message": "msg", "tool_call": "tc", "task": "tsk", "workflow": "wf", "sdk_hidden_context": "shcx"}
    ids = [store.generate_thread_id(alice) for _ in range(300)]
    for kind, prefix in prefixes.items():
        generated = [store.generate_item_id(kind, owner, alice) for _ in range(300)]
        assert all(i.startswith(f"{prefix}_") for i in generated), kind
        ids += generated
    assert all(i.startswith("thr_") for i in ids[:300])
    assert len(set(ids)) == len(ids)

    overridden = type(store).generate_item_id is not Store.generate_item_id
    if isinstance(store, PostgresStore | SQLAlchemyStore):
        assert overridden, "a table all users share needs more than the SDK's 32-bit ids"
    if overridden:
        # At least 128 bits: the SDK default (8 hex digits) collides at ~77,000 ids with even odds.
        assert all(len(i.partition("_")[2]) >= 32 for i in ids)


# -------------------------------------------------------------------- the interface, and PostgresStore only

STORE_METHODS = {
    "load_thread", "save_thread", "load_threads", "delete_thread",
    "load_thread_items", "add_thread_item", "save_item", "load_item", "delete_thread_item",
    "save_attachment", "load_attachment", "delete_attachment",
}  # fmt: skip


def test_the_store_interface_is_these_twelve_methods() -> None:
    """What store-implementations.md lists: every abstract method of chatkit.store.Store."""
    assert set(Store.__abstractmethods__) == STORE_METHODS


async def _explain(pool: Any, sql: str, *args: Any) -> dict[str, Any]:
    plan = await pool.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    return json.loads(plan)[0]["Plan"]


def _node(plan: dict[str, Any], node_type: str) -> dict[str, Any]:
    """The first node of `node_type` in a plan tree, depth first."""
    nodes = [plan]
    while nodes:
        node = nodes.pop(0)
        if node["Node Type"] == node_type:
            return node
        nodes[:0] = node.get("Plans", [])
    raise AssertionError(f"no {node_type} node in {json.dumps(plan)}")


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_postgres_reads_a_page_from_the_index_without_scanning_the_rest(pg_dsn: str, order: str) -> None:
    """O(page), not O(history): the page query walks chatkit_items_page and stops after limit + 1 rows."""
    async with store_factories.level3_postgres(pg_dsn) as subject:
        alice = subject.context("alice")
        big, other = await saved_thread(subject.store, alice), await saved_thread(subject.store, alice)
        for thread_id in (big.id, other.id):  # 20,000 rows each, straight in SQL (the plan is what matters)
            await subject.store.pool.execute(
                """
                INSERT INTO chatkit_items (thread_id, id, tenant_id, user_id, created_at, data)
                SELECT $1, 'msg_' || lpad(n::text, 6, '0'), 't1', $2, now() + n * interval '1 ms', '{}'
                FROM generate_series(1, 20000) AS n
                """,
                thread_id,
                alice.user_id,
            )
        await subject.store.pool.execute("ANALYZE")
        cursor = await subject.store.pool.fetchrow(
            "SELECT created_at, id FROM chatkit_items WHERE thread_id = $1 AND id = 'msg_010000'", big.id
        )
        sql = level3_store._ITEMS_PAGE[order]
        plan = await _explain(subject.store.pool, sql, big.id, "t1", alice.user_id, *cursor, 21)

    limit = _node(plan, "Limit")  # inside the join that checks the thread's owner in the same statement
    scan = limit["Plans"][0]
    assert (scan["Node Type"], scan["Index Name"]) == ("Index Scan", "chatkit_items_page")
    assert scan["Scan Direction"] == ("Backward" if order == "desc" else "Forward")
    assert scan["Actual Rows"] == 21 and scan.get("Rows Removed by Filter", 0) == 0


async def test_postgres_schema_creation_is_idempotent_and_safe_to_race(pg_dsn: str) -> None:
    pool = await create_pool(pg_dsn, max_size=4)
    try:
        await asyncio.gather(*(create_schema(pool) for _ in range(4)))  # four workers starting at once
        await create_schema(pool)
        tables = await pool.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'chatkit_%' ORDER BY 1")
        assert [t["tablename"] for t in tables] == [
            "chatkit_attachment_blobs",
            "chatkit_attachments",
            "chatkit_feedback",
            "chatkit_items",
            "chatkit_threads",
        ]
    finally:
        await pool.close()


# ------------------------------------------------------------------------ the suite, pointed elsewhere


def _contract_tests() -> set[str]:
    return {
        name
        for name, fn in globals().items()
        if name.startswith("test_") and "subject" in inspect.signature(fn).parameters
    }


def _run_suite_with(factory: str, **env: str) -> dict[str, str]:
    """Run this file with `-k custom` and CHATKIT_STORE_FACTORY=factory: {test name: outcome}."""
    command = [sys.executable, "-m", "pytest", __file__, "-k", "custom", "-v", "-p", "no:cacheprovider"]
    done = subprocess.run(
        command,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, **env, ENV: factory},
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if "::" in line and "[custom" in line:
            node, _, rest = line.partition(" ")
            outcomes[node.split("::")[1].split("[")[0]] = rest.split()[0]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return outcomes


def test_the_documented_command_runs_every_contract_test_against_the_env_store() -> None:
    outcomes = _run_suite_with("store_factories:example_custom_factory")
    assert set(outcomes) == _contract_tests()
    # The example (the Level 1 store) keeps users, not tenants, apart: that one test is skipped.
    expected = {"test_tenants_are_isolated_even_for_the_same_user_id": "SKIPPED"}
    assert {name: outcome for name, outcome in outcomes.items() if outcome != "PASSED"} == expected


def test_a_factory_taking_dsn_gets_a_fresh_postgres_database(database_url: str) -> None:
    outcomes = _run_suite_with("store_factories:example_custom_postgres_factory", TEST_DATABASE_URL=database_url)
    assert set(outcomes) == _contract_tests()
    assert set(outcomes.values()) == {"PASSED"}


def test_a_factory_spec_without_a_colon_is_refused() -> None:
    with pytest.raises(ValueError, match="package.module:function"):
        load_factory("myapp.testing")
