"""POST /say: text spoken by a local voice into the live avatar's speech queue.

    curl -d '{"text": "Hello, welcome!", "voice": "joe"}' http://127.0.0.1:8080/say    # 202, queued
    curl -d '{"text": "Sorry, one moment."}' "http://127.0.0.1:8080/say?interrupt=1"

The reply is one utterance that plays as it is made: its sentences are synthesised one after
another on one worker thread and appended as each is ready, so a long reply starts as soon as
its first sentence does. Where the voice times its phones (Piper), they travel with the audio and
steer the mouth of the frames they span, as in file mode. The answer (202) comes once the
utterance is queued; an unknown voice, empty text or a missing engine is 400 with one line, a full
queue 429.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor

from aiohttp import web

from ..errors import EdgeRetalkError
from ..io.media import pcm_samples
from ..tts import Speaker, Voice
from ..tts.phonemes import MAX_TEXT, sentences
from .speech_queue import QueueFull, SpeechQueue, Utterance

log = logging.getLogger(__name__)


class SayService:
    """Text to the speech queue. The default voice loads at once, in the worker, so that the
    first request does not wait for it."""

    def __init__(self, speaker: Speaker, queue: SpeechQueue):
        self.speaker, self.queue = speaker, queue
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="tts")
        self._worker.submit(self._preload)

    def _preload(self) -> None:
        try:
            self.speaker.voice()
        except EdgeRetalkError as exc:
            log.warning("/say: %s", exc)

    def say(self, text: str, voice: str | None, interrupt: bool) -> Future:
        """Queue `text`; the future gives the answer's fields once the utterance is queued."""
        return self._worker.submit(self._open, text, voice, interrupt)

    def _open(self, text: str, voice: str | None, interrupt: bool) -> dict:
        chosen, parts = self.speaker.voice(voice), sentences(text)
        utterance = self.queue.open(interrupt)
        self._worker.submit(self._speak, chosen, parts, utterance)
        return {"id": utterance.id, "voice": chosen.name, "sentences": len(parts)}

    def _speak(self, voice: Voice, parts: list[str], utterance: Utterance) -> None:
        try:
            for sentence in parts:
                speech = voice.say(sentence)
                self.queue.extend(utterance, pcm_samples(speech.samples, speech.sample_rate), speech.phones or ())
        except EdgeRetalkError as exc:  # QueueFull included: what was said so far plays
            log.warning("/say: %s", exc)
        finally:
            self.queue.close_utterance(utterance)

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


async def post_say(request: web.Request, service: SayService | None, interrupt: bool) -> web.Response:
    """The /say handler: JSON {"text": ..., "voice": ...}."""
    if service is None:
        raise web.HTTPConflict(text="this avatar takes speech from another source; start it with "
                                    "--audio-source api to send text here\n")
    try:
        body = await request.json() if request.can_read_body else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) \
            or not isinstance(body.get("voice", ""), (str, type(None))):
        raise web.HTTPBadRequest(text='the body must be JSON: {"text": "...", "voice": "..."} (voice optional)\n')
    if len(body["text"]) > 4 * MAX_TEXT:
        raise web.HTTPRequestEntityTooLarge(4 * MAX_TEXT, len(body["text"]), text=f"at most {MAX_TEXT} characters\n")
    try:
        answer = await asyncio.wrap_future(service.say(body["text"], body.get("voice") or None, interrupt))
    except QueueFull as exc:
        raise web.HTTPTooManyRequests(text=f"{exc}\n") from None
    except EdgeRetalkError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    return web.json_response({**answer, **service.queue.state()}, status=202)
