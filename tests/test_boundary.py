"""The endpoint's rules, the same at every level: unstorable text is 400 invalid_text, paging is held to
its bounds, and nothing refused is stored. Level 3 runs on a real PostgreSQL, where each of these was a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from chatkit_protocol import CHATKIT, add_message, create_thread, new_thread, request, stream
from level_apps import level_client
from scripted_model_server import ScriptedModel
from test_level3 import auth


@pytest.fixture
async def client(level_and_dsn: tuple[str, str], model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with level_client(*level_and_dsn) as client:
        yield client


async def post_raw(client: httpx.AsyncClient, raw: str) -> httpx.Response:
    return await client.post(CHATKIT, content=raw.encode(), headers={"Content-Type": "application/json"})


def assert_invalid_text(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_text"


# --- unstorable text ----------------------------------------------------------------------------------


async def test_nul_in_a_title_is_400_and_changes_nothing(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client, "keep me")
    for bad in ("a\x00b", "\x00"):
        body = request("threads.update", thread_id=thread_id, title=bad)
        assert_invalid_text(await client.post(CHATKIT, json=body))
    thread = (await client.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id))).json()
    assert thread.get("title") in ("keep me", None)  # Level 1 sets no title


async def test_nul_in_a_message_is_400_and_stores_nothing(client: httpx.AsyncClient) -> None:
    assert_invalid_text(await client.post(CHATKIT, json=create_thread("hello\x00world")))
    thread_id, _ = await new_thread(client, "hi")
    assert_invalid_text(await client.post(CHATKIT, json=add_message(thread_id, "\x00")))
    assert (await client.post(CHATKIT, json=request("threads.list"))).json()["data"][0]["id"] == thread_id
    items = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id))).json()["data"]
    assert len(items) == 2


@pytest.mark.parametrize(
    "body",
    [
        request("threads.list") | {"metadata": {"note": "a\x00"}},
        request("threads.list") | {"metadata": {"\x00": 1}},
        request("threads.list", after="thr_\x00"),
        request("threads.get_by_id", thread_id="thr_\x00"),
    ],
    ids=["metadata-value", "metadata-key", "cursor", "id"],
)
async def test_nul_anywhere_in_the_body_is_400(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_invalid_text(await client.post(CHATKIT, json=body))


async def test_a_lone_surrogate_is_400_invalid_text(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client)
    for escape in ("\\ud800", "\\udfff", "a\\ud83db", "\\ude00\\ud83d"):  # lone, or a pair in the wrong order
        body = json.dumps(request("threads.update", thread_id=thread_id, title="TEXT"))
        assert_invalid_text(await post_raw(client, body.replace("TEXT", escape)))
        body = json.dumps(create_thread("TEXT"))
        assert_invalid_text(await post_raw(client, body.replace("TEXT", escape)))


async def test_paired_surrogates_rtl_and_combining_marks_are_stored_as_sent(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client)
    title = "\U0001f600 \u05e9\u05dc\u05d5\u05dd e\u0301 \u202e"
    raw = json.dumps(request("threads.update", thread_id=thread_id, title=title))  # ascii: emoji as a \\ud83d pair
    assert "\\ud83d\\ude00" in raw
    assert (await post_raw(client, raw)).json()["title"] == title
    thread = (await client.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id))).json()
    assert thread["title"] == title


async def test_broken_json_is_still_invalid_request(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, '{"type": "threads.list", "params": {"after": "\\ud800"')
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --- paging -----------------------------------------------------------------------------------------


async def test_a_negative_limit_is_400(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client)
    for limit in (-1, -5, -(10**12)):
        for body in (request("threads.list", limit=limit), request("items.list", thread_id=thread_id, limit=limit)):
            response = await client.post(CHATKIT, json=body)
            assert response.status_code == 400, response.text
            assert response.json() == {
                "error": "invalid_request",
                "message": "params.limit: must be 0 (the default page) or more",
            }


async def test_limit_zero_is_the_default_page_and_huge_limits_are_100(client: httpx.AsyncClient) -> None:
    thread_id, _ = await new_thread(client, "m0")
    for n in range(1, 11):
        await stream(client, add_message(thread_id, f"m{n}"))  # 22 items in all
    for limit in (None, 0):
        page = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, limit=limit))).json()
        assert (len(page["data"]), page["has_more"]) == (20, True)
    for limit in (100, 101, 10**12, 2**63, 10**40):
        page = (await client.post(CHATKIT, json=request("items.list", thread_id=thread_id, limit=limit))).json()
        assert (len(page["data"]), page["has_more"]) == (22, False)
        listed = (await client.post(CHATKIT, json=request("threads.list", limit=limit))).json()
        assert [t["id"] for t in listed["data"]] == [thread_id]


async def test_a_cursor_from_another_thread_is_404(client: httpx.AsyncClient) -> None:
    first, first_events = await new_thread(client, "one")
    second, _ = await new_thread(client, "two")
    stranger = first_events[1]["item"]["id"]
    response = await client.post(CHATKIT, json=request("items.list", thread_id=second, after=stranger))
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    response = await client.post(CHATKIT, json=request("threads.list", after=stranger))  # an item, not a thread
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_level3_cursors_of_another_user_are_404(model: ScriptedModel, pg_dsn: str) -> None:
    async with level_client("Level 3", pg_dsn) as client:
        thread_id, events = await new_thread(client, "alice's")
        item_id = events[1]["item"]["id"]
        await new_thread(client, "bob's", headers=auth("bob"))
        for body in (
            request("threads.list", after=thread_id),
            request("items.list", thread_id=thread_id, after=item_id),
        ):
            response = await client.post(CHATKIT, json=body, headers=auth("bob"))
            assert response.status_code == 404 and response.json()["error"] == "not_found", response.text
            assert "alice" not in response.text
