"""Configuration, read once from the environment. Nothing here is required at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _list(name: str, default: str = "") -> tuple[str, ...]:
    return tuple(part.strip() for part in os.environ.get(name, default).split(",") if part.strip())


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


# --8<-- [start:settings]
@dataclass(frozen=True)
class Settings:
    # repr=False: a logged Settings must not print the DSN's password or the JWT secret.
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL", ""), repr=False)
    # Auth: a shared secret (HS256) or a JWKS URL (asymmetric keys, e.g. Better Auth's /api/auth/jwks).
    jwt_secret: str = field(default_factory=lambda: os.environ.get("JWT_SECRET", ""), repr=False)
    jwks_url: str = field(default_factory=lambda: os.environ.get("JWT_JWKS_URL", ""))
    jwt_algorithms: tuple[str, ...] = field(default_factory=lambda: _list("JWT_ALGORITHMS"))
    jwt_audience: str = field(default_factory=lambda: os.environ.get("JWT_AUDIENCE", ""))
    jwt_issuer: str = field(default_factory=lambda: os.environ.get("JWT_ISSUER", ""))
    auth_cookie_name: str = field(default_factory=lambda: os.environ.get("AUTH_COOKIE_NAME", ""))
    # HTTP
    cors_origins: tuple[str, ...] = field(default_factory=lambda: _list("CORS_ORIGINS"))
    max_body_bytes: int = field(default_factory=lambda: int(os.environ.get("MAX_BODY_BYTES", "1048576")))
    # Agents SDK traces hold conversation content and go to OpenAI: opt in explicitly.
    tracing: bool = field(default_factory=lambda: _flag("CHATKIT_TRACING", False))
    # Failure bounds: a statement or a new database connection, and a silent model (seconds).
    database_timeout: float = field(default_factory=lambda: float(os.environ.get("DATABASE_TIMEOUT", "10")))
    model_timeout: float = field(default_factory=lambda: float(os.environ.get("MODEL_TIMEOUT", "120")))


# --8<-- [end:settings]
