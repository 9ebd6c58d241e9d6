"""ChatKit added to apps that already exist (tests/existing_apps/): each keeps its own routes and
lifespan, and Level 3 runs on the app's own login and the app's own database (an asyncpg pool made
without codecs, or a SQLAlchemy AsyncEngine)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import jwt
import pytest
from chatkit_protocol import CHATKIT, add_message, assistant_texts, create_thread, new_thread, request, stream
from existing_apps import notes_api, orders_api, recipes_api, shop_api
from fastapi import FastAPI
from level3.app import as_context
from level3.auth import AuthError
from level3.context import RequestContext
from scripted_model_server import ScriptedModel
from store_factories import asyncpg_engine_url

NOTES_SECRET = "the-notes-app-has-its-own-secret-0123456789"


@asynccontextmanager
async def running(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its whole lifespan (its own and ChatKit's), and a client speaking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as client:
            yield client


def notes_token(uid: str) -> str:
    """A token as the notes app issues them: its own secret, its own claims (no `sub`, no tenant)."""
    claims = {"uid": uid, "email": f"{uid}@example.com", "exp": int(time.time()) + 60}
    return "Bearer " + jwt.encode(claims, NOTES_SECRET, algorithm="HS256")


# --- Level 2 ----------------------------------------------------------------------------------------


# Property: add_chatkit (Level 2) adds /chatkit and leaves the app's routes and lifespan as they were.
async def test_level2_joins_an_app_with_its_own_routes_and_lifespan(model: ScriptedModel) -> None:
    app = recipes_api.create_app()
    async with running(app) as client:
        assert (await client.get("/recipes")).json() == ["Shakshuka", "Dal"]
        thread_id, events = await new_thread(client, "hi")
        assert assistant_texts(events) == ["You said: hi"]
        assert assistant_texts(await stream(client, add_message(thread_id, "again"))) == ["You said: again"]
        assert (await client.post(CHATKIT, json={})).status_code == 400
    assert app.state.events == ["started", "stopped"]


# Property: with the app's own user dependency, Level 2 keeps users apart and refuses a request without a user.
async def test_level2_on_the_apps_own_users_keeps_them_apart(model: ScriptedModel) -> None:
    app = shop_api.create_app()
    async with running(app, **{"X-Shop-User": "ann"}) as ann, running(app, **{"X-Shop-User": "bob"}) as bob:
        assert (await ann.get("/products")).json() == ["mug", "tee"]
        thread_id, _ = await new_thread(ann, "my cart")
        assert (await bob.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id))).status_code == 404
        assert (await bob.post(CHATKIT, json=request("threads.list"))).json()["data"] == []
        anonymous = await bob.post(CHATKIT, json=request("threads.list"), headers={"X-Shop-User": ""})
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
        listed = (await ann.post(CHATKIT, json=request("threads.list"))).json()["data"]
        assert [t["id"] for t in listed] == [thread_id]


# --- Level 3 on the app's asyncpg pool and JWT ------------------------------------------------------


@pytest.fixture
async def notes(pg_dsn: str, model: ScriptedModel) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = notes_api.create_app(pg_dsn, NOTES_SECRET)
    async with running(app, Authorization=notes_token("u-17")) as client:
        yield app, client


async def test_level3_runs_on_the_apps_own_pool_and_login(notes: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = notes
    assert (await client.post("/notes", params={"body": "buy milk"})).json() == {"saved": "buy milk"}
    thread_id, events = await new_thread(client, "hi")
    assert assistant_texts(events) == ["You said: hi"]
    assert assistant_texts(await stream(client, add_message(thread_id, "more"))) == ["You said: more"]
    # The rows are in the app's database, owned by the app's user id; the pool has no jsonb codec.
    owner = await app.state.db.fetchrow("SELECT user_id, tenant_id FROM chatkit_threads WHERE id = $1", thread_id)
    assert tuple(owner) == ("u-17", "default")
    assert await app.state.db.fetchval("SELECT data->>'type' FROM chatkit_items LIMIT 1") == "user_message"
    assert (await client.get("/healthz")).json() == {"status": "ok", "database": "up"}


async def test_the_apps_login_decides_who_gets_in(notes: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = notes
    thread_id, _ = await new_thread(client, "mine")
    # The app's own 401 (its HTTPException), for ChatKit exactly as for its other routes.
    refused = await client.post(CHATKIT, json=create_thread("hi"), headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.json() == {"detail": "log in first"}
    # Another user of the app sees nothing of u-17's.
    other = {"Authorization": notes_token("u-99")}
    assert (
        await client.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id), headers=other)
    ).status_code == 404
    listed = await client.post(CHATKIT, json=request("threads.list"), headers=other)
    assert listed.json()["data"] == []


async def test_the_app_keeps_its_pool_until_its_own_shutdown(pg_dsn: str, model: ScriptedModel) -> None:
    app = notes_api.create_app(pg_dsn, NOTES_SECRET)
    async with running(app, Authorization=notes_token("u-1")) as client:
        await client.post("/notes", params={"body": "one"})
        await new_thread(client, "hi")
    assert app.state.notes_at_shutdown == 1  # ChatKit's lifespan ended first and left the pool open
    assert not hasattr(app.state, "pool") and not hasattr(app.state, "authenticator")


async def test_the_pool_the_app_made_has_no_codecs(pg_dsn: str) -> None:
    # What "no codecs" means: jsonb arrives as text. The store never relies on either form.
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT '{\"a\": 1}'::jsonb") == '{"a": 1}'
    finally:
        await pool.close()


# --- Level 3 on the app's SQLAlchemy engine and API keys --------------------------------------------


@pytest.fixture
async def orders(pg_dsn: str, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with running(orders_api.create_app(asyncpg_engine_url(pg_dsn)), **{"X-API-Key": "key-alice"}) as client:
        yield client


async def test_level3_runs_on_the_apps_sqlalchemy_engine(orders: httpx.AsyncClient) -> None:
    thread_id, events = await new_thread(orders, "hi")
    assert assistant_texts(events) == ["You said: hi"]
    assert assistant_texts(await stream(orders, add_message(thread_id, "more"))) == ["You said: more"]
    items = await orders.post(CHATKIT, json=request("items.list", thread_id=thread_id, order="asc"))
    assert [item["type"] for item in items.json()["data"]] == ["user_message", "assistant_message"] * 2
    assert (await orders.get("/orders/count")).json() == {"user": "alice", "chat_threads": 1}
    assert (await orders.get("/healthz")).json() == {"status": "ok", "database": "up"}


# Property: a store without save_feedback (SQLAlchemyStore) refuses feedback by name, never a silent 200.
async def test_feedback_on_a_store_without_it_is_not_enabled(orders: httpx.AsyncClient) -> None:
    thread_id, events = await new_thread(orders, "hi")
    answer = next(
        e["item"]["id"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    )
    feedback = {"type": "items.feedback", "params": {"thread_id": thread_id, "item_ids": [answer], "kind": "positive"}}
    response = await orders.post(CHATKIT, json=feedback)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "not_enabled", "message": "feedback is not enabled on this server"},
    )


async def test_a_context_from_the_apps_dependency_scopes_by_tenant(orders: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(orders, "acme only")
    bob = {"X-API-Key": "key-bob"}
    assert (
        await orders.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id), headers=bob)
    ).status_code == 404


async def test_no_user_from_the_apps_dependency_is_a_json_401(orders: httpx.AsyncClient) -> None:
    # The app's dependency returns None for anonymous callers: ChatKit refuses them, it does not crash.
    response = await orders.post(CHATKIT, json=create_thread("hi"), headers={"X-API-Key": "wrong"})
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": "not signed in"}


# Property: a user id becomes a default-tenant context, a context passes through, anything else is refused.
def test_what_a_user_dependency_may_return() -> None:
    context = RequestContext(user_id="u", tenant_id="t", roles=frozenset({"admin"}))
    assert as_context(context) is context
    assert as_context("u-1") == RequestContext(user_id="u-1")
    for nobody in (None, ""):
        with pytest.raises(AuthError):
            as_context(nobody)
    with pytest.raises(TypeError, match="return a user id"):
        as_context(notes_api.User(id="u", email="u@example.com"))
