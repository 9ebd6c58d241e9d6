"""An existing app with its own lifespan, state and routes, and no database or login: Level 2 joins it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from level2.app import add_chatkit


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.recipes = ["Shakshuka", "Dal"]
        app.state.events = ["started"]
        yield
        app.state.events.append("stopped")

    app = FastAPI(title="Recipes", lifespan=lifespan)

    @app.get("/recipes")
    async def recipes() -> list[str]:
        return app.state.recipes

    add_chatkit(app)  # Level 2: POST /chatkit, in-memory threads
    return app
