"""An existing app whose gateway names the user in a header, with no database: Level 2 joins it and keeps
each shopper's threads apart."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Header
from level2.app import add_chatkit


async def shopper(x_shop_user: Annotated[str | None, Header()] = None) -> str | None:
    """The app's own identity: the header its gateway sets (None when it is missing)."""
    return x_shop_user


def create_app() -> FastAPI:
    app = FastAPI(title="Shop")

    @app.get("/products")
    async def products() -> list[str]:
        return ["mug", "tee"]

    add_chatkit(app, current_user=shopper)  # Level 2 with the app's users: one history per shopper
    return app
