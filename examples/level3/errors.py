"""Refusals that routes and server hooks raise and the app renders as {"error", "message"} with a 4xx."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse


class RequestError(HTTPException):
    """A request we answer with a 4xx: `code` is stable for clients, `message` is one line for people.

    It subclasses HTTPException so that an app that forgot the handler still answers with the status.
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.status = status
        self.code = code
        self.message = message


async def request_error_handler(request: Request, exc: RequestError) -> JSONResponse:
    """Register with app.add_exception_handler(RequestError, request_error_handler)."""
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status, headers=exc.headers)


def not_enabled(feature: str) -> RequestError:
    return RequestError(400, "not_enabled", f"{feature} are not enabled on this server")
