"""Check a running ChatKit server against the protocol, as a black box. One line per check, with evidence.

    python scripts/chatkit_check.py http://127.0.0.1:8000/chatkit
    python scripts/chatkit_check.py URL --token "$TOKEN" --second-token "$OTHER_USERS_TOKEN"
    python scripts/chatkit_check.py URL -H 'X-User: alice' --second-header 'X-User: bob' --json

What it does, in order:
  flow        threads.create, threads.add_user_message, items.list paged both ways, threads.get_by_id,
              threads.list paged, threads.update, threads.delete; every SSE event and JSON reply is
              validated against chatkit.types; the first text delta must arrive before the stream ends;
              assistant item ids must be unique across turns and every answer must stay in the thread
  history     a dozen turns, each asking the model to repeat a code; the last answer must repeat the
              LAST code (a server that loads history "asc" sends the model the first items instead)
  bad input   malformed, empty and wrong-typed bodies; unknown ids; paging out of range; a foreign
              cursor; NUL characters; request types the server may not implement: each must be a 4xx
              without a traceback (or, where the input is valid, a 2xx that tells the truth), never a 5xx
  isolation   with --second-token or --second-header: the second user can't list, read, write, send
              feedback on or delete the first user's thread (404 or 403, and none of its text)

It talks to the server with the standard library only, so it runs wherever openai-chatkit is installed
(every example level's requirements). The answers it needs come from your model: against a real model
a run costs about 15 short model calls; --history-turns 0 skips the history check.

Exit status: 0 when nothing failed, 1 when a check failed (the line says why), 2 when the server
can't be reached at all.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit

from chatkit.types import Page, Thread, ThreadItem, ThreadMetadata, ThreadStreamEvent, TranscriptionResult
from pydantic import TypeAdapter, ValidationError

_EVENT = TypeAdapter(ThreadStreamEvent)
_ITEMS = TypeAdapter(Page[ThreadItem])
_THREADS = TypeAdapter(Page[ThreadMetadata])
_THREAD = TypeAdapter(Thread)
_METADATA = TypeAdapter(ThreadMetadata)
_TRANSCRIPTION = TypeAdapter(TranscriptionResult)

# What a client must never see in an error body: a Python traceback, SQL, driver names.
LEAK = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|\b(SELECT|INSERT INTO|DELETE FROM)\b"
    r"|\bUPDATE \w+ SET\b|asyncpg|psycopg|sqlalchemy|sqlite3|pydantic_core|NoneType"
)
BURST_GAP = 0.01  # seconds of silence that separate two arrivals; a buffered body arrives in one burst
ISOLATION_STATUSES = (403, 404)

# Every check's name, in the order they run: tests and --json consumers can rely on these.
CHECKS = [
    "auth.required",
    "flow.create",
    "flow.add_message",
    "stream.incremental",
    "ids.unique",
    "items.list",
    "items.paging",
    "threads.get_by_id",
    "threads.list",
    "threads.update",
    "history.latest",
    "answers.kept",
    "bad.malformed_json",
    "bad.empty_body",
    "bad.empty_object",
    "bad.wrong_types",
    "bad.unknown_type",
    "bad.missing_input",
    "ids.unknown_thread",
    "ids.unknown_item",
    "ids.odd_thread_id",
    "paging.negative_limit",
    "paging.huge_limit",
    "paging.foreign_cursor",
    "text.nul_title",
    "text.nul_message",
    "unimplemented.attachments",
    "unimplemented.transcribe",
    "unimplemented.feedback",
    "unimplemented.custom_action",
    "unimplemented.sync_custom_action",
    "unimplemented.client_tool_output",
    "isolation.list",
    "isolation.read",
    "isolation.write",
    "isolation.feedback",
    "isolation.delete",
    "threads.delete",
]


# --- HTTP ---------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP answer; for an SSE answer, each `data:` frame with the moment it arrived."""

    status: int
    content_type: str
    body: bytes
    frames: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    ended: float = 0.0

    @property
    def is_sse(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def brief(self, limit: int = 160) -> str:
        text = " ".join(self.text.split())
        return f"HTTP {self.status} {text[:limit]}{'…' if len(text) > limit else ''}"


class Client:
    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.url, self.headers, self.timeout = url, headers, timeout
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.parts = parts

    def post(self, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        """POST a body (bytes as given, anything else as JSON) and read the whole answer."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        connection_class = HTTPSConnection if self.parts.scheme == "https" else HTTPConnection
        connection = connection_class(self.parts.hostname or "", self.parts.port, timeout=self.timeout)
        path = (self.parts.path or "/") + (f"?{self.parts.query}" if self.parts.query else "")
        sent = {"Content-Type": "application/json", **(self.headers if headers is None else headers)}
        try:
            connection.request("POST", path, body=body, headers=sent)
            response = connection.getresponse()
            reply = Reply(response.status, response.getheader("content-type") or "", b"")
            if not reply.is_sse:
                reply.body = response.read()
                return reply
            raw = bytearray()
            while line := response.readline():  # one line at a time: arrival times show live streaming
                raw += line
                if line.startswith(b"data:"):
                    reply.arrivals.append(time.monotonic())
                    reply.frames.append(line[5:].strip().decode("utf-8", "replace"))
            reply.ended = time.monotonic()
            reply.body = bytes(raw)
            return reply
        finally:
            connection.close()


# --- results ------------------------------------------------------------------------------------------


class CheckFailed(Exception):
    """A check's precise reason for failing."""


class Skip(Exception):
    """A check that doesn't apply to this server (the reason says why)."""


@dataclass
class Result:
    name: str
    status: str  # "pass", "fail" or "skip"
    detail: str


@dataclass
class Turn:
    reply: Reply
    events: list[dict[str, Any]]
    thread_id: str | None
    answers: list[dict[str, Any]]  # assistant_message items, as the done events carried them

    @property
    def text(self) -> str:
        return " ".join("".join(p.get("text", "") for p in a.get("content", [])) for a in self.answers)


def expect(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckFailed(reason)


def user_input(text: str) -> dict[str, Any]:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


def req(request_type: str, /, **params: Any) -> dict[str, Any]:
    return {"type": request_type, "params": params}


def short(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def validate(adapter: TypeAdapter[Any], value: Any, what: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise CheckFailed(f"{what} is not a valid chatkit.types value: {short(exc)}") from exc


def json_reply(reply: Reply, what: str) -> Any:
    expect(reply.status == 200, f"{what}: expected 200 JSON, got {reply.brief()}")
    expect(reply.content_type.startswith("application/json"), f"{what}: content-type {reply.content_type!r}")
    try:
        return reply.json()
    except ValueError as exc:
        raise CheckFailed(f"{what}: the body is not JSON: {reply.brief()}") from exc


def refused(reply: Reply, what: str, statuses: tuple[int, ...] | None = None) -> str:
    """The reply is a 4xx (one of `statuses` if given) whose body leaks no traceback or SQL."""
    if reply.status >= 500:
        raise CheckFailed(f"{what}: {reply.brief()} (a server error: answer a 4xx)")
    allowed = statuses or tuple(range(400, 500))
    expect(reply.status in allowed, f"{what}: expected {_statuses(statuses)}, got {reply.brief()}")
    leak = LEAK.search(reply.text)
    expect(leak is None, f"{what}: the error body leaks internals ({leak.group(0) if leak else ''!r})")
    return f"{what} → {reply.status}"


def _statuses(statuses: tuple[int, ...] | None) -> str:
    return "a 4xx" if statuses is None else " or ".join(str(s) for s in statuses)


# --- the checks ---------------------------------------------------------------------------------------


class Checker:
    def __init__(
        self, url: str, headers: dict[str, str], second: dict[str, str] | None, history_turns: int, timeout: float
    ) -> None:
        self.a = Client(url, headers, timeout)
        self.b = Client(url, second, timeout) if second is not None else None
        self.history_turns = history_turns
        self.results: list[Result] = []
        self.nonce = uuid.uuid4().hex[:8]
        self.thread_id: str | None = None  # the main thread: created, continued, listed, deleted last
        self.turns: list[Turn] = []
        self.history_thread: str | None = None
        self.extra_thread: str | None = None

    # Each check runs once; an exception becomes its result, so one failure never stops the rest.
    def run(self, name: str, check: Callable[[], str]) -> None:
        try:
            result = Result(name, "pass", check())
        except CheckFailed as exc:
            result = Result(name, "fail", str(exc))
        except Skip as exc:
            result = Result(name, "skip", str(exc))
        except (OSError, HTTPException) as exc:
            result = Result(name, "fail", f"the connection failed: {exc!r} (did the server crash?)")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            result = Result(name, "fail", f"a reply of an unexpected shape: {exc!r}")
        self.results.append(result)

    def needs_thread(self) -> str:
        if self.thread_id is None:
            raise Skip("no thread: flow.create failed")
        return self.thread_id

    def turn(self, body: dict[str, Any], what: str, client: Client | None = None) -> Turn:
        """A streaming request that must answer: 200 SSE, valid events, no error event, an answer."""
        reply = (client or self.a).post(body)
        expect(reply.status == 200, f"{what}: expected a 200 stream, got {reply.brief()}")
        expect(reply.is_sse, f"{what}: expected text/event-stream, got {reply.content_type!r}: {reply.brief()}")
        events = []
        for n, frame in enumerate(reply.frames):
            try:
                data = json.loads(frame)
            except ValueError as exc:
                raise CheckFailed(f"{what}: event {n} is not JSON: {frame[:120]!r}") from exc
            validate(_EVENT, data, f"{what}: event {n} ({data.get('type')!r})")
            events.append(data)
        expect(bool(events), f"{what}: the stream carried no events")
        errors = [e for e in events if e["type"] == "error"]
        if errors:
            raise CheckFailed(f"{what}: the stream carried an error event {json.dumps(errors[0])[:200]} (see the log)")
        thread_id = body["params"].get("thread_id")
        if body["type"] == "threads.create":
            expect(events[0]["type"] == "thread.created", f"{what}: first event is {events[0]['type']!r}")
            thread_id = events[0]["thread"]["id"]
        done = [e["item"] for e in events if e["type"] == "thread.item.done"]
        answers = [i for i in done if i["type"] == "assistant_message"]
        expect(bool(answers), f"{what}: no assistant_message arrived (events: {[e['type'] for e in events]})")
        return Turn(reply, events, thread_id, answers)

    def list_items(self, thread_id: str, limit: int, order: str, client: Client | None = None) -> list[dict[str, Any]]:
        """Every item of a thread, following `after` page by page."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(500):
            page = validate(
                _ITEMS,
                json_reply(
                    (client or self.a).post(
                        req("items.list", thread_id=thread_id, limit=limit, order=order, after=after)
                    ),
                    f"items.list {order}",
                ),
                f"items.list {order} page",
            )
            expect(len(page.data) <= limit, f"items.list limit={limit} returned {len(page.data)} items")
            expect(
                not page.has_more or page.after is not None,
                f"items.list {order}: has_more=true with after=null: a client pages forever",
            )
            expect(not page.has_more or bool(page.data), f"items.list {order}: has_more=true on an empty page")
            items += [item.model_dump(mode="json") for item in page.data]
            if not page.has_more:
                return items
            expect(page.after != after, f"items.list {order}: after={page.after!r} repeats: paging never ends")
            after = page.after
        raise CheckFailed(f"items.list {order}: more than 500 pages")

    # --- flow ---

    def check_auth(self) -> str:
        if not self.a.headers:
            raise Skip("no --token or -H given: nothing to leave out")
        reply = self.a.post(req("threads.list", limit=1), headers={})
        return refused(reply, "threads.list without the credentials")

    def check_create(self) -> str:
        turn = self.turn(req("threads.create", input=user_input(self.ask(1))), "threads.create")
        self.thread_id = turn.thread_id
        self.turns.append(turn)
        return f"thread {turn.thread_id}: {len(turn.events)} valid events, answer {turn.text[:60]!r}"

    def ask(self, n: int) -> str:
        return f"chatkit_check {self.nonce} turn {n}: please answer in three or four short sentences."

    def check_add_message(self) -> str:
        thread_id = self.needs_thread()
        turn = self.turn(req("threads.add_user_message", thread_id=thread_id, input=user_input(self.ask(2))), "add")
        self.turns.append(turn)
        return f"{len(turn.events)} valid events, answer {turn.text[:60]!r}"

    def check_incremental(self) -> str:
        if not self.turns:
            raise Skip("no turn streamed")
        evidence = []
        for n, turn in enumerate(self.turns, 1):
            deltas = [
                i
                for i, e in enumerate(turn.events)
                if e["type"] == "thread.item.updated" and e["update"]["type"].endswith("text_delta")
            ]
            if not deltas:
                evidence.append(f"turn {n}: no text deltas")
                continue
            times = turn.reply.arrivals
            first = times[deltas[0]]
            # A gap of silence after the first delta proves the rest was still being produced.
            later = [*times[deltas[0] :], turn.reply.ended]
            later_gaps = [b - a for a, b in zip(later, later[1:], strict=False)]
            if max(later_gaps, default=0.0) >= BURST_GAP:
                return f"turn {n}: first text delta {1000 * (turn.reply.ended - first):.0f} ms before the end"
            evidence.append(f"turn {n}: {len(deltas)} deltas and the end arrived in one burst")
        if all(e.endswith("no text deltas") for e in evidence):
            raise Skip("no text deltas: the answers arrive as finished messages (fine without a model)")
        raise CheckFailed(
            "the stream arrives all at once (" + "; ".join(evidence) + "): something buffers it; "
            "send X-Accel-Buffering: no and don't collect the stream before returning it"
        )

    def check_unique_ids(self) -> str:
        ids = [a["id"] for t in self.turns for a in t.answers]
        if len(ids) < 2:
            raise Skip("fewer than two answers")
        expect("__fake_id__" not in ids, "an assistant item has the id '__fake_id__': wrap a Chat Completions model")
        expect(len(set(ids)) == len(ids), f"assistant item ids repeat across turns: {ids}")
        return f"{len(ids)} distinct assistant ids"

    def check_items_list(self) -> str:
        thread_id = self.needs_thread()
        asc = self.list_items(thread_id, 100, "asc")
        desc = self.list_items(thread_id, 100, "desc")
        expect([i["id"] for i in desc] == [i["id"] for i in reversed(asc)], "desc is not asc reversed")
        users = [i for i in asc if i["type"] == "user_message"]
        expect(len(users) == 2, f"expected the 2 user messages sent, found {len(users)}")
        expect(asc[0]["type"] == "user_message", f"the first item is a {asc[0]['type']}, not the first message")
        return f"{len(asc)} valid items, desc = asc reversed"

    def check_items_paging(self) -> str:
        thread_id = self.history_thread or self.needs_thread()
        full = [i["id"] for i in self.list_items(thread_id, 100, "asc")]
        expect(len(full) >= 3, f"only {len(full)} items to page through")
        asc = [i["id"] for i in self.list_items(thread_id, 2, "asc")]
        desc = [i["id"] for i in self.list_items(thread_id, 2, "desc")]
        expect(asc == full, f"asc pages of 2 give {len(asc)} items, one page gives {len(full)} (order or `after`)")
        expect(desc == full[::-1], "desc pages of 2 are not the asc items reversed")
        return f"{len(full)} items in pages of 2, both orders, after = last id returned"

    def check_get_by_id(self) -> str:
        thread_id = self.needs_thread()
        thread = validate(
            _THREAD, json_reply(self.a.post(req("threads.get_by_id", thread_id=thread_id)), "get_by_id"), "thread"
        )
        expect(thread.id == thread_id, f"asked for {thread_id}, got {thread.id}")
        return f"valid Thread {thread.id}, title {thread.title!r}"

    def check_threads_list(self) -> str:
        if self.thread_id is None:
            raise Skip("no thread: flow.create failed")
        if self.history_thread is None:  # two threads at least, so that pages of 1 must follow `after`
            self.extra_thread = self.turn(req("threads.create", input=user_input(self.ask(3))), "create").thread_id
        mine = {t for t in (self.thread_id, self.history_thread, self.extra_thread) if t}
        seen: list[str] = []
        after: str | None = None
        for _ in range(50):
            body = json_reply(self.a.post(req("threads.list", limit=1, order="desc", after=after)), "threads.list")
            page = validate(_THREADS, body, "threads.list page")
            expect(len(page.data) <= 1, f"threads.list limit=1 returned {len(page.data)} threads")
            expect(not page.has_more or page.after is not None, "threads.list: has_more=true with after=null")
            seen += [t.id for t in page.data]
            if mine <= set(seen) or not page.has_more:
                break
            expect(page.after != after, f"threads.list: after={page.after!r} repeats: paging never ends")
            after = page.after
        expect(len(seen) == len(set(seen)), f"threads.list pages repeat a thread: {seen}")
        expect(mine <= set(seen), f"threads.list (pages of 1, newest first) never showed {sorted(mine - set(seen))}")
        return f"found this run's {len(mine)} threads in {len(seen)} pages of 1"

    def check_update(self) -> str:
        thread_id = self.needs_thread()
        title = f"checked {self.nonce}"
        body = json_reply(self.a.post(req("threads.update", thread_id=thread_id, title=title)), "threads.update")
        validate(_METADATA, body, "threads.update reply")
        again = json_reply(self.a.post(req("threads.get_by_id", thread_id=thread_id)), "get_by_id after update")
        expect(again.get("title") == title, f"title after update is {again.get('title')!r}, not {title!r}")
        return f"title {title!r} stored"

    def check_history(self) -> str:
        if self.history_turns < 2:
            raise Skip("--history-turns is below 2")
        codes = [f"ck{self.nonce}q{n:02d}" for n in range(1, self.history_turns + 1)]
        prompt = "Reply with exactly this code and nothing else: {}"
        first = self.turn(req("threads.create", input=user_input(prompt.format(codes[0]))), "history turn 1")
        self.history_thread = first.thread_id
        last = first
        for n, code in enumerate(codes[1:], 2):
            body = req("threads.add_user_message", thread_id=self.history_thread, input=user_input(prompt.format(code)))
            last = self.turn(body, f"history turn {n}")
        if codes[-1] in last.text:
            return f"turn {len(codes)} of {len(codes)} ({2 * len(codes)} items) answered with its own code"
        earlier = [c for c in codes[:-1] if c in last.text]
        if earlier:
            raise CheckFailed(
                f"turn {len(codes)}'s answer repeats turn {codes.index(earlier[0]) + 1}'s code, not its own: "
                "the model got the oldest items, not the newest (history loaded with order='asc'? use 'desc' "
                "and reverse)"
            )
        raise Skip(f"the answers don't repeat the codes (last: {last.text[:60]!r}), history not checked")

    def check_answers_kept(self) -> str:
        if self.history_thread is None:
            raise Skip("history.latest made no thread")
        items = self.list_items(self.history_thread, 100, "asc")
        answers = [i for i in items if i["type"] == "assistant_message"]
        expect(
            len(answers) >= self.history_turns,
            f"after {self.history_turns} turns the thread holds {len(answers)} answers: each answer overwrote the "
            "last (ids repeat; a Chat Completions model gives every message the id __fake_id__)",
        )
        return f"{len(answers)} answers for {self.history_turns} turns"

    # --- bad input ---

    def bad(self, payload: Any, what: str) -> Callable[[], str]:
        return lambda: refused(self.a.post(payload), what)

    def check_unknown_thread(self) -> str:
        ghost = f"thr_{uuid.uuid4().hex}"
        evidence = [
            refused(self.a.post(req("threads.get_by_id", thread_id=ghost)), "get_by_id"),
            refused(self.a.post(req("items.list", thread_id=ghost)), "items.list"),
            refused(self.a.post(req("threads.update", thread_id=ghost, title="x")), "update"),
            refused(self.a.post(req("threads.delete", thread_id=ghost)), "delete"),
            refused(self.a.post(req("threads.add_user_message", thread_id=ghost, input=user_input("hi"))), "add"),
        ]
        return "; ".join(evidence)

    def check_unknown_item(self) -> str:
        thread_id = self.needs_thread()
        ghost = f"msg_{uuid.uuid4().hex}"
        return refused(self.a.post(req("threads.retry_after_item", thread_id=thread_id, item_id=ghost)), "retry")

    def check_odd_thread_id(self) -> str:
        odd = ["' OR '1'='1", "../../etc/passwd", "x" * 5000, "\u00e9\u4e2d\U0001f600"]
        return "; ".join(
            refused(self.a.post(req("threads.get_by_id", thread_id=t)), f"get_by_id {t[:12]!r}") for t in odd
        )

    def check_limit(self, limit: int, clamp_ok: bool) -> str:
        thread_id = self.needs_thread()
        evidence = []
        for body in (req("items.list", thread_id=thread_id, limit=limit), req("threads.list", limit=limit)):
            reply = self.a.post(body)
            if clamp_ok and reply.status == 200:
                page = validate(_ITEMS if body["type"] == "items.list" else _THREADS, reply.json(), body["type"])
                what = f"{body['type']} limit={limit} → 200"
                expect(not page.has_more or bool(page.after), f"{what} with has_more=true and after=null")
                expect(not page.has_more or bool(page.data), f"{what} with has_more=true on an empty page")
                evidence.append(f"{what}, a valid page of {len(page.data)} (clamped)")
            else:
                evidence.append(refused(reply, f"{body['type']} limit={limit}"))
        return "; ".join(evidence)

    def check_foreign_cursor(self) -> str:
        thread_id = self.needs_thread()
        cursor = f"msg_{uuid.uuid4().hex}"
        return "; ".join(
            [
                refused(self.a.post(req("items.list", thread_id=thread_id, after=cursor)), "items.list after=unknown"),
                refused(
                    self.a.post(req("threads.list", after=f"thr_{uuid.uuid4().hex}")), "threads.list after=unknown"
                ),
            ]
        )

    def check_nul_title(self) -> str:
        thread_id = self.needs_thread()
        reply = self.a.post(req("threads.update", thread_id=thread_id, title="nul\u0000title"))
        if 400 <= reply.status < 500:
            return refused(reply, "title with NUL")
        expect(reply.status < 300, f"title with NUL: {reply.brief()} (refuse it with a 4xx, or store it)")
        title = json_reply(self.a.post(req("threads.get_by_id", thread_id=thread_id)), "get_by_id").get("title")
        expect(title in ("nul\u0000title", "nultitle", "nul title"), f"title with NUL read back as {title!r}")
        return f"title with NUL → {reply.status}, read back as {title!r}"

    def check_nul_message(self) -> str:
        thread_id = self.needs_thread()
        body = req("threads.add_user_message", thread_id=thread_id, input=user_input("nul\u0000message"))
        reply = self.a.post(body)
        if 400 <= reply.status < 500:
            return refused(reply, "message with NUL")
        expect(reply.status == 200, f"message with NUL: {reply.brief()} (refuse it with a 4xx, or store it)")
        expect(
            b'"type":"error"' not in reply.body.replace(b" ", b""),
            f"message with NUL: an error event {reply.text[-200:]!r}",
        )
        texts = [
            "".join(p.get("text", "") for p in i.get("content", []))
            for i in self.list_items(thread_id, 100, "asc")
            if i["type"] == "user_message"
        ]
        expect(
            any(t in ("nul\u0000message", "nulmessage", "nul message") for t in texts),
            f"the message with NUL was answered but is not in items.list ({texts[-1:]!r})",
        )
        return "message with NUL → 200 stream, stored and read back"

    # --- request types a server may not implement ---

    def check_attachments(self) -> str:
        reply = self.a.post(req("attachments.create", name="check.txt", size=5, mime_type="text/plain"))
        if reply.status == 200:
            created = reply.json()
            expect(isinstance(created, dict) and "id" in created, f"attachments.create → 200 {reply.brief()}")
            cleanup = self.a.post(req("attachments.delete", attachment_id=created["id"]))
            expect(cleanup.status < 500, f"attachments.delete of the new attachment: {cleanup.brief()}")
            evidence = f"attachments.create → 200 ({created['id']}), delete → {cleanup.status}"
        else:
            evidence = refused(reply, "attachments.create")
        ghost = refused(self.a.post(req("attachments.delete", attachment_id=f"atc_{uuid.uuid4().hex}")), "delete")
        return f"{evidence}; unknown attachment {ghost}"

    def check_transcribe(self) -> str:
        reply = self.a.post(req("input.transcribe", audio_base64="AAAA", mime_type="audio/webm"))
        if reply.status == 200:
            validate(_TRANSCRIPTION, reply.json(), "input.transcribe reply")
            return "input.transcribe → 200 with a TranscriptionResult"
        return refused(reply, "input.transcribe of 3 bytes of silence")

    def check_feedback(self) -> str:
        thread_id = self.needs_thread()
        evidence = refused(
            self.a.post(req("items.feedback", thread_id=f"thr_{uuid.uuid4().hex}", item_ids=["x"], kind="positive")),
            "feedback on an unknown thread",
        )
        item = self.turns[0].answers[0]["id"] if self.turns else "x"
        reply = self.a.post(req("items.feedback", thread_id=thread_id, item_ids=[item], kind="positive"))
        expect(reply.status < 500, f"feedback on an answer: {reply.brief()}")
        return f"{evidence}; feedback on an answer → {reply.status}"

    def check_custom_action(self) -> str:
        thread_id = self.needs_thread()
        action = {"type": f"chatkit_check.unknown_{self.nonce}", "payload": {}}
        reply = self.a.post(req("threads.custom_action", thread_id=thread_id, item_id=None, action=action))
        if reply.status == 200 and reply.is_sse:
            kinds = [json.loads(f).get("type") for f in reply.frames]
            expect("error" in kinds, f"an action type no server knows was answered 200 without an error: {kinds}")
            return "unknown action → 200 stream with an error event"
        return refused(reply, "unknown action")

    def check_sync_custom_action(self) -> str:
        thread_id = self.needs_thread()
        action = {"type": f"chatkit_check.unknown_{self.nonce}", "payload": {}}
        return refused(
            self.a.post(req("threads.sync_custom_action", thread_id=thread_id, item_id=None, action=action)),
            "unknown sync action",
        )

    def check_client_tool_output(self) -> str:
        thread_id = self.needs_thread()
        reply = self.a.post(req("threads.add_client_tool_output", thread_id=thread_id, result={"x": 1}))
        return refused(reply, "client tool output with no tool call pending")

    # --- isolation ---

    def other(self) -> Client:
        if self.b is None:
            raise Skip("no second user: pass --second-token or --second-header")
        self.needs_thread()
        return self.b

    def check_isolation_list(self) -> str:
        b = self.other()
        page = validate(_THREADS, json_reply(b.post(req("threads.list", limit=100)), "threads.list as B"), "page")
        leaked = {t.id for t in page.data} & {self.thread_id, self.history_thread, self.extra_thread}
        expect(not leaked, f"user B's threads.list shows user A's threads {sorted(t for t in leaked if t)}")
        return f"B lists {len(page.data)} threads, none of A's"

    def no_leak(self, reply: Reply, what: str) -> str:
        evidence = refused(reply, what, ISOLATION_STATUSES)
        expect(self.nonce not in reply.text, f"{what}: the refusal quotes user A's text")
        return evidence

    def check_isolation_read(self) -> str:
        b, thread_id = self.other(), self.needs_thread()
        return "; ".join(
            [
                self.no_leak(b.post(req("threads.get_by_id", thread_id=thread_id)), "B get_by_id(A's)"),
                self.no_leak(b.post(req("items.list", thread_id=thread_id)), "B items.list(A's)"),
            ]
        )

    def check_isolation_write(self) -> str:
        b, thread_id = self.other(), self.needs_thread()
        before = json_reply(self.a.post(req("threads.get_by_id", thread_id=thread_id)), "get_by_id as A")
        evidence = [
            self.no_leak(b.post(req("threads.update", thread_id=thread_id, title="taken")), "B update(A's)"),
            self.no_leak(
                b.post(req("threads.add_user_message", thread_id=thread_id, input=user_input("intruder"))),
                "B add_user_message(A's)",
            ),
        ]
        after = json_reply(self.a.post(req("threads.get_by_id", thread_id=thread_id)), "get_by_id as A")
        expect(after.get("title") == before.get("title"), f"B renamed A's thread to {after.get('title')!r}")
        expect("intruder" not in json.dumps(after), "B's message landed in A's thread")
        return "; ".join(evidence)

    def check_isolation_feedback(self) -> str:
        b, thread_id = self.other(), self.needs_thread()
        item = self.turns[0].answers[0]["id"] if self.turns else "x"
        body = req("items.feedback", thread_id=thread_id, item_ids=[item], kind="negative")
        own = self.a.post(body)
        if 400 <= own.status < 500:  # feedback not enabled at all: any clear refusal is right for B too
            return refused(b.post(body), "B feedback(A's answer), feedback being off for A too")
        expect(own.status < 300, f"A's own feedback: {own.brief()}")
        return self.no_leak(b.post(body), "B feedback(A's answer)")

    def check_isolation_delete(self) -> str:
        b, thread_id = self.other(), self.needs_thread()
        evidence = self.no_leak(b.post(req("threads.delete", thread_id=thread_id)), "B delete(A's)")
        still = self.a.post(req("threads.get_by_id", thread_id=thread_id))
        expect(still.status == 200, f"after B's delete, A's thread answers {still.brief()}")
        return f"{evidence}; A's thread still there"

    def check_delete(self) -> str:
        thread_id = self.needs_thread()
        reply = self.a.post(req("threads.delete", thread_id=thread_id))
        expect(200 <= reply.status < 300, f"threads.delete: {reply.brief()}")
        gone = refused(self.a.post(req("threads.get_by_id", thread_id=thread_id)), "get_by_id after delete")
        items = refused(self.a.post(req("items.list", thread_id=thread_id)), "items.list after delete")
        for other in (self.history_thread, self.extra_thread):
            if other:
                self.a.post(req("threads.delete", thread_id=other))  # tidy up
        return f"delete → {reply.status}; {gone}; {items}"

    def run_all(self) -> list[Result]:
        plan: dict[str, Callable[[], str]] = {
            "auth.required": self.check_auth,
            "flow.create": self.check_create,
            "flow.add_message": self.check_add_message,
            "stream.incremental": self.check_incremental,
            "ids.unique": self.check_unique_ids,
            "items.list": self.check_items_list,
            "history.latest": self.check_history,  # before paging: its thread has the most items
            "items.paging": self.check_items_paging,
            "threads.get_by_id": self.check_get_by_id,
            "threads.list": self.check_threads_list,
            "threads.update": self.check_update,
            "answers.kept": self.check_answers_kept,
            "bad.malformed_json": self.bad(b'{"type": "threads.list", "params": {', "a malformed JSON body"),
            "bad.empty_body": self.bad(b"", "an empty body"),
            "bad.empty_object": self.bad({}, "{}"),
            "bad.wrong_types": self.bad({"type": 42, "params": ["x"]}, "wrong-typed type and params"),
            "bad.unknown_type": self.bad(req("threads.everything"), "an unknown request type"),
            "bad.missing_input": self.bad(req("threads.create"), "threads.create without input"),
            "ids.unknown_thread": self.check_unknown_thread,
            "ids.unknown_item": self.check_unknown_item,
            "ids.odd_thread_id": self.check_odd_thread_id,
            "paging.negative_limit": lambda: self.check_limit(-5, clamp_ok=True),
            "paging.huge_limit": lambda: self.check_limit(10**12, clamp_ok=True),
            "paging.foreign_cursor": self.check_foreign_cursor,
            "text.nul_title": self.check_nul_title,
            "text.nul_message": self.check_nul_message,
            "unimplemented.attachments": self.check_attachments,
            "unimplemented.transcribe": self.check_transcribe,
            "unimplemented.feedback": self.check_feedback,
            "unimplemented.custom_action": self.check_custom_action,
            "unimplemented.sync_custom_action": self.check_sync_custom_action,
            "unimplemented.client_tool_output": self.check_client_tool_output,
            "isolation.list": self.check_isolation_list,
            "isolation.read": self.check_isolation_read,
            "isolation.write": self.check_isolation_write,
            "isolation.feedback": self.check_isolation_feedback,
            "isolation.delete": self.check_isolation_delete,
            "threads.delete": self.check_delete,
        }
        assert sorted(plan) == sorted(CHECKS)
        for name, check in plan.items():
            self.run(name, check)
        order = {name: n for n, name in enumerate(CHECKS)}
        return sorted(self.results, key=lambda r: order[r.name])


# --- command line ---------------------------------------------------------------------------------------


def parse_headers(raw: list[str], token: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"a header looks like 'Name: value', not {line!r}")
        headers[name.strip()] = value.strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def reachable(client: Client) -> str | None:
    try:
        client.post(b"{}")
    except (OSError, HTTPException) as exc:
        return f"cannot reach {client.url}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the ChatKit endpoint, e.g. http://127.0.0.1:8000/chatkit")
    parser.add_argument("--token", help="user A's bearer token")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'", help="user A's header")
    parser.add_argument("--second-token", help="user B's bearer token: turns on the isolation checks")
    parser.add_argument(
        "--second-header", action="append", default=[], metavar="'NAME: VALUE'", help="user B's header (repeatable)"
    )
    parser.add_argument("--history-turns", type=int, default=11, help="turns of the history check (0 skips it)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for one answer (default 120)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of lines")
    args = parser.parse_args(argv)
    try:
        headers = parse_headers(args.header, args.token)
        has_second = bool(args.second_token or args.second_header)
        second = parse_headers(args.second_header, args.second_token) if has_second else None
        checker = Checker(args.url, headers, second, args.history_turns, args.timeout)
    except ValueError as exc:
        parser.error(str(exc))
    if problem := reachable(checker.a):
        print(problem, file=sys.stderr)
        return 2
    results = checker.run_all()
    failed = [r for r in results if r.status == "fail"]
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        for r in results:
            print(f"{r.status.upper():4}  {r.name:34} {r.detail}")
        passed = sum(r.status == "pass" for r in results)
        skipped = sum(r.status == "skip" for r in results)
        print(f"\n{passed} passed, {len(failed)} failed, {skipped} skipped")
    sys.stdout.flush()  # the results first, then the reasons on stderr
    for r in failed:
        print(f"FAILED {r.name}: {r.detail}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
