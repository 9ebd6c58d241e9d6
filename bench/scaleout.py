"""Scale-out check: Level 3 on several processes and one PostgreSQL loses, duplicates and reorders nothing.

N conversations x M turns go to Level 3 served two ways, each on a fresh database:

* ``instances``: two uvicorn processes on two ports; turn t of conversation n goes to instance
  (n + t) % 2, so every conversation alternates between them;
* ``workers``: one uvicorn with ``--workers 2``; every request opens a new connection, and the kernel
  spreads the connections over the two workers that share the socket.

Then the database is read back: every thread must hold exactly its 2M items (each user message and
its answer, once, in order), and no response may be a 5xx.

    python bench/scaleout.py                        # 200 x 5, both modes, self-contained
    python bench/scaleout.py -n 20 -m 3 --mode instances
    python bench/scaleout.py --urls http://a:8000,http://b:8000 --database-url postgresql://...

With ``--urls`` the script checks a deployment you run (JWT_SECRET in the environment signs its
tokens, and the deployment's model must answer ``You said: <text>``, as scripts/scripted_model_server.py
does). Without it, the script starts PostgreSQL, the scripted model and uvicorn itself.

Why an asyncio + httpx script and not locust: this is a correctness check, not a throughput test. It
needs exact per-turn bookkeeping (which text went to which thread, through which instance, with what
status) and a read-back of the database afterwards, all in one process; locust's users are independent
and report aggregates. httpx is also what the tests use, so the script adds no dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "scripts"), str(ROOT / "tests")]

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from level3.auth import issue_dev_token  # noqa: E402
from live_server import serve_process  # noqa: E402

EXAMPLES = str(ROOT / "examples")
USERS = 20  # conversations are spread over this many users, so ownership checks run under load too


@dataclass
class Conversation:
    number: int
    thread_id: str = ""
    sent: list[str] = field(default_factory=list)  # user texts, in the order their turns completed
    statuses: list[int] = field(default_factory=list)
    stream_errors: int = 0  # turns that answered 200 but carried an `error` event


@dataclass
class Report:
    conversations: int
    turns: int
    threads_found: int
    lost: int
    duplicates: int
    out_of_order: int
    status_5xx: int
    other_failures: int  # non-200 answers below 500, transport errors, error events
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            self.threads_found == self.conversations
            and self.lost == self.duplicates == self.out_of_order == self.status_5xx == self.other_failures == 0
        )

    def line(self, mode: str) -> str:
        rate = self.conversations * self.turns / self.seconds if self.seconds else 0.0
        return (
            f"{mode:<10} {self.conversations:>4} x {self.turns:<2} threads {self.threads_found:>4}  lost {self.lost}  "
            f"duplicates {self.duplicates}  out of order {self.out_of_order}  5xx {self.status_5xx}  "
            f"other failures {self.other_failures}  {rate:.1f} turns/s  {'OK' if self.ok else 'FAILED'}"
        )


def text_of(conversation: int, turn: int) -> str:
    return f"conversation {conversation} turn {turn}"


async def _turn(http: httpx.AsyncClient, url: str, body: dict, token: str, conversation: Conversation) -> None:
    try:
        response = await http.post(f"{url}/chatkit", json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        conversation.statuses.append(0)  # no answer at all: counted with the other failures
        return
    conversation.statuses.append(response.status_code)
    if response.status_code != 200:
        return
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    if any(event["type"] == "error" for event in events):
        conversation.stream_errors += 1
        return
    if body["type"] == "threads.create":
        conversation.thread_id = events[0]["thread"]["id"]
    conversation.sent.append(body["params"]["input"]["content"][0]["text"])


def _message(text: str) -> dict:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


async def converse(http: httpx.AsyncClient, urls: Sequence[str], number: int, turns: int, secret: str) -> Conversation:
    """One conversation: turn t goes to urls[(number + t) % len(urls)]; turns of one thread never overlap."""
    conversation = Conversation(number)
    token = issue_dev_token(secret, user_id=f"user-{number % USERS}", tenant_id="scaleout")
    for turn in range(turns):
        url = urls[(number + turn) % len(urls)]
        text = text_of(number, turn)
        if turn == 0:
            body = {"type": "threads.create", "params": {"input": _message(text)}}
        elif conversation.thread_id:
            body = {
                "type": "threads.add_user_message",
                "params": {"thread_id": conversation.thread_id, "input": _message(text)},
            }
        else:
            return conversation  # the thread was never created: the read-back counts the loss
        await _turn(http, url, body, token, conversation)
    return conversation


async def run_load(
    urls: Sequence[str], conversations: int, turns: int, secret: str, concurrency: int = 50
) -> tuple[list[Conversation], float]:
    """Every conversation, at most `concurrency` at a time. A new connection per request (no keep-alive),
    so that workers sharing one socket each get a share of every conversation."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(number: int) -> Conversation:
            async with gate:
                return await converse(http, urls, number, turns, secret)

        done = await asyncio.gather(*(one(n) for n in range(conversations)))
    return list(done), time.perf_counter() - started


async def verify(dsn: str, conversations: list[Conversation], turns: int, seconds: float) -> Report:
    """Read every thread back from PostgreSQL and compare it with what each conversation was told."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """
            SELECT t.id AS thread_id, i.data->>'type' AS type,
                   coalesce(i.data->'content'->0->>'text', '') AS text
            FROM chatkit_threads AS t LEFT JOIN chatkit_items AS i ON i.thread_id = t.id
            WHERE t.tenant_id = 'scaleout'
            ORDER BY t.id, i.created_at, i.id
            """
        )
    finally:
        await connection.close()
    stored: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        stored.setdefault(row["thread_id"], [])
        if row["type"] is not None:
            stored[row["thread_id"]].append((row["type"], row["text"]))

    lost = duplicates = out_of_order = 0
    for conversation in conversations:
        expected: list[tuple[str, str]] = []
        for turn in range(turns):
            text = text_of(conversation.number, turn)
            expected += [("user_message", text), ("assistant_message", f"You said: {text}")]
        found = stored.get(conversation.thread_id, [])
        counts = Counter(found)
        lost += sum(1 for item in expected if item not in counts)
        duplicates += sum(count - 1 for count in counts.values() if count > 1)
        duplicates += sum(1 for item in found if item not in expected)  # nothing foreign either
        seen_once = list(dict.fromkeys(item for item in found if item in expected))  # copies counted above
        if seen_once != [item for item in expected if item in counts]:
            out_of_order += 1
    statuses = [status for conversation in conversations for status in conversation.statuses]
    return Report(
        conversations=len(conversations),
        turns=turns,
        threads_found=sum(1 for c in conversations if c.thread_id in stored),
        lost=lost,
        duplicates=duplicates,
        out_of_order=out_of_order,
        status_5xx=sum(1 for status in statuses if status >= 500),
        other_failures=sum(1 for s in statuses if s != 200 and s < 500) + sum(c.stream_errors for c in conversations),
        seconds=seconds,
    )


async def check(urls: Sequence[str], dsn: str, conversations: int, turns: int, secret: str) -> Report:
    done, seconds = await run_load(urls, conversations, turns, secret)
    return await verify(dsn, done, turns, seconds)


@contextmanager
def level3(mode: str, dsn: str, secret: str) -> Iterator[list[str]]:
    """Level 3 under real uvicorn processes on loopback: two instances, or one with two workers."""
    env = {"DATABASE_URL": dsn, "JWT_SECRET": secret}
    with ExitStack() as stack:
        if mode == "instances":
            yield [stack.enter_context(serve_process("level3.app:app", env=env, cwd=EXAMPLES)) for _ in range(2)]
        else:
            yield [
                stack.enter_context(
                    serve_process("level3.app:app", env=env, cwd=EXAMPLES, extra_args=["--workers", "2"])
                )
            ]


async def self_contained(modes: Sequence[str], conversations: int, turns: int, delay: float) -> list[Report]:
    from local_postgres import fresh_database, throwaway_cluster
    from scripted_model_server import serve_in_background

    secret = os.urandom(32).hex()
    reports = []
    with throwaway_cluster() as server, serve_in_background(delay=delay) as (model_url, _):
        os.environ.update(OPENAI_BASE_URL=model_url, OPENAI_API_KEY="offline", OPENAI_AGENTS_DISABLE_TRACING="1")
        for mode in modes:
            async with fresh_database(server) as dsn:
                with level3(mode, dsn, secret) as urls:
                    report = await check(urls, dsn, conversations, turns, secret)
            print(report.line(mode), flush=True)
            reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--conversations", type=int, default=200)
    parser.add_argument("-m", "--turns", type=int, default=5)
    parser.add_argument("--mode", choices=["both", "instances", "workers"], default="both")
    parser.add_argument("--delay", type=float, default=0.01, help="scripted model: seconds between events")
    parser.add_argument("--urls", help="comma-separated base URLs of a running deployment")
    parser.add_argument("--database-url", help="its database (with --urls)")
    args = parser.parse_args(argv)
    if args.urls:
        if not args.database_url or not os.environ.get("JWT_SECRET"):
            parser.error("--urls needs --database-url and JWT_SECRET in the environment")
        report = asyncio.run(
            check(args.urls.split(","), args.database_url, args.conversations, args.turns, os.environ["JWT_SECRET"])
        )
        print(report.line("given"))
        return 0 if report.ok else 1
    modes = ["instances", "workers"] if args.mode == "both" else [args.mode]
    reports = asyncio.run(self_contained(modes, args.conversations, args.turns, args.delay))
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
