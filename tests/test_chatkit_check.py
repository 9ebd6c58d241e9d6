"""scripts/chatkit_check.py as a user runs it: against the three levels (green) and against
deliberately broken servers (tests/broken_servers.py), each of which it must catch by name."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import broken_servers
import pytest
import uvicorn
from chatkit_check import CHECKS
from fastapi import FastAPI
from scripted_model_server import ScriptedModel

ROOT = Path(__file__).resolve().parent.parent
ALICE, BOB = ["-H", "X-User: alice"], ["--second-header", "X-User: bob"]


async def run_check(url: str, *args: str) -> dict[str, dict[str, str]]:
    """Run the check as a user does; return its results by name (and keep its exit status honest)."""
    command = [sys.executable, "scripts/chatkit_check.py", url, "--json", *args]
    process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=PIPE, stderr=PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    results = {r["name"]: r for r in json.loads(stdout)}
    assert list(results) == CHECKS
    failed = [name for name, r in results.items() if r["status"] == "fail"]
    assert process.returncode == (1 if failed else 0), stderr.decode()
    for name in failed:  # the exit reason names each failed check
        assert f"FAILED {name}: " in stderr.decode()
    return results


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """A real uvicorn on a free loopback port, on this test's event loop (where the openai client lives)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/chatkit"
    finally:
        server.should_exit = True
        await task


def failures(results: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: r["detail"] for name, r in results.items() if r["status"] == "fail"}


def assert_clean(results: dict[str, dict[str, str]]) -> None:
    """Every check passes or skips."""
    assert not failures(results), json.dumps(failures(results), indent=1)


async def check_app(app: FastAPI, *args: str) -> dict[str, dict[str, str]]:
    async with serving(app) as url:
        return await run_check(url, *args)


# --- the three levels ------------------------------------------------------------------------------


async def test_level1_passes(model: ScriptedModel) -> None:
    from level1.app import create_app

    results = await check_app(create_app(), "--history-turns", "2")  # it can't pass: save the turns
    assert results["history.latest"]["status"] == "skip"  # "Hello, world!" repeats no code
    assert results["stream.incremental"]["status"] == "skip"  # one finished message, no deltas
    assert_clean(results)


async def test_level2_passes(paced_model: ScriptedModel) -> None:
    from level2.app import create_app

    results = await check_app(create_app())
    for name in ("stream.incremental", "history.latest", "answers.kept", "ids.unique"):
        assert results[name]["status"] == "pass", results[name]
    assert_clean(results)


async def test_level3_passes_with_two_users(paced_model: ScriptedModel, pg_dsn: str) -> None:
    from level3.app import create_app
    from test_level3 import settings_for, token

    users = ["--token", token("alice"), "--second-token", token("bob")]
    # The history check runs against Level 2 above (and test_level3.py covers history): keep 2 turns here.
    results = await check_app(create_app(settings_for(pg_dsn)), *users, "--history-turns", "2")
    for name in ("auth.required", "stream.incremental", "history.latest", "isolation.read", "isolation.delete"):
        assert results[name]["status"] == "pass", results[name]
    assert_clean(results)


# --- broken servers: the control passes everything, each defect fails by name ------------------------


async def test_the_control_server_passes_every_check(paced_model: ScriptedModel) -> None:
    results = await check_app(broken_servers.create_app(None), *ALICE, *BOB)
    assert failures(results) == {}
    skipped = {n for n, r in results.items() if r["status"] == "skip"}
    assert skipped == set(), skipped


# Per defect: the checks that must fail, and what the reason must say.
CAUGHT: dict[str, dict[str, str]] = {
    "asc_history": {"history.latest": "order='asc'"},
    "has_more_without_after": {
        "items.paging": "has_more=true with after=null",
        "threads.list": "has_more=true with after=null",
    },
    "no_user_scoping": {
        "isolation.list": "shows user A's threads",
        "isolation.read": "expected 403 or 404, got HTTP 200",
        "isolation.write": "expected 403 or 404, got HTTP 200",
        "isolation.delete": "expected 403 or 404, got HTTP 200",
    },
    "buffered_stream": {"stream.incremental": "arrives all at once"},
    "500_on_empty_object": {"bad.empty_object": "HTTP 500"},
    "fake_ids": {"ids.unique": "__fake_id__", "answers.kept": "overwrote"},
}
# Other checks a defect may also fail (the same root cause, seen from another request).
ALSO: dict[str, set[str]] = {
    "500_on_empty_object": {
        n for n in CHECKS if n.startswith(("bad.", "unimplemented.", "paging.negative", "isolation.feedback"))
    },
    "has_more_without_after": {"items.list"},
    "no_user_scoping": {"threads.delete"},  # user B already deleted user A's thread
}


@pytest.mark.parametrize("defect", broken_servers.DEFECTS)
async def test_the_check_catches_each_defect(paced_model: ScriptedModel, defect: str) -> None:
    args: list[str] = []
    if defect not in ("asc_history", "fake_ids"):
        args = ["--history-turns", "0"]  # the history check costs 11 turns; only these defects need it
    results = await check_app(broken_servers.create_app(defect), *ALICE, *BOB, *args)
    failed = failures(results)
    for name, reason in CAUGHT[defect].items():
        assert name in failed, f"{name} did not fail: {results[name]}"
        assert reason in failed[name], failed[name]
    assert set(failed) <= set(CAUGHT[defect]) | ALSO.get(defect, set()), failed


def test_an_unreachable_server_exits_2() -> None:
    out = subprocess.run(
        [sys.executable, "scripts/chatkit_check.py", "http://127.0.0.1:9/chatkit"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "cannot reach" in out.stderr


def test_the_check_needs_no_httpx() -> None:
    """Levels 1 and 2 don't install httpx (openai 3.x uses httpx2): the scripts must not import it."""
    probe = "import sys; sys.modules['httpx'] = None; import chatkit_check, chatkit_smoke"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "scripts", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
