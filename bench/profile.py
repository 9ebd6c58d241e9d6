"""Profile Level 2 turns in-process with pyinstrument: where a turn's CPU goes, by package.

    python bench/profile.py                # 30 turns of a 3-delta answer on a thread with a full history
    python bench/profile.py --words 200    # long answers: the per-delta path
    python bench/profile.py --tree         # the whole call tree instead of the per-package summary

The model server runs in another process, so its work is not in the profile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "bench"), str(ROOT / "tests")]

import httpx  # noqa: E402
import loadgen  # noqa: E402
from pyinstrument import Profiler  # noqa: E402


def package_of(file_path: str) -> str:
    parts = Path(file_path).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    if "examples" in parts:
        return "examples (ours)"
    return "stdlib / other"


async def profile(words: int, turns: int) -> Profiler:
    from level2.app import create_app

    app = create_app()
    text = " ".join(f"w{n}" for n in range(words))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        reply = await http.post("/chatkit", json=loadgen.create_thread("hello"))
        thread_id = reply.text.split('"thread":{"id":"')[1].split('"')[0]
        for n in range(10):  # fill the 20-item history
            await http.post("/chatkit", json=loadgen.add_message(thread_id, f"turn {n}"))
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(turns):
            await http.post("/chatkit", json=loadgen.add_message(thread_id, text))
        profiler.stop()
    return profiler


def self_time_by_package(profiler: Profiler) -> Counter[str]:
    """Leaf time (pyinstrument's [self] frames and real leaves), by the package of the code that ran."""
    totals: Counter[str] = Counter()
    session = profiler.last_session
    assert session is not None
    stack = [(session.root_frame(), "stdlib / other")]
    while stack:
        frame, owner = stack.pop()
        if frame is None:
            continue
        package = package_of(frame.file_path) if frame.file_path else owner
        if frame.children:
            stack.extend((child, package) for child in frame.children)
        else:
            totals[package] += frame.time
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=1, help="words per user message (the answer repeats them)")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--tree", action="store_true", help="print pyinstrument's call tree")
    args = parser.parse_args(argv)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "scripted_model_server.py"), "--delay", "0", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)  # the model server starts
        os.environ.update(
            OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY="offline", OPENAI_AGENTS_DISABLE_TRACING="1"
        )
        profiler = asyncio.run(profile(args.words, args.turns))
    finally:
        model.terminate()
        model.wait()
    if args.tree:
        print(profiler.output_text(unicode=False, color=False))
        return 0
    totals = self_time_by_package(profiler)
    whole = sum(totals.values())
    print(f"{args.turns} turns, {args.words}-word answers; self time by package (wall, this process):")
    for name, seconds in totals.most_common(15):
        print(f"  {seconds / whole:6.1%}  {seconds * 1e3 / args.turns:7.2f} ms/turn  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
