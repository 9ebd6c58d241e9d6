"""Level 3 over HTTP against a real PostgreSQL: auth, isolation, tools, widgets, actions, client tools,
restarts, limits, CORS, health, logging. Every request carries a real HS256 token."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from chatkit.types import LockedStatus, WidgetItem
from chatkit_protocol import (
    CHATKIT,
    add_message,
    assistant_texts,
    create_thread,
    new_thread,
    request,
    stream,
    stream_past_a_gate,
)
from fastapi import FastAPI
from level3.app import add_chatkit, create_app
from level3.auth import issue_dev_token
from level3.context import RequestContext
from level3.settings import Settings
from level3.store import PostgresStore, create_pool
from live_server import serve_process
from scripted_model_server import ScriptedModel, function_call_output, text_output

SECRET = "level3-test-secret-0123456789abcdef"
ORIGIN = "https://app.example.com"


def token(user: str = "alice", tenant: str = "acme", **claims: Any) -> str:
    if claims:
        now = int(time.time())
        payload = {"sub": user, "tenant_id": tenant, "iat": now, "exp": now + 60} | claims
        return jwt.encode(payload, SECRET, algorithm="HS256")
    return issue_dev_token(SECRET, user_id=user, tenant_id=tenant)


def auth(user: str = "alice", tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, tenant)}"}


def settings_for(dsn: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": dsn,
        "jwt_secret": SECRET,
        "jwks_url": "",
        "jwt_algorithms": (),
        "jwt_audience": "",
        "jwt_issuer": "",
        "auth_cookie_name": "",
        "cors_origins": (ORIGIN,),
        "max_body_bytes": 64_000,
        "tracing": False,
    }
    return Settings(**(values | overrides))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (pool open) and an httpx client that speaks to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=auth()) as client:
            yield client


@pytest.fixture
async def client(pg_dsn: str, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings_for(pg_dsn))) as client:
        yield client


# --- auth -------------------------------------------------------------------------------------------

AUTH_FAILURES: dict[str, Callable[[], dict[str, str]]] = {
    "missing": lambda: {},
    "not-bearer": lambda: {"Authorization": f"Basic {token()}"},
    "garbage": lambda: {"Authorization": "Bearer not.a.jwt"},
    "expired": lambda: {"Authorization": f"Bearer {token(exp=int(time.time()) - 3600)}"},
    "bad-signature": lambda: {
        "Authorization": "Bearer " + jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "x" * 40, "HS256")
    },
    "alg-none": lambda: {
        "Authorization": "Bearer " + jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none")
    },
    "no-sub": lambda: {
        "Authorization": "Bearer " + jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    },
}


@pytest.mark.parametrize("case", sorted(AUTH_FAILURES))
async def test_auth_failures_are_401_json(client: httpx.AsyncClient, case: str) -> None:
    headers = AUTH_FAILURES[case]()
    client.headers.pop("Authorization")
    response = await client.post(CHATKIT, json=create_thread("hi"), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_token_reaches_respond_the_store_and_the_tools(
    client: httpx.AsyncClient, model: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.script([function_call_output("get_weather", {"city": "Paris"})])
    with caplog.at_level(logging.INFO):
        thread_id, _ = await new_thread(client, "weather?")
    tool_logs = [r for r in caplog.records if r.getMessage().startswith("weather lookup")]
    assert tool_logs and "user=alice" in tool_logs[0].getMessage()
    # The log record itself carries the request's user and thread (LOG_FORMAT prints them).
    assert (tool_logs[0].user_id, tool_logs[0].thread_id) == ("alice", thread_id)


# --- isolation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        lambda t: request("threads.get_by_id", thread_id=t),
        lambda t: request("items.list", thread_id=t),
        lambda t: request("threads.update", thread_id=t, title="mine now"),
        lambda t: request("threads.delete", thread_id=t),
        lambda t: add_message(t, "let me in"),
        lambda t: request(
            "threads.custom_action", thread_id=t, item_id="msg_x", action={"type": "forecast.subscribe", "payload": {}}
        ),
    ],
    ids=["get_by_id", "items.list", "update", "delete", "add_user_message", "custom_action"],
)
async def test_another_users_thread_is_404(client: httpx.AsyncClient, body: Callable[[str], dict[str, Any]]) -> None:
    thread_id, _ = await new_thread(client, "private")
    for intruder in (auth("mallory", "acme"), auth("alice", "other-tenant")):
        response = await client.post(CHATKIT, json=body(thread_id), headers=intruder)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"
    listed = await client.post(CHATKIT, json=request("threads.list"), headers=auth("mallory", "acme"))
    assert listed.json()["data"] == []
    mine = await client.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id))
    assert mine.status_code == 200 and mine.json()["title"] == "private"  # the intruders changed nothing


async def test_a_404_logs_no_traceback(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.post(CHATKIT, json=add_message("thr_nope", "hi"))
    assert response.status_code == 404
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_409_for_a_tool_output_nobody_asked_for_logs_no_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    thread_id, _ = await new_thread(client, "hi")
    with caplog.at_level(logging.INFO):
        response = await client.post(
            CHATKIT, json=request("threads.add_client_tool_output", thread_id=thread_id, result={"city": "Oslo"})
        )
    assert response.status_code == 409
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- tools and widgets ------------------------------------------------------------------------------


async def test_server_tool_streams_progress_then_the_answer(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script([function_call_output("get_weather", {"city": "Paris"})])
    _, events = await new_thread(client, "Weather in Paris?")
    progress = [e for e in events if e["type"] == "progress_update"]
    assert progress == [
        {"type": "progress_update", "icon": "search", "text": "Looking up Paris…"},
        {"type": "progress_update", "icon": "check-circle", "text": "Forecast received"},
    ]
    answer = assistant_texts(events)[-1]
    assert answer.startswith("Tool result: ") and "in Paris" in answer
    # The model received the tool's output and the tool's schema.
    assert model.requests[-1]["input"][-1]["type"] == "function_call_output"
    assert {t["name"] for t in model.requests[0]["tools"]} == {
        "get_weather",
        "show_forecast",
        "get_user_location",
        "ask_user",
    }


async def _thread_with_widget(client: httpx.AsyncClient, model: ScriptedModel) -> tuple[str, dict[str, Any]]:
    model.script([function_call_output("show_forecast", {"city": "Paris"})], [text_output("Here it is.")])
    thread_id, events = await new_thread(client, "Show me Paris")
    widget = next(e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "widget")
    return thread_id, widget


async def test_widget_tool_streams_and_stores_a_widget(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, widget = await _thread_with_widget(client, model)
    assert widget["widget"]["type"] == "Card" and widget["copy_text"].startswith("Paris: ")
    stored = await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))
    assert [i["type"] for i in stored.json()["data"]] == ["user_message", "widget", "assistant_message"]
    # Equal once both are parsed: a reload spells out ActionConfig's defaults (handler, loadingBehavior).
    assert _parsed(stored.json()["data"][1]) == _parsed(widget)


def _parsed(item: dict[str, Any]) -> dict[str, Any]:
    return WidgetItem.model_validate(item).model_dump(mode="json", exclude_none=True)


def _button(widget: dict[str, Any], label_start: str) -> dict[str, Any]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Button" and node.get("label", "").startswith(label_start):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(widget)
    assert found, f"no button {label_start!r}"
    return found[0]


async def test_action_round_trip(client: httpx.AsyncClient, model: ScriptedModel, pg_dsn: str) -> None:
    thread_id, widget = await _thread_with_widget(client, model)
    click = _button(widget["widget"], "Daily forecast")["onClickAction"]
    body = request("threads.custom_action", thread_id=thread_id, item_id=widget["id"], action=click)
    events = await stream(client, body)
    assert [e["type"] for e in events] == ["stream_options", "thread.item.replaced", "thread.item.done"]
    assert "Daily forecast on" in json.dumps(events[1]["item"]["widget"])
    assert assistant_texts(events) == ["Subscribed: daily forecast for Paris."]

    # The replaced widget is persisted; the hidden context is stored but never shown...
    items = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))).json()["data"]
    assert "Daily forecast on" in json.dumps(items[1]["widget"])
    assert "hidden_context_item" not in [i["type"] for i in items]
    pool = await create_pool(pg_dsn)
    try:
        raw = await PostgresStore(pool).load_thread_items(thread_id, None, 50, "asc", RequestContext("alice", "acme"))
    finally:
        await pool.close()
    assert [i.type for i in raw.data].count("hidden_context_item") == 1
    # ...and the model reads it on the next turn.
    await stream(client, add_message(thread_id, "thanks"))
    assert "subscribed to the daily forecast for Paris" in json.dumps(model.requests[-1]["input"])


async def test_action_with_a_bad_payload_is_an_error_event(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, widget = await _thread_with_widget(client, model)
    action = {"type": "forecast.subscribe", "payload": {"city": ""}}
    events = await stream(
        client, request("threads.custom_action", thread_id=thread_id, item_id=widget["id"], action=action)
    )
    error = {"type": "error", "code": "custom", "message": "That button sent an invalid request.", "allow_retry": False}
    assert events[-1] == error


async def test_a_second_click_on_subscribe_changes_nothing(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, widget = await _thread_with_widget(client, model)
    click = _button(widget["widget"], "Daily forecast")["onClickAction"]
    body = request("threads.custom_action", thread_id=thread_id, item_id=widget["id"], action=click)
    await stream(client, body)
    again = await stream(client, body)  # a double click, or a click on a stale render of the card
    assert assistant_texts(again) == ["The daily forecast for Paris is already on."]
    assert "thread.item.replaced" not in [e["type"] for e in again]


async def test_a_payload_for_another_record_is_refused(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, widget = await _thread_with_widget(client, model)  # a Paris card
    action = {"type": "forecast.subscribe", "payload": {"city": "Oslo", "units": "C"}}
    events = await stream(
        client, request("threads.custom_action", thread_id=thread_id, item_id=widget["id"], action=action)
    )
    assert events[-1]["type"] == "error" and events[-1]["message"] == "That button sent an invalid request."
    assert "thread.item.replaced" not in [e["type"] for e in events]


async def test_action_on_a_non_widget_item_is_400(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, events = await new_thread(client, "hi")
    message_id = events[1]["item"]["id"]
    action = {"type": "forecast.subscribe", "payload": {"city": "Paris"}}
    body = request("threads.custom_action", thread_id=thread_id, item_id=message_id, action=action)
    response = await client.post(CHATKIT, json=body)
    assert response.status_code == 400 and response.json()["error"] == "invalid_action"


async def test_sync_action_updates_and_persists_the_widget(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    thread_id, widget = await _thread_with_widget(client, model)
    click = _button(widget["widget"], "Show °F")["onClickAction"]
    assert click["streaming"] is False  # this is what makes the client send threads.sync_custom_action
    body = request("threads.sync_custom_action", thread_id=thread_id, item_id=widget["id"], action=click)
    response = await client.post(CHATKIT, json=body)
    assert response.status_code == 200
    updated = response.json()["updated_item"]
    assert "°F" in json.dumps(updated["widget"], ensure_ascii=False)
    stored = await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))
    assert _parsed(stored.json()["data"][1]) == _parsed(updated)

    bad = request("threads.sync_custom_action", thread_id=thread_id, item_id=widget["id"], action={"type": "nope"})
    assert (await client.post(CHATKIT, json=bad)).status_code == 400


async def test_client_tool_round_trip(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script([function_call_output("get_user_location", {})])
    thread_id, events = await new_thread(client, "Weather where I am?")
    done = [e for e in events if e["type"] == "thread.item.done"]
    pending = done[-1]["item"]  # the turn's last item: a thread.updated (the new title) may follow it
    assert (pending["type"], pending["status"], pending["name"]) == ("client_tool_call", "pending", "get_user_location")
    assert pending["arguments"] == {"precision": "city"}

    body = request("threads.add_client_tool_output", thread_id=thread_id, result={"city": "Oslo"})
    events = await stream(client, body)
    assert events[0]["type"] == "stream_options"
    assert assistant_texts(events) == ['Tool result: {"city": "Oslo"}']
    sent = model.requests[-1]["input"]
    assert [i.get("type") for i in sent[-2:]] == ["function_call", "function_call_output"]

    items = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))).json()["data"]
    tool_item = next(i for i in items if i["type"] == "client_tool_call")
    assert (tool_item["status"], tool_item["output"]) == ("completed", {"city": "Oslo"})

    again = await client.post(CHATKIT, json=body)  # nothing is pending any more
    assert again.status_code == 409 and again.json()["error"] == "conflict"


async def test_an_invalid_client_tool_output_never_reaches_the_model(
    client: httpx.AsyncClient, model: ScriptedModel
) -> None:
    model.script([function_call_output("get_user_location", {})])
    thread_id, _ = await new_thread(client, "Weather where I am?")
    body = request("threads.add_client_tool_output", thread_id=thread_id, result={"city": "", "note": "x" * 50})
    events = await stream(client, body)
    assert events[1]["type"] == "thread.item.replaced"
    expected = {"error": "the browser sent no usable location"}
    assert events[1]["item"]["output"] == expected
    assert json.loads(model.requests[-1]["input"][-1]["output"]) == expected
    items = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))).json()["data"]
    assert next(i for i in items if i["type"] == "client_tool_call")["output"] == expected


async def test_a_locked_thread_refuses_messages_and_actions(
    client: httpx.AsyncClient, model: ScriptedModel, pg_dsn: str
) -> None:
    thread_id, widget = await _thread_with_widget(client, model)
    pool = await create_pool(pg_dsn)
    try:
        store, alice = PostgresStore(pool), RequestContext("alice", "acme")
        thread = await store.load_thread(thread_id, alice)
        await store.save_thread(thread.model_copy(update={"status": LockedStatus(reason="Closed by support.")}), alice)
    finally:
        await pool.close()
    calls_before = len(model.requests)
    refused = {"type": "error", "code": "custom", "message": "Closed by support.", "allow_retry": False}
    assert (await stream(client, add_message(thread_id, "hello?")))[-1] == refused
    click = _button(widget["widget"], "Daily forecast")["onClickAction"]
    action = request("threads.custom_action", thread_id=thread_id, item_id=widget["id"], action=click)
    assert (await stream(client, action))[-1] == refused
    assert len(model.requests) == calls_before  # the model was never asked


# --- durability, limits, CORS, health -----------------------------------------------------------------


async def test_thread_survives_an_app_restart(pg_dsn: str, model: ScriptedModel) -> None:
    async with running(create_app(settings_for(pg_dsn))) as first:
        thread_id, _ = await new_thread(first, "remember this")
    async with running(create_app(settings_for(pg_dsn))) as second:
        events = await stream(second, add_message(thread_id, "still there?"))
        assert assistant_texts(events) == ["You said: still there?"]
        thread = (await second.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id))).json()
    texts = [i["content"][0]["text"] for i in thread["items"]["data"]]
    assert texts == ["remember this", "You said: remember this", "still there?", "You said: still there?"]


async def test_oversized_body_is_413(pg_dsn: str, model: ScriptedModel) -> None:
    async with running(create_app(settings_for(pg_dsn, max_body_bytes=2_000))) as client:
        response = await client.post(CHATKIT, json=create_thread("x" * 5_000))
        assert response.status_code == 413 and response.json()["error"] == "too_large"
        assert (await client.post(CHATKIT, json=create_thread("small"))).status_code == 200


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"", 400),
        (b"{", 400),
        (json.dumps({"action": "send_message", "thread_id": "test", "content": "hello"}).encode(), 400),
        (json.dumps({"type": "threads.create", "params": {"input": {"content": []}}}).encode(), 400),
        (json.dumps(request("items.list", thread_id="thr_nope")).encode(), 404),
        (json.dumps(request("threads.add_client_tool_output", thread_id="thr_nope", result=1)).encode(), 404),
    ],
)
async def test_bad_input_never_500(client: httpx.AsyncClient, raw: bytes, status: int) -> None:
    response = await client.post(CHATKIT, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert set(response.json()) == {"error", "message"}


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_no_unauthenticated_api_docs(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_streams_carry_proxy_safe_headers(client: httpx.AsyncClient) -> None:
    response = await client.post(CHATKIT, json=create_thread("hi"))
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


async def test_cors_allows_only_listed_origins(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await client.options(CHATKIT, headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    denied = await client.options(CHATKIT, headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers
    simple = await client.post(CHATKIT, json=request("threads.list"), headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN


def test_a_wildcard_cors_origin_is_refused(pg_dsn: str) -> None:
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        create_app(settings_for(pg_dsn, cors_origins=("*",)))


async def test_request_id_header_passes_cors_and_reaches_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-request-id"}
    allowed = await client.options(CHATKIT, headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200
    with caplog.at_level(logging.INFO):
        await client.post(CHATKIT, json=request("threads.list"), headers={"X-Request-ID": "req-42"})
    assert any(r.request_id == "req-42" and r.user_id == "alice" for r in caplog.records)


async def test_healthz_checks_the_database(pg_dsn: str) -> None:
    app = create_app(settings_for(pg_dsn))
    async with running(app) as client:
        healthy = await client.get("/healthz")
        assert healthy.status_code == 200 and healthy.json() == {"status": "ok", "database": "up"}
        await app.state.pool.close()
        down = await client.get("/healthz")
        assert down.status_code == 503 and down.json()["database"] == "down"


async def test_tracing_is_off_unless_enabled(pg_dsn: str) -> None:
    from agents.tracing import get_trace_provider

    create_app(settings_for(pg_dsn, tracing=True))
    assert not get_trace_provider()._disabled  # type: ignore[attr-defined]
    create_app(settings_for(pg_dsn))
    assert get_trace_provider()._disabled  # type: ignore[attr-defined]


async def test_add_chatkit_to_an_existing_app(pg_dsn: str, model: ScriptedModel) -> None:
    """An app with its own lifespan and routes gains /chatkit; both lifespans run, nothing else changes."""
    events: list[str] = []

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("app started")
        yield
        events.append("app stopped")

    existing = FastAPI(lifespan=own_lifespan)

    @existing.get("/recipes")
    async def recipes() -> list[str]:
        return ["Shakshuka"]

    add_chatkit(existing, settings_for(pg_dsn))
    async with running(existing) as client:
        assert (await client.get("/recipes")).json() == ["Shakshuka"]
        _, streamed = await new_thread(client, "hi")
        assert assistant_texts(streamed) == ["You said: hi"]
        assert (await client.post(CHATKIT, json=create_thread("hi"), headers={"Authorization": ""})).status_code == 401
        assert existing.state.pool is not None
    assert events == ["app started", "app stopped"]


async def test_uvicorn_streams_incrementally(pg_dsn: str, model: ScriptedModel) -> None:
    """The production app under a real uvicorn: the first events arrive while the model is held."""
    gate = model.hold_next()
    env = {"DATABASE_URL": pg_dsn, "JWT_SECRET": SECRET, "CORS_ORIGINS": ORIGIN}
    with serve_process("level3.app:app", env=env) as base_url:
        first, rest = await stream_past_a_gate(base_url, create_thread("hi"), gate, headers=auth())
    assert first["type"] == "thread.created"
    assert assistant_texts(rest) == ["You said: hi"]
