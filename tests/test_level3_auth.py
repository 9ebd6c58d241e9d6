"""Level 3 auth: bearer JWTs (HS256 secret or a JWKS served on loopback) and the session-cookie variant.

Every refusal is a 401/403/503 with a JSON body, never a 500. Keys are generated per test session.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import Depends, FastAPI
from level3.auth import (
    Authenticator,
    AuthError,
    CurrentUser,
    JWKSCache,
    auth_error_handler,
    issue_dev_token,
)
from level3.context import RequestContext
from level3.settings import Settings
from live_server import free_port, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SECRET = "test-secret-that-is-at-least-32-bytes-long"
OTHER_SECRET = "another-secret-that-is-at-least-32-bytes!"
APP_ORIGIN = "https://app.example"
ClientFactory = Callable[..., httpx.AsyncClient]


def make_settings(**overrides: Any) -> Settings:
    """Settings with every auth field explicit, so the test environment can't leak in."""
    base: dict[str, Any] = {
        "jwt_secret": "",
        "jwks_url": "",
        "jwt_algorithms": (),
        "jwt_audience": "",
        "jwt_issuer": "",
        "auth_cookie_name": "",
        "cors_origins": (),
    }
    return Settings(**(base | overrides))


def build_app(authenticator: Authenticator) -> FastAPI:
    """The way the level 3 app wires auth: the authenticator on app.state, one error handler."""
    app = FastAPI()
    app.state.authenticator = authenticator
    app.add_exception_handler(AuthError, auth_error_handler)

    @app.post("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"user_id": user.user_id, "tenant_id": user.tenant_id, "roles": sorted(user.roles)}

    return app


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    # An hour: parametrized tokens are made at collection, and a loaded machine's suite can take minutes.
    base = {"sub": "user-1", "tenant_id": "acme", "roles": ["admin", "viewer"], "iat": now, "exp": now + 3600}
    return base | overrides


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT assembled by hand, as an attacker would."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(response: httpx.Response, message: str | None = None, status: int = 401) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == {401: "unauthorized", 403: "forbidden", 503: "unavailable"}[status]
    assert len(body["message"]) < 80 and "Traceback" not in response.text
    if message is not None:
        assert body["message"] == message
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    else:
        assert "www-authenticate" not in response.headers


# --- HS256 with a shared secret ------------------------------------------------------------------


@pytest.fixture
def hs_client(asgi_client: ClientFactory) -> Callable[..., httpx.AsyncClient]:
    def make(**overrides: Any) -> httpx.AsyncClient:
        return asgi_client(build_app(Authenticator(make_settings(jwt_secret=SECRET, **overrides))))

    return make


async def test_valid_hs256_token_gives_the_request_context(hs_client: Callable[..., httpx.AsyncClient]) -> None:
    response = await hs_client().post("/me", headers=bearer(jwt.encode(claims(), SECRET, algorithm="HS256")))
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "user-1", "tenant_id": "acme", "roles": ["admin", "viewer"]}


async def test_tenant_and_roles_are_optional(hs_client: Callable[..., httpx.AsyncClient]) -> None:
    token = jwt.encode({"sub": "u2", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    response = await hs_client().post("/me", headers={"Authorization": f"bearer {token}"})  # scheme: any case
    assert response.json() == {"user_id": "u2", "tenant_id": "default", "roles": []}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer"}, "expected 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer   "}, "expected 'Authorization: Bearer <token>'"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "expected 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer garbage"}, "malformed token"),
        ({"Authorization": "Bearer a.b.c"}, "malformed token"),
        ({"Authorization": "Bearer " + "x" * 10_000}, "token too long"),
    ],
)
async def test_missing_or_malformed_credentials(
    hs_client: Callable[..., httpx.AsyncClient], headers: dict[str, str], message: str
) -> None:
    response = await hs_client().post("/me", headers=headers)
    assert_refused(response, message)
    token_seen = message in {"malformed token", "token too long"}
    assert ('error="invalid_token"' in response.headers["www-authenticate"]) is token_seen


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (jwt.encode(claims(exp=int(time.time()) - 120), SECRET, algorithm="HS256"), "token expired"),
        (jwt.encode(claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256"), "token not yet valid"),
        (jwt.encode(claims(), OTHER_SECRET, algorithm="HS256"), "bad signature"),
        (jwt.encode(claims(), SECRET * 2, algorithm="HS512"), "algorithm not allowed"),
        (jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256"), "wrong audience"),  # none configured
        (jwt.encode({"sub": "u", "iat": int(time.time())}, SECRET, algorithm="HS256"), "missing claim 'exp'"),
        (jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"), "missing claim 'sub'"),
        (jwt.encode(claims(sub=""), SECRET, algorithm="HS256"), "claim 'sub' must be a non-empty string"),
        (jwt.encode(claims(roles="admin"), SECRET, algorithm="HS256"), "claim 'roles' must be a list of strings"),
        (jwt.encode(claims(tenant_id=7), SECRET, algorithm="HS256"), "claim 'tenant_id' must be a string"),
        (jwt.encode(claims(), None, algorithm="none"), "algorithm not allowed"),
        (unsigned({"alg": "none", "typ": "JWT"}, claims()), "algorithm not allowed"),
        (unsigned({"alg": "None"}, claims()), "algorithm not allowed"),
        (unsigned({"typ": "JWT"}, claims()), "algorithm not allowed"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "other-secret",
        "hs512-not-pinned",
        "unexpected-aud",
        "no-exp",
        "no-sub",
        "empty-sub",
        "roles-not-a-list",
        "tenant-not-a-string",
        "alg-none-pyjwt",
        "alg-none-by-hand",
        "alg-None-by-hand",
        "no-alg",
    ],
)
async def test_bad_tokens_are_401(hs_client: Callable[..., httpx.AsyncClient], token: str, message: str) -> None:
    response = await hs_client().post("/me", headers=bearer(token))
    assert_refused(response, message)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_exp_allows_a_little_clock_skew(hs_client: Callable[..., httpx.AsyncClient]) -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    assert (await hs_client().post("/me", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, None),
        ({"aud": "https://other.example"}, "wrong audience"),
        ({"aud": ["https://other.example", "chatkit-api"]}, None),  # a list containing us is fine
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"aud": None}, "missing claim 'aud'"),
        ({"iss": None}, "missing claim 'iss'"),
    ],
)
async def test_audience_and_issuer_when_configured(
    hs_client: Callable[..., httpx.AsyncClient], overrides: dict[str, Any], message: str | None
) -> None:
    payload = {k: v for k, v in (claims(aud="chatkit-api", iss="https://auth.example") | overrides).items() if v}
    client = hs_client(jwt_audience="chatkit-api", jwt_issuer="https://auth.example")
    response = await client.post("/me", headers=bearer(jwt.encode(payload, SECRET, algorithm="HS256")))
    if message is None:
        assert response.status_code == 200, response.text
    else:
        assert_refused(response, message)


async def test_dev_token_round_trip(hs_client: Callable[..., httpx.AsyncClient]) -> None:
    token = issue_dev_token(SECRET, "dev", "t1", roles=("admin",), audience="chatkit-api", issuer="dev")
    response = await hs_client(jwt_audience="chatkit-api", jwt_issuer="dev").post("/me", headers=bearer(token))
    assert response.json() == {"user_id": "dev", "tenant_id": "t1", "roles": ["admin"]}
    expired = issue_dev_token(SECRET, ttl_seconds=-120)
    assert_refused(await hs_client().post("/me", headers=bearer(expired)), "token expired")
    with pytest.raises(ValueError, match="32 bytes"):
        issue_dev_token("short")


async def test_authenticator_also_works_as_a_direct_dependency(asgi_client: ClientFactory) -> None:
    authenticator = Authenticator(make_settings(jwt_secret=SECRET))
    app = FastAPI()
    app.add_exception_handler(AuthError, auth_error_handler)

    # A local object in Annotated[...] can't be resolved under `from __future__ import annotations`,
    # so this form takes the dependency as a default value.
    @app.get("/whoami")
    async def whoami(user: RequestContext = Depends(authenticator)) -> str:  # noqa: B008
        return user.user_id

    client = asgi_client(app)
    assert (await client.get("/whoami", headers=bearer(issue_dev_token(SECRET)))).json() == "dev-user"
    assert_refused(await client.get("/whoami"), "missing bearer token")


async def test_without_the_handler_it_is_still_a_401_not_a_500(asgi_client: ClientFactory) -> None:
    app = FastAPI()
    app.state.authenticator = Authenticator(make_settings(jwt_secret=SECRET))

    @app.get("/me")
    async def me(user: CurrentUser) -> str:
        return user.user_id

    response = await asgi_client(app).get("/me", headers=bearer("garbage"))
    assert response.status_code == 401 and response.json() == {"detail": "malformed token"}
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({}, "exactly one"),
        ({"jwt_secret": SECRET, "jwks_url": "https://auth.example/jwks"}, "exactly one"),
        ({"jwt_secret": "too-short"}, "at least 32 bytes"),
        ({"jwt_secret": "s" * 40, "jwt_algorithms": ("HS384",)}, "at least 48 bytes"),  # RFC 7518: key >= hash
        ({"jwt_secret": "s" * 60, "jwt_algorithms": ("HS256", "HS512")}, "at least 64 bytes"),
        ({"jwt_secret": SECRET, "jwt_algorithms": ("none",)}, "not allowed"),
        ({"jwt_secret": SECRET, "jwt_algorithms": ("HS256", "RS256")}, "not allowed"),
        ({"jwks_url": "https://auth.example/jwks", "jwt_algorithms": ("RS256", "HS256")}, "not allowed"),
        ({"jwks_url": "https://auth.example/jwks", "jwt_algorithms": ("none",)}, "not allowed"),
        ({"jwks_url": "http://auth.example/jwks"}, "https"),
        ({"jwks_url": "ftp://localhost/jwks"}, "https"),
    ],
)
def test_unsafe_configuration_fails_at_startup(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Authenticator(make_settings(**overrides))


def test_safe_defaults() -> None:
    assert Authenticator(make_settings(jwt_secret=SECRET)).algorithms == ("HS256",)
    jwks = Authenticator(make_settings(jwks_url="http://127.0.0.1:1/jwks"))
    assert jwks.algorithms == ("EdDSA", "ES256", "RS256")
    assert Authenticator(make_settings(jwks_url="http://localhost:1/jwks", jwt_algorithms=("PS256",))).algorithms == (
        "PS256",
    )


# --- JWKS: asymmetric keys from a real endpoint on loopback --------------------------------------


@dataclass
class JWKSHost:
    """A JWKS endpoint whose keys and health the test controls; counts every fetch."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    status: int = 200

    async def endpoint(self, request: Request) -> JSONResponse:
        self.hits += 1
        if self.status != 200:
            return JSONResponse({"error": "down"}, status_code=self.status)
        return JSONResponse({"keys": self.keys})


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[tuple[JWKSHost, str]]:
    host = JWKSHost()
    with serve(Starlette(routes=[Route("/api/auth/jwks", host.endpoint)])) as base_url:
        yield host, f"{base_url}/api/auth/jwks"


@pytest.fixture
def jwks_host(jwks_server: tuple[JWKSHost, str]) -> JWKSHost:
    host, _ = jwks_server
    host.keys, host.hits, host.status = [], 0, 200
    return host


class Clock:
    """Monotonic time the test moves by hand, so TTLs and rate limits need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        jwk = jwt.get_algorithm_by_name(self.alg).to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}

    def sign(self, payload: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(payload, self.private, algorithm=self.alg, headers={"kid": kid or self.kid})


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        "EdDSA": SigningKey("EdDSA", "ed-1", ed25519.Ed25519PrivateKey.generate()),
        "RS256": SigningKey("RS256", "rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ES256": SigningKey("ES256", "ec-1", ec.generate_private_key(ec.SECP256R1())),
        "EdDSA-2": SigningKey("EdDSA", "ed-2", ed25519.Ed25519PrivateKey.generate()),
    }


@pytest.fixture
def jwks_client(
    asgi_client: ClientFactory, jwks_server: tuple[JWKSHost, str], jwks_host: JWKSHost
) -> Callable[..., tuple[httpx.AsyncClient, Clock]]:
    def make(**overrides: Any) -> tuple[httpx.AsyncClient, Clock]:
        clock = Clock()
        settings = make_settings(jwks_url=jwks_server[1], **overrides)
        authenticator = Authenticator(settings, jwks=JWKSCache(settings.jwks_url, clock=clock))
        return asgi_client(build_app(authenticator)), clock

    return make


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "ES256"])
async def test_jwks_token_verifies_and_keys_are_cached(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]],
    jwks_host: JWKSHost,
    keys: dict[str, SigningKey],
    alg: str,
) -> None:
    jwks_host.keys = [k.jwk() for k in keys.values()]
    client, _ = jwks_client()
    for _ in range(3):
        response = await client.post("/me", headers=bearer(keys[alg].sign(claims())))
        assert response.json() == {"user_id": "user-1", "tenant_id": "acme", "roles": ["admin", "viewer"]}
    assert jwks_host.hits == 1


async def test_better_auth_style_token(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    """Better Auth: an Ed25519 JWK without "alg"/"use", iss = aud = the app's base URL."""
    key = keys["EdDSA"]
    jwks_host.keys = [{k: v for k, v in key.jwk().items() if k not in {"alg", "use"}}]
    token = key.sign(claims(iss="http://localhost:3000", aud="http://localhost:3000"))
    strict, _ = jwks_client(jwt_audience="http://localhost:3000", jwt_issuer="http://localhost:3000")
    assert (await strict.post("/me", headers=bearer(token))).status_code == 200
    unset, _ = jwks_client()  # without JWT_AUDIENCE a token that names an audience is refused
    assert_refused(await unset.post("/me", headers=bearer(token)), "wrong audience")


async def test_jwks_rejects_forged_and_confused_tokens(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    rsa_key, ed_key = keys["RS256"], keys["EdDSA"]
    jwks_host.keys = [rsa_key.jwk(), ed_key.jwk()]
    client, _ = jwks_client()
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Key confusion: HMAC-sign with the *public* key, hoping the verifier uses it as an HS256 secret.
    header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
    signing_input = unsigned(header, claims()).rsplit(".", 1)[0].encode()
    forged = f"{signing_input.decode()}.{b64(hmac.new(public_pem, signing_input, hashlib.sha256).digest())}"
    cases = {
        forged: "algorithm not allowed",
        jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": rsa_key.kid}): "algorithm not allowed",
        unsigned({"alg": "none", "kid": ed_key.kid}, claims()): "algorithm not allowed",
        jwt.encode(claims(), None, algorithm="none", headers={"kid": ed_key.kid}): "algorithm not allowed",
        # An RS256 signature presented with the kid of the Ed25519 key: the key type must fit the alg.
        rsa_key.sign(claims(), kid=ed_key.kid): "key does not fit the token's algorithm",
        # Right kid, signed by somebody else's key.
        SigningKey("EdDSA", ed_key.kid, ed25519.Ed25519PrivateKey.generate()).sign(claims()): "bad signature",
        ed_key.sign(claims(exp=int(time.time()) - 120)): "token expired",
        jwt.encode(claims(), ed_key.private, algorithm="EdDSA"): "token has no key id (kid)",
    }
    for token, message in cases.items():
        assert_refused(await client.post("/me", headers=bearer(token)), message)


async def test_jwk_alg_must_match_the_token(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    rsa_key = keys["RS256"]
    jwks_host.keys = [rsa_key.jwk() | {"alg": "RS256"}]
    client, _ = jwks_client(jwt_algorithms=("RS256", "RS512"))
    ok = await client.post("/me", headers=bearer(rsa_key.sign(claims())))
    assert ok.status_code == 200
    other = jwt.encode(claims(), rsa_key.private, algorithm="RS512", headers={"kid": rsa_key.kid})
    assert_refused(await client.post("/me", headers=bearer(other)), "key does not fit the token's algorithm")


async def test_key_rotation_and_the_refetch_rate_limit(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    old, new = keys["EdDSA"], keys["EdDSA-2"]
    jwks_host.keys = [old.jwk()]
    client, clock = jwks_client()
    assert (await client.post("/me", headers=bearer(old.sign(claims())))).status_code == 200
    assert jwks_host.hits == 1

    # The issuer rotates. A token with the new kid arrives right after our last fetch: rate limited.
    jwks_host.keys = [new.jwk()]
    assert_refused(await client.post("/me", headers=bearer(new.sign(claims()))), "unknown signing key")
    assert jwks_host.hits == 1

    # 30 s later, an unknown kid is allowed to refetch: the new key verifies, the old one is gone.
    clock.advance(30)
    assert (await client.post("/me", headers=bearer(new.sign(claims())))).status_code == 200
    assert jwks_host.hits == 2
    assert_refused(await client.post("/me", headers=bearer(old.sign(claims()))), "unknown signing key")
    assert jwks_host.hits == 2  # the old kid is unknown now, but we only just fetched

    # A flood of made-up kids, in sequence and concurrently, costs the JWKS host at most one fetch.
    clock.advance(30)
    for n in range(20):
        assert_refused(await client.post("/me", headers=bearer(new.sign(claims(), kid=f"junk-{n}"))))
    burst = [client.post("/me", headers=bearer(new.sign(claims(), kid=f"burst-{n}"))) for n in range(20)]
    for response in await asyncio.gather(*burst):
        assert_refused(response, "unknown signing key")
    assert jwks_host.hits == 3


async def test_concurrent_misses_share_one_fetch(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    jwks_host.keys = [keys["ES256"].jwk()]
    client, _ = jwks_client()
    token = keys["ES256"].sign(claims())
    responses = await asyncio.gather(*[client.post("/me", headers=bearer(token)) for _ in range(10)])
    assert [r.status_code for r in responses] == [200] * 10
    assert jwks_host.hits == 1


async def test_keys_expire_after_the_ttl(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    key = keys["RS256"]
    jwks_host.keys = [key.jwk()]
    client, clock = jwks_client()
    token = key.sign(claims())
    assert (await client.post("/me", headers=bearer(token))).status_code == 200
    clock.advance(599)
    assert (await client.post("/me", headers=bearer(token))).status_code == 200
    assert jwks_host.hits == 1
    clock.advance(1)
    assert (await client.post("/me", headers=bearer(token))).status_code == 200
    assert jwks_host.hits == 2


async def test_jwks_outage(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    key = keys["EdDSA"]
    token = key.sign(claims())

    # Never reached the JWKS: we can't verify anything, and that's our problem, not the caller's.
    jwks_host.status = 500
    down, _ = jwks_client()
    assert_refused(await down.post("/me", headers=bearer(token)), status=503)

    # Reached it once, then it fails: the keys we have keep working past their TTL.
    jwks_host.status, jwks_host.keys = 200, [key.jwk()]
    client, clock = jwks_client()
    assert (await client.post("/me", headers=bearer(token))).status_code == 200
    jwks_host.status = 500
    clock.advance(3600)
    assert (await client.post("/me", headers=bearer(token))).status_code == 200
    assert_refused(await client.post("/me", headers=bearer(key.sign(claims(), kid="new"))), "unknown signing key")


async def test_jwks_host_unreachable_is_503(asgi_client: ClientFactory, keys: dict[str, SigningKey]) -> None:
    settings = make_settings(jwks_url=f"http://127.0.0.1:{free_port()}/jwks")
    client = asgi_client(build_app(Authenticator(settings)))
    assert_refused(await client.post("/me", headers=bearer(keys["EdDSA"].sign(claims()))), status=503)


async def test_malformed_jwks_documents_are_not_trusted(
    jwks_client: Callable[..., tuple[httpx.AsyncClient, Clock]], jwks_host: JWKSHost, keys: dict[str, SigningKey]
) -> None:
    key = keys["EdDSA"]
    jwks_host.keys = [
        {"kty": "oct", "kid": "hmac", "k": b64(SECRET.encode())},  # symmetric: skipped
        key.jwk() | {"use": "enc"},  # not for signatures: skipped
        "not a key",
    ]
    client, _ = jwks_client(jwt_algorithms=("EdDSA",))
    assert_refused(await client.post("/me", headers=bearer(key.sign(claims()))), "unknown signing key")
    hmac_token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "hmac"})
    assert_refused(await client.post("/me", headers=bearer(hmac_token)), "algorithm not allowed")


# --- A JWT in a session cookie -------------------------------------------------------------------


@pytest.fixture
def cookie_client(asgi_client: ClientFactory) -> httpx.AsyncClient:
    settings = make_settings(jwt_secret=SECRET, auth_cookie_name="session", cors_origins=(APP_ORIGIN,))
    return asgi_client(build_app(Authenticator(settings)))


def cookie(token: str, origin: str | None) -> dict[str, str]:
    return {"Cookie": f"session={token}"} | ({"Origin": origin} if origin is not None else {})


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (APP_ORIGIN, 200),
        (APP_ORIGIN + "/", 200),
        ("HTTPS://APP.EXAMPLE", 200),
        ("http://testserver", 200),  # same origin as the Host header
        (None, 403),
        ("https://evil.example", 403),
        ("https://app.example.evil.example", 403),
        ("http://app.example:8443", 403),
        ("null", 403),
    ],
)
async def test_cookie_auth_needs_a_trusted_origin(
    cookie_client: httpx.AsyncClient, origin: str | None, status: int
) -> None:
    response = await cookie_client.post("/me", headers=cookie(issue_dev_token(SECRET, "cookie-user"), origin))
    if status == 200:
        assert response.json()["user_id"] == "cookie-user"
    else:
        assert_refused(response, "cookie authentication needs an allowed Origin", status=403)


async def test_cookie_token_gets_the_same_verification(cookie_client: httpx.AsyncClient) -> None:
    expired = issue_dev_token(SECRET, ttl_seconds=-120)
    assert_refused(await cookie_client.post("/me", headers=cookie(expired, APP_ORIGIN)), "token expired")
    forged = unsigned({"alg": "none"}, claims())
    assert_refused(await cookie_client.post("/me", headers=cookie(forged, APP_ORIGIN)), "algorithm not allowed")
    assert_refused(await cookie_client.post("/me", headers={"Origin": APP_ORIGIN}), "missing bearer token")


async def test_authorization_header_wins_over_the_cookie(cookie_client: httpx.AsyncClient) -> None:
    headers = cookie(issue_dev_token(SECRET, "cookie-user"), APP_ORIGIN) | {"Authorization": "Basic eDp5"}
    assert_refused(await cookie_client.post("/me", headers=headers), "expected 'Authorization: Bearer <token>'")
    headers["Authorization"] = f"Bearer {issue_dev_token(SECRET, 'header-user')}"
    assert (await cookie_client.post("/me", headers=headers)).json()["user_id"] == "header-user"


async def test_cookie_is_ignored_unless_configured(hs_client: Callable[..., httpx.AsyncClient]) -> None:
    response = await hs_client().post("/me", headers=cookie(issue_dev_token(SECRET), APP_ORIGIN))
    assert_refused(response, "missing bearer token")
