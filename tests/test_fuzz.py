"""The proof over generated input: hypothesis posts request bodies built from the chatkit request models
(tests/request_strategies.py) to each level under a real uvicorn; Level 3 with two users on PostgreSQL.

`make test` runs a fixed seed and a small budget. `make fuzz` runs FUZZ_EXAMPLES (default 20,000) per
level with a random seed and keeps failing examples in var/hypothesis, so the next run tries them first.
Every failure it found is a plain regression test in tests/test_fuzz_regressions.py.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit_protocol import CHATKIT, create_thread, request, sse_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from live_server import serve_process
from request_strategies import request_bodies
from scripted_model_server import ScriptedModel
from test_level3 import SECRET, auth

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or None  # None: the small fixed-seed budget
SMALL_BUDGET = 60
ROOT = Path(__file__).resolve().parent.parent

# What a server must never show a client: tracebacks, SQL, driver names, file paths.
LEAKS = ["Traceback", 'File "', "site-packages", "/examples/", '.py"', "asyncpg", "postgres", "SELECT ", "INSERT "]
LEAKS += ["UPDATE ", "DELETE FROM", "jsonb", "Internal Server Error", str(ROOT)]
_ID = re.compile(r"\b[a-z]{2,4}_[0-9a-f]{8,32}\b")


@dataclass
class User:
    name: str
    headers: dict[str, str]
    secret: str = field(default_factory=lambda: f"SECRET-{uuid.uuid4().hex}")
    ids: set[str] = field(default_factory=set)  # every id this user's answers have shown


@dataclass
class Target:
    level: str
    base_url: str
    users: list[User]
    statuses: Counter[int] = field(default_factory=Counter)

    _pools: dict[bool, list[str]] = field(default_factory=lambda: {True: [], False: []})

    def pool(self, threads: bool) -> list[str]:
        """The thread ids (or the other ids) seen so far, in the order first seen."""
        if sum(len(user.ids) for user in self.users) != len(self._pools[True]) + len(self._pools[False]):
            known = set(self._pools[True]) | set(self._pools[False])
            for new in sorted(set().union(*(user.ids for user in self.users)) - known):
                self._pools[new.startswith("thr_")].append(new)
        return self._pools[threads]


@pytest.fixture
def target(level_and_dsn: tuple[str, str], model: ScriptedModel) -> Iterator[Target]:
    """The level under uvicorn in its own process, as deployed (and with event loops of its own)."""
    level, pg_dsn = level_and_dsn
    env, users = {}, [User("me", {})]
    if level == "Level 3":  # the default body limit (1 MiB), so 1 MB strings reach PostgreSQL
        env = {"DATABASE_URL": pg_dsn, "JWT_SECRET": SECRET, "MAX_BODY_BYTES": "1048576"}
        users = [User("alice", auth("alice")), User("bob", auth("bob"))]
    app_path = {"Level 1": "level1.app:app", "Level 2": "level2.app:app", "Level 3": "level3.app:app"}[level]
    with serve_process(app_path, env=env) as base_url:
        target = Target(level, base_url, users)
        with httpx.Client(base_url=base_url, timeout=60) as http:
            for user in users:
                seed_world(http, user)
        yield target


def seed_world(http: httpx.Client, user: User) -> None:
    """Threads holding the user's secret, and (at Level 3) a widget, a pending client tool and a question."""
    for text in (
        f"my secret is {user.secret}",
        "/call show_forecast {\"city\": \"Paris\"}",
        "/call get_user_location {}",
        "/call ask_user {\"question\": \"Which?\", \"options\": [\"a\", \"b\"]}",
    ):  # fmt: skip
        response = http.post(CHATKIT, json=create_thread(text), headers=user.headers)
        assert response.status_code == 200, response.text
        user.ids |= set(_ID.findall(response.text))
    thread_id = sse_events(response.text)[0]["thread"]["id"]
    body = request("threads.update", thread_id=thread_id, title=f"title {user.secret}")
    assert http.post(CHATKIT, json=body, headers=user.headers).status_code == 200


def check_answer(target: Target, user: User, body: bytes, response: httpx.Response) -> None:
    sent = body.decode("utf-8", "replace")
    assert response.status_code < 500, f"{response.status_code} for {sent[:300]!r}: {response.text[:300]}"
    text = response.text
    for leak in LEAKS:
        assert leak not in text or leak in sent, f"{leak!r} in the answer to {sent[:300]!r}: {text[:300]}"
    assert '"code":"stream.error"' not in text, f"a stream failed inside for {sent[:300]!r}: {text[-300:]}"
    found = set(_ID.findall(text))
    for other in target.users:
        if other is user:
            continue
        assert other.secret not in text, f"{other.name}'s secret reached {user.name}"
        shown = {i for i in found & other.ids if i not in sent}
        assert not shown, f"{other.name}'s ids {shown} reached {user.name} for {sent[:300]!r}"
    user.ids |= {i for i in found if not any(i in other.ids for other in target.users if other is not user)}


def walk(http: httpx.Client, user: User, kind: str, order: str, **params: Any) -> list[str]:
    """Page through threads.list or items.list; every page must continue where the last one stopped."""
    ids: list[str] = []
    after = None
    for _ in range(10_000):
        response = http.post(
            CHATKIT, json=request(kind, order=order, limit=7, after=after, **params), headers=user.headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [row["id"] for row in page["data"]]
        if not page["has_more"]:
            return ids
        assert page["after"] == ids[-1]
        after = page["after"]
    raise AssertionError("paging did not end")


def check_store_invariants(target: Target) -> None:
    """Every listed thread loads; every thread's items page to the end exactly once, in both orders."""
    with httpx.Client(base_url=target.base_url, timeout=60) as http:
        for user in target.users:
            threads = walk(http, user, "threads.list", "asc")
            assert len(threads) == len(set(threads)) and walk(http, user, "threads.list", "desc") == threads[::-1]
            for thread_id in threads:
                loaded = http.post(
                    CHATKIT, json=request("threads.get_by_id", thread_id=thread_id), headers=user.headers
                )
                assert loaded.status_code == 200, loaded.text
                items = walk(http, user, "items.list", "asc", thread_id=thread_id)
                assert len(items) == len(set(items)), f"an item listed twice in {thread_id}"
                assert walk(http, user, "items.list", "desc", thread_id=thread_id) == items[::-1]


def fuzz_settings() -> settings:
    # The server's state is shared by all examples on purpose (it grows as a real one does), and a
    # 1 MB string is a deliberate example, not a slow one.
    common: dict[str, Any] = {"deadline": None, "suppress_health_check": list(HealthCheck)}
    if EXAMPLES is None:  # make test: the same examples every run
        return settings(max_examples=SMALL_BUDGET, derandomize=True, database=None, **common)
    database = DirectoryBasedExampleDatabase(str(ROOT / "var" / "hypothesis"))
    return settings(max_examples=EXAMPLES, database=database, print_blob=True, **common)


# Properties, for every generated body and every level: no 5xx; no traceback, SQL text or file path in
# any body; no stream that fails inside; no byte of one user's data in an answer to another; and after
# the run, every listed thread loads and every thread's items page through exactly once in both orders.
def test_generated_requests_never_break_a_level(target: Target) -> None:
    with httpx.Client(base_url=target.base_url, timeout=60) as http:

        @fuzz_settings()
        @given(body=request_bodies(target.pool), who=st.integers(0, len(target.users) - 1))
        def post(body: bytes, who: int) -> None:
            user = target.users[who]
            headers = {"Content-Type": "application/json", **user.headers}
            response = http.post(CHATKIT, content=body, headers=headers)
            target.statuses[response.status_code] += 1
            check_answer(target, user, body, response)

        post()
    counts = dict(sorted(target.statuses.items()))
    print(f"\n{target.level}: {sum(target.statuses.values())} generated requests, statuses {counts}")
    check_store_invariants(target)
