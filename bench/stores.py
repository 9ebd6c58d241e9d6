"""History page cost vs thread length, store by store: the last 20 items (what respond() reads every
turn) on a small and a large thread. Near 1.0 means O(page); growing with the thread means O(thread).
The in-memory store sorts the whole thread on every call: fine for a demo, measured here so nobody
mistakes it for a production store."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadMetadata
from local_postgres import throwaway_cluster


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median seconds of `repeat` calls after two warm-up calls."""
    for _ in range(2):
        await call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def fill(store: Any, context: Any, thread_id: str, items: int) -> None:
    base = datetime.now()
    thread = ThreadMetadata(id=thread_id, created_at=base)
    await store.save_thread(thread, context)
    for n in range(items):
        item = AssistantMessageItem(
            id=store.generate_item_id("message", thread, context),
            thread_id=thread_id,
            created_at=base + timedelta(milliseconds=n),
            content=[AssistantMessageContent(text=f"item {n}")],
        )
        await store.add_thread_item(thread_id, item, context)


async def page_ratio(store: Any, context: Any, repeat: int) -> float:
    """Time to read the last 20 items of the large thread over the small one's."""

    async def last_page(thread_id: str) -> None:
        await store.load_thread_items(thread_id, None, 20, "desc", context)

    t_small = await timed(lambda: last_page("thr_small"), repeat)
    t_large = await timed(lambda: last_page("thr_large"), repeat)
    return t_large / t_small


async def bench_stores(small: int, large: int, repeat: int) -> list[tuple[str, str, str]]:
    from level2.store import MemoryStore
    from level3.context import RequestContext
    from level3.store import PostgresStore, create_pool

    sizes = f"{large} vs {small} items"
    memory = MemoryStore()
    for thread_id, size in (("thr_small", small), ("thr_large", large)):
        await fill(memory, {}, thread_id, size)
    rows = [("MemoryStore: last 20 items", sizes, f"{await page_ratio(memory, {}, repeat):.2f}x")]
    with throwaway_cluster() as url:
        pool = await create_pool(url)
        try:
            store, context = PostgresStore(pool), RequestContext("bench-user")
            await store.create_schema()
            for thread_id, size in (("thr_small", small), ("thr_large", large)):
                await fill(store, context, thread_id, size)
            # Right after a bulk load the planner still thinks the table is tiny and sorts the thread.
            stale = await page_ratio(store, context, repeat)
            await pool.execute("ANALYZE chatkit_items")  # what autovacuum does as a table grows
            analyzed = await page_ratio(store, context, repeat)
        finally:
            await pool.close()
    rows.append(("PostgresStore: last 20 items, statistics current", sizes, f"{analyzed:.2f}x"))
    rows.append(("PostgresStore: last 20 items, right after a bulk load (no ANALYZE)", sizes, f"{stale:.2f}x"))
    return rows
