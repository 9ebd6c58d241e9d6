"""Configuration, read once from the environment. Nothing here is required at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _list(name: str, default: str = "") -> tuple[str, ...]:
    return tuple(part.strip() for part in os.environ.get(name, default).split(",") if part.strip())


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


# Images the model reads, PDF, plain text. Never SVG or HTML: a preview URL would run their scripts.
DEFAULT_ATTACHMENT_TYPES = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,text/markdown,text/csv"
# What browsers' MediaRecorder produces, and what the transcription API accepts.
DEFAULT_AUDIO_TYPES = "audio/webm,audio/ogg,audio/mp4,audio/mpeg,audio/wav,audio/x-wav"


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
    # Attachments and dictation (references/attachments-dictation.md).
    # PUBLIC_URL: where browsers reach this server, for upload and preview URLs; unset, the request's own URL.
    public_url: str = field(default_factory=lambda: os.environ.get("PUBLIC_URL", "").rstrip("/"))
    # Signs upload and preview URLs; every instance needs the same one. Unset: derived from JWT_SECRET.
    attachment_url_secret: str = field(default_factory=lambda: os.environ.get("ATTACHMENT_URL_SECRET", ""), repr=False)
    max_attachment_bytes: int = field(default_factory=lambda: int(os.environ.get("MAX_ATTACHMENT_BYTES", "10485760")))
    allowed_attachment_types: tuple[str, ...] = field(
        default_factory=lambda: _list("ALLOWED_ATTACHMENT_TYPES", DEFAULT_ATTACHMENT_TYPES)
    )
    # Uploads that no message uses are removed once this old.
    attachment_ttl_seconds: int = field(default_factory=lambda: int(os.environ.get("ATTACHMENT_TTL_SECONDS", "86400")))
    transcription_model: str = field(
        default_factory=lambda: os.environ.get("TRANSCRIPTION_MODEL", "gpt-4o-mini-transcribe")
    )
    max_audio_bytes: int = field(default_factory=lambda: int(os.environ.get("MAX_AUDIO_BYTES", "786432")))
    allowed_audio_types: tuple[str, ...] = field(
        default_factory=lambda: _list("ALLOWED_AUDIO_TYPES", DEFAULT_AUDIO_TYPES)
    )


# --8<-- [end:settings]
