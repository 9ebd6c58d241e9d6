"""Who is asking: built by auth for every request, passed to respond(), the store and the tools."""

from __future__ import annotations

from dataclasses import dataclass, field


# --8<-- [start:context]
@dataclass(frozen=True)
class RequestContext:
    """The authenticated caller. Every store query is scoped to (tenant_id, user_id)."""

    user_id: str
    tenant_id: str = "default"
    roles: frozenset[str] = field(default_factory=frozenset)
    request_id: str = ""  # for log lines; set by the endpoint
    public_url: str = ""  # where browsers reach this server (upload and preview URLs); set by the endpoint


# --8<-- [end:context]
