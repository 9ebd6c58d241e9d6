"""The docs site as a person meets it: built strictly, every internal link and anchor resolves, every
example file is on it, and in headless Chromium its pages render with no console errors, search works,
code has copy buttons and the level decision tree fits the screen. Screenshots go to var/screenshots/."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest
from browser import SCREENSHOTS, browser, distinct_colours  # noqa: F401 - browser is the fixture
from docs_snippets import ROOT
from live_server import serve
from playwright.async_api import Browser, Page, expect
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

OUTCOMES = ["Start", "Build", "Add features", "Go to production", "Fix a server", "Reference"]


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    return out


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        for name in ("href", "src"):
            if values.get(name):
                self.links.append(values[name] or "")


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text())
    return parser


def test_every_internal_link_and_anchor_resolves(site_dir: Path) -> None:
    pages = {path: _parse(path) for path in site_dir.rglob("*.html")}
    broken = []
    for page, parsed in pages.items():
        base = "/" + page.relative_to(site_dir).as_posix()
        for link in parsed.links:
            if urlsplit(link).scheme or link.startswith("//"):
                continue  # external: the site is built to make none (checked in the browser test)
            target, fragment = urldefrag(urljoin(base, link))
            path = site_dir / unquote(target).lstrip("/")
            if path.is_dir():
                path = path / "index.html"
            if not path.is_file():
                broken.append(f"{base}: {link}")
            elif fragment and path.suffix == ".html" and fragment not in pages[path].ids:
                broken.append(f"{base}: {link} (no #{fragment})")
    assert broken == []


def test_every_example_file_is_on_the_site(site_dir: Path) -> None:
    """Each non-empty file of examples/ and scripts/ is included (not copied) by a page in docs/code/, whole."""
    included = {}
    for page in (ROOT / "docs" / "code").glob("*.md"):
        for path in re.findall(r'^\s*--8<-- "([^"]+)"', page.read_text(), re.MULTILINE):
            included[path] = site_dir / "code" / page.stem / "index.html"
    files = [*(ROOT / "examples").rglob("*"), *(ROOT / "scripts").glob("*.py")]
    examples = [
        p.relative_to(ROOT).as_posix()
        for p in files
        if p.is_file() and "__pycache__" not in p.parts and p.read_text().strip()
    ]
    assert sorted(set(examples) - set(included)) == []
    for path, page in included.items():
        shown = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        assert strip_markers((ROOT / path).read_text()).strip() in shown, f"{path} is not whole on {page}"


@pytest.fixture(scope="module")
def site_url(site_dir: Path) -> Iterator[str]:
    app = Starlette()
    app.mount("/", StaticFiles(directory=site_dir, html=True))
    with serve(app) as url:
        yield url


@asynccontextmanager
async def open_page(
    browser: Browser,  # noqa: F811
    url: str,
    width: int = 1280,
    height: int = 800,
) -> AsyncIterator[tuple[Page, list[str]]]:
    """The page at `url` in a fresh context, with every console error, page error and failed request."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    problems: list[str] = []
    page = await context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    try:
        await page.goto(url, wait_until="networkidle")
        yield page, problems
    finally:
        await context.close()


# Property: the home page and a reference page render, with no console error and no failed request,
# into a screenshot that is not blank.
@pytest.mark.parametrize(
    ("name", "path", "heading"),
    [("home", "", "Build a ChatKit server in Python"), ("production", "references/production/", "Production")],
)
async def test_pages_render_without_console_errors(
    browser: Browser,  # noqa: F811
    site_url: str,
    name: str,
    path: str,
    heading: str,
) -> None:
    async with open_page(browser, f"{site_url}/{path}") as (page, problems):
        await expect(page.locator("article h1").first).to_contain_text(heading)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        png = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=png)
    assert problems == []
    assert distinct_colours(png) > 100, f"{png} looks blank"


async def test_the_home_page_is_for_people(browser: Browser, site_url: str) -> None:  # noqa: F811
    async with open_page(browser, f"{site_url}/") as (page, problems):
        assert "SKILL" not in await page.title()
        await expect(page.locator("article h1")).to_contain_text("Build a ChatKit server in Python")
        sections = page.locator("nav.md-nav--primary > ul > li > label, nav.md-nav--primary > ul > li > a")
        assert [t.strip() for t in await sections.all_inner_texts()] == OUTCOMES
        await expect(page.locator("article")).to_contain_text("make run")
    assert problems == []


# Property: the level decision tree fits its box on a laptop (on its 6 lines) and on a phone (wrapped).
@pytest.mark.parametrize(("width", "max_lines"), [(1280, 6), (390, 12)])
async def test_the_decision_tree_never_scrolls_sideways(
    browser: Browser,  # noqa: F811
    site_url: str,
    width: int,
    max_lines: int,
) -> None:
    async with open_page(browser, f"{site_url}/skill/", width=width) as (page, problems):
        code = page.locator("pre", has_text="Does the user want").locator("code")
        scroll, client, height, line = await code.evaluate(
            "e => [e.scrollWidth, e.clientWidth, e.getBoundingClientRect().height,"
            " parseFloat(getComputedStyle(e).lineHeight)]"
        )
    assert scroll <= client
    assert height / line < max_lines + 1  # padding adds less than a line
    assert problems == []


async def test_search_finds_a_page(browser: Browser, site_url: str) -> None:  # noqa: F811
    async with open_page(browser, f"{site_url}/") as (page, problems):
        await page.locator("input.md-search__input").click()
        await page.keyboard.type("JWKS")  # keystrokes: the search box listens for key events
        results = page.locator(".md-search-result__item")
        await expect(results.first).to_be_visible(timeout=15_000)  # the index loads in a web worker
        await expect(results.first).to_contain_text("JWKS")
    assert problems == []


# Property: an example file's copy button puts the real file, byte for byte, on the clipboard.
async def test_the_copy_button_copies_the_example_file(browser: Browser, site_url: str) -> None:  # noqa: F811
    async with open_page(browser, f"{site_url}/code/level1/") as (page, problems):
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.locator('button[data-md-type="copy"]').first.click()
        copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() == strip_markers((ROOT / "examples/level1/app.py").read_text()).strip()
    assert problems == []


def strip_markers(source: str) -> str:
    """The file as the site shows it: without the `# --8<--` lines that mark doc regions."""
    return "".join(line for line in source.splitlines(keepends=True) if "# --8<-- [" not in line)
