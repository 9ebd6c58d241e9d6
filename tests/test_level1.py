"""Level 1: the hello-world server, its in-memory store, and live streaming under uvicorn."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit.types import ThreadItem
from chatkit_protocol import CHATKIT, assistant_texts, create_thread, new_thread, stream_past_a_gate
from level1.app import MemoryStore, create_app
from live_server import serve, serve_process


async def test_hello_world_reply(asgi_client: Callable[..., httpx.AsyncClient]) -> None:
    _, events = await new_thread(asgi_client(create_app()), "hi")
    assert [e["type"] for e in events] == ["thread.created", "thread.item.done", "stream_options", "thread.item.done"]
    assert assistant_texts(events) == ["Hello, world!"]


class HeldStore(MemoryStore):
    """Holds the assistant message back until the test has seen the first event."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: dict[str, Any]) -> None:
        if item.type == "assistant_message":
            await asyncio.to_thread(self.release.wait, 30)
        await super().add_thread_item(thread_id, item, context)


async def test_uvicorn_streams_incrementally() -> None:
    store = HeldStore()
    with serve(create_app(store)) as base_url:
        first, rest = await stream_past_a_gate(base_url, create_thread("hi"), store.release)
    assert first["type"] == "thread.created"
    assert assistant_texts(rest) == ["Hello, world!"]


async def test_one_store_serves_two_app_instances(asgi_client: Callable[..., httpx.AsyncClient]) -> None:
    store = MemoryStore()
    thread_id, _ = await new_thread(asgi_client(create_app(store)))
    again = await asgi_client(create_app(store)).post(
        CHATKIT, json={"type": "threads.get_by_id", "params": {"thread_id": thread_id}}
    )
    assert again.status_code == 200 and again.json()["id"] == thread_id


async def test_memory_store_refuses_a_context_without_user_id() -> None:
    """{"user": ...} instead of {"user_id": ...} must not quietly make every caller one user."""
    store = MemoryStore()
    await store.load_threads(10, None, "desc", {})  # the single-user demo
    with pytest.raises(TypeError, match="user_id"):
        await store.load_threads(10, None, "desc", {"user": "alice"})


def test_level1_runs_as_a_single_top_level_app_py(tmp_path: Path) -> None:
    """SKILL.md: Level 1 also works copied alone as app.py and started with `uvicorn app:app`."""
    shutil.copy(Path(__file__).resolve().parent.parent / "examples" / "level1" / "app.py", tmp_path / "app.py")
    with serve_process("app:app", cwd=str(tmp_path)) as base_url:
        smoke = [sys.executable, "scripts/chatkit_smoke.py", "--url", f"{base_url}/chatkit", "Hi"]
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(smoke, cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello, world!\n"
