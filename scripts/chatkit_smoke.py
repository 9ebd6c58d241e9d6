"""Send one message to a running ChatKit server and print the answer as it streams.

    python scripts/chatkit_smoke.py "Hello there"
    python scripts/chatkit_smoke.py --url http://127.0.0.1:8000/chatkit --token "$TOKEN" "Hello"
    python scripts/chatkit_smoke.py --thread thr_... "And a follow-up"
    python scripts/chatkit_smoke.py --thread thr_... --tool-output '{"city": "Oslo"}'   # answer a client tool
    python scripts/chatkit_smoke.py -H 'X-User: alice' "Hello"                          # any extra header

The answer goes to stdout, ending with a newline. Everything else goes to stderr: `thread: <id>`
(pass it to --thread), progress, widgets, error events, and with -v every event type.
It needs only the standard library and openai-chatkit's environment, like every example level.

Exit status: 0 when the turn ended with an assistant message or a pending client tool call,
1 on an `error` event (or no answer), 2 on an HTTP error.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit


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
    answered = failed = open_line = False
    parts = urlsplit(url)
    connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=120)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        if response.status != 200:
            print(f"HTTP {response.status}: {response.read().decode()}", file=sys.stderr)
            return 2
        while raw := response.readline():  # line by line: the answer prints as it streams
            line = raw.decode().rstrip("\r\n")
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
                open_line = True
            elif kind == "thread.item.done" and event["item"]["type"] == "assistant_message":
                answered = True
                item = event["item"]
                print("" if item["id"] in streamed else "".join(p.get("text", "") for p in item["content"]))
                open_line = False
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
    finally:
        connection.close()
        if open_line:  # a stream cut after some deltas: still end stdout with a newline
            print()
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
    except (OSError, HTTPException) as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
