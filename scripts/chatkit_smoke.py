"""Send one message to a running ChatKit server and print the answer as it streams.

    python scripts/chatkit_smoke.py "Hello there"
    python scripts/chatkit_smoke.py --url http://127.0.0.1:8000/chatkit --token "$TOKEN" "Hello"
    python scripts/chatkit_smoke.py --thread thr_... "And a follow-up"
    python scripts/chatkit_smoke.py --thread thr_... --tool-output '{"city": "Oslo"}'   # answer a client tool
    python scripts/chatkit_smoke.py -H 'X-User: alice' "Hello"                          # any extra header

Exit status: 0 when the turn ended with an assistant message or a pending client tool call,
1 on an `error` event (or no answer), 2 on an HTTP error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx


def request_body(text: str | None, thread_id: str | None, tool_output_json: str | None) -> dict[str, Any]:
    """The real request body: `type` + `params`; attachments and inference_options are required."""
    if tool_output_json is not None:
        result = json.loads(tool_output_json)
        return {"type": "threads.add_client_tool_output", "params": {"thread_id": thread_id, "result": result}}
    user_input = {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}
    if thread_id:
        return {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input}}
    return {"type": "threads.create", "params": {"input": user_input}}


def run(url: str, body: dict[str, Any], headers: dict[str, str], verbose: bool) -> int:
    thread_id = body["params"].get("thread_id")
    streamed: set[str] = set()  # assistant items whose text already arrived as deltas
    answered = failed = False
    with httpx.Client(timeout=120) as http:
        with http.stream("POST", url, json=body, headers=headers) as response:
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
                    thread_id = event["thread"]["id"]
                    print(f"thread: {thread_id}", file=sys.stderr)
                elif kind == "thread.item.updated" and event["update"]["type"].endswith("text_delta"):
                    streamed.add(event["item_id"])
                    print(event["update"]["delta"], end="", flush=True)
                elif kind == "thread.item.done" and event["item"]["type"] == "assistant_message":
                    answered = True
                    item = event["item"]
                    print("" if item["id"] in streamed else "".join(p.get("text", "") for p in item["content"]))
                elif kind == "thread.item.done" and event["item"]["type"] == "client_tool_call":
                    answered = True  # the turn waits for the browser: answer it with --tool-output
                    call = event["item"]
                    print(f"client tool pending: {call['name']}({json.dumps(call['arguments'])})")
                    print(f"answer it: --thread {thread_id} --tool-output '<json result>'", file=sys.stderr)
                elif kind == "thread.item.done" and event["item"]["type"] == "widget":
                    print(f"[widget] {json.dumps(event['item']['widget'])[:200]}", file=sys.stderr)
                elif kind == "progress_update":
                    print(f"... {event.get('text', '')}", file=sys.stderr)
                elif kind == "error":
                    failed = True
                    print(f"error event: {json.dumps(event)}", file=sys.stderr)
    return 1 if failed or not answered else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="?", help="the user message")
    parser.add_argument("--url", default="http://127.0.0.1:8000/chatkit", help="the ChatKit endpoint")
    parser.add_argument("--thread", help="continue this thread id instead of creating one")
    parser.add_argument("--token", help="a bearer token (Level 3)")
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'", help="an extra header, repeatable"
    )
    parser.add_argument("--tool-output", metavar="JSON", help="answer the thread's pending client tool call")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every event type")
    args = parser.parse_args(argv)
    if args.tool_output is not None and not args.thread:
        parser.error("--tool-output needs --thread")
    if (args.text is None) == (args.tool_output is None):
        parser.error("give a message, or --tool-output (not both)")
    headers: dict[str, str] = {}
    for raw in args.header:
        name, _, value = raw.partition(":")
        headers[name.strip()] = value.strip()
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        return run(args.url, request_body(args.text, args.thread, args.tool_output), headers, args.verbose)
    except httpx.HTTPError as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
