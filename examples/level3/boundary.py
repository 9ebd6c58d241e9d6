"""What the endpoint decides before the ChatKit server sees a request.

Three rules, the same at every level: a request type this server does not implement is refused with
400 `not_enabled`; text that PostgreSQL cannot store (NUL, lone surrogates) is refused with 400
`invalid_text` rather than a database error (a 500); paging parameters are held to 0..100 before they
reach the store; a widget action this server has no handler for is refused with 400 `invalid_action`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chatkit.types import (
    ChatKitReq,
    ItemsListReq,
    ThreadsCustomActionReq,
    ThreadsListReq,
    ThreadsSyncCustomActionReq,
)
from pydantic import ValidationError

from .server import CHATKIT_REQUEST, STREAMING_ACTIONS, SYNC_ACTIONS


# --8<-- [start:refusals]
class Refused(Exception):
    """A deliberate 4xx: the endpoint answers {"error": code, "message": str(self)}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


# Attachments and dictation are refused in app.py (check_before_processing) when they are not
# configured; feedback, when the store keeps none. Everything else is implemented.
# --8<-- [end:refusals]

# --8<-- [start:text]
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a decoded str, any of these is unpaired


def unstorable(value: Any) -> bool:
    """True if any string in a JSON value (keys included) holds NUL or a lone surrogate.

    PostgreSQL stores neither, in text or jsonb, and a lone surrogate cannot even be encoded as UTF-8.
    """
    if isinstance(value, str):
        return "\x00" in value or _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(unstorable(key) or unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    return False


def has_lone_surrogate_escape(body: bytes) -> bool:
    """pydantic's parser rejects "\\ud800" as bad JSON; Python's accepts it, so ask Python which it was."""
    try:
        return unstorable(json.loads(body))
    except (ValueError, RecursionError):  # really not JSON, or nested too deep to matter
        return False


INVALID_TEXT = "text must not contain NUL (\\u0000) or unpaired surrogates (\\ud800-\\udfff)"
# --8<-- [end:text]

# --8<-- [start:paging]
MAX_PAGE = 100  # threads.list and items.list: null or 0 means the SDK default (20); above 100, 100
# --8<-- [end:paging]


# --8<-- [start:admit]
def admit(body: bytes) -> ChatKitReq:
    """The parsed request, for process(); raises Refused or ValidationError."""
    try:
        request = CHATKIT_REQUEST.validate_json(body)  # process() would raise the same error as a 500
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid" and has_lone_surrogate_escape(body):
            raise Refused(400, "invalid_text", INVALID_TEXT) from None
        raise
    if isinstance(request, ThreadsCustomActionReq | ThreadsSyncCustomActionReq):
        check_action(request)
    if unstorable(request.model_dump()):
        raise Refused(400, "invalid_text", INVALID_TEXT)
    if isinstance(request, ThreadsListReq | ItemsListReq) and request.params.limit is not None:
        if request.params.limit < 0:
            raise Refused(400, "invalid_request", "params.limit: must be 0 (the default page) or more")
        request.params.limit = min(request.params.limit, MAX_PAGE)
    return request


# --8<-- [end:admit]


# --8<-- [start:actions]
def check_action(request: ThreadsCustomActionReq | ThreadsSyncCustomActionReq) -> None:
    """An action this server has no handler for, or one without the widget that sent it: a 400 before
    anything runs (inside action() it could only be an error event in a 200 stream)."""
    handled = STREAMING_ACTIONS if isinstance(request, ThreadsCustomActionReq) else SYNC_ACTIONS
    action = request.params.action.type
    if not isinstance(action, str):  # chatkit's Action makes a missing "type" default to its TypeVar
        raise Refused(400, "invalid_request", "params.action.type: Field required")
    if action not in handled:
        raise Refused(400, "invalid_action", f"{request.type} does not handle action {action[:100]!r}")
    if request.params.item_id is None:
        raise Refused(400, "invalid_action", f"action {action[:100]!r} needs params.item_id, the widget that sent it")


# --8<-- [end:actions]
