"""A lean HTTP/1.1 load generator on raw asyncio streams.

Why not httpx or locust: the generator shares 2 cores with the server it measures, so it should
spend as little CPU per request as possible (one connection per request, `Connection: close`, the
body read to EOF, no chunked decoding: only the first `data:` line and the end are timed).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chatkit_protocol import add_message, create_thread  # the request bodies, one source for tests and bench


@dataclass
class Reply:
    status: int
    first_event: float  # seconds from sending to the first `data:` line (or to the end, for JSON)
    total: float  # seconds from sending to the end of the body
    body: bytes


async def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.hostname}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    chunks: list[bytes] = []
    first = 0.0
    while data := await reader.read(65536):
        if not first and b"data: " in data:
            first = time.perf_counter() - start
        chunks.append(data)
    total = time.perf_counter() - start
    writer.close()
    raw = b"".join(chunks)
    status = int(raw[9:12]) if raw.startswith(b"HTTP/1.1 ") else 0
    return Reply(status, first or total, total, raw.partition(b"\r\n\r\n")[2])


_THREAD_ID = re.compile(rb'"thread":\{"id":"([^"]+)"')


def thread_id_of(reply: Reply) -> str:
    found = _THREAD_ID.search(reply.body)
    if reply.status != 200 or not found:
        raise RuntimeError(f"threads.create failed: {reply.status} {reply.body[:300]!r}")
    return found.group(1).decode()


@dataclass
class LoadResult:
    conversations: int
    turns: int
    seconds: float
    first_events: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    generator_cpu: float = 0.0  # CPU seconds the load generator itself used
    server_cpu: float = 0.0  # CPU seconds the server used meanwhile, when a probe was given

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds

    def first_event(self, q: float) -> float:
        return quantile(self.first_events, q)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def conversations(
    url: str,
    count: int,
    turns: int,
    text: str,
    headers: dict[str, str] | None = None,
    server_cpu: Callable[[], float] | None = None,
) -> LoadResult:
    """`count` conversations at once, each a thread (created untimed) then `turns` messages back to back.

    `server_cpu` returns the server's cumulative CPU seconds; read around the timed part only.
    """
    ids = await asyncio.gather(*(post(url, create_thread("hello"), headers) for _ in range(count)))
    thread_ids = [thread_id_of(r) for r in ids]
    result = LoadResult(count, 0, 0.0)

    async def talk(thread_id: str) -> None:
        for _ in range(turns):
            reply = await post(url, add_message(thread_id, text), headers)
            if reply.status != 200 or b'"type":"error"' in reply.body:
                result.failures += 1
            result.first_events.append(reply.first_event)
            result.latencies.append(reply.total)
            result.turns += 1

    probe = server_cpu or (lambda: 0.0)
    cpu, server_before = time.process_time(), probe()
    start = time.perf_counter()
    await asyncio.gather(*(talk(t) for t in thread_ids))
    result.seconds = time.perf_counter() - start
    result.generator_cpu = time.process_time() - cpu
    result.server_cpu = probe() - server_before
    return result


def median(values: list[float]) -> float:
    return statistics.median(values)
