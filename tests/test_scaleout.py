"""Level 3 scaled out on one PostgreSQL: two uvicorn instances, and one uvicorn with two workers.

bench/scaleout.py at a small size (its default is 200 conversations x 5 turns): the turns of each
conversation alternate between the instances, and the database read back afterwards must hold every
turn once, in order, with no 5xx on the way.
"""

from __future__ import annotations

import asyncpg
from local_postgres import fresh_database
from scripted_model_server import ScriptedModel
from test_level3 import SECRET

from bench.scaleout import Report, level3, run_load, verify

CONVERSATIONS, TURNS = 8, 3


async def test_scale_out_loses_duplicates_and_reorders_nothing(
    level3_instances: tuple[list[str], str], database_url: str, model: ScriptedModel
) -> None:
    """Two uvicorn instances on one database, then one uvicorn with --workers 2 on another."""
    urls, dsn = level3_instances
    conversations, seconds = await run_load(urls, CONVERSATIONS, TURNS, SECRET, concurrency=8)
    report = await verify(dsn, conversations, TURNS, seconds)
    assert report.ok and report.threads_found == CONVERSATIONS, report
    await the_check_sees_damage(dsn, conversations, TURNS)

    async with fresh_database(database_url) as dsn:
        with level3("workers", dsn, SECRET) as (url,):
            conversations, seconds = await run_load([url], CONVERSATIONS, TURNS, SECRET, concurrency=8)
        report = await verify(dsn, conversations, TURNS, seconds)
    assert report.ok and report.threads_found == CONVERSATIONS, report


async def the_check_sees_damage(dsn: str, conversations: list, turns: int) -> None:
    """The read-back is not vacuous: a deleted, a copied and a moved item are each reported."""
    first, second, third = (c.thread_id for c in conversations[:3])
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "DELETE FROM chatkit_items WHERE thread_id = $1 AND data->>'type' = 'assistant_message'"
            " AND id = (SELECT id FROM chatkit_items WHERE thread_id = $1 ORDER BY created_at DESC LIMIT 1)",
            first,
        )
        await connection.execute(
            "INSERT INTO chatkit_items (thread_id, id, tenant_id, user_id, created_at, data)"
            " SELECT thread_id, id || '_copy', tenant_id, user_id, created_at, data FROM chatkit_items"
            " WHERE thread_id = $1 ORDER BY created_at LIMIT 1",
            second,
        )
        await connection.execute(  # the thread's first item now sorts last
            "UPDATE chatkit_items SET created_at = now() + interval '1 hour' WHERE thread_id = $1"
            " AND id = (SELECT id FROM chatkit_items WHERE thread_id = $1 ORDER BY created_at LIMIT 1)",
            third,
        )
    finally:
        await connection.close()
    damaged: Report = await verify(dsn, conversations, turns, 1.0)
    assert (damaged.lost, damaged.duplicates, damaged.out_of_order) == (1, 1, 1)
    assert not damaged.ok
