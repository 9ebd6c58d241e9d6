"""An existing app on SQLAlchemy 2 (an AsyncEngine with the asyncpg driver, opened in its lifespan)
whose login is an API-key header, and whose `get_current_user` returns ChatKit's RequestContext
directly (tenant and roles included). Level 3 joins it with SQLAlchemyStore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from level3.app import add_chatkit
from level3.context import RequestContext
from level3.settings import Settings
from level3.sqlalchemy_store import SQLAlchemyStore
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

API_KEYS = {
    "key-alice": RequestContext(user_id="alice", tenant_id="acme"),
    "key-bob": RequestContext(user_id="bob", tenant_id="globex"),
}


async def get_current_user(x_api_key: Annotated[str | None, Header()] = None) -> RequestContext | None:
    """The app's own: None for an anonymous caller (its public routes allow them)."""
    return API_KEYS.get(x_api_key or "")


def create_app(engine_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_async_engine(engine_url, pool_size=4)
        yield
        await app.state.engine.dispose()

    app = FastAPI(title="Orders", lifespan=lifespan)

    @app.get("/orders/count")
    async def count(user: Annotated[RequestContext | None, Depends(get_current_user)]) -> dict[str, int | str]:
        if user is None:
            raise HTTPException(401, "an API key is required")
        async with app.state.engine.connect() as conn:
            threads = await conn.scalar(
                text("SELECT count(*) FROM chatkit_threads WHERE user_id = :u"), {"u": user.user_id}
            )
        return {"user": user.user_id, "chat_threads": threads}

    add_chatkit(app, Settings(), store=lambda app: SQLAlchemyStore(app.state.engine), current_user=get_current_user)
    return app
