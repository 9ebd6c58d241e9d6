"""An offline, OpenAI-compatible model server: the Responses API and Chat Completions, one script for both.

Point any app that uses the official ``openai`` client (and so the Agents SDK) at it with
``OPENAI_BASE_URL=http://127.0.0.1:8765/v1`` and any non-empty ``OPENAI_API_KEY``. No network, no
key, deterministic replies. ``POST /v1/responses`` and ``POST /v1/chat/completions`` answer alike:

* by default it answers ``You said: <last user text>``; after a tool ran it answers
  ``Tool result: <output>``;
* a user message ``/call <tool> {json}`` makes it call that tool (if the request offers it);
* scripted turns, queued with ``POST /_scripted/turns``, win over the default; either endpoint takes
  the next one;
* streamed answers split text into word deltas, with ``--delay`` seconds between streamed events on
  both endpoints (a Responses event, or a Chat Completions chunk);
* every request it received is kept, ``GET /_scripted/requests`` returns them;
* ``POST /v1/audio/transcriptions`` (multipart, as the ``openai`` client sends it) answers
  ``{"text": "Transcript of <n> bytes of <type>"}`` and keeps what it received in ``model.transcriptions``.

Run ``python scripts/scripted_model_server.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Output = dict[str, Any]  # one Responses output item: a message or a function_call


def _id(prefix: str) -> str:
    # ChatKit reuses the model's message id as the thread item id: it must never repeat.
    return f"{prefix}_{uuid.uuid4().hex}"


def text_output(text: str) -> Output:
    return {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call_output(name: str, arguments: dict[str, Any]) -> Output:
    return {
        "id": _id("fc"),
        "type": "function_call",
        "call_id": _id("call"),
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def _turn_from_json(turn: list[dict[str, Any]]) -> list[Output]:
    """``[{"text": "hi"}, {"function_call": {"name": "x", "arguments": {}}}]`` to output items."""
    out: list[Output] = []
    for step in turn:
        if "text" in step:
            out.append(text_output(str(step["text"])))
        elif "function_call" in step:
            call = step["function_call"]
            out.append(function_call_output(call["name"], call.get("arguments") or {}))
        else:
            raise ValueError(f"a step needs 'text' or 'function_call': {step!r}")
    return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def default_reply(body: dict[str, Any]) -> list[Output]:
    """The deterministic answer to a request that no script covers."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    last = (items or [{}])[-1]
    if last.get("type") == "function_call_output":
        return [text_output(f"Tool result: {last.get('output')}")]
    user_text = next(
        (
            _text_of(i.get("content"))
            for i in reversed(items or [])
            if i.get("role") == "user" and i.get("type", "message") == "message"
        ),
        "",
    ).strip()
    if user_text.startswith("/call "):
        name, _, raw_args = user_text[len("/call ") :].partition(" ")
        offered = {t.get("name") for t in body.get("tools") or []}
        try:
            arguments = json.loads(raw_args or "{}")
        except ValueError:  # not a tool call after all: answer it like any other text
            arguments = None
        if name in offered and isinstance(arguments, dict):
            return [function_call_output(name, arguments)]
    return [text_output(f"You said: {user_text}")]


class ScriptedModel:
    """The server's state: queued turns and the requests received, shared with in-process tests."""

    def __init__(self) -> None:
        self.turns: deque[list[Output] | int] = deque()
        self.requests: list[dict[str, Any]] = []
        self.transcriptions: list[dict[str, Any]] = []  # model, filename, content_type, size of each upload
        self.gate: threading.Event | None = None
        self.hold_at = 0
        self.delay = 0.0  # seconds between streamed events, on both endpoints; tests may change it
        self.drop_at: int | None = None

    def script(self, *turns: list[Output]) -> None:
        """Queue whole model turns; each request to /v1/responses or /v1/chat/completions consumes one."""
        self.turns.extend(turns)

    def fail_next(self, status: int = 500) -> None:
        """Make the next request fail with an HTTP error, as an overloaded API would."""
        self.turns.append(status)

    def hold_next(self, after_events: int = 0) -> threading.Event:
        """Hold the next streamed answer, after `after_events` events, until the returned event is set.

        `after_events` counts the wire frames this server sends before it waits: Responses events
        (`response.created` is event 0; `stream_events()` lists them all) on /v1/responses, chunks on
        /v1/chat/completions (`chat_chunks()`; chunk 0 carries only the role). 0 holds the whole answer.
        Shows that streaming is live, or leaves a reply half-sent (to test the stop button)."""
        self.gate, self.hold_at = threading.Event(), after_events
        return self.gate

    def drop_next(self, after_events: int) -> None:
        """Cut the next streamed answer after `after_events` events: the connection closes mid-body,
        as when the API or a proxy on the way drops it."""
        self.drop_at = after_events

    def reset(self) -> None:
        self.turns.clear()
        self.requests.clear()
        self.transcriptions.clear()
        self.gate = None
        self.drop_at = None

    def next_turn(self, body: dict[str, Any]) -> list[Output] | int:
        self.requests.append(body)
        return self.turns.popleft() if self.turns else default_reply(body)


def _response(body: dict[str, Any], output: list[Output], status: str) -> dict[str, Any]:
    return {
        "id": _id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "model": body.get("model") or "scripted",
        "status": status,
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
    }


def stream_events(body: dict[str, Any], output: list[Output]) -> list[dict[str, Any]]:
    """The Responses-API event sequence for one turn, text split into word deltas."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(body, [], "in_progress")},
        {"type": "response.in_progress", "response": _response(body, [], "in_progress")},
    ]
    for index, item in enumerate(output):
        base = {"output_index": index, "item_id": item["id"]}
        if item["type"] == "message":
            started = {**item, "status": "in_progress", "content": []}
            events.append({"type": "response.output_item.added", "output_index": index, "item": started})
            for ci, part in enumerate(item["content"]):
                empty = {**part, "text": ""}
                events.append({"type": "response.content_part.added", **base, "content_index": ci, "part": empty})
                words = part["text"].split(" ")
                for wi, word in enumerate(words):
                    delta = word if wi == 0 else " " + word
                    events.append(
                        {
                            "type": "response.output_text.delta",
                            **base,
                            "content_index": ci,
                            "delta": delta,
                            "logprobs": [],
                        }
                    )
                events.append(
                    {
                        "type": "response.output_text.done",
                        **base,
                        "content_index": ci,
                        "text": part["text"],
                        "logprobs": [],
                    }
                )
                events.append({"type": "response.content_part.done", **base, "content_index": ci, "part": part})
        else:
            started = {**item, "arguments": "", "status": "in_progress"}
            events.append({"type": "response.output_item.added", "output_index": index, "item": started})
            events.append({"type": "response.function_call_arguments.delta", **base, "delta": item["arguments"]})
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **base,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": _response(body, output, "completed")})
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
    return events


def _as_responses_body(body: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request, reshaped so that default_reply() can read it."""
    items: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        if message.get("role") == "tool":
            items.append({"type": "function_call_output", "output": _text_of(message.get("content"))})
        else:
            items.append({"type": "message", "role": message.get("role"), "content": message.get("content")})
    tools = [tool.get("function", {}) for tool in body.get("tools") or []]
    return {**body, "input": items, "tools": tools}


def chat_chunks(body: dict[str, Any], output: list[Output]) -> list[dict[str, Any]]:
    """The same turn as Chat Completions stream chunks: word deltas, tool calls, a finish reason."""
    base = {"id": _id("chatcmpl"), "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = body.get("model") or "scripted"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    calls = [item for item in output if item["type"] == "function_call"]
    for item in output:
        if item["type"] == "message":
            words = item["content"][0]["text"].split(" ")
            chunks += [chunk({"content": word if n == 0 else " " + word}) for n, word in enumerate(words)]
    for index, call in enumerate(calls):
        function = {"name": call["name"], "arguments": call["arguments"]}
        chunks.append(
            chunk({"tool_calls": [{"index": index, "id": call["call_id"], "type": "function", "function": function}]})
        )
    chunks.append(chunk({}, "tool_calls" if calls else "stop"))
    return chunks


def scripted_failure(status: int) -> JSONResponse:
    """What fail_next() makes the API answer, in OpenAI's error shape."""
    return JSONResponse({"error": {"message": "scripted failure", "type": "server_error", "code": None}}, status)


def create_app(model: ScriptedModel | None = None, delay: float = 0.0) -> Starlette:
    """The ASGI app; ``delay`` seconds between streamed events make incremental delivery visible."""
    state = model or ScriptedModel()
    if delay:
        state.delay = delay

    def paced(frames: list[bytes]) -> AsyncIterator[bytes]:
        """Stream frames with state.delay between them, holding where hold_next() and cutting where drop_next() said."""
        gate, hold_at, state.gate = state.gate, state.hold_at, None
        drop_at, state.drop_at = state.drop_at, None

        async def sse() -> AsyncIterator[bytes]:
            for index, frame in enumerate(frames):
                if gate is not None and index == hold_at:
                    await asyncio.to_thread(gate.wait, 30)
                if index == drop_at:
                    # uvicorn closes the connection without the final chunk: the client sees a cut body.
                    raise ConnectionAbortedError("scripted drop")
                yield frame
                if state.delay:
                    await asyncio.sleep(state.delay)

        return sse()

    async def responses(request: Request) -> Response:
        body = await request.json()
        turn = state.next_turn(body)
        if isinstance(turn, int):
            return scripted_failure(turn)
        if not body.get("stream"):
            return JSONResponse(_response(body, turn, "completed"))

        frames = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in stream_events(body, turn)]
        return StreamingResponse(paced(frames), media_type="text/event-stream")

    async def chat_completions(request: Request) -> Response:
        body = await request.json()
        turn = state.next_turn(_as_responses_body(body))
        if isinstance(turn, int):
            return scripted_failure(turn)
        chunks = chat_chunks(body, turn)
        if not body.get("stream"):
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
            calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
            message = {"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})}
            choice = {"index": 0, "message": message, "finish_reason": chunks[-1]["choices"][0]["finish_reason"]}
            return JSONResponse({**chunks[0], "object": "chat.completion", "choices": [choice]})

        frames = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]
        return StreamingResponse(paced(frames), media_type="text/event-stream")

    async def transcriptions(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return JSONResponse({"error": {"message": "file is required", "type": "invalid_request_error"}}, 400)
        data = await upload.read()
        media_type = (upload.content_type or "application/octet-stream").split(";")[0]
        received = {"model": form.get("model"), "filename": upload.filename, "content_type": media_type}
        state.transcriptions.append({**received, "size": len(data)})
        if state.turns and isinstance(state.turns[0], int):  # fail_next() applies here too
            return scripted_failure(int(state.turns.popleft()))
        return JSONResponse({"text": f"Transcript of {len(data)} bytes of {media_type}"})

    async def add_turns(request: Request) -> Response:
        payload = await request.json()
        try:
            state.script(*(_turn_from_json(turn) for turn in payload["turns"]))
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"expected {{'turns': [[step, ...], ...]}}: {exc}"}, status_code=400)
        return JSONResponse({"queued": len(state.turns)})

    async def list_requests(request: Request) -> Response:
        return JSONResponse(state.requests)

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({})

    app = Starlette(
        routes=[
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/_scripted/turns", add_turns, methods=["POST"]),
            Route("/_scripted/requests", list_requests, methods=["GET"]),
            Route("/_scripted/reset", reset, methods=["POST"]),
        ]
    )
    app.state.model = state
    return app


# --8<-- [start:in-background]
@contextmanager
def serve_in_background(port: int = 0, delay: float = 0.0) -> Iterator[tuple[str, ScriptedModel]]:
    """Run the server on 127.0.0.1 in a daemon thread, e.g. from a pytest session fixture.

    Yields the value for OPENAI_BASE_URL and the model, to script turns and read requests.
    """
    model = ScriptedModel()
    with serve_app_in_background(create_app(model, delay), port) as base_url:
        yield f"{base_url}/v1", model


@contextmanager
def serve_app_in_background(app: Any, port: int = 0) -> Iterator[str]:
    """Serve any ASGI app with uvicorn on 127.0.0.1 (port 0: a free one) in a daemon thread; yield its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn could not start on port {port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# --8<-- [end:in-background]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=(
            "Serve an offline, scripted OpenAI-compatible model: POST /v1/responses and /v1/chat/completions, "
            "answering alike. Then run your ChatKit backend with "
            "OPENAI_BASE_URL=http://HOST:PORT/v1 OPENAI_API_KEY=offline OPENAI_AGENTS_DISABLE_TRACING=1."
        ),
        epilog=(
            "Default reply: 'You said: <last user text>'. A user message '/call <tool> {json}' calls that tool. "
            'Queue turns: curl -d \'{"turns": [[{"text": "hi"}]]}\' http://HOST:PORT/_scripted/turns. '
            "Inspect what the model was sent: curl http://HOST:PORT/_scripted/requests."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between streamed events (default: 0.05)")
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(create_app(delay=args.delay), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
