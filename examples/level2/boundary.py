"""What the endpoint decides before the ChatKit server sees a request.

Three rules, the same at every level: a request type this server does not implement is refused with
400 `not_enabled`; text that PostgreSQL cannot store (NUL, lone surrogates) is refused with 400
`invalid_text`, so a client that works here keeps working when the store moves to PostgreSQL; paging
parameters are held to 0..100 before they reach a store.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chatkit.types import ChatKitReq, ItemsListReq, ThreadsListReq, UserMessageInput
from pydantic import ValidationError

from .server import CHATKIT_REQUEST


# --8<-- [start:refusals]
class Refused(Exception):
    """A deliberate 4xx: the endpoint answers {"error": code, "message": str(self)}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


# Level 2 is an agent without tools, widgets, files or feedback storage: these requests have nothing to
# do here, and the SDK's defaults would raise (a 500) or silently drop the request (a 200 that lies).
NOT_ENABLED = {
    "threads.add_client_tool_output": "client tools are not enabled on this server",
    "threads.add_structured_input": "structured input is not enabled on this server",
    "threads.custom_action": "widget actions are not enabled on this server",
    "threads.sync_custom_action": "widget actions are not enabled on this server",
    "items.feedback": "feedback is not enabled on this server",
    "attachments.create": "attachments are not enabled on this server",
    "attachments.delete": "attachments are not enabled on this server",
    "input.transcribe": "dictation is not enabled on this server",
}
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
    if request.type in NOT_ENABLED:
        raise Refused(400, "not_enabled", NOT_ENABLED[request.type])
    message = getattr(request.params, "input", None)
    if isinstance(message, UserMessageInput) and message.attachments:
        raise Refused(400, "not_enabled", NOT_ENABLED["attachments.create"])
    if unstorable(request.model_dump()):
        raise Refused(400, "invalid_text", INVALID_TEXT)
    if isinstance(request, ThreadsListReq | ItemsListReq) and request.params.limit is not None:
        if request.params.limit < 0:
            raise Refused(400, "invalid_request", "params.limit: must be 0 (the default page) or more")
        request.params.limit = min(request.params.limit, MAX_PAGE)
    return request


# --8<-- [end:admit]
