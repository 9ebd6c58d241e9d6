"""The three example apps behind one helper, for tests that hold every level to the same rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from level1.app import create_app as create_level1
from level2.app import create_app as create_level2
from level3.app import create_app as create_level3
from test_level3 import running, settings_for

LEVELS = ("Level 1", "Level 2", "Level 3")


@asynccontextmanager
async def level_client(level: str, pg_dsn: str, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a fresh app of `level`; Level 3 on the database `pg_dsn`, as alice@acme."""
    if level == "Level 3":
        async with running(create_level3(settings_for(pg_dsn, **settings))) as client:
            yield client
        return
    app = create_level1() if level == "Level 1" else create_level2()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
