"""A real PostgreSQL for tests: the server named by TEST_DATABASE_URL, or a throwaway cluster.

The cluster comes from scripts/local_postgres.py (the distribution's server binaries, loopback only,
deleted afterwards). Missing binaries are an error, never a skip: a store test that silently does not
run proves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from local_postgres import throwaway_cluster


@contextmanager
def postgres_url() -> Iterator[str]:
    """TEST_DATABASE_URL when set (an existing server), else a throwaway cluster for the duration."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    with throwaway_cluster() as url:
        yield url
