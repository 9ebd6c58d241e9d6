"""Level 3 dictation (input.transcribe) over HTTP: the real openai client reaches the scripted server's
/v1/audio/transcriptions; bad input gets a 4xx before any audio leaves the server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from chatkit_protocol import CHATKIT, request
from level3.app import create_app
from scripted_model_server import ScriptedModel
from test_level3 import running, settings_for

AUDIO = b"\x1aE\xdf\xa3" + bytes(range(256)) * 4  # a WebM header and some bytes: the scripted API only counts them


@pytest.fixture
async def client(pg_dsn: str, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(pg_dsn, max_audio_bytes=4096, transcription_model="whisper-test")
    async with running(create_app(settings)) as client:
        yield client


def transcribe(audio_base64: str, mime_type: str = "audio/webm;codecs=opus") -> dict:
    return request("input.transcribe", audio_base64=audio_base64, mime_type=mime_type)


async def test_dictation_returns_the_transcript_from_the_audio_api(
    client: httpx.AsyncClient, model: ScriptedModel
) -> None:
    response = await client.post(CHATKIT, json=transcribe(base64.b64encode(AUDIO).decode()))
    assert response.status_code == 200, response.text
    assert response.json() == {"text": f"Transcript of {len(AUDIO)} bytes of audio/webm"}
    assert model.transcriptions == [
        {"model": "whisper-test", "filename": "dictation.webm", "content_type": "audio/webm", "size": len(AUDIO)}
    ]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (transcribe("not base64!!"), 400, "invalid_audio"),
        (transcribe("QUJ"), 400, "invalid_audio"),  # padding missing
        (transcribe(""), 400, "invalid_audio"),
        (transcribe(base64.b64encode(b"x" * 5000).decode()), 413, "too_large"),
        (transcribe(base64.b64encode(AUDIO).decode(), "video/mp4"), 415, "unsupported_type"),
        (transcribe(base64.b64encode(AUDIO).decode(), ""), 415, "unsupported_type"),
    ],
    ids=["not-base64", "bad-padding", "empty", "too-long", "video", "no-type"],
)
async def test_bad_audio_is_refused_before_it_reaches_the_api(
    client: httpx.AsyncClient, model: ScriptedModel, body: dict, status: int, code: str
) -> None:
    response = await client.post(CHATKIT, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert model.transcriptions == []


async def test_an_outage_of_the_audio_api_is_a_502_not_a_crash(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.fail_next(401)  # a wrong key; an outage (5xx, after the client's retries) ends the same way
    response = await client.post(CHATKIT, json=transcribe(base64.b64encode(AUDIO).decode()))
    assert response.status_code == 502 and response.json()["error"] == "upstream_error"
    assert "Traceback" not in response.text


async def test_audio_the_api_cannot_read_is_a_400(client: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.fail_next(400)  # what the real API answers for bytes that aren't audio
    response = await client.post(CHATKIT, json=transcribe(base64.b64encode(AUDIO).decode()))
    assert response.status_code == 400 and response.json()["error"] == "invalid_audio"
