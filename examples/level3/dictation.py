"""Dictation (input.transcribe): the composer's microphone, through the OpenAI audio transcription API.

The audio arrives base64 inside the /chatkit body, so MAX_BODY_BYTES caps it too: 1 MiB of body
carries about 768 KiB of audio, a few minutes of Opus speech.
"""

from __future__ import annotations

import base64
import binascii
import logging

import openai
from chatkit.types import AudioInput, InputTranscribeParams, TranscriptionResult

from .errors import RequestError
from .settings import Settings

logger = logging.getLogger(__name__)

# The API infers the format from the file name's extension.
EXTENSIONS = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
}


# --8<-- [start:dictation]
class Dictation:
    """Checks dictation requests at the endpoint, then transcribes with AsyncOpenAI.

    The client reads OPENAI_API_KEY and OPENAI_BASE_URL; it is created on first use, so a server
    that never transcribes never needs it.
    """

    def __init__(self, settings: Settings, client: openai.AsyncOpenAI | None = None) -> None:
        self.model = settings.transcription_model
        self.max_bytes = settings.max_audio_bytes
        self.allowed_types = frozenset(t.lower() for t in settings.allowed_audio_types)
        self._client = client

    def check(self, params: InputTranscribeParams) -> None:
        """400 for bad base64, 413 for too much audio, 415 for a format we don't send on.

        The SDK decodes leniently (it drops characters that aren't base64), so check strictly first.
        """
        media_type = params.mime_type.split(";", 1)[0].strip().lower()
        if media_type not in self.allowed_types:
            raise RequestError(415, "unsupported_type", f"{media_type!r} audio is not accepted here")
        if len(params.audio_base64) > (self.max_bytes + 2) // 3 * 4:
            raise RequestError(413, "too_large", f"audio is limited to {self.max_bytes} bytes")
        try:
            audio = base64.b64decode(params.audio_base64, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "invalid_audio", "audio_base64 is not valid base64") from None
        if not audio:
            raise RequestError(400, "invalid_audio", "the audio is empty")

    async def transcribe(self, audio: AudioInput) -> TranscriptionResult:
        self._client = self._client or openai.AsyncOpenAI()
        name = f"dictation.{EXTENSIONS.get(audio.media_type, 'webm')}"
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model, file=(name, audio.data, audio.media_type)
            )
        except openai.BadRequestError as exc:  # the API could not read the audio
            logger.info("transcription refused: %s", exc.message)
            raise RequestError(400, "invalid_audio", "the audio could not be transcribed") from None
        except openai.APIError as exc:  # an outage or a bad key: not the client's fault, and not a crash
            logger.warning("transcription failed: %s", exc)
            raise RequestError(502, "upstream_error", "the transcription service is unavailable") from None
        return TranscriptionResult(text=result.text)


# --8<-- [end:dictation]
