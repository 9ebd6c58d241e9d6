"""The ChatKit protocol over HTTP, the same for every level's app: threads, items, pagination, bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from chatkit_protocol import CHATKIT, add_message, assistant_texts, call, create_thread, new_thread, request, stream
from fastapi import FastAPI
from level1.app import create_app as create_level1
from level2.app import create_app as create_level2

LEVELS: dict[str, Callable[[], FastAPI]] = {"level1": create_level1, "level2": create_level2}


@pytest.fixture(params=sorted(LEVELS))
def client(
    request: pytest.FixtureRequest, asgi_client: Callable[..., httpx.AsyncClient], model: Any
) -> httpx.AsyncClient:
    return asgi_client(LEVELS[request.param]())


async def test_create_thread_streams_then_persists(client: httpx.AsyncClient) -> None:
    thread_id, events = await new_thread(client, "hi")
    types = [e["type"] for e in events]
    assert types[:3] == ["thread.created", "thread.item.done", "stream_options"]
    assert types[-1] == "thread.item.done"
    assert len(assistant_texts(events)) == 1

    thread = await call(client, request("threads.get_by_id", thread_id=thread_id))
    assert [i["type"] for i in thread["items"]["data"]] == ["user_message", "assistant_message"]
    assert thread["items"]["data"][1]["content"][0]["text"] == assistant_texts(events)[0]


async def test_streams_carry_proxy_safe_headers(client: httpx.AsyncClient) -> None:
    response = await client.post(CHATKIT, json=create_thread("hi"))
    assert (response.headers["cache-control"], response.headers["x-accel-buffering"]) == ("no-cache", "no")


async def test_add_user_message_appends(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client)
    events = await stream(client, add_message(thread_id, "again"))
    assert events[0]["type"] == "thread.item.done" and events[0]["item"]["type"] == "user_message"
    items = await call(client, request("items.list", thread_id=thread_id, order="asc"))
    assert [i["type"] for i in items["data"]] == ["user_message", "assistant_message"] * 2


async def test_items_list_cursor_pagination(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client, "m0")
    for n in range(1, 4):
        await stream(client, add_message(thread_id, f"m{n}"))
    everything = await call(client, request("items.list", thread_id=thread_id, order="asc", limit=100))
    all_ids = [i["id"] for i in everything["data"]]
    assert len(all_ids) == 8 and not everything["has_more"]

    for order, expected in (("asc", all_ids), ("desc", all_ids[::-1])):
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            page = await call(client, request("items.list", thread_id=thread_id, order=order, limit=3, after=after))
            seen += [i["id"] for i in page["data"]]
            pages += 1
            if not page["has_more"]:
                break
            assert page["after"] == seen[-1]
            after = page["after"]
        assert seen == expected
        assert pages == 3


async def test_items_list_defaults_to_newest_first(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client)
    page = await call(client, request("items.list", thread_id=thread_id))
    assert [i["type"] for i in page["data"]] == ["assistant_message", "user_message"]


async def test_threads_list_update_delete(client: httpx.AsyncClient) -> None:
    first, _ = await new_thread(client, "one")
    second, _ = await new_thread(client, "two")
    listed = await call(client, request("threads.list", limit=1))
    assert [t["id"] for t in listed["data"]] == [second] and listed["has_more"] and listed["after"] == second
    rest = await call(client, request("threads.list", limit=1, after=listed["after"]))
    assert [t["id"] for t in rest["data"]] == [first] and not rest["has_more"]

    renamed = await call(client, request("threads.update", thread_id=first, title="Renamed"))
    assert renamed["title"] == "Renamed"
    assert (await call(client, request("threads.get_by_id", thread_id=first)))["title"] == "Renamed"

    assert await call(client, request("threads.delete", thread_id=first)) == {}
    gone = await client.post(CHATKIT, json=request("threads.get_by_id", thread_id=first))
    assert gone.status_code == 404
    assert [t["id"] for t in (await call(client, request("threads.list")))["data"]] == [second]


async def test_retry_replaces_the_answers_after_a_message(client: httpx.AsyncClient) -> None:
    thread_id, events = await new_thread(client, "first")
    first_message = events[1]["item"]["id"]
    await stream(client, add_message(thread_id, "second"))
    retried = await stream(client, request("threads.retry_after_item", thread_id=thread_id, item_id=first_message))
    assert retried[0]["type"] == "stream_options" and len(assistant_texts(retried)) == 1
    items = await call(client, request("items.list", thread_id=thread_id, order="asc"))
    # Everything after "first" was deleted through the store; one new answer follows it.
    assert [i["type"] for i in items["data"]] == ["user_message", "assistant_message"]
    assert items["data"][0]["id"] == first_message


SEED_CURL_BODY = {"action": "send_message", "thread_id": "test", "content": "hello"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (SEED_CURL_BODY, 'missing "type"'),
        ({"type": "threads.send_message", "params": {}}, "unknown type 'threads.send_message'"),
        ({"type": "threads.create", "params": {}}, "params.input: Field required"),
        ({"type": "threads.create"}, "params: Field required"),
        (create_thread("x") | {"params": {"input": {"content": "hi"}}}, "params.input.content"),
        ([], "Input should be an object"),
    ],
)
async def test_bad_bodies_get_400_with_a_reason(client: httpx.AsyncClient, body: Any, says: str) -> None:
    response = await client.post(CHATKIT, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert says in response.json()["message"]


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"type": "threads.create", "params": {"input":'])
async def test_unparseable_bodies_get_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(CHATKIT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        add_message("thr_missing", "hi"),
        request("threads.get_by_id", thread_id="thr_missing"),
        request("items.list", thread_id="thr_missing"),
        request("threads.update", thread_id="thr_missing", title="x"),
        request("threads.delete", thread_id="thr_missing"),
        request("threads.retry_after_item", thread_id="thr_missing", item_id="msg_x"),
    ],
    ids=lambda b: b["type"],
)
async def test_unknown_thread_is_404(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(CHATKIT, json=body)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "thread thr_missing not found"}


async def test_retry_of_an_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client)
    response = await client.post(
        CHATKIT, json=request("threads.retry_after_item", thread_id=thread_id, item_id="msg_x")
    )
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_unknown_cursor_is_404(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client)
    response = await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, after="msg_gone"))
    assert response.status_code == 404


async def test_requests_this_level_does_not_implement_are_400_not_enabled(client: httpx.AsyncClient) -> None:
    """Levels 1 and 2 have no client tools, questions, widgets, feedback, files or dictation (the full
    matrix is tests/test_protocol_matrix.py)."""
    thread_id, _ = await new_thread(client)
    body = request("threads.add_client_tool_output", thread_id=thread_id, result={"ok": True})
    response = await client.post(CHATKIT, json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "not_enabled", "message": "client tools are not enabled on this server"}
    with_a_file = create_thread("see attached")
    with_a_file["params"]["input"]["attachments"] = ["atc_1"]
    response = await client.post(CHATKIT, json=with_a_file)
    assert response.json() == {"error": "not_enabled", "message": "attachments are not enabled on this server"}
