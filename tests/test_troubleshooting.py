"""references/troubleshooting.md, entry by entry: each test first reproduces the symptom with the broken
code a user typically has, then shows that the fix in the examples removes it."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import level2.server
import pytest
from agents import Agent, set_tracing_disabled
from agents.tracing import get_trace_provider
from agents.tracing.provider import DefaultTraceProvider
from chatkit.agents import ThreadItemConverter, simple_to_agent_input
from chatkit.server import StreamingResult
from chatkit.types import (
    Attachment,
    FileAttachment,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from chatkit_protocol import (
    CHATKIT,
    add_message,
    assistant_texts,
    call,
    create_thread,
    new_thread,
    request,
    stream,
    stream_past_a_gate,
)
from fastapi import FastAPI, Request, Response
from level2.app import create_app
from level2.server import AgentServer
from level2.store import MemoryStore
from level3.app import create_app as level3_create_app
from level3.auth import issue_dev_token
from level3.settings import Settings
from level3.tools import build_agent
from live_server import serve_process
from nginx_proxy import nginx_in_front
from scripted_model_server import ScriptedModel, function_call_output, text_output

ClientFactory = Callable[..., httpx.AsyncClient]


def user_message(thread_id: str, text: str, at: datetime, **fields: Any) -> UserMessageItem:
    return UserMessageItem(
        id=f"msg_{text.replace(' ', '_')}",
        thread_id=thread_id,
        created_at=at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
        **({"attachments": []} | fields),
    )


# --- "a 500 on {}" ----------------------------------------------------------------------------------


def unchecked_app() -> FastAPI:
    """The endpoint as often written: the body goes straight to process()."""
    server = AgentServer(MemoryStore())
    app = FastAPI()

    @app.post("/chatkit")
    async def chatkit(request: Request) -> Response:
        result = await server.process(await request.body(), context={})
        if isinstance(result, StreamingResult):
            raise NotImplementedError  # never reached in this test
        return Response(content=result.json, media_type="application/json")

    return app


async def test_an_empty_body_is_a_500_until_the_endpoint_validates_it(asgi_client: ClientFactory) -> None:
    assert (await asgi_client(unchecked_app()).post(CHATKIT, json={})).status_code == 500
    fixed = await asgi_client(create_app()).post(CHATKIT, json={})
    assert fixed.status_code == 400 and fixed.json()["error"] == "invalid_request"


# --- "it forgets what I said recently" --------------------------------------------------------------


async def test_history_loaded_in_asc_order_misses_the_latest_messages() -> None:
    store, context = MemoryStore(), {}
    start = datetime(2026, 1, 1)
    await store.save_thread(ThreadMetadata(id="thr_1", created_at=start), context)
    for n in range(30):
        await store.add_thread_item("thr_1", user_message("thr_1", f"turn {n}", start + timedelta(seconds=n)), context)

    def texts(items: list[ThreadItem]) -> list[str]:
        return [item.content[0].text for item in items]  # type: ignore[union-attr]

    first = (await store.load_thread_items("thr_1", None, 20, "asc", context)).data
    assert texts(first)[-1] == "turn 19"  # what the model sees: the latest ten turns are gone
    last = list(reversed((await store.load_thread_items("thr_1", None, 20, "desc", context)).data))
    assert texts(last)[0] == "turn 10" and texts(last)[-1] == "turn 29"


# --- "the history sidebar spins forever" ------------------------------------------------------------


class NoCursorStore(MemoryStore):
    """A store whose pages say "there is more" without saying where the next page starts."""

    async def load_threads(self, limit: int, after: str | None, order: str, context: Any) -> Page[ThreadMetadata]:
        page = await super().load_threads(limit, after, order, context)
        return Page(data=page.data, has_more=page.has_more, after=None)


async def _list_all_threads(client: httpx.AsyncClient, max_pages: int = 10) -> tuple[list[str], int]:
    """Page through threads.list as the client's sidebar does: follow `after` while `has_more`."""
    ids, after = [], None
    for pages in range(1, max_pages + 1):
        page = await call(client, request("threads.list", limit=10, after=after, order="asc"))
        ids += [thread["id"] for thread in page["data"]]
        if not page["has_more"]:
            return ids, pages
        after = page.get("after")  # the SDK leaves out fields that are None
    return ids, max_pages


@pytest.mark.parametrize("store_class", [NoCursorStore, MemoryStore])
async def test_has_more_without_after_pages_forever(asgi_client: ClientFactory, store_class: type[MemoryStore]) -> None:
    store = store_class()
    for n in range(25):
        await store.save_thread(ThreadMetadata(id=f"thr_{n:02}", created_at=datetime(2026, 1, 1, 0, n)), {})
    ids, pages = await _list_all_threads(asgi_client(create_app(store=store)))
    if store_class is NoCursorStore:
        assert pages == 10 and ids[:10] == ids[10:20]  # the first page, again and again
    else:
        assert pages == 3 and len(set(ids)) == 25


# --- a Thread passed to save_thread -----------------------------------------------------------------


class KeepsWhatItGetsStore(MemoryStore):
    """save_thread keeps the object it is given, which is sometimes a Thread with its items."""

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        await super().save_thread(thread, context)
        self.threads[thread.id] = (self._owner(context), thread)


async def test_storing_a_thread_with_its_items_breaks_threads_get_by_id(
    asgi_client: ClientFactory, model: ScriptedModel
) -> None:
    broken = asgi_client(create_app(store=KeepsWhatItGetsStore()))
    thread_id, _ = await new_thread(broken, "hi")  # threads.create saves a Thread, items and all
    assert (await broken.post(CHATKIT, json=request("threads.get_by_id", thread_id=thread_id))).status_code == 500
    fixed = asgi_client(create_app(store=MemoryStore()))  # stores model_dump(exclude={"items"})
    thread_id, _ = await new_thread(fixed, "hi")
    assert (await call(fixed, request("threads.get_by_id", thread_id=thread_id)))["id"] == thread_id


# --- a missing converter for attachments (NotImplementedError) --------------------------------------


class AttachmentsAsText(ThreadItemConverter):
    """Tells the model an attachment exists; a real app sends its content (input_image, input_file)."""

    async def attachment_to_message_content(self, attachment: Attachment) -> Any:
        return {"type": "input_text", "text": f"[attached: {attachment.name}]"}


async def test_attachments_need_a_converter() -> None:
    report = FileAttachment(id="atc_1", name="report.pdf", mime_type="application/pdf")
    message = user_message("thr_1", "summarise this", datetime(2026, 1, 1), attachments=[report])
    with pytest.raises(NotImplementedError, match="attachment_to_message_content"):
        await simple_to_agent_input([message])
    converted = await AttachmentsAsText().to_agent_input([message])
    assert "[attached: report.pdf]" in str(converted)


# --- a client tool without StopAtTools --------------------------------------------------------------


@pytest.fixture
def level2_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Agent[Any]], None]]:
    yield lambda agent: monkeypatch.setattr(level2.server, "assistant", agent)


async def test_a_client_tool_without_stop_at_tools_answers_for_the_browser(
    asgi_client: ClientFactory, model: ScriptedModel, level2_with: Callable[[Agent[Any]], None]
) -> None:
    with_stop = build_agent()  # Level 3's agent: get_user_location is a client tool, with StopAtTools
    level2_with(with_stop.clone(tool_use_behavior="run_llm_again"))  # the SDK default
    model.script([function_call_output("get_user_location", {})])
    _, events = await new_thread(asgi_client(create_app()), "where am I?")
    assert len(model.requests) == 2  # the model ran on, with an output the browser never produced
    made_up = model.requests[-1]["input"][-1]
    assert (made_up["type"], made_up["output"]) == ("function_call_output", "None")
    assert assistant_texts(events)  # ...and answered before the browser could

    model.reset()
    level2_with(with_stop)
    model.script([function_call_output("get_user_location", {})])
    _, events = await new_thread(asgi_client(create_app()), "where am I?")
    assert len(model.requests) == 1 and not assistant_texts(events)
    done = [e["item"] for e in events if e["type"] == "thread.item.done"]
    assert (done[-1]["type"], done[-1]["status"]) == ("client_tool_call", "pending")  # the browser's turn


# --- traces sent to OpenAI while the app uses another base URL --------------------------------------


async def test_traces_are_exported_by_default_and_off_once_the_app_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # "another model server"
    monkeypatch.delenv("OPENAI_AGENTS_DISABLE_TRACING", raising=False)
    monkeypatch.delenv("CHATKIT_TRACING", raising=False)
    sdk_default = DefaultTraceProvider()
    assert sdk_default.create_trace("turn").export() is not None  # exported to OpenAI, base URL or not
    try:
        create_app()  # Level 2 applies the rule: off unless CHATKIT_TRACING=1
        assert get_trace_provider().create_trace("turn").export() is None
        monkeypatch.setenv("CHATKIT_TRACING", "1")
        create_app()
        assert get_trace_provider().create_trace("turn").export() is not None
    finally:
        set_tracing_disabled(True)
        assert os.environ.get("OPENAI_AGENTS_DISABLE_TRACING") is None


# --- answers that replace each other (__fake_id__) --------------------------------------------------


async def test_a_raw_chat_completions_model_breaks_turn_two(
    asgi_client: ClientFactory, model: ScriptedModel, level2_with: Callable[[Agent[Any]], None]
) -> None:
    from agents import OpenAIChatCompletionsModel
    from openai import AsyncOpenAI

    level2_with(level2.server.assistant.clone(model=OpenAIChatCompletionsModel("llama3.1", AsyncOpenAI())))
    client = asgi_client(create_app())
    thread_id, events = await new_thread(client, "one")
    assert {e["item"]["id"] for e in events if e["type"] == "thread.item.done"} >= {"__fake_id__"}
    second = await stream(client, add_message(thread_id, "two"))
    assert {"type": "error", "code": "stream.error", "allow_retry": True} in second
    # The fix, examples/level2/chat_completions.py, is tested in test_chat_completions.py.


# --- a buffering proxy ------------------------------------------------------------------------------


async def _first_event_came_after(gate: threading.Event, base_url: str) -> bool:
    """Stream a new thread through `base_url`; True if its first event arrived only after `gate` was set."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        async with http.stream("POST", CHATKIT, json=create_thread("hi")) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    return gate.is_set()
    raise AssertionError("no event")


async def test_a_buffering_proxy_holds_the_stream_until_the_turn_ends(model: ScriptedModel) -> None:
    with serve_process("level2.app:app") as upstream:
        # The endpoint without X-Accel-Buffering: no, as nginx sees it when told to ignore the header.
        with nginx_in_front(upstream, "proxy_ignore_headers X-Accel-Buffering;") as buffering:
            gate = model.hold_next()
            threading.Timer(3, gate.set).start()  # the model answers later; only then does the turn end
            assert await _first_event_came_after(gate, buffering)
        # The examples' endpoint sends the header: nginx passes each event on as it comes.
        with nginx_in_front(upstream) as proxied:
            first, rest = await stream_past_a_gate(proxied, create_thread("hi"), model.hold_next())
    assert first["type"] == "thread.created" and assistant_texts(rest) == ["You said: hi"]


# --- an action ignored while the assistant is responding --------------------------------------------


def _sync_button(node: Any) -> dict[str, Any] | None:
    """The first button whose action is not streamed (streaming: false): the client sends it as a sync action."""
    if isinstance(node, dict):
        action = node.get("onClickAction")
        if node.get("type") == "Button" and isinstance(action, dict) and action.get("streaming") is False:
            return action
        node = list(node.values())
    if isinstance(node, list):
        return next((found for child in node if (found := _sync_button(child))), None)
    return None


async def test_a_sync_action_is_answered_while_a_turn_is_streaming(pg_dsn: str, model: ScriptedModel) -> None:
    """The client holds back streamed actions during a response; a sync action is one POST, and the server
    answers it while the same thread's turn is still streaming."""
    secret = "troubleshooting-secret-0123456789abcdef"
    settings = Settings(database_url=pg_dsn, jwt_secret=secret, jwks_url="", cors_origins=(), tracing=False)
    app = level3_create_app(settings)
    headers = {"Authorization": f"Bearer {issue_dev_token(secret)}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as client:
            model.script([function_call_output("show_forecast", {"city": "Paris"})], [text_output("Here it is.")])
            thread_id, events = await new_thread(client, "Show me Paris")
            widget = next(
                e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "widget"
            )

            gate, asked = model.hold_next(), len(model.requests)
            turn = asyncio.create_task(client.post(CHATKIT, json=add_message(thread_id, "and tomorrow?")))
            for _ in range(200):  # until the model has the request and the turn is mid-stream
                if len(model.requests) > asked:
                    break
                await asyncio.sleep(0.05)
            assert len(model.requests) > asked and not turn.done()

            click = _sync_button(widget["widget"])
            body = request("threads.sync_custom_action", thread_id=thread_id, item_id=widget["id"], action=click)
            answered = await client.post(CHATKIT, json=body)
            assert answered.status_code == 200 and "°F" in answered.text
            assert not turn.done()  # answered while the turn still streams
            gate.set()
            assert (await turn).status_code == 200
