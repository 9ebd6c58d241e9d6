"""Level 3 attachments over HTTP against a real PostgreSQL: both upload strategies, limits, previews,
isolation, deletion, cleanup, and the model receiving the bytes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from browser import browser  # noqa: F401 - the fixture
from chatkit_protocol import CHATKIT, call, request, stream, user_input
from fastapi import FastAPI
from level3.app import add_chatkit, create_app
from level3.attachments import PostgresStoreWithAttachments, UrlSigner, sweep_unused_attachments
from level3.auth import get_current_user
from level3.context import RequestContext
from level3.store import PostgresStore, create_pool
from live_server import serve
from local_postgres import restartable_cluster
from playwright.async_api import Browser
from scripted_model_server import ScriptedModel
from test_level3 import auth, running, settings_for

# A real 1x1 PNG: the model and the browser get exactly these bytes back.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
MALLORY, OTHER_TENANT = auth("mallory", "acme"), auth("alice", "other-tenant")


@pytest.fixture
async def app(pg_dsn: str, model: ScriptedModel) -> FastAPI:
    return create_app(settings_for(pg_dsn, max_attachment_bytes=4096))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as client:
        yield client


def create_with(attachments: list[str], text: str = "look") -> dict[str, Any]:
    return {"type": "threads.create", "params": {"input": {**user_input(text), "attachments": attachments}}}


async def thread_count(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    listed = await client.post(CHATKIT, json=request("threads.list"), headers=headers)
    return len(listed.json()["data"])


async def upload(
    client: httpx.AsyncClient, data: bytes = PNG, mime: str = "image/png", name: str = "dot.png", **kwargs: Any
) -> httpx.Response:
    return await client.post("/attachments", files={"file": (name, data, mime)}, **kwargs)


async def uploaded(
    client: httpx.AsyncClient, data: bytes = PNG, mime: str = "image/png", name: str = "dot.png"
) -> dict[str, Any]:
    response = await upload(client, data, mime, name)
    assert response.status_code == 200, response.text
    return response.json()


def path_of(url: str) -> str:
    """The path and query of an absolute URL the server handed out (the test client has its own base)."""
    parts = httpx.URL(url)
    return parts.raw_path.decode()


# --- the reported bug ------------------------------------------------------------------------------


async def test_threads_create_with_an_unknown_attachment_is_404_and_creates_no_thread(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(CHATKIT, json=create_with(["atc_does_not_exist"]))
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    assert await thread_count(client) == 0


# --- direct upload ---------------------------------------------------------------------------------


async def test_direct_upload_answers_the_attachment_and_the_owner_downloads_the_bytes(
    client: httpx.AsyncClient,
) -> None:
    attachment = await uploaded(client)
    assert attachment["type"] == "image" and attachment["name"] == "dot.png" and attachment["mime_type"] == "image/png"
    assert "upload_descriptor" not in attachment and "metadata" not in attachment
    assert attachment["preview_url"].startswith("http://testserver/attachments/")
    download = await client.get(f"/attachments/{attachment['id']}")
    assert download.status_code == 200 and download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    text = await uploaded(client, b"hello", "text/plain; charset=utf-8", "note.txt")
    assert text["type"] == "file" and text["mime_type"] == "text/plain" and "preview_url" not in text


async def test_direct_upload_needs_a_token(client: httpx.AsyncClient) -> None:
    client.headers.pop("Authorization")
    response = await upload(client)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "files",
    [{"other": ("a.png", PNG, "image/png")}, {"file": (None, "just text")}],
    ids=["no-file-field", "file-is-a-plain-field"],
)
async def test_a_form_without_a_file_is_400(client: httpx.AsyncClient, files: dict[str, Any]) -> None:
    response = await client.post("/attachments", files=files)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_a_body_that_is_not_multipart_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/attachments", content=b"raw bytes", headers={"Content-Type": "image/png"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --- two-phase upload ------------------------------------------------------------------------------


async def two_phase_create(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    body = {"name": "dot.png", "size": len(PNG), "mime_type": "image/png"} | params
    return await client.post(CHATKIT, json=request("attachments.create", **body))


async def test_two_phase_upload_creates_then_receives_the_bytes_at_a_signed_url(client: httpx.AsyncClient) -> None:
    created = (await two_phase_create(client)).json()
    descriptor = created["upload_descriptor"]
    assert descriptor["method"] == "POST" and "signature=" in descriptor["url"]
    # Before the bytes arrive, a message cannot use it.
    early = await client.post(CHATKIT, json=create_with([created["id"]]))
    assert early.status_code == 409 and early.json()["error"] == "conflict"
    assert await thread_count(client) == 0
    # The client posts the form without a token: the signature is the permission.
    anonymous = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    done = await anonymous.post(path_of(descriptor["url"]), files={"file": ("dot.png", PNG, "image/png")})
    assert done.status_code == 200, done.text
    assert done.json()["id"] == created["id"] and "upload_descriptor" not in done.json()
    assert (await client.get(f"/attachments/{created['id']}")).content == PNG
    again = await anonymous.post(path_of(descriptor["url"]), files={"file": ("dot.png", PNG, "image/png")})
    assert again.status_code == 409
    forged = path_of(descriptor["url"]).replace("signature=", "signature=x")
    assert (await anonymous.post(forged, files={"file": ("a", PNG, "image/png")})).status_code == 403
    events = await stream(client, create_with([created["id"]]))
    assert events[0]["type"] == "thread.created"


# --- limits ----------------------------------------------------------------------------------------


async def test_size_and_type_limits_are_413_and_415_for_both_strategies(client: httpx.AsyncClient) -> None:
    big = await upload(client, b"x" * 5000, "text/plain", "big.txt")
    assert big.status_code == 413 and big.json()["error"] == "too_large"
    html = await upload(client, b"<script>alert(1)</script>", "text/html", "x.html")
    assert html.status_code == 415 and html.json()["error"] == "unsupported_type"
    svg = await two_phase_create(client, mime_type="image/svg+xml", name="x.svg")
    assert svg.status_code == 415 and svg.json()["error"] == "unsupported_type"
    huge = await two_phase_create(client, size=10**12)
    assert huge.status_code == 413 and huge.json()["error"] == "too_large"
    # The declared size is only a promise: the upload itself is measured too.
    created = (await two_phase_create(client, size=10)).json()
    anonymous = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    over = await anonymous.post(path_of(created["upload_descriptor"]["url"]), files={"file": ("a", b"x" * 5000)})
    assert over.status_code == 413
    negative = await two_phase_create(client, size=-1)
    assert negative.status_code == 400


async def test_a_name_postgresql_cannot_store_is_400(client: httpx.AsyncClient) -> None:
    response = await two_phase_create(client, name="a\u0000b.png")
    assert response.status_code == 400 and response.json()["error"] == "invalid_text"


# --- previews --------------------------------------------------------------------------------------


async def test_the_preview_url_serves_the_image_without_a_token_until_it_expires(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    attachment = await uploaded(client)
    anonymous = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)  # an <img> sends no token
    preview = await anonymous.get(path_of(attachment["preview_url"]))
    assert preview.status_code == 200 and preview.content == PNG
    assert preview.headers["content-type"] == "image/png" and preview.headers["x-content-type-options"] == "nosniff"
    signer: UrlSigner = app.state.attachments.signer
    past = UrlSigner(signer.secret, ttl=-1)
    expired = await anonymous.get(path_of(past.url("http://testserver", "preview", attachment["id"])))
    assert expired.status_code == 403 and expired.json()["error"] == "forbidden"
    tampered = path_of(attachment["preview_url"]).replace("expires=", "expires=9")
    assert (await anonymous.get(tampered)).status_code == 403
    other_id = path_of(attachment["preview_url"]).replace(attachment["id"], "atc_other")
    assert (await anonymous.get(other_id)).status_code == 403  # a signature covers one attachment only


async def test_a_reloaded_thread_carries_a_working_preview_url(client: httpx.AsyncClient) -> None:
    attachment = await uploaded(client)
    events = await stream(client, create_with([attachment["id"]]))
    thread_id = events[0]["thread"]["id"]
    thread = await call(client, request("threads.get_by_id", thread_id=thread_id))
    [sent] = thread["items"]["data"][0]["attachments"]
    assert sent["id"] == attachment["id"] and sent["thread_id"] == thread_id
    anonymous = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    assert (await anonymous.get(path_of(sent["preview_url"]))).content == PNG


# --- isolation -------------------------------------------------------------------------------------


async def test_another_users_attachment_is_404_everywhere(client: httpx.AsyncClient) -> None:
    attachment = await uploaded(client)
    for intruder in (MALLORY, OTHER_TENANT):
        assert (await client.get(f"/attachments/{attachment['id']}", headers=intruder)).status_code == 404
        used = await client.post(CHATKIT, json=create_with([attachment["id"]]), headers=intruder)
        assert used.status_code == 404 and used.json()["error"] == "not_found"
        assert await thread_count(client, intruder) == 0
        deleted = await client.post(
            CHATKIT, json=request("attachments.delete", attachment_id=attachment["id"]), headers=intruder
        )
        assert deleted.status_code == 404 and deleted.json()["error"] == "not_found"
    assert (await client.get(f"/attachments/{attachment['id']}")).content == PNG  # untouched


# --- the model gets the bytes ----------------------------------------------------------------------


async def test_the_model_receives_the_image_the_pdf_and_the_text(
    client: httpx.AsyncClient, model: ScriptedModel
) -> None:
    image = await uploaded(client)
    pdf = await uploaded(client, PDF, "application/pdf", "doc.pdf")
    note = await uploaded(client, "café notes".encode(), "text/plain", "notes.txt")
    await stream(client, create_with([image["id"], pdf["id"], note["id"]], "what is this?"))
    [message] = [i for i in model.requests[-1]["input"] if i.get("role") == "user"]
    parts = message["content"]
    assert parts[0] == {"type": "input_text", "text": "what is this?"}
    assert parts[1] == {
        "type": "input_image",
        "detail": "auto",
        "image_url": "data:image/png;base64," + base64.b64encode(PNG).decode(),
    }
    assert parts[2]["type"] == "input_file" and parts[2]["filename"] == "doc.pdf"
    assert parts[2]["file_data"] == "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    assert parts[3] == {"type": "input_text", "text": "Attached file 'notes.txt':\ncafé notes"}


# --- delete and cleanup ----------------------------------------------------------------------------


async def test_attachments_delete_removes_metadata_and_bytes(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    attachment = await uploaded(client)
    assert await call(client, request("attachments.delete", attachment_id=attachment["id"])) == {}
    assert (await client.get(f"/attachments/{attachment['id']}")).status_code == 404
    assert (await client.post(CHATKIT, json=create_with([attachment["id"]]))).status_code == 404
    again = await client.post(CHATKIT, json=request("attachments.delete", attachment_id=attachment["id"]))
    assert again.status_code == 404


async def test_a_message_whose_attachment_was_deleted_still_reaches_the_model(
    client: httpx.AsyncClient, model: ScriptedModel
) -> None:
    attachment = await uploaded(client)
    thread_id = (await stream(client, create_with([attachment["id"]])))[0]["thread"]["id"]
    await call(client, request("attachments.delete", attachment_id=attachment["id"]))
    add = {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input("and now?")}}
    await stream(client, add)
    first = next(i for i in model.requests[-1]["input"] if i.get("role") == "user")
    assert first["content"][1] == {"type": "input_text", "text": "[The attachment 'dot.png' was deleted.]"}


async def test_unused_uploads_are_swept_and_a_deleted_threads_attachments_go_with_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    unused, used = await uploaded(client), await uploaded(client)
    thread_id = (await stream(client, create_with([used["id"]])))[0]["thread"]["id"]
    pool = app.state.pool
    assert await sweep_unused_attachments(pool, timedelta(hours=1)) == 0  # both are fresh
    assert await sweep_unused_attachments(pool, timedelta(0)) == 1
    assert (await client.get(f"/attachments/{unused['id']}")).status_code == 404
    assert (await client.get(f"/attachments/{used['id']}")).content == PNG
    await call(client, request("threads.delete", thread_id=thread_id))
    assert (await client.get(f"/attachments/{used['id']}")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM chatkit_attachment_blobs") == 0


async def test_every_upload_sweeps_what_is_older_than_the_ttl(pg_dsn: str, model: ScriptedModel) -> None:
    async with running(create_app(settings_for(pg_dsn, attachment_ttl_seconds=0))) as client:
        first = await uploaded(client)
        await uploaded(client)
        assert (await client.get(f"/attachments/{first['id']}")).status_code == 404


# --- off -------------------------------------------------------------------------------------------


async def test_without_a_url_secret_attachments_are_not_enabled(pg_dsn: str, model: ScriptedModel) -> None:
    app = create_app(settings_for(pg_dsn, jwt_secret="", jwks_url="http://127.0.0.1:9/jwks"))
    app.dependency_overrides[get_current_user] = lambda: RequestContext(user_id="alice", tenant_id="acme")
    async with running(app) as client:
        for body in (
            request("attachments.create", name="a.png", size=1, mime_type="image/png"),
            request("attachments.delete", attachment_id="atc_x"),
        ):
            response = await client.post(CHATKIT, json=body)
            assert response.status_code == 400 and response.json()["error"] == "not_enabled", response.text
        direct = await upload(client)
        assert direct.status_code == 400 and direct.json()["error"] == "not_enabled"


async def test_an_id_postgresql_cannot_hold_is_404_not_500(client: httpx.AsyncClient) -> None:
    # NUL: valid JSON, but no PostgreSQL text holds it. In a body it is 400 invalid_text, like NUL
    # anywhere (boundary.py; a lone surrogate too); in the download path it is an unknown id.
    for body in (create_with(["atc_\u0000"]), request("attachments.delete", attachment_id="atc_\u0000")):
        response = await client.post(CHATKIT, json=body)
        assert response.status_code == 400 and response.json()["error"] == "invalid_text", response.text
    assert (await client.get("/attachments/atc_%00")).status_code == 404
    assert await thread_count(client) == 0


# --- a real browser --------------------------------------------------------------------------------


async def test_a_browser_shows_the_preview_from_another_instance_and_refuses_a_forged_one(
    pg_dsn: str,
    model: ScriptedModel,
    browser: Browser,  # noqa: F811 - the fixture
) -> None:
    # Two instances share the database and the secret (derived from JWT_SECRET), as behind a load balancer.
    settings = settings_for(pg_dsn)
    with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        async with httpx.AsyncClient(base_url=first, headers=auth()) as http:
            response = await http.post("/attachments", files={"file": ("dot.png", PNG, "image/png")})
        preview = response.json()["preview_url"]
        assert preview.startswith(first)
        on_second = preview.replace(first, second)
        forged = on_second.replace("signature=", "signature=A")
        context = await browser.new_context()
        try:
            page = await context.new_page()
            images = "".join(
                f'<img data-name="{name}" src="{url}" onload="done(this, this.naturalWidth)" onerror="done(this, 0)">'
                for name, url in (("preview", on_second), ("forged", forged))
            )
            script = "<script>const results = []; const done = (img, w) => results.push(img.dataset.name + ':' + w)"
            script += "</script>"
            await page.set_content(f"<html><body>{script}{images}</body></html>")
            await page.wait_for_function("results.length === 2")
            results = await page.evaluate("results")
        finally:
            await context.close()
    assert sorted(results) == ["forged:0", "preview:1"]  # 0: the image failed to load


@pytest.mark.parametrize("with_attachments", [True, False], ids=["store-with-attachments", "plain-store"])
async def test_an_app_with_its_own_pool_chooses_attachments_by_its_store(
    pg_dsn: str, model: ScriptedModel, with_attachments: bool
) -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await create_pool(pg_dsn)
        yield
        await app.state.db.close()

    existing = FastAPI(lifespan=lifespan)
    kind = PostgresStoreWithAttachments if with_attachments else PostgresStore
    add_chatkit(existing, settings_for(pg_dsn), store=lambda app: kind(app.state.db))
    async with running(existing) as client:
        response = await upload(client)
        if with_attachments:
            assert response.status_code == 200 and response.json()["type"] == "image"
        else:
            assert response.status_code == 400 and response.json()["error"] == "not_enabled"
            message = await client.post(CHATKIT, json=create_with(["atc_x"]))
            assert message.status_code == 400 and message.json()["error"] == "not_enabled"


async def test_a_database_outage_is_a_503_on_the_attachment_routes(model: ScriptedModel) -> None:
    with restartable_cluster() as cluster:
        async with running(create_app(settings_for(cluster.url, database_timeout=2.0))) as client:
            attachment = await uploaded(client)
            cluster.stop()
            anonymous = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
            for response in (
                await upload(client),
                await client.get(f"/attachments/{attachment['id']}"),
                await anonymous.get(path_of(attachment["preview_url"])),
            ):
                assert response.status_code == 503 and response.json()["error"] == "unavailable", response.text
                assert response.headers["retry-after"] == "2"
            cluster.start()
            assert (await client.get(f"/attachments/{attachment['id']}")).content == PNG
