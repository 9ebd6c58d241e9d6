"""Level 3 under faults. Each test stages one failure for real (a dropped client, a stopped PostgreSQL,
a failing or silent or cut-off model, a raising tool, a locked table) and checks three things: what the
client gets (an `error` event or a 4xx/503 JSON answer, never a 500 and never a hang), what the thread
holds afterwards, and that the next request works without restarting anything.

Bounds: every request under a fault must answer within BOUND seconds. The app's own limits in these
tests are 1-2 s (`database_timeout`, `model_timeout`); BOUND is generous so a loaded machine can't fail
it, and the waits these settings replaced always would (the openai client's 600 s for a silent model;
asyncpg's 60 s to connect; the example's former 30 s statement timeout, which then ended in a 500).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from chatkit_protocol import CHATKIT, add_message, assistant_texts, create_thread, new_thread, request, stream
from level3.app import create_app
from level3.context import RequestContext
from level3.store import PostgresStore, create_pool
from local_postgres import restartable_cluster
from scripted_model_server import ScriptedModel, function_call_output, text_output
from test_level3 import auth, running, settings_for

BOUND = 15.0
T = TypeVar("T")


async def bounded(call: Awaitable[T]) -> T:
    """The call's result; a hang past BOUND fails the test instead of stalling the suite."""
    return await asyncio.wait_for(call, BOUND)


async def stored_types(client: httpx.AsyncClient, thread_id: str) -> list[str]:
    response = await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))
    assert response.status_code == 200, response.text
    return [item["type"] for item in response.json()["data"]]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "unavailable"
    assert response.headers["retry-after"] == "2"


# --- the client goes away ---------------------------------------------------------------------------


async def test_client_disconnect_keeps_the_partial_answer_and_the_next_turn_works(
    level3_instances: tuple[list[str], str], model: ScriptedModel
) -> None:
    """A client that disconnects mid-answer (ChatKit's stop button) leaves the partial answer stored,
    plus the SDK's hidden note that the user stopped it; the next turn sends that note to the model."""
    model.script([text_output("Partial answer that the user stops halfway")])
    gate = model.hold_next(after_events=6)  # created, in_progress, item added, part added, 2 deltas
    (base_url, _), pg_dsn = level3_instances
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=auth()) as http:
        async with http.stream("POST", CHATKIT, json=create_thread("tell me a story")) as response:
            seen = []
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[len("data: ") :]))
                    if seen[-1]["type"] == "thread.item.updated" and seen[-1]["update"].get("delta") == " answer":
                        break  # leaving the block closes the connection: the stop button
        thread_id = seen[0]["thread"]["id"]
        gate.set()
        pool = await create_pool(pg_dsn)
        try:
            store, context = PostgresStore(pool), RequestContext("alice", "acme")
            for _ in range(100):  # the server notices the disconnect on its own schedule
                stored = (await store.load_thread_items(thread_id, None, 20, "asc", context)).data
                if any(item.type == "sdk_hidden_context" for item in stored):
                    break
                await asyncio.sleep(0.05)
        finally:
            await pool.close()
        assert [item.type for item in stored] == ["user_message", "assistant_message", "sdk_hidden_context"]
        assert stored[1].content[0].text == "Partial answer"  # type: ignore[union-attr]

        events = await stream(http, add_message(thread_id, "go on"))
    assert assistant_texts(events) == ["You said: go on"]
    sent = json.dumps(model.requests[-1]["input"])
    assert "Partial answer" in sent and "The user cancelled the stream" in sent


# --- PostgreSQL goes away and comes back --------------------------------------------------------------


async def test_postgres_restart_is_a_503_then_the_pool_recovers(model: ScriptedModel) -> None:
    """During the outage every request is a bounded 503 and /healthz says so; after it, the same app
    (the same pool) serves again, and the thread holds exactly the turns that succeeded."""
    with restartable_cluster() as cluster:
        app = create_app(settings_for(cluster.url, database_timeout=2.0))
        async with running(app) as client:
            thread_id, _ = await new_thread(client, "before")

            cluster.stop()
            down = await bounded(client.get("/healthz"))
            assert down.status_code == 503 and down.json()["database"] == "down"
            assert_unavailable(await bounded(client.post(CHATKIT, json=add_message(thread_id, "during"))))
            assert_unavailable(await bounded(client.post(CHATKIT, json=create_thread("during"))))
            assert_unavailable(await bounded(client.post(CHATKIT, json=request("items.list", thread_id=thread_id))))

            cluster.start()
            assert (await bounded(client.get("/healthz"))).status_code == 200
            events = await bounded(stream(client, add_message(thread_id, "after")))
            assert assistant_texts(events) == ["You said: after"]
            texts = await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))
    assert [item["content"][0]["text"] for item in texts.json()["data"]] == [
        "before",
        "You said: before",
        "after",
        "You said: after",
    ]


# --- the model fails ----------------------------------------------------------------------------------


def fail_three_times(model: ScriptedModel) -> None:
    for _ in range(3):  # the openai client retries a 5xx twice: the third failure reaches the app
        model.fail_next(500)


def go_silent(model: ScriptedModel) -> threading.Event:
    return model.hold_next(after_events=3)  # headers and three events, then nothing


def cut_mid_answer(model: ScriptedModel) -> None:
    model.script([text_output("An answer that never gets to its end")])
    model.drop_next(after_events=6)  # two text deltas, then the connection closes


@pytest.mark.parametrize("fault", [fail_three_times, go_silent, cut_mid_answer], ids=["5xx", "silent", "cut"])
async def test_a_model_failure_is_an_error_event_and_the_thread_stays_usable(
    pg_dsn: str, model: ScriptedModel, fault: Callable[[ScriptedModel], threading.Event | None]
) -> None:
    async with running(create_app(settings_for(pg_dsn, model_timeout=1.0))) as client:
        thread_id, _ = await new_thread(client, "first")
        held, asked = fault(model), len(model.requests)
        try:
            events = await bounded(stream(client, add_message(thread_id, "second")))
        finally:
            if held is not None:
                held.set()  # the app gave up on the silent answer; let the model server finish it
        assert events[-1] == {"type": "error", "code": "stream.error", "allow_retry": True}
        if fault is fail_three_times:
            assert len(model.requests) == asked + 3  # the request and the openai client's two retries
        assert assistant_texts(events) == []
        # The failed turn stored only the user's message: no half answer the client never saw finish.
        assert await stored_types(client, thread_id) == ["user_message", "assistant_message", "user_message"]
        events = await bounded(stream(client, add_message(thread_id, "third")))
        assert assistant_texts(events) == ["You said: third"]
    sent = [item for item in model.requests[-1]["input"] if item.get("role") == "user"]
    assert [part["text"] for item in sent for part in item["content"]] == ["first", "second", "third"]


# --- a tool fails -------------------------------------------------------------------------------------


async def test_a_failing_tool_ends_the_turn_with_a_clear_message_and_a_logged_trace(
    client: httpx.AsyncClient, model: ScriptedModel, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def weather_service_down(city: str) -> Any:
        raise ConnectionError("weather API: connection reset")

    # lookup_forecast stands in for a weather API; here that API fails.
    monkeypatch.setattr("level3.tools.lookup_forecast", weather_service_down)
    model.script([function_call_output("get_weather", {"city": "Paris"})])
    with caplog.at_level(logging.INFO):
        thread_id, events = await new_thread(client, "Weather in Paris?")
    assert events[-1] == {
        "type": "error",
        "code": "custom",
        "message": "The weather service did not answer. Please try again.",
        "allow_retry": True,
    }
    assert len(model.requests) == 1  # the model never got a tool result to improvise an answer from
    failures = [r for r in caplog.records if r.name == "level3.tools" and r.levelno == logging.ERROR]
    assert failures and isinstance(failures[0].exc_info[1], ConnectionError)  # type: ignore[index]
    assert failures[0].thread_id == thread_id  # the trace carries the request's thread

    monkeypatch.undo()
    model.script([function_call_output("get_weather", {"city": "Paris"})])
    events = await stream(client, add_message(thread_id, "Try again?"))
    assert "in Paris" in assistant_texts(events)[-1]


# --- the database is slow -----------------------------------------------------------------------------


async def test_a_slow_database_is_a_bounded_503_and_the_worker_keeps_serving(pg_dsn: str, model: ScriptedModel) -> None:
    """A lock held elsewhere stalls every write to chatkit_items: the statement times out after
    `database_timeout`, the request is a 503, and meanwhile the same worker answers other requests."""
    async with running(create_app(settings_for(pg_dsn, database_timeout=1.0))) as client:
        thread_id, _ = await new_thread(client, "first")
        blocker = await asyncpg.connect(pg_dsn)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE chatkit_items IN ACCESS EXCLUSIVE MODE")
                stalled = asyncio.create_task(client.post(CHATKIT, json=add_message(thread_id, "stalled")))
                healthy = await bounded(client.get("/healthz"))  # served while the turn waits
                assert healthy.status_code == 200
                assert (await client.post(CHATKIT, json=request("threads.list"))).status_code == 200
                assert_unavailable(await bounded(stalled))
                assert_unavailable(await bounded(client.post(CHATKIT, json=request("items.list", thread_id=thread_id))))
        finally:
            await blocker.close()
        events = await bounded(stream(client, add_message(thread_id, "after")))
        assert assistant_texts(events) == ["You said: after"]
        assert await stored_types(client, thread_id) == ["user_message", "assistant_message"] * 2


@pytest.fixture
async def client(pg_dsn: str, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings_for(pg_dsn))) as client:
        yield client
