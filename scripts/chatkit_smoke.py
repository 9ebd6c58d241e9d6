"""Send one message to a running ChatKit server and print the answer as it streams.

    python scripts/chatkit_smoke.py "Hello there"
    python scripts/chatkit_smoke.py --url http://127.0.0.1:8000/chatkit --token "$TOKEN" "Hello"
    python scripts/chatkit_smoke.py --thread thr_... "And a follow-up"

Exit status: 0 when an assistant message arrived, 1 on an `error` event, 2 on an HTTP error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx


def message_body(text: str, thread_id: str | None) -> dict[str, Any]:
    """The real request body: `type` + `params`; attachments and inference_options are required."""
    user_input = {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}
    if thread_id:
        return {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input}}
    return {"type": "threads.create", "params": {"input": user_input}}


def run(url: str, text: str, thread_id: str | None, token: str | None, verbose: bool) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    streamed: set[str] = set()  # assistant items whose text already arrived as deltas
    answered = failed = False
    with httpx.Client(timeout=120) as http:
        with http.stream("POST", url, json=message_body(text, thread_id), headers=headers) as response:
            if response.status_code != 200:
                print(f"HTTP {response.status_code}: {response.read().decode()}", file=sys.stderr)
                return 2
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[len("data: ") :])
                kind = event["type"]
                if verbose:
                    print(f"[{kind}]", file=sys.stderr)
                if kind == "thread.created":
                    print(f"thread: {event['thread']['id']}", file=sys.stderr)
                elif kind == "thread.item.updated" and event["update"]["type"].endswith("text_delta"):
                    streamed.add(event["item_id"])
                    print(event["update"]["delta"], end="", flush=True)
                elif kind == "thread.item.done" and event["item"]["type"] == "assistant_message":
                    answered = True
                    item = event["item"]
                    print("" if item["id"] in streamed else "".join(p.get("text", "") for p in item["content"]))
                elif kind == "thread.item.done" and event["item"]["type"] in ("widget", "client_tool_call"):
                    print(f"[{event['item']['type']}] {json.dumps(event['item'])[:200]}", file=sys.stderr)
                elif kind == "progress_update":
                    print(f"... {event.get('text', '')}", file=sys.stderr)
                elif kind == "error":
                    failed = True
                    print(f"error event: {json.dumps(event)}", file=sys.stderr)
    return 1 if failed or not answered else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", help="the user message")
    parser.add_argument("--url", default="http://127.0.0.1:8000/chatkit", help="the ChatKit endpoint")
    parser.add_argument("--thread", help="continue this thread id instead of creating one")
    parser.add_argument("--token", help="a bearer token (Level 3)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every event type")
    args = parser.parse_args(argv)
    try:
        return run(args.url, args.text, args.thread, args.token, args.verbose)
    except httpx.HTTPError as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
