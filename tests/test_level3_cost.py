"""What one Level 3 turn costs the database, counted on the wire (see tests/pg_round_trips.py)."""

from __future__ import annotations

import httpx
from chatkit_protocol import CHATKIT, add_message, assistant_texts, new_thread, sse_events
from level3.app import create_app
from pg_round_trips import RoundTripCounter
from scripted_model_server import ScriptedModel
from test_level3 import running, settings_for

MAX_ROUND_TRIPS_PER_TURN = 6  # the goal; the SDK's call pattern needs 5 (references/production.md)


async def test_a_turn_costs_at_most_six_round_trips(pg_dsn: str, model: ScriptedModel) -> None:
    """threads.add_user_message with a plain answer: load the thread, save the user message, read the
    history, save the answer. Each is one statement; releasing a connection costs nothing."""
    async with RoundTripCounter(pg_dsn) as counter, running(create_app(settings_for(counter.dsn))) as client:
        thread_id, _ = await new_thread(client, "hello")
        spent = []
        for n in range(3):  # the first turns prepare statements on the connection; later ones reuse them
            before = counter.round_trips
            response = await client.post(CHATKIT, json=add_message(thread_id, f"turn {n}"))
            assert assistant_texts(sse_events(response.text)) == [f"You said: turn {n}"]
            spent.append(counter.round_trips - before)
    assert spent[-1] <= MAX_ROUND_TRIPS_PER_TURN, counter.log[-spent[-1] :]


async def test_items_list_is_one_round_trip(pg_dsn: str, model: ScriptedModel) -> None:
    """items.list: the ownership check and the page are one statement."""
    async with RoundTripCounter(pg_dsn) as counter, running(create_app(settings_for(counter.dsn))) as client:
        thread_id, _ = await new_thread(client, "hello")
        body = {"type": "items.list", "params": {"thread_id": thread_id}}
        assert (await client.post(CHATKIT, json=body)).status_code == 200
        before = counter.round_trips
        response: httpx.Response = await client.post(CHATKIT, json=body)
        assert response.status_code == 200 and len(response.json()["data"]) == 2
        assert counter.round_trips - before == 1
