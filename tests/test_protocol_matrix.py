"""The protocol matrix: the table in references/core-concepts.md is what the three apps answer.

Every one of the 16 request types is sent, valid and in a state where it can succeed (a thread, a
pending client tool call, a widget...), to every level over HTTP. A cell reads "yes" when the answer is
a 200, and "not_enabled" when it is 400 {"error": "not_enabled"}. Anything else fails the test, and so
does a table that disagrees with the apps.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import httpx
from chatkit.types import ChatKitReq
from chatkit_protocol import CHATKIT, add_message, create_thread, new_thread, request
from level_apps import LEVELS, level_client
from scripted_model_server import ScriptedModel, function_call_output, text_output

DOC = Path(__file__).parent.parent / "references" / "core-concepts.md"
REQUEST_TYPES = sorted(
    typing.get_type_hints(member)["type"].__args__[0] for member in typing.get_args(typing.get_args(ChatKitReq)[0])
)


def documented_matrix() -> dict[str, dict[str, str]]:
    """{request type: {level: cell}} from the table whose header is | `type` | Level 1 | Level 2 | Level 3 |."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\| `type` \| Level 1 \| Level 2 \| Level 3 \|", line))
    matrix = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        matrix[cells[0].strip("`")] = {level: cells[i + 1].strip("`") for i, level in enumerate(LEVELS)}
    return matrix


async def _thread(client: httpx.AsyncClient) -> tuple[str, str]:
    """A thread and the id of its first user message."""
    thread_id, events = await new_thread(client, "hello")
    return thread_id, events[1]["item"]["id"]


async def _widget(client: httpx.AsyncClient, model: ScriptedModel, level: str) -> tuple[str, str]:
    """A thread and the id of a widget in it (Level 3's forecast card); elsewhere, of a message."""
    if level == "Level 3":
        model.script([function_call_output("show_forecast", {"city": "Paris"})], [text_output("Here it is.")])
        thread_id, events = await new_thread(client, "Show me Paris")
        done = [e["item"] for e in events if e["type"] == "thread.item.done"]
        return thread_id, next(item["id"] for item in done if item["type"] == "widget")
    return await _thread(client)


async def _pending(client: httpx.AsyncClient, model: ScriptedModel, level: str, tool: str, args: Any) -> str:
    """A thread whose turn ended waiting for the client (Level 3's client tool or question)."""
    if level == "Level 3":
        model.script([function_call_output(tool, args)])
    thread_id, _ = await new_thread(client, "I need something from you")
    return thread_id


async def _structured(client: httpx.AsyncClient, model: ScriptedModel, level: str) -> dict[str, Any]:
    if level == "Level 3":
        model.script([function_call_output("ask_user", {"question": "Which Paris?", "options": ["France", "Texas"]})])
    thread_id, events = await new_thread(client, "Weather in Paris")
    done = [e["item"] for e in events if e["type"] == "thread.item.done"]
    item_id = next((item["id"] for item in done if item["type"] == "structured_input"), done[-1]["id"])
    answer = {"status": "answered", "answers": {"choice": {"values": ["France"]}}}
    return request("threads.add_structured_input", thread_id=thread_id, item_id=item_id, input=answer)


async def _action(client: httpx.AsyncClient, model: ScriptedModel, level: str, kind: str) -> dict[str, Any]:
    thread_id, item_id = await _widget(client, model, level)
    action = (
        {"type": "forecast.subscribe", "payload": {"city": "Paris"}}
        if kind == "threads.custom_action"
        else {"type": "forecast.units", "payload": {"city": "Paris", "units": "F"}}
    )
    return request(kind, thread_id=thread_id, item_id=item_id, action=action)


async def valid_request(kind: str, client: httpx.AsyncClient, model: ScriptedModel, level: str) -> dict[str, Any]:
    """A well-formed request of `kind`, in a state where a server that implements it succeeds."""
    match kind:
        case "threads.create":
            return create_thread("hi")
        case "threads.add_user_message":
            return add_message((await _thread(client))[0], "again")
        case "threads.add_client_tool_output":
            thread_id = await _pending(client, model, level, "get_user_location", {})
            return request(kind, thread_id=thread_id, result={"city": "Oslo"})
        case "threads.add_structured_input":
            return await _structured(client, model, level)
        case "threads.retry_after_item":
            thread_id, message_id = await _thread(client)
            return request(kind, thread_id=thread_id, item_id=message_id)
        case "threads.custom_action" | "threads.sync_custom_action":
            return await _action(client, model, level, kind)
        case "threads.get_by_id" | "threads.delete":
            return request(kind, thread_id=(await _thread(client))[0])
        case "threads.list":
            return request(kind, limit=10)
        case "items.list":
            return request(kind, thread_id=(await _thread(client))[0], limit=10)
        case "threads.update":
            return request(kind, thread_id=(await _thread(client))[0], title="Renamed")
        case "items.feedback":
            thread_id, events = await new_thread(client, "rate me")
            answer = next(
                e["item"]["id"]
                for e in events
                if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
            )
            return {"type": kind, "params": {"thread_id": thread_id, "item_ids": [answer], "kind": "positive"}}
        case "attachments.create":
            return request(kind, name="notes.txt", size=5, mime_type="text/plain")
        case "attachments.delete":
            created = await client.post(CHATKIT, json=await valid_request("attachments.create", client, model, level))
            return request(kind, attachment_id=created.json()["id"] if created.status_code == 200 else "atc_x")
        case "input.transcribe":
            return request(kind, audio_base64="AAECAw==", mime_type="audio/webm;codecs=opus")
    raise AssertionError(f"no valid request for {kind}")


def observed(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "yes"
    body = response.json()
    if response.status_code == 400 and body.get("error") == "not_enabled":
        assert body["message"].endswith("not enabled on this server"), body
        return "not_enabled"
    return f"{response.status_code} {body}"


def test_the_table_covers_every_request_type_and_level() -> None:
    matrix = documented_matrix()
    assert sorted(matrix) == REQUEST_TYPES and len(REQUEST_TYPES) == 16
    assert {cell for row in matrix.values() for cell in row.values()} <= {"yes", "not_enabled"}


async def test_every_cell_answers_as_documented(level_and_dsn: tuple[str, str], model: ScriptedModel) -> None:
    level, pg_dsn = level_and_dsn
    expected = {kind: row[level] for kind, row in documented_matrix().items()}
    answered: dict[str, str] = {}
    async with level_client(level, pg_dsn) as client:
        for kind in REQUEST_TYPES:
            body = await valid_request(kind, client, model, level)
            response = await client.post(CHATKIT, json=body)
            answered[kind] = observed(response)
            if answered[kind] == "yes" and response.headers["content-type"].startswith("text/event-stream"):
                assert '"type":"error"' not in response.text, (kind, response.text)  # a 200 that failed inside
    assert answered == expected
