"""Store subjects for the contract suite in test_store_contract.py: the project's stores, and examples of
the factory a user points CHATKIT_STORE_FACTORY at.

A subject is what one test gets: a fresh, empty store plus a way to build that store's request context
for a given user. Any object with these attributes works (StoreSubject is a convenience):

    subject.store                               a chatkit.store.Store
    subject.context(user_id, tenant_id="t1")    the context your server would pass for that caller
    subject.tenants                             optional, default True; False when the store has no tenants
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from chatkit.store import Store
from level1.app import MemoryStore as Level1MemoryStore
from level2.store import MemoryStore as Level2MemoryStore
from level3.context import RequestContext
from level3.sqlalchemy_store import SQLAlchemyStore
from level3.store import PostgresStore, create_pool, create_schema
from sqlalchemy.ext.asyncio import create_async_engine


@dataclass
class StoreSubject:
    store: Store[Any]
    make_context: Callable[[str, str], Any]  # (user_id, tenant_id) -> context
    tenants: bool = True  # does the store keep tenants apart (not just users)?

    def context(self, user_id: str, tenant_id: str = "t1") -> Any:
        return self.make_context(user_id, tenant_id)


def _dict_context(user_id: str, tenant_id: str) -> dict[str, Any]:
    # The in-memory stores know users only: their context is the dict the endpoint passes.
    return {"user_id": user_id}


async def level1_memory() -> StoreSubject:
    return StoreSubject(Level1MemoryStore(), _dict_context, tenants=False)


async def level2_memory() -> StoreSubject:
    return StoreSubject(Level2MemoryStore(), _dict_context, tenants=False)


@asynccontextmanager
async def level3_postgres(dsn: str) -> AsyncIterator[StoreSubject]:
    """PostgresStore on the fresh, empty database `dsn`, with the schema the app creates at startup."""
    pool = await create_pool(dsn, max_size=4)
    try:
        await create_schema(pool)
        yield StoreSubject(PostgresStore(pool), lambda user_id, tenant_id: RequestContext(user_id, tenant_id))
    finally:
        await pool.close()


@asynccontextmanager
async def level3_postgres_on_app_pool(dsn: str) -> AsyncIterator[StoreSubject]:
    """PostgresStore on a pool the app made its own way: here with a jsonb codec that turns dicts into
    JSON text and back, the most common customisation. The store must not depend on the pool's codecs."""

    async def init(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=init)
    try:
        await create_schema(pool)
        yield StoreSubject(PostgresStore(pool), lambda user_id, tenant_id: RequestContext(user_id, tenant_id))
    finally:
        await pool.close()


def asyncpg_engine_url(dsn: str) -> str:
    """A postgresql:// DSN as SQLAlchemy's URL for the asyncpg driver."""
    return "postgresql+asyncpg://" + dsn.removeprefix("postgresql://").removeprefix("postgres://")


@asynccontextmanager
async def level3_sqlalchemy(dsn: str) -> AsyncIterator[StoreSubject]:
    """SQLAlchemyStore on an AsyncEngine the app made (asyncpg driver), with the schema created at startup."""
    engine = create_async_engine(asyncpg_engine_url(dsn), pool_size=4)
    try:
        store = SQLAlchemyStore(engine)
        await store.create_schema()
        yield StoreSubject(store, lambda user_id, tenant_id: RequestContext(user_id, tenant_id))
    finally:
        await engine.dispose()


# What a CHATKIT_STORE_FACTORY target looks like. test_store_contract.py runs the suite through these
# two to prove the documented command works; yours would live in your package, e.g. myapp/testing.py.
async def example_custom_factory() -> StoreSubject:
    """A plain async function returning a subject (here: the Level 1 in-memory store)."""
    return StoreSubject(Level1MemoryStore(), _dict_context, tenants=False)


@asynccontextmanager
async def example_custom_postgres_factory(dsn: str) -> AsyncIterator[StoreSubject]:
    """An async context manager taking `dsn`: the suite passes a fresh database per test."""
    async with level3_postgres(dsn) as subject:
        yield subject
