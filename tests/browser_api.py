"""Level 3 as tests/test_browser.py serves it: `uvicorn browser_api:app` in its own process.

The app is an existing FastAPI app with ChatKit added from the environment (`add_chatkit(app, Settings())`),
plus what the browser tests need around it:
- GET /login sets the session cookie and redirects, as an identity provider does in production;
- every request's method, Origin and status is recorded and readable at GET /recorded, so a test sees
  what the browser really sent (preflights included) and what it got back.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from level3.app import add_chatkit
from level3.auth import issue_dev_token
from level3.settings import Settings

RECORDED: list[tuple[str, str, int]] = []  # (method, origin, status)


class Recorder:
    """Outermost ASGI middleware, so it also sees the preflights CORSMiddleware answers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/recorded":
            await self.app(scope, receive, send)
            return
        origin = dict(scope["headers"]).get(b"origin", b"").decode()

        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                RECORDED.append((scope["method"], origin, message["status"]))
            await send(message)

        await self.app(scope, receive, record)


settings = Settings()
app = FastAPI()
add_chatkit(app, settings)
app.add_middleware(Recorder)


@app.get("/login")
def login(samesite: Literal["lax", "strict", "none"], next: str) -> RedirectResponse:
    response = RedirectResponse(next, status_code=303)
    token = issue_dev_token(settings.jwt_secret, user_id="alice", tenant_id="acme")
    response.set_cookie(settings.auth_cookie_name, token, httponly=True, secure=True, samesite=samesite)
    return response


@app.get("/recorded")
def recorded() -> list[tuple[str, str, int]]:
    return RECORDED
