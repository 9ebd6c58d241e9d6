"""An existing app with its own asyncpg pool (opened in its lifespan, no codecs), its own JWT login
whose `get_current_user` returns its own User, and its own routes. Level 3 joins it on both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import asyncpg
import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from level3.app import add_chatkit
from level3.settings import Settings
from level3.store import PostgresStore


@dataclass(frozen=True)
class User:
    id: str
    email: str


async def get_current_user(request: Request, authorization: Annotated[str, Header()] = "") -> User:
    """The app's login: its own HS256 tokens, with its own claims."""
    scheme, _, token = authorization.partition(" ")
    try:
        claims = jwt.decode(token, request.app.state.jwt_secret, algorithms=["HS256"]) if scheme == "Bearer" else None
    except jwt.PyJWTError:
        claims = None
    if not claims:
        raise HTTPException(401, "log in first")
    return User(id=claims["uid"], email=claims["email"])


CurrentUser = Annotated[User, Depends(get_current_user)]


# ChatKit wants a user id (or a RequestContext): a one-line dependency on the app's own.
async def chatkit_user(user: CurrentUser) -> str:
    return user.id


def create_app(database_url: str, secret: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await asyncpg.create_pool(database_url, min_size=1, max_size=4)  # no init, no codecs
        await app.state.db.execute("CREATE TABLE IF NOT EXISTS notes (owner text, body text)")
        yield
        # The app still uses its pool after ChatKit's part of the lifespan has ended.
        app.state.notes_at_shutdown = await app.state.db.fetchval("SELECT count(*) FROM notes")
        await app.state.db.close()

    app = FastAPI(title="Notes", lifespan=lifespan)
    app.state.jwt_secret = secret

    @app.post("/notes")
    async def add_note(body: str, user: CurrentUser) -> dict[str, str]:
        await app.state.db.execute("INSERT INTO notes VALUES ($1, $2)", user.id, body)
        return {"saved": body}

    add_chatkit(
        app,
        Settings(),
        store=lambda app: PostgresStore(app.state.db),  # called at startup, once the app's pool is open
        current_user=chatkit_user,
    )
    return app
