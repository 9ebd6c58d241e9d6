"""Benchmarks, reported as ratios against a baseline measured in the same run (no absolute targets).

1. History page cost vs thread length. Reading the last 20 items (what respond() does every turn) and
   the first page of threads, on a small and a large thread. A ratio near 1.0 means O(page); a ratio
   that grows with the thread means O(thread). PostgresStore uses keyset pagination on an index; the
   in-memory store sorts the whole thread on every call (fine for a demo, measured here so nobody
   mistakes it for a production store).
2. ChatKit overhead per turn. A Level 2 turn through the ChatKit endpoint, against the same offline
   model answer fetched with the bare openai client (the baseline).
3. Memory per turn: traced allocations still held after 200 Level 2 turns vs after 20 (a leak would
   grow with the turns; the in-memory store's own growth is the expected part).

    python bench/run.py            # full sizes, writes bench/RESULTS.md
    python bench/run.py --quick    # small sizes, prints only (used by the test suite as a smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "scripts"), str(ROOT / "tests")]

import httpx  # noqa: E402
from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadMetadata  # noqa: E402
from local_postgres import throwaway_cluster  # noqa: E402
from scripted_model_server import serve_in_background  # noqa: E402


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


def turn_body(text: str) -> dict[str, Any]:
    user_input = {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}
    return {"type": "threads.create", "params": {"input": user_input}}


async def bench_turns(turns: int, repeat: int) -> list[tuple[str, str, str]]:
    from openai import AsyncOpenAI

    with serve_in_background() as (base_url, _model):
        os.environ.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="offline", OPENAI_AGENTS_DISABLE_TRACING="1")
        from level2.app import create_app

        app = create_app()
        client = AsyncOpenAI(base_url=base_url, api_key="offline")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

            async def bare() -> None:
                stream = await client.responses.create(model="m", input="hello there", stream=True)
                async for _ in stream:
                    pass

            async def chatkit() -> None:
                response = await http.post("/chatkit", json=turn_body("hello there"))
                assert response.status_code == 200

            t_bare = await timed(bare, repeat)
            t_chatkit = await timed(chatkit, repeat)

            async def held_after(n: int) -> int:
                for _ in range(n):
                    await chatkit()
                gc.collect()
                return tracemalloc.get_traced_memory()[0]

            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            after_few = await held_after(turns // 10) - base
            after_many = await held_after(turns - turns // 10) - base
            tracemalloc.stop()
        await client.close()
    per_turn_few = after_few / (turns // 10)
    per_turn_many = after_many / turns
    return [
        ("Level 2 turn via /chatkit", "vs the bare openai stream", f"{t_chatkit / t_bare:.2f}x"),
        ("Memory held per turn", f"after {turns} vs {turns // 10} turns", f"{per_turn_many / per_turn_few:.2f}x"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes; print, don't write RESULTS.md")
    args = parser.parse_args(argv)
    small, large, repeat, turns = (50, 500, 5, 20) if args.quick else (100, 20_000, 50, 200)

    async def run() -> list[tuple[str, str, str]]:
        return await bench_stores(small, large, repeat) + await bench_turns(turns, repeat)

    rows = asyncio.run(run())
    table = ["| Measure | Compared | Ratio |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    print("\n".join(table))
    if not args.quick:
        header = [
            "# Benchmark results",
            "",
            f"`make bench`, {datetime.now():%Y-%m-%d}, Python {sys.version.split()[0]}. Ratios within one run;",
            "near 1.0 for the page reads means the cost does not grow with the thread.",
            "",
        ]
        (ROOT / "bench" / "RESULTS.md").write_text("\n".join(header + table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
