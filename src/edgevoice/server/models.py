"""The served models, family-neutral: each bundle is a pool of synthesizers that requests lease one at a time,
and voices are whatever the family's synthesizer accepts.

Everything here goes through the interface every family exposes (`families.py`): `voice_for(voice=, speaker=,
prompt=)`, `default_options.with_overrides(...)`, `stream(text, voice, language=, options=)`, and, where a family
clones voices, `create_voice(clip, ...)` and the voice's `save(path)`. Built-in speakers are the synthesizer's
`speakers` list when it has one. No family is named.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import os
import secrets
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pydantic

from ..errors import EdgevoiceError, OptionsError, TextError, VoiceError
from ..families import load
from .config import VOICE_NAME, Limits, ServerConfig
from .formats import Encoder, Format, encode_whole

VOICE_SUFFIX = ".npz"


class ApiError(Exception):
    """A request the server answers with a 4xx/5xx JSON error (OpenAI's shape)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_value"

    def __init__(self, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code = code or self.code
        self.param = param


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "already_exists"


class QueueFull(ApiError):
    status, type, code = 429, "server_busy", "queue_full"


class QueueTimeout(ApiError):
    status, type, code = 503, "server_busy", "queue_timeout"


# ------------------------------------------------------------------------------------------------ pool


class SynthesizerPool:
    """N synthesizers lent to one request at a time; at most `queue_size` requests wait, each at most `timeout`
    seconds. Loop-agnostic (no asyncio object is made before it is needed), so one pool outlives event loops."""

    def __init__(self, synthesizers: list, queue_size: int, timeout: float):
        self.size = len(synthesizers)
        self._free = collections.deque(synthesizers)
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self.queue_size, self.timeout = queue_size, timeout

    @property
    def waiting(self) -> int:
        return sum(not w.done() for w in self._waiters)

    @property
    def busy(self) -> int:
        return self.size - len(self._free)

    async def acquire(self):
        if self._free and not self.waiting:
            return self._free.popleft()
        if self.waiting >= self.queue_size:
            raise QueueFull(f"all {self.size} synthesizers are busy and {self.queue_size} requests are waiting; "
                            "retry shortly")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, self.timeout)
        except asyncio.TimeoutError:
            raise QueueTimeout(f"no synthesizer became free within {self.timeout:g} s; retry later") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, synthesizer) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(synthesizer)
                return
        self._free.append(synthesizer)


# ------------------------------------------------------------------------------------------------ voices


class VoiceStore:
    """Voice files `<name>.npz` in one folder. Names are validated before any path is made, and new voices are
    linked into place (never replacing one), so concurrent uploads (or replicas sharing the folder) cannot
    clobber each other."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder is not None else None

    def path(self, name: str) -> Path | None:
        if self.folder is None or not VOICE_NAME.fullmatch(name):
            return None
        return self.folder / f"{name}{VOICE_SUFFIX}"

    def names(self) -> list[str]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob(f"*{VOICE_SUFFIX}")
                      if VOICE_NAME.fullmatch(p.stem) and p.is_file())

    def save(self, name: str, voice) -> Path:
        final = self.path(name)
        if final is None:
            raise ApiError("this server has no --voices folder to keep new voices in", code="no_voice_folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.folder / f".{name}.{secrets.token_hex(8)}.partial"
        try:
            voice.save(temp)
            os.link(temp, final)  # fails if the name exists: no check-then-write race
        except FileExistsError:
            raise Conflict(f"a voice named {name!r} already exists") from None
        finally:
            temp.unlink(missing_ok=True)
        return final


# ------------------------------------------------------------------------------------------------ options


@functools.lru_cache(maxsize=None)
def _option_types(options_class: type) -> dict[str, pydantic.TypeAdapter]:
    hints = typing.get_type_hints(options_class)
    return {f.name: pydantic.TypeAdapter(hints[f.name]) for f in fields(options_class)}


INT_LIMIT = 2 ** 31  # sampling integers beyond this are mistakes, and numpy would overflow on some


OPENAI_NEUTRAL = {"speed": 1.0}  # OpenAI's speech fields whose value here means "as the model speaks anyway"


def options_for(defaults, given: dict[str, Any]):
    """The model's defaults with the request's options, each checked against the option's declared type (a JSON
    body carries any type); unknown names are the family's OptionsError."""
    types = _option_types(type(defaults))
    checked = {}
    for name, value in given.items():
        if name not in types and OPENAI_NEUTRAL.get(name, object()) == value:
            continue  # OpenAI's field at its neutral value asks nothing of a model that lacks the option
        if value is None or name not in types:
            checked[name] = value
            continue
        try:
            value = types[name].validate_python(value, strict=True)
        except pydantic.ValidationError as exc:
            raise OptionsError(f"{name}: {exc.errors()[0]['msg'].lower()}") from None
        if isinstance(value, int) and name != "seed" and not -INT_LIMIT < value < INT_LIMIT:
            raise OptionsError(f"{name} {value} is out of range")
        checked[name] = value
    return defaults.with_overrides(**checked)


def _accepts(function, name: str) -> bool:
    return name in inspect.signature(function).parameters


# ------------------------------------------------------------------------------------------------ speech


@dataclass
class SpeechSpec:
    """One request's synthesis, as checked by the app."""

    text: str
    voice: str | None
    prompt: str | None
    language: str | None
    options: dict[str, Any]
    format: Format
    streaming: bool
    output_rate: int | None
    prompt_field: str = "prompt"  # the request's name for `prompt` (OpenAI's is "instructions")


class SpeechJob:
    """A request's audio on a leased synthesizer: encoded bytes as chunks are produced, stopping at the duration
    limit. `next_bytes` runs in a worker thread; `None` means done."""

    def __init__(self, chunks: Iterator, sample_rate: int, spec: SpeechSpec, max_seconds: float):
        self._chunks = chunks
        self.sample_rate = sample_rate
        self.spec = spec
        self._budget = int(max_seconds * sample_rate)
        self.samples = 0
        self.done = False
        self._parts: list[np.ndarray] = []  # a whole file's audio so far
        self._encoder = Encoder(spec.format, sample_rate, spec.output_rate) if spec.streaming else None
        self.output_rate = (self._encoder.rate if self._encoder
                            else spec.output_rate or spec.format.output_rate(sample_rate))

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate

    def _next_audio(self) -> np.ndarray | None:
        if self.samples >= self._budget:
            return None
        chunk = next(self._chunks, None)
        if chunk is None:
            if not self.samples:  # pauses are audio too: every sentence ended at once (options the model can't use)
                raise TextError("the model produced no audio for this text with these options")
            return None
        audio = np.asarray(chunk.audio, np.float32)[: self._budget - self.samples]
        self.samples += audio.size
        return audio

    @property
    def building(self) -> bool:
        """A whole file still being made: `next_bytes` returns b"" per chunk until the last call encodes it."""
        return self._encoder is None and not self.done

    def next_bytes(self) -> bytes | None:
        if self.done:
            return None
        if self._encoder is None:  # whole file: one chunk per call (the caller may stop between), then one encode
            audio = self._next_audio()
            if audio is not None:
                self._parts.append(audio)
                return b""
            self.done = True
            audio = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
            return encode_whole(audio, self.sample_rate, self.spec.format, self.spec.output_rate)[0]
        while True:
            audio = self._next_audio()
            if audio is None:
                self.done = True
                return self._encoder.close()
            if not audio.size:  # nothing to encode: a wav header alone would start a 200 with no audio after it
                continue
            data = self._encoder.feed(audio)
            if data:
                return data

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()  # a generator stops before its next fragment


class ServedModel:
    """One bundle behind a model name: `workers` synthesizers, its built-in speakers and the voice files that fit
    it."""

    def __init__(self, name: str, synthesizers: list, limits: Limits, voices: VoiceStore):
        first = synthesizers[0]
        self.name = name
        self.synthesizers = synthesizers
        self.pool = SynthesizerPool(synthesizers, limits.queue_size, limits.queue_timeout)
        self.limits = limits
        self.store = voices
        self.family = first.bundle.manifest.family
        self.sample_rate = int(first.sample_rate)
        self.speakers = tuple(getattr(first, "speakers", ()) or ())
        self._speaker_set = frozenset(self.speakers)
        self.clones = hasattr(first, "create_voice")
        self._voices: dict[str, tuple[float, Any]] = {}  # file voices: name → (mtime, voice or None if unfit)

    @classmethod
    def load(cls, name: str, path: Path, config: ServerConfig, voices: VoiceStore) -> "ServedModel":
        threads = config.synthesizer_threads()
        synthesizers = [load(path, backend=config.backend, threads=threads, cache_dir=config.cache_dir,
                             long_running=True) for _ in range(config.workers)]
        return cls(name, synthesizers, config.limits, voices)

    def describe(self) -> dict:
        manifest = self.synthesizers[0].bundle.manifest
        return {"id": self.name, "object": "model", "created": 0, "owned_by": "edgevoice",
                "family": self.family, "upstream_version": manifest.upstream_version,
                "sample_rate": self.sample_rate, "voice_cloning": self.clones, "speakers": len(self.speakers),
                "workers": self.pool.size, "defaults": asdict(self.synthesizers[0].default_options)}

    # ---------------------------------------------------------------- voices

    def file_voice(self, name: str):
        """The voice file `name` loaded for this model, or None when there is none or it was made for another
        model. Loaded once, again when the file changes."""
        path = self.store.path(name)
        try:
            mtime = path.stat().st_mtime if path is not None else None
        except OSError:
            mtime = None
        if mtime is None:
            self._voices.pop(name, None)
            return None
        cached = self._voices.get(name)
        if cached is None or cached[0] != mtime:
            try:
                voice = self.synthesizers[0].voice_for(voice=path)
            except EdgevoiceError:
                voice = None  # another model's voice, or not a voice file at all
            cached = self._voices[name] = (mtime, voice)
        return cached[1]

    def voice_names(self) -> list[dict]:
        files = [{"id": n, "object": "voice", "model": self.name, "kind": "cloned"}
                 for n in self.store.names() if self.file_voice(n) is not None]
        speakers = [{"id": s, "object": "voice", "model": self.name, "kind": "built-in"} for s in self.speakers]
        return files + speakers

    def check_voice(self, name: str | None) -> None:
        """Refuse an unknown voice before the request queues (cheap: no synthesizer needed)."""
        if name is None or name in self._speaker_set or self.file_voice(name) is not None:
            return
        hint = "a built-in speaker or " if self.speakers else ""
        raise NotFound(f"model {self.name!r} has no voice {name!r}: give {hint}a voice from GET /v1/voices",
                       code="voice_not_found", param="voice")

    def check_prompt(self, spec: SpeechSpec) -> None:
        """Refuse a style prompt before the request queues where the family takes none, naming the field sent."""
        if spec.prompt is not None and not self.synthesizers[0].takes_style_prompt:
            raise ApiError(f"{spec.prompt_field}: model {self.name!r} ({self.family}) takes no style prompt; leave "
                           f"{spec.prompt_field} out", code="options_error", param=spec.prompt_field)

    def _voice(self, synth, name: str | None, prompt: str | None):
        given = {"prompt": prompt} if prompt is not None else {}
        voice = self.file_voice(name) if name is not None else None
        if voice is not None:
            return synth.voice_for(voice=voice, **given)
        if name is not None:
            given["speaker"] = name
        return synth.voice_for(**given)

    # ---------------------------------------------------------------- work (in a worker thread, synthesizer leased)

    def start(self, synth, spec: SpeechSpec) -> SpeechJob:
        """Check everything the family checks (voice, options, text) and return the job; nothing is synthesised
        until its first `next_bytes`."""
        voice = self._voice(synth, spec.voice, spec.prompt)
        options = options_for(synth.default_options, spec.options)
        keywords: dict[str, Any] = {"options": options}
        if spec.language is not None:
            keywords["language"] = spec.language
        if _accepts(synth.stream, "chunked"):
            keywords["chunked"] = spec.streaming  # a family that can emit audio within a sentence, sooner
        # GPT-SoVITS: audio while the GPT still writes; batched sentences come sentence by sentence instead
        if spec.streaming and getattr(options, "batch_size", 1) == 1 and _accepts(synth.stream, "chunk_tokens"):
            keywords["chunk_tokens"] = synth.stream_chunk_tokens
        chunks = synth.stream(spec.text, voice, **keywords)
        return SpeechJob(iter(chunks), self.sample_rate, spec, self.limits.max_audio_seconds)

    def create_voice(self, synth, clip: Path, text: str | None, language: str):
        """A voice from an uploaded clip through the family's own `create_voice`; it gets the transcript and the
        language where it takes them (what a missing transcript means is the family's business)."""
        if not self.clones:
            raise VoiceError(f"model {self.name!r} has built-in speakers and does not clone voices")
        keywords = {k: v for k, v in (("text", text), ("language", language)) if _accepts(synth.create_voice, k)}
        return synth.create_voice(clip, **keywords)


def load_models(config: ServerConfig) -> dict[str, ServedModel]:
    store = VoiceStore(config.voices_dir)
    return {name: ServedModel.load(name, path, config, store) for name, path in config.bundles.items()}
