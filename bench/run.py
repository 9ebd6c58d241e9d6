"""Benchmarks: every figure is a ratio, or read against a baseline measured in the same run.

Each app runs under its own uvicorn process, the scripted model server in another, PostgreSQL in a
third; the load generator (bench/loadgen.py) is this process. Server CPU is the app process's
on-CPU time from /proc (every thread's schedstat), so neither the model, the database nor the client is counted in it.

    python bench/run.py                         # full sizes; writes the table into bench/README.md
    python bench/run.py --quick                 # small sizes, prints only (a smoke test)
    python bench/run.py --examples DIR --quick  # the same harness on another copy of examples/
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path[:0] = [str(BENCH), str(ROOT / "scripts"), str(ROOT / "tests")]

import loadgen  # noqa: E402
from local_postgres import fresh_database, throwaway_cluster  # noqa: E402
from pg_round_trips import RoundTripCounter  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789"
SHORT, LONG = "hi", " ".join(f"w{n}" for n in range(200))  # answers of 3 and 202 text deltas
PACED = " ".join(f"word{n}" for n in range(18))  # "You said: " + 18 words: a 20-word answer
Row = tuple[str, str, str]


# ------------------------------------------------------------------------------------- processes
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    pid: int

    def cpu(self) -> float:
        """CPU seconds of the process and its children (uvicorn --workers forks them)."""
        return sum(_cpu(pid) for pid in [self.pid, *_children(self.pid)])

    def peak_rss_mb(self) -> float:
        pids = _children(self.pid) or [self.pid]  # with workers, the master only forwards signals
        return max(_status(pid, "VmHWM") for pid in pids) / 1024


def _cpu(pid: int) -> float:
    """CPU seconds of every thread of `pid`, in nanoseconds from the scheduler (stat's ticks are 10 ms)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@asynccontextmanager
async def serve(argv: list[str], cwd: Path, env: dict[str, str], path: str = "/chatkit") -> AsyncIterator[Server]:
    port = _free_port()
    command = [sys.executable, *argv, "--port", str(port)]
    pythonpath = os.pathsep.join([str(cwd), str(BENCH), str(ROOT / "scripts")])
    # The server's output goes to a file: a pipe nobody reads fills up with Level 3's request logs,
    # and the next log write blocks the server's event loop.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; only teardown waits
        command,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": pythonpath, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        import socket

        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{argv} exited: {log.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} did not listen") from None
                await asyncio.sleep(0.05)  # not time.sleep: the round-trip proxy runs on this loop
        yield Server(f"http://127.0.0.1:{port}{path}", process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@asynccontextmanager
async def postgres() -> AsyncIterator[str]:
    with throwaway_cluster() as url:
        yield url


def uvicorn(app: str, workers: int = 1) -> list[str]:
    extra = ["--workers", str(workers)] if workers > 1 else []
    return ["-m", "uvicorn", app, "--host", "127.0.0.1", "--log-level", "warning", *extra]


@asynccontextmanager
async def model_server(delay: float) -> AsyncIterator[tuple[str, Server]]:
    argv = [str(ROOT / "scripts" / "scripted_model_server.py"), "--delay", str(delay)]
    async with serve(argv, ROOT, {}, path="/v1") as server:
        yield server.url, server


def model_env(base_url: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "offline", "OPENAI_AGENTS_DISABLE_TRACING": "1"}


def level3_env(database_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The server's environment and the client's auth header."""
    from level3.auth import issue_dev_token

    token = issue_dev_token(SECRET, user_id="bench", tenant_id="bench", ttl_seconds=24 * 3600)
    return {"DATABASE_URL": database_url, "JWT_SECRET": SECRET}, {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------------- CPU per turn
async def cpu_per_turn(server: Server, body: Any, turns: int, headers: dict[str, str] | None = None) -> float:
    """Server CPU seconds per request, after a warm-up."""
    for _ in range(5):
        await loadgen.post(server.url, body, headers)
    before = server.cpu()
    for _ in range(turns):
        reply = await loadgen.post(server.url, body, headers)
        assert reply.status == 200, reply.body[:300]
    return (server.cpu() - before) / turns


async def thread_at_history_cap(server: Server, headers: dict[str, str] | None = None) -> str:
    """A thread whose last-20-items history is full, so every measured turn sends the same history."""
    thread_id = loadgen.thread_id_of(await loadgen.post(server.url, loadgen.create_thread("hello"), headers))
    for n in range(10):
        await loadgen.post(server.url, loadgen.add_message(thread_id, f"turn {n}"), headers)
    return thread_id


async def deltas_in(server: Server, body: Any, headers: dict[str, str] | None = None) -> tuple[int, int]:
    """(text delta events, all events) in one reply."""
    reply = await loadgen.post(server.url, body, headers)
    return reply.body.count(b"text_delta"), reply.body.count(b"data: ")


@dataclass
class Cost:
    fixed_ms: float
    per_delta_ms: float | None
    short_ms: float


async def chatkit_cost(server: Server, turns: int, headers: dict[str, str] | None = None) -> tuple[Cost, list[int]]:
    costs, counts = [], []
    for text in (SHORT, LONG):
        thread_id = await thread_at_history_cap(server, headers)
        body = loadgen.add_message(thread_id, text)
        deltas, events = await deltas_in(server, body, headers)
        costs.append(await cpu_per_turn(server, body, turns, headers))
        counts += [deltas, events]
    per_delta = (costs[1] - costs[0]) / (counts[2] - counts[0])
    return Cost((costs[0] - counts[0] * per_delta) * 1e3, per_delta * 1e3, costs[0] * 1e3), counts


async def bench_cpu(examples: Path, turns: int) -> tuple[list[Row], dict[str, Cost]]:
    results: dict[str, Cost] = {}
    async with model_server(0.0) as (base_url, _):
        env = model_env(base_url)
        async with serve(uvicorn("level2.app:app"), examples, env) as server:
            results["level2"], counts = await chatkit_cost(server, turns)
        short_events, long_events = counts[1], counts[3]
        async with serve(uvicorn("baselines:bare_sse"), examples, env) as server:
            short = await cpu_per_turn(server, {"events": short_events}, turns * 4)  # cheap: more samples
            long = await cpu_per_turn(server, {"events": long_events}, turns * 4)
            per_event = (long - short) / (long_events - short_events)
            results["bare_sse"] = Cost((short - short_events * per_event) * 1e3, per_event * 1e3, short * 1e3)
        for name, app in (("sdk_hello", "baselines:sdk_hello"), ("level1", "level1.app:app")):
            async with serve(uvicorn(app), examples, env) as server:
                thread_id = loadgen.thread_id_of(await loadgen.post(server.url, loadgen.create_thread("hi")))
                cost = await cpu_per_turn(server, loadgen.add_message(thread_id, "hi"), turns)
                results[name] = Cost(cost * 1e3, None, cost * 1e3)
        async with serve(uvicorn("baselines:agents_bare"), examples, env) as server:
            costs = [await cpu_per_turn(server, {"text": t, "history_turns": 10}, turns) for t in (SHORT, LONG)]
            per_delta = (costs[1] - costs[0]) / (counts[2] - counts[0])
            results["agents_bare"] = Cost((costs[0] - counts[0] * per_delta) * 1e3, per_delta * 1e3, costs[0] * 1e3)
        async with postgres() as pg_url, fresh_database(pg_url) as dsn:
            server_env, headers = level3_env(dsn)
            async with serve(uvicorn("level3.app:app"), examples, env | server_env) as server:
                results["level3"], _ = await chatkit_cost(server, turns, headers)

    hello, sse, agents = results["sdk_hello"], results["bare_sse"], results["agents_bare"]
    rows: list[Row] = []
    for name, label in (("level1", "Level 1"), ("level2", "Level 2"), ("level3", "Level 3")):
        cost = results[name]
        rows.append(
            (
                f"{label}: fixed server CPU per turn",
                f"vs the SDK's hello world ({hello.fixed_ms:.1f} ms)",
                f"{cost.fixed_ms / hello.fixed_ms:.2f}x ({cost.fixed_ms:.1f} ms)",
            )
        )
        if cost.per_delta_ms is not None:
            rows.append(
                (
                    f"{label}: server CPU per text delta",
                    f"vs bare FastAPI SSE per event ({sse.per_delta_ms * 1e3:.0f} µs)",  # type: ignore[operator]
                    f"{cost.per_delta_ms / sse.per_delta_ms:.2f}x ({cost.per_delta_ms * 1e3:.0f} µs)",  # type: ignore[operator]
                )
            )
    level2 = results["level2"]
    rows.append(
        (
            "Level 2: fixed CPU, the SDKs' share",
            f"hello world + Agents SDK alone ({hello.fixed_ms:.1f} + {agents.fixed_ms:.1f} ms)",
            f"{(hello.fixed_ms + agents.fixed_ms) / level2.fixed_ms:.0%} of {level2.fixed_ms:.1f} ms",
        )
    )
    rows.append(
        (
            "Level 2: CPU per text delta, the SDKs' share",
            f"Agents SDK alone per delta ({agents.per_delta_ms * 1e3:.0f} µs)",  # type: ignore[operator]
            f"{agents.per_delta_ms / level2.per_delta_ms:.0%} of {level2.per_delta_ms * 1e3:.0f} µs",  # type: ignore[operator]
        )
    )
    return rows, results


# ------------------------------------------------------------------------------------- concurrency
async def bench_concurrency(examples: Path, sizes: list[int], turns: int) -> list[Row]:
    rows: list[Row] = []
    async with model_server(0.05) as (base_url, model), postgres() as pg_url:
        env = model_env(base_url)
        async with fresh_database(pg_url) as dsn:
            server_env, headers = level3_env(dsn)
            for label, app, extra, hdrs in (
                ("Level 2", "level2.app:app", {}, None),
                ("Level 3", "level3.app:app", server_env, headers),
            ):
                async with serve(uvicorn(app), examples, env | extra) as server:
                    solo: loadgen.LoadResult | None = None
                    for size in sizes:
                        await loadgen.conversations(server.url, size, 1, PACED, hdrs)  # warm: pool, imports
                        model_cpu = model.cpu()
                        result = await loadgen.conversations(server.url, size, turns, PACED, hdrs, server.cpu)
                        server_share = result.server_cpu / result.seconds
                        model_share = (model.cpu() - model_cpu) / result.seconds
                        solo = solo or result
                        ideal = size / loadgen.median(solo.latencies)
                        rows.append(
                            (
                                f"{label}: {size} conversations, 20 words at 50 ms",
                                f"vs ideal ({ideal:.1f} turns/s); time to first event vs solo "
                                f"({solo.first_event(0.5) * 1e3:.0f} ms)",
                                f"{result.turns_per_second / ideal:.2f} of ideal; first event "
                                f"p50 {result.first_event(0.5) / solo.first_event(0.5):.2f}x, "
                                f"p95 {result.first_event(0.95) / solo.first_event(0.5):.2f}x; "
                                f"server {server_share:.0%} of a core, model server {model_share:.0%}"
                                + (f"; {result.failures} failed" if result.failures else ""),
                            )
                        )
                    rows.append(
                        (
                            f"{label}: peak RSS of the worker",
                            f"after {max(sizes)} conversations",
                            f"{server.peak_rss_mb():.0f} MB",
                        )
                    )
    return rows


# ----------------------------------------------------------------------------------------- capacity
async def bench_capacity(examples: Path, conversations: int, turns: int) -> list[Row]:
    rates: dict[int, loadgen.LoadResult] = {}
    async with model_server(0.0) as (base_url, model), postgres() as pg_url:
        async with fresh_database(pg_url) as dsn:
            server_env, headers = level3_env(dsn)
            for workers in (1, 2):
                async with serve(
                    uvicorn("level3.app:app", workers), examples, model_env(base_url) | server_env
                ) as server:
                    await loadgen.conversations(server.url, conversations, 2, SHORT, headers)  # warm every worker
                    rates[workers] = await loadgen.conversations(server.url, conversations, turns, SHORT, headers)
    one, two = rates[1], rates[2]
    return [
        (
            "Level 3: turns/s at saturation, 1 worker",
            f"{conversations} conversations, model without delay",
            f"{one.turns_per_second:.1f} turns/s; load generator {one.generator_cpu / one.seconds:.0%} of a core",
        ),
        (
            "Level 3: 2 workers vs 1",
            "same load; 2 cores shared with the load generator, model server and PostgreSQL",
            f"{two.turns_per_second / one.turns_per_second:.2f}x; "
            f"load generator {two.generator_cpu / two.seconds:.0%} of a core",
        ),
    ]


# ----------------------------------------------------------------------------- database and history
async def bench_database(examples: Path, history: int, repeat: int) -> list[Row]:
    async with model_server(0.0) as (base_url, _), postgres() as pg_url:
        async with fresh_database(pg_url) as dsn, RoundTripCounter(dsn) as counter:
            server_env, headers = level3_env(counter.dsn)
            async with serve(uvicorn("level3.app:app"), examples, model_env(base_url) | server_env) as server:
                thread_id = await thread_at_history_cap(server, headers)
                spent = []
                for n in range(3):  # the first turns on a connection prepare statements; later ones reuse them
                    before = counter.round_trips
                    await loadgen.post(server.url, loadgen.add_message(thread_id, f"more {n}"), headers)
                    spent.append(counter.round_trips - before)
                small = loadgen.thread_id_of(await loadgen.post(server.url, loadgen.create_thread("small"), headers))
                large = loadgen.thread_id_of(await loadgen.post(server.url, loadgen.create_thread("large"), headers))
                await fill_thread(dsn, small, 10)
                await fill_thread(dsn, large, history)
                timings = {}
                for name, thread_id in (("small", small), ("large", large)):
                    listing = {"type": "items.list", "params": {"thread_id": thread_id}}
                    turn = [
                        await loadgen.post(server.url, loadgen.add_message(thread_id, "hi"), headers)
                        for _ in range(repeat)
                    ]
                    pages = [await loadgen.post(server.url, listing, headers) for _ in range(repeat)]
                    timings[name] = (loadgen.median([r.total for r in turn]), loadgen.median([r.total for r in pages]))
    (turn_small, list_small), (turn_large, list_large) = timings["small"], timings["large"]
    return [
        ("Level 3: database round trips per turn", "threads.add_user_message, counted on the wire", f"{spent[-1]}"),
        ("Level 3: turn p50", f"{history}-item thread vs 10-item thread", f"{turn_large / turn_small:.2f}x"),
        ("Level 3: items.list p50", f"{history}-item thread vs 10-item thread", f"{list_large / list_small:.2f}x"),
    ]


async def fill_thread(dsn: str, thread_id: str, items: int) -> None:
    """`items` assistant messages in the thread, written straight in SQL, then ANALYZE (as autovacuum would)."""
    import asyncpg
    from chatkit.types import AssistantMessageContent, AssistantMessageItem

    base = datetime.now(UTC) - timedelta(days=1)
    rows = []
    for n in range(items):
        item = AssistantMessageItem(
            id=f"msg_fill{n:06d}",
            thread_id=thread_id,
            created_at=base + timedelta(milliseconds=n),
            content=[AssistantMessageContent(text=f"item {n}")],
        )
        rows.append((thread_id, item.id, "bench", "bench", item.created_at, item.model_dump_json()))
    connection = await asyncpg.connect(dsn)
    try:
        await connection.executemany(
            "INSERT INTO chatkit_items (thread_id, id, tenant_id, user_id, created_at, data)"
            " VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)",
            rows,
        )
        await connection.execute("ANALYZE chatkit_items")
    finally:
        await connection.close()


# --------------------------------------------------------------------------------------------- main
README_MARK = "<!-- results -->"
SECTIONS = ["cpu", "concurrency", "capacity", "database", "stores"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes; print, don't write bench/README.md")
    parser.add_argument("--examples", type=Path, default=ROOT / "examples", help="the examples folder to measure")
    parser.add_argument("--only", nargs="*", default=SECTIONS, help="some sections only (prints, writes nothing)")
    args = parser.parse_args(argv)
    examples = args.examples.resolve()
    sys.path.insert(0, str(examples))
    quick = args.quick

    async def run() -> list[Row]:
        rows: list[Row] = []
        if "cpu" in args.only:
            rows += (await bench_cpu(examples, 5 if quick else 30))[0]
        if "concurrency" in args.only:
            rows += await bench_concurrency(examples, [1, 5] if quick else [1, 20, 50, 100], 1 if quick else 2)
        if "capacity" in args.only:
            rows += await bench_capacity(examples, 4 if quick else 20, 2 if quick else 8)
        if "database" in args.only:
            rows += await bench_database(examples, 200 if quick else 5000, 3 if quick else 20)
        if "stores" in args.only:
            from stores import bench_stores

            rows += await bench_stores(*((50, 500, 5) if quick else (100, 20_000, 50)))
        return rows

    started = datetime.now(UTC)
    rows = asyncio.run(run())
    table = ["| Measure | Compared with | Result |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    print("\n".join(table))
    if not quick and args.only == SECTIONS and examples == (ROOT / "examples").resolve():
        readme = BENCH / "README.md"
        head = readme.read_text().partition(README_MARK)[0]
        conditions = (
            f"`make bench`, {started:%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end."
        )
        readme.write_text(f"{head}{README_MARK}\n\n{conditions}\n\n" + "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
