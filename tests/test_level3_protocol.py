"""Level 3's side of the protocol over HTTP on a real PostgreSQL: feedback, structured input, retries,
hidden context, and widget actions the server does not handle."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from chatkit_protocol import CHATKIT, add_message, assistant_texts, new_thread, request, stream
from level3.app import create_app
from level3.context import RequestContext
from level3.store import PostgresStore, create_pool
from scripted_model_server import ScriptedModel, function_call_output, text_output
from test_level3 import auth, running, settings_for


@pytest.fixture
async def client(pg_dsn: str, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings_for(pg_dsn))) as client:
        yield client


async def raw_items(pg_dsn: str, thread_id: str, user: str = "alice") -> list[Any]:
    """Every stored item, hidden ones included: what the model can be given, not what the client sees."""
    pool = await create_pool(pg_dsn)
    try:
        return (
            await PostgresStore(pool).load_thread_items(thread_id, None, 100, "asc", RequestContext(user, "acme"))
        ).data
    finally:
        await pool.close()


async def stored_feedback(pg_dsn: str, thread_id: str, user: str = "alice") -> dict[str, str]:
    pool = await create_pool(pg_dsn)
    try:
        return await PostgresStore(pool).load_feedback(thread_id, RequestContext(user, "acme"))
    finally:
        await pool.close()


def feedback(thread_id: str, item_ids: list[str], kind: str = "positive") -> dict[str, Any]:
    return {"type": "items.feedback", "params": {"thread_id": thread_id, "item_ids": item_ids, "kind": kind}}


def done_item(events: list[dict[str, Any]], item_type: str) -> dict[str, Any]:
    return next(e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == item_type)


def answer_id(events: list[dict[str, Any]]) -> str:
    return str(done_item(events, "assistant_message")["id"])


# --- feedback ---------------------------------------------------------------------------------------


async def test_feedback_is_stored_per_item_and_the_latest_verdict_wins(client: httpx.AsyncClient, pg_dsn: str) -> None:
    thread_id, events = await new_thread(client, "rate me")
    answer, question = answer_id(events), events[1]["item"]["id"]
    assert (await client.post(CHATKIT, json=feedback(thread_id, [answer, question]))).json() == {}
    assert (await client.post(CHATKIT, json=feedback(thread_id, [answer], "negative"))).json() == {}
    assert await stored_feedback(pg_dsn, thread_id) == {answer: "negative", question: "positive"}


async def test_feedback_on_someone_elses_thread_or_item_is_404_and_stores_nothing(
    client: httpx.AsyncClient, pg_dsn: str
) -> None:
    """Reproduces the issue: another user's thread id answered 200 {} (the SDK's no-op default)."""
    thread_id, events = await new_thread(client, "mine")
    answer = answer_id(events)
    other_thread, other_events = await new_thread(client, "also mine")
    for body, headers in (
        (feedback(thread_id, [answer]), auth("mallory")),  # another user
        (feedback(thread_id, [answer]), auth("alice", "other-tenant")),  # another tenant
        (feedback(other_thread, [answer]), auth()),  # my item, but not of this thread
        (feedback(thread_id, [answer, "msg_missing"]), auth()),  # all or nothing
        (feedback("thr_missing", [answer]), auth()),
    ):
        response = await client.post(CHATKIT, json=body, headers=headers)
        assert response.status_code == 404, (body, response.text)
        assert response.json()["error"] == "not_found"
    assert await stored_feedback(pg_dsn, thread_id) == {}
    assert await stored_feedback(pg_dsn, thread_id, "mallory") == {}


async def test_feedback_goes_with_the_items_a_retry_deletes(client: httpx.AsyncClient, pg_dsn: str) -> None:
    thread_id, events = await new_thread(client, "first")
    await client.post(CHATKIT, json=feedback(thread_id, [answer_id(events)], "negative"))
    await stream(client, request("threads.retry_after_item", thread_id=thread_id, item_id=events[1]["item"]["id"]))
    assert await stored_feedback(pg_dsn, thread_id) == {}


# --- structured input -------------------------------------------------------------------------------

QUESTION = {"question": "Which Paris?", "options": ["Paris, France", "Paris, Texas"]}


async def _question(client: httpx.AsyncClient, model: ScriptedModel) -> tuple[str, dict[str, Any]]:
    model.script([function_call_output("ask_user", QUESTION)])
    thread_id, events = await new_thread(client, "Weather in Paris?")
    asked = next(
        e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "structured_input"
    )
    return thread_id, asked


async def test_structured_input_round_trip(client: httpx.AsyncClient, model: ScriptedModel, pg_dsn: str) -> None:
    thread_id, asked = await _question(client, model)
    assert asked["status"] == "pending"
    assert [o["value"] for o in asked["inputs"][0]["options"]] == QUESTION["options"]
    calls_before = len(model.requests)

    answer = {"status": "answered", "answers": {"choice": {"values": ["Paris, Texas"]}}}
    body = request("threads.add_structured_input", thread_id=thread_id, item_id=asked["id"], input=answer)
    events = await stream(client, body)
    assert [e["type"] for e in events[:2]] == ["stream_options", "thread.item.replaced"]
    assert events[1]["item"]["status"] == "answered"
    assert events[1]["item"]["inputs"][0]["answer"] == {"values": ["Paris, Texas"], "skipped": False}
    # The model ran again, once, and read the answer.
    assert len(model.requests) == calls_before + 1
    assert "Which Paris?: Paris, Texas" in json.dumps(model.requests[-1]["input"])
    assert assistant_texts(events) and "Paris, Texas" in assistant_texts(events)[0]

    stored = [i for i in await raw_items(pg_dsn, thread_id) if i.type == "structured_input"]
    assert [(i.id, i.status) for i in stored] == [(asked["id"], "answered")]
    again = await client.post(CHATKIT, json=body)  # answered already: nothing is pending
    assert again.status_code == 409 and again.json()["error"] == "conflict"


async def test_structured_input_skipped_and_misaimed(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, asked = await _question(client, model)
    message_id = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))).json()[
        "data"
    ][0]["id"]
    skip = {"status": "skipped"}
    not_a_question = request("threads.add_structured_input", thread_id=thread_id, item_id=message_id, input=skip)
    assert (await client.post(CHATKIT, json=not_a_question)).status_code == 409
    foreign = request("threads.add_structured_input", thread_id=thread_id, item_id=asked["id"], input=skip)
    assert (await client.post(CHATKIT, json=foreign, headers=auth("mallory"))).status_code == 404
    events = await stream(client, foreign)
    assert events[1]["item"]["status"] == "skipped"
    assert "Which Paris?: skipped" in json.dumps(model.requests[-1]["input"])


# --- retry --------------------------------------------------------------------------------------------


async def test_retry_rewrites_the_store_and_the_models_history(
    client: httpx.AsyncClient, model: ScriptedModel, pg_dsn: str
) -> None:
    thread_id, events = await new_thread(client, "first question")
    first = events[1]["item"]["id"]
    await stream(client, add_message(thread_id, "second question"))
    model.script([text_output("A better first answer")])

    retried = await stream(client, request("threads.retry_after_item", thread_id=thread_id, item_id=first))
    assert assistant_texts(retried) == ["A better first answer"]
    # The model saw the thread as it is after the retry: the first question only, no old answer.
    sent = json.dumps(model.requests[-1]["input"])
    assert "first question" in sent and "second question" not in sent and "You said" not in sent
    stored = await raw_items(pg_dsn, thread_id)
    assert [i.type for i in stored] == ["user_message", "assistant_message"]
    assert stored[0].id == first and stored[1].content[0].text == "A better first answer"  # type: ignore[union-attr]

    # The next turn builds on the retried history.
    await stream(client, add_message(thread_id, "third"))
    assert "A better first answer" in json.dumps(model.requests[-1]["input"])


async def test_retry_of_an_answer_or_of_someone_elses_message(client: httpx.AsyncClient) -> None:
    thread_id, events = await new_thread(client, "hi")
    body = request("threads.retry_after_item", thread_id=thread_id, item_id=answer_id(events))
    not_a_message = await client.post(CHATKIT, json=body)
    assert not_a_message.status_code == 409 and "not a user message" in not_a_message.json()["message"]
    body = request("threads.retry_after_item", thread_id=thread_id, item_id=events[1]["item"]["id"])
    assert (await client.post(CHATKIT, json=body, headers=auth("mallory"))).status_code == 404


# --- hidden context -----------------------------------------------------------------------------------


async def test_hidden_context_reaches_the_model_and_never_the_client(
    client: httpx.AsyncClient, model: ScriptedModel, pg_dsn: str
) -> None:
    model.script([function_call_output("show_forecast", {"city": "Oslo"})], [text_output("Here it is.")])
    thread_id, events = await new_thread(client, "Show me Oslo")
    widget = done_item(events, "widget")
    action = {"type": "forecast.subscribe", "payload": {"city": "Oslo"}}
    seen = await client.post(
        CHATKIT, json=request("threads.custom_action", thread_id=thread_id, item_id=widget["id"], action=action)
    )
    hidden = "The user subscribed to the daily forecast for Oslo."
    stored = await raw_items(pg_dsn, thread_id)
    assert [i.content for i in stored if i.type == "hidden_context_item"] == [hidden]  # type: ignore[union-attr]

    # Client side: not in the stream, not in any list or thread view, in either order.
    answers = [seen.text]
    answers += [
        (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order=order, limit=100))).text
        for order in ("asc", "desc")
    ]
    answers.append((await client.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id))).text)
    for text in answers:
        assert "hidden_context" not in text and "subscribed to the daily forecast" not in text

    # Model side: the next turn carries it.
    events = await stream(client, add_message(thread_id, "what did I just do?"))
    assert hidden in json.dumps(model.requests[-1]["input"])
    assert "hidden_context" not in json.dumps(events)


# --- widget actions the server does not handle --------------------------------------------------------


async def _widget(client: httpx.AsyncClient, model: ScriptedModel) -> tuple[str, str]:
    model.script([function_call_output("show_forecast", {"city": "Paris"})], [text_output("Here it is.")])
    thread_id, events = await new_thread(client, "Show me Paris")
    return thread_id, next(
        e["item"]["id"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "widget"
    )


@pytest.mark.parametrize("kind", ["threads.custom_action", "threads.sync_custom_action"])
async def test_actions_the_server_does_not_handle_are_400(
    client: httpx.AsyncClient, model: ScriptedModel, kind: str
) -> None:
    thread_id, widget_id = await _widget(client, model)
    message_id = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))).json()[
        "data"
    ][0]["id"]
    handled = "forecast.subscribe" if kind == "threads.custom_action" else "forecast.units"
    other = "forecast.units" if kind == "threads.custom_action" else "forecast.subscribe"
    payload = {"city": "Paris"}
    for action, item_id in (
        ({"type": "nope", "payload": payload}, widget_id),  # no handler at all
        ({"type": other, "payload": payload}, widget_id),  # handled, but by the other request type
        ({"type": handled, "payload": payload}, None),  # no widget sent it
        ({"type": handled, "payload": payload}, message_id),  # a message is not a widget
    ):
        response = await client.post(CHATKIT, json=request(kind, thread_id=thread_id, item_id=item_id, action=action))
        assert response.status_code == 400, (action, item_id, response.text)
        assert response.json()["error"] in ("invalid_action", "invalid_request")
    missing = request(kind, thread_id=thread_id, item_id="msg_missing", action={"type": handled, "payload": payload})
    assert (await client.post(CHATKIT, json=missing)).status_code == 404
    foreign = request(kind, thread_id=thread_id, item_id=widget_id, action={"type": handled, "payload": payload})
    assert (await client.post(CHATKIT, json=foreign, headers=auth("mallory"))).status_code == 404
