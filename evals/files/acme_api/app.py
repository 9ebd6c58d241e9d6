"""ACME's internal API (uvicorn app:app). Users log in elsewhere; every request carries
`Authorization: Bearer <jwt>` signed with HS256 and ACME_JWT_SECRET; the user id is the `sub` claim and
the team is the `team` claim. Data lives in PostgreSQL at ACME_DATABASE_URL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["ACME_DATABASE_URL"])
    yield
    await app.state.pool.close()


app = FastAPI(title="ACME", lifespan=lifespan)


def current_user(request: Request) -> dict[str, str]:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise HTTPException(401, "login required")
    try:
        claims = jwt.decode(header[7:], os.environ["ACME_JWT_SECRET"], algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise HTTPException(401, "invalid token") from exc
    return {"id": claims["sub"], "team": claims.get("team", "")}


User = Annotated[dict[str, str], Depends(current_user)]


@app.get("/me")
async def me(user: User) -> dict[str, str]:
    return user


@app.get("/projects")
async def projects(user: User, request: Request) -> list[dict[str, str]]:
    async with request.app.state.pool.acquire() as db:
        rows = await db.fetch("SELECT id::text, name FROM projects WHERE team = $1 ORDER BY name", user["team"])
    return [dict(r) for r in rows]
