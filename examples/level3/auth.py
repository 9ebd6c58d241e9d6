"""Who is calling: a bearer JWT (or a JWT in a session cookie) becomes a RequestContext.

Wire it once in create_app():

    app.state.authenticator = Authenticator(settings)
    app.add_exception_handler(AuthError, auth_error_handler)

    @app.post("/chatkit")
    async def chatkit(request: Request, user: CurrentUser): ...  # CurrentUser = Depends(get_current_user)

Keys come from exactly one source: JWT_SECRET (HS256, a shared secret) or JWT_JWKS_URL (public
keys, e.g. Better Auth's /api/auth/jwks, which signs with EdDSA/Ed25519 by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from ipaddress import ip_address
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from .context import RequestContext
from .settings import Settings

logger = logging.getLogger(__name__)

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
DEFAULT_SECRET_ALGORITHMS = ("HS256",)
# Better Auth signs with EdDSA by default and can be switched to ES256 or RS256; add PS256/ES512 via JWT_ALGORITHMS.
DEFAULT_JWKS_ALGORITHMS = ("EdDSA", "ES256", "RS256")
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HMAC key is at least as long as its hash: HS256 32 bytes...
SECRET_BYTES_BY_ALGORITHM = {"HS256": 32, "HS384": 48, "HS512": 64}  # ...HS384 48, HS512 64
LEEWAY_SECONDS = 30  # clock skew between the token issuer and this server
MAX_TOKEN_CHARS = 8192  # a JWT is a few hundred bytes; don't parse megabytes of attacker input


# --8<-- [start:auth-errors]
class AuthError(HTTPException):
    """A request we refuse. Rendered as {"error": ..., "message": ...} by auth_error_handler.

    It subclasses HTTPException so that an app that forgot the handler still answers 401, not 500.
    """

    CODES = {401: "unauthorized", 403: "forbidden", 503: "unavailable"}

    def __init__(self, message: str, status: int = 401, *, token_seen: bool = False) -> None:
        headers = None
        if status == 401:
            # RFC 6750 §3: say which scheme to use, and whether the token itself was the problem.
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"' if token_seen else "Bearer"}
        super().__init__(status_code=status, detail=message, headers=headers)
        self.status = status
        self.message = message
        self.error = self.CODES.get(status, "unauthorized")


async def auth_error_handler(request: Request, exc: AuthError) -> JSONResponse:
    """Register with app.add_exception_handler(AuthError, auth_error_handler)."""
    return JSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status, headers=exc.headers)


# Short, fixed reasons: enough for a client to fix its request, nothing about our internals.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "key does not fit the token's algorithm"),
    (jwt.PyJWKError, "key does not fit the token's algorithm"),
    (jwt.DecodeError, "malformed token"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim!r}"
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "invalid token")


# --8<-- [end:auth-errors]


# --8<-- [start:auth-jwks]
class JWKSCache:
    """Public keys from a JWKS URL, by `kid`, fetched with httpx so the event loop never blocks.

    - Keys are reused for `ttl` seconds, then refetched.
    - An unknown `kid` triggers a refetch (the issuer rotated keys), but at most one fetch per
      `min_interval` seconds, so a flood of made-up kids can't turn us into a DoS on the JWKS host.
    - If a fetch fails, the keys we already have stay in use (an outage of the auth server
      shouldn't log everybody out); with no keys at all, requests get 503.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 600.0,
        min_interval: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_interval = min_interval
        self.timeout = timeout
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._lock = asyncio.Lock()  # concurrent misses share one fetch

    async def get(self, kid: str) -> Mapping[str, Any]:
        """The JWK for `kid`, or AuthError."""
        if not self._needs_fetch(kid):
            return self._keys[kid]
        async with self._lock:
            # Another request may have fetched while we waited for the lock.
            if self._needs_fetch(kid) and self._may_fetch():
                await self._fetch()
        if kid in self._keys:
            return self._keys[kid]
        if self._fetched_at is None:
            raise AuthError("signing keys are unavailable, try again later", 503)
        raise AuthError("unknown signing key", token_seen=True)

    def _needs_fetch(self, kid: str) -> bool:
        stale = self._fetched_at is None or self._clock() - self._fetched_at >= self.ttl
        return stale or kid not in self._keys

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self.min_interval

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = response.json()["keys"]
            if not isinstance(keys, list):
                raise TypeError("'keys' is not a list")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.warning("JWKS fetch from %s failed: %s: %s", self.url, type(exc).__name__, exc)
            return
        self._keys = {
            key["kid"]: key
            for key in keys
            if isinstance(key, dict)
            and isinstance(key.get("kid"), str)
            and key.get("kty") != "oct"  # a symmetric key in a public key set is never a signing key for us
            and key.get("use", "sig") == "sig"
        }
        self._fetched_at = self._attempted_at
        logger.info("JWKS from %s: %d signing keys", self.url, len(self._keys))


# --8<-- [end:auth-jwks]


# --8<-- [start:auth-dependency]
class Authenticator:
    """Verifies the caller's JWT and returns their RequestContext. Build one per app from Settings.

    It is a FastAPI dependency (`Depends(authenticator)`), but the app stores it on `app.state`
    and routes use `Depends(get_current_user)`, spelled `user: CurrentUser`. Then routes need no
    closure, nothing reads settings at import time, the JWKS cache lives as long as the app, and
    tests can swap identities with `app.dependency_overrides[get_current_user]`.
    """

    def __init__(self, settings: Settings, *, jwks: JWKSCache | None = None) -> None:
        if bool(settings.jwt_secret) == bool(settings.jwks_url):
            raise ValueError("set exactly one of JWT_SECRET (HS256) or JWT_JWKS_URL (public keys)")
        # The algorithm list is an allow-list we choose, never what a token's header asks for:
        # "none" is never allowed, and HS* never with a JWKS (its public keys would become HMAC secrets).
        if settings.jwt_secret:
            self.algorithms = settings.jwt_algorithms or DEFAULT_SECRET_ALGORITHMS
            allowed = HMAC_ALGORITHMS
            needed = max(SECRET_BYTES_BY_ALGORITHM.get(alg, MIN_SECRET_BYTES) for alg in self.algorithms)
            if len(settings.jwt_secret.encode()) < needed:
                raise ValueError(f"JWT_SECRET must be at least {needed} bytes for {', '.join(self.algorithms)}")
        else:
            self.algorithms = settings.jwt_algorithms or DEFAULT_JWKS_ALGORITHMS
            allowed = ASYMMETRIC_ALGORITHMS
            _check_jwks_url(settings.jwks_url)
        if bad := sorted(set(self.algorithms) - allowed):
            raise ValueError(f"JWT_ALGORITHMS {bad} not allowed here; choose from {sorted(allowed)}")
        self.secret = settings.jwt_secret.encode()
        self.jwks = (jwks or JWKSCache(settings.jwks_url)) if settings.jwks_url else None
        self.audience = settings.jwt_audience or None
        self.issuer = settings.jwt_issuer or None
        self.cookie_name = settings.auth_cookie_name
        self.trusted_origins = frozenset(origin.rstrip("/").lower() for origin in settings.cors_origins)

    async def __call__(self, request: Request) -> RequestContext:
        token = self._token(request)
        try:
            claims = await self.verify(token)
        except jwt.PyJWTError as exc:
            logger.info("rejected token: %s: %s", type(exc).__name__, exc)
            raise AuthError(_reason(exc), token_seen=True) from None
        return _context(claims)

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once signature, algorithm, exp, aud and iss check out; else raises."""
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError("token too long", token_seen=True)
        header = jwt.get_unverified_header(token)  # DecodeError if it isn't a JWT
        alg = header.get("alg")
        if alg not in self.algorithms:  # "none", HS256 against a JWKS, or anything unexpected
            raise jwt.InvalidAlgorithmError(alg)
        key: jwt.PyJWK | bytes = self.secret
        if self.jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise AuthError("token has no key id (kid)", token_seen=True)
            jwk = await self.jwks.get(kid)
            if jwk.get("alg", alg) != alg:
                raise jwt.InvalidKeyError("the JWK names another algorithm")
            key = jwt.PyJWK(dict(jwk), algorithm=alg)  # raises if the key type doesn't fit the alg
        required = ["exp", "sub"]
        required += ["aud"] if self.audience else []
        required += ["iss"] if self.issuer else []
        # Without JWT_AUDIENCE, PyJWT rejects tokens that carry an `aud` (Better Auth's do): set it.
        return jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=self.audience,
            issuer=self.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": required},
        )

    # --8<-- [start:auth-cookie]
    def _token(self, request: Request) -> str:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("expected 'Authorization: Bearer <token>'")
            return token.strip()
        if self.cookie_name and (token := request.cookies.get(self.cookie_name)):
            # The browser attaches cookies to requests that other sites trigger (CSRF), so a cookie
            # alone doesn't prove the caller is our page. Browsers set Origin on every POST and a
            # page can't forge it: accept the cookie only from an allowed or the same origin.
            if not self._trusted_origin(request):
                raise AuthError("cookie authentication needs an allowed Origin", 403)
            return token
        raise AuthError("missing bearer token")

    def _trusted_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin", "").rstrip("/").lower()
        if not origin or origin == "null":  # "null": sandboxed iframes, file://, some redirects
            return False
        if origin in self.trusted_origins:  # exact match; a "*" entry never matches an origin
            return True
        # Same origin: the Origin's host:port is the Host we were reached at. The scheme is not
        # compared because behind a TLS-terminating proxy this server may see http.
        return urlsplit(origin).netloc == request.headers.get("host", "").lower()

    # --8<-- [end:auth-cookie]


async def get_current_user(request: Request) -> RequestContext:
    """The FastAPI dependency routes use: runs the app's Authenticator (app.state.authenticator)."""
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        raise RuntimeError("app.state.authenticator is not set; create it in create_app()")
    return await authenticator(request)


CurrentUser = Annotated[RequestContext, Depends(get_current_user)]


def _context(claims: Mapping[str, Any]) -> RequestContext:
    tenant_id = claims.get("tenant_id") or "default"
    roles = claims.get("roles", [])
    if not isinstance(tenant_id, str):
        raise AuthError("claim 'tenant_id' must be a string", token_seen=True)
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthError("claim 'roles' must be a list of strings", token_seen=True)
    if not isinstance(claims["sub"], str) or not claims["sub"]:  # PyJWT checks the type; not emptiness
        raise AuthError("claim 'sub' must be a non-empty string", token_seen=True)
    return RequestContext(user_id=claims["sub"], tenant_id=tenant_id, roles=frozenset(roles))


def _check_jwks_url(url: str) -> None:
    # Over plain http anyone on the path could hand us their own keys; loopback is fine for dev.
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    try:
        loopback = parts.hostname == "localhost" or ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise ValueError("JWT_JWKS_URL must be https:// (http:// only for localhost)")


# --8<-- [end:auth-dependency]


# --8<-- [start:auth-dev-token]
def issue_dev_token(
    secret: str,
    user_id: str = "dev-user",
    tenant_id: str = "default",
    ttl_seconds: int = 3600,
    *,
    roles: tuple[str, ...] = (),
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for LOCAL DEVELOPMENT (`make run LEVEL=3`, curl). Never mint tokens like this in production.

    In production your identity provider issues tokens; this server only verifies them.
    """
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "tenant_id": tenant_id,
        "roles": list(roles),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


# --8<-- [end:auth-dev-token]
