"""A real browser as the client: headless Chromium loads a small page from another origin, and the page
calls Level 3 (real uvicorn, real PostgreSQL) with fetch and a streamed body, as the web component does.

Origins on loopback: the API is http://localhost:A. The page is served on two ports, P and Q, so it
can come from http://localhost:P (listed in CORS_ORIGINS; the same site as the API, as
app.example.com is to api.example.com), http://127.0.0.1:P (another site) or http://localhost:Q
(the same site, not listed).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from browser import browser  # noqa: F401 - the fixture
from fastapi import FastAPI
from fastapi.responses import FileResponse
from live_server import serve, serve_process
from local_postgres import fresh_database
from playwright.async_api import Browser, Page, expect
from scripted_model_server import ScriptedModel, text_output

SECRET = "browser-test-secret-0123456789abcdef"
COOKIE = "chatkit_session"
CLIENT_PAGE = Path(__file__).with_name("browser_client.html")
TESTS = Path(__file__).resolve().parent


@dataclass
class Site:
    api: str  # http://localhost:A
    allowed: str  # http://localhost:P, in CORS_ORIGINS
    other_site: str  # http://127.0.0.1:P, in CORS_ORIGINS
    unlisted: str  # http://localhost:Q, the same site as the API but not in CORS_ORIGINS

    async def recorded(self) -> list[tuple[str, str, int]]:
        """(method, origin, status) of every request the API got, preflights included."""
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.api}/recorded")
        return [tuple(entry) for entry in response.json()]  # type: ignore[misc]


@pytest.fixture(scope="module")
def page_ports() -> Iterator[tuple[int, int]]:
    """The test page, served on two ports: four origins in all (localhost and 127.0.0.1 on each)."""
    app = FastAPI()
    app.get("/")(lambda: FileResponse(CLIENT_PAGE))
    with serve(app) as first, serve(app) as second:
        yield int(first.rsplit(":", 1)[1]), int(second.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
async def site(database_url: str, page_ports: tuple[int, int], model_server: ScriptedModel) -> AsyncIterator[Site]:
    """Level 3 under uvicorn in its own process, in cookie mode (a bearer token still wins), for the module.

    Its own process: the Agents SDK shares one HTTP client per process, bound to the first event loop
    that uses it, so a server in a thread of the test process would break later tests' model calls.
    """
    allowed, other_site = f"http://localhost:{page_ports[0]}", f"http://127.0.0.1:{page_ports[0]}"
    async with fresh_database(database_url) as dsn:
        env = {
            "DATABASE_URL": dsn,
            "JWT_SECRET": SECRET,
            "AUTH_COOKIE_NAME": COOKIE,
            "CORS_ORIGINS": f"{allowed},{other_site}",
            "PYTHONPATH": str(TESTS.parent / "examples"),
        }
        with serve_process("browser_api:app", env=env, cwd=str(TESTS)) as url:
            api = url.replace("127.0.0.1", "localhost")
            yield Site(api, allowed, other_site, f"http://localhost:{page_ports[1]}")


@asynccontextmanager
async def client_page(browser: Browser, origin: str, login: str | None = None) -> AsyncIterator[Page]:  # noqa: F811
    """The test page at `origin` in a fresh browser profile; `login` is visited first to get a cookie."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(login or f"{origin}/")
        assert page.url == f"{origin}/"
        yield page
    finally:
        await context.close()


async def send(page: Page, api: str, text: str, **auth: Any) -> None:
    """Start sendMessage() in the page without waiting for it: the test watches the DOM instead."""
    await page.evaluate("([api, text, auth]) => { sendMessage(api, text, auth); }", [api, text, auth])


def token(**claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "alice", "tenant_id": "acme", "iat": now, "exp": now + 60} | claims, SECRET, "HS256")


# Property: a page on the allowed origin passes the preflight and gets its answer; another origin's
# preflight is refused, so its POST never leaves the browser.
async def test_cors_preflight_passes_for_the_allowed_origin_only(
    browser: Browser,  # noqa: F811
    site: Site,
    model: ScriptedModel,
) -> None:
    before = len(await site.recorded())
    async with client_page(browser, site.allowed) as page:
        await send(page, site.api, "hello from the allowed page", token=token())
        await expect(page.locator("#status")).to_have_text("done")
        await expect(page.locator("#answer")).to_have_text("You said: hello from the allowed page")
    async with client_page(browser, site.unlisted) as page:
        await send(page, site.api, "hello from elsewhere", token=token())
        await expect(page.locator("#status")).to_have_text("network error: TypeError")
    assert (await site.recorded())[before:] == [
        ("OPTIONS", site.allowed, 200),
        ("POST", site.allowed, 200),
        ("OPTIONS", site.unlisted, 400),  # refused: the browser never sends the POST
    ]
    assert len(model.requests) == 1  # only the allowed page's message reached the model


# Property: the first words are in the DOM while the model still holds the rest of the answer.
async def test_the_answer_renders_before_the_stream_ends(
    browser: Browser,  # noqa: F811
    site: Site,
    model: ScriptedModel,
) -> None:
    model.script([text_output("First words, then the rest.")])
    gate = model.hold_next(after_events=5)  # after the first text delta
    try:
        async with client_page(browser, site.allowed) as page:
            await send(page, site.api, "stream please", token=token())
            await expect(page.locator("#answer")).to_have_text("First")
            assert await page.text_content("#status") == "streaming" and not gate.is_set()
            gate.set()
            await expect(page.locator("#status")).to_have_text("done")
            await expect(page.locator("#answer")).to_have_text("First words, then the rest.")
    finally:
        gate.set()


# Property: an expired token is a 401 whose JSON body the page can read (CORS headers included) and act on.
async def test_an_expired_token_shows_a_401_the_page_can_act_on(
    browser: Browser,  # noqa: F811
    site: Site,
    model: ScriptedModel,
) -> None:
    expired = token(exp=int(time.time()) - 3600)
    async with client_page(browser, site.allowed) as page:
        await send(page, site.api, "hello", token=expired)
        await expect(page.locator("#status")).to_have_text("401 unauthorized: token expired")
    assert model.requests == []


def login_url(site: Site, samesite: str, page_origin: str) -> str:
    return f"{site.api}/login?samesite={samesite}&next={page_origin}/"


# Property: a `Secure; HttpOnly; SameSite=Lax` cookie set over http://localhost is kept by Chromium and sent
# with a credentialed fetch from another origin of the same site; the server answers as the cookie's user.
async def test_a_lax_cookie_works_from_the_same_site(
    browser: Browser,  # noqa: F811
    site: Site,
) -> None:
    async with client_page(browser, site.allowed, login_url(site, "lax", site.allowed)) as page:
        assert [c["sameSite"] for c in await page.context.cookies() if c["name"] == COOKIE] == ["Lax"]
        await send(page, site.api, "hello by cookie", cookie=True)
        await expect(page.locator("#status")).to_have_text("done")
        await expect(page.locator("#answer")).to_have_text("You said: hello by cookie")


# Property: a page of the same site that is not in CORS_ORIGINS gets the cookie attached to a simple
# (no-preflight) POST, and the Origin check refuses it: 403, nothing runs.
async def test_the_origin_check_refuses_a_foreign_page(
    browser: Browser,  # noqa: F811
    site: Site,
    model: ScriptedModel,
) -> None:
    foreign = site.unlisted
    async with client_page(browser, foreign, login_url(site, "lax", foreign)) as page:
        before = len(await site.recorded())
        await page.evaluate("([api, text]) => forgeFromHere(api, text)", [site.api, "transfer everything"])
    assert (await site.recorded())[before:] == [("POST", foreign, 403)]
    assert model.requests == []


# Property: from another site the cookie never goes with the request, even to an API that lists that
# site in CORS_ORIGINS: SameSite=Lax keeps it off, and a SameSite=None cookie is a third-party cookie,
# which Chromium blocks (the reason CDP gives: UserPreferences). Across sites, use a bearer token.
@pytest.mark.parametrize(("samesite", "reason"), [("lax", "SameSiteLax"), ("none", "UserPreferences")])
async def test_across_sites_the_cookie_is_not_sent(
    browser: Browser,  # noqa: F811
    site: Site,
    samesite: str,
    reason: str,
) -> None:
    page_origin = site.other_site
    async with client_page(browser, page_origin, login_url(site, samesite, page_origin)) as page:
        assert [c["secure"] for c in await page.context.cookies() if c["name"] == COOKIE] == [True]
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Network.enable")
        blocked: list[str] = []
        cdp.on(
            "Network.requestWillBeSentExtraInfo",
            lambda event: blocked.extend(
                r
                for c in event.get("associatedCookies", [])
                if c["cookie"]["name"] == COOKIE
                for r in c["blockedReasons"]
            ),
        )
        await send(page, site.api, "hello across sites", cookie=True)
        await expect(page.locator("#status")).to_have_text("401 unauthorized: missing bearer token")
        assert any(reason in r for r in blocked), blocked  # e.g. SchemefulSameSiteLax
