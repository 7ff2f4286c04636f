"""The FastAPI application: OpenAI's `/v1/audio/speech` and `/v1/models`, voices, health, metrics and the web page.

Every error is JSON in OpenAI's shape, `{"error": {"message", "type", "code", "param"}}`: 4xx for the caller's
mistakes (the runtime's `EdgevoiceError`s, validation, sizes), 429/503 when a model's queue is full or a request
waited too long, 500 only for a bug or a broken bundle. A speech request is checked, queued for a synthesizer and
run up to its first audio before the status line is sent, so anything wrong with it is still a 4xx; after that the
audio streams (chunked) as it is produced, and a client that goes away stops the synthesis before its next
fragment.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib.resources
import logging
import re
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Literal

import anyio
import soundfile
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import AudioError, BundleError, EdgevoiceError
from .config import VOICE_NAME, ServerConfig
from .formats import available_formats
from .metrics import ServerMetrics
from .models import ApiError, Conflict, NotFound, ServedModel, SpeechSpec, load_models

log = logging.getLogger("edgevoice.server")
VOICES_ROUTE = "/v1/voices"
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around an uploaded clip
CLIENT_CLOSED_REQUEST = 499  # the status nginx logs for a request whose client left before the answer


class Unauthorized(ApiError):
    status, code = 401, "invalid_api_key"


class TooLarge(ApiError):
    status, code = 413, "request_too_large"


class SpeechRequest(BaseModel):
    """OpenAI's speech request plus edgevoice's fields; any other field is a synthesis option of the model (e.g.
    `top_k`, `max_tokens`, `sentence_pause`: `GET /v1/models` lists each model's)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(max_length=64, description="a model id from GET /v1/models")
    input: str = Field(description="the text to speak")
    voice: str | None = Field(None, max_length=64, description="a voice from GET /v1/voices (a cloned voice or a "
                                                                "built-in speaker); a model with speakers "
                                                                "defaults to its first")
    response_format: str | None = Field(None, description="wav, pcm, flac, mp3 or opus (those this server's "
                                                          "libsndfile writes); default mp3, else wav")
    speed: float | None = Field(None, description="speech rate, 0.25–4")
    stream: bool = Field(True, description="send audio as it is produced (chunked); false: one complete file")
    stream_format: Literal["audio"] | None = Field(None, description="OpenAI's; only raw audio is streamed")
    language: str | None = Field(None, max_length=16, description="language of the text (the model's default)")
    seed: int | None = Field(None, description="random seed: same seed, same audio")
    prompt: str | None = Field(None, max_length=2000, description="style prompt, for models that take one")
    instructions: str | None = Field(None, max_length=2000, description="OpenAI's name for the style prompt")
    sample_rate: int | None = Field(None, ge=8000, le=48000, description="resample the audio to this rate")


# ------------------------------------------------------------------------------------------------ errors


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status in (429, 503) else {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    _count_error(request, exc.code)
    return JSONResponse(error_body(str(exc), exc.type, exc.code, exc.param), exc.status, headers=headers)


def error_code(exc: EdgevoiceError) -> str:
    """The kind of error, as `edgevoice.errors` names it: text_error, voice_error, audio_error, options_error... (a
    family's own subclass, e.g. MetaVoice's `ReferenceTooShort`, reports the kind it belongs to)."""
    kind = next(c for c in type(exc).__mro__ if c.__module__ == EdgevoiceError.__module__)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()


def _edgevoice_error(request: Request, exc: EdgevoiceError) -> JSONResponse:
    if isinstance(exc, BundleError):  # the operator's bundle, not the caller's request
        log.error("bundle error while serving %s: %s", request.url.path, exc)
        _count_error(request, "bundle_error")
        return JSONResponse(error_body("the model's bundle failed; see the server log", "server_error",
                                       "bundle_error"), 500)
    code = error_code(exc)
    _count_error(request, code)
    return JSONResponse(error_body(str(exc), "invalid_request_error", code), 400)


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # a bug (or a bundle broken in a way no check foresaw): the caller gets the API's JSON error, the log the
    # traceback (Starlette logs the exception again after this answer has gone out)
    log.error("unexpected %s while serving %s: %s", type(exc).__name__, request.url.path, exc)
    _count_error(request, "internal_error")
    return JSONResponse(error_body("internal error; see the server log", "server_error", "internal_error"), 500)


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "")
        message = f"the request body is not valid JSON{f' ({reason})' if reason else ''}"
        _count_error(request, "invalid_json")
        return JSONResponse(error_body(message, "invalid_request_error", "invalid_json"), 400)
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    code = "missing_field" if first.get("type") == "missing" else "invalid_value"
    message = f"{'.'.join(where)}: {first['msg']}" if where else first["msg"]
    _count_error(request, code)
    return JSONResponse(error_body(message, "invalid_request_error", code, ".".join(where) or None), 400)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    _count_error(request, code)
    return JSONResponse(error_body(str(exc.detail), "invalid_request_error", code), exc.status_code,
                        headers=getattr(exc, "headers", None))


def _count_error(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.inc(code)


# ------------------------------------------------------------------------------------------------ middleware


class Guard:
    """Outermost ASGI layer: bounds request bodies before any parser sees them (a declared length is refused at
    once, an undeclared one is read up to the limit and replayed), and counts responses by route and status."""

    def __init__(self, app, limits, metrics: ServerMetrics, instance: str | None = None):
        self.app, self.limits, self.metrics = app, limits, metrics
        # which replica answered (behind a load balancer): a response header
        self.instance_header = [(b"x-edgevoice-instance", instance.encode())] if instance else []

    def _limit(self, path: str) -> int:
        if path == VOICES_ROUTE:
            return self.limits.max_upload_bytes + MULTIPART_OVERHEAD
        return self.limits.max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})["started"] = time.monotonic()
        status = {"code": 500}

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": list(message.get("headers", [])) + self.instance_header}
            await send(message)

        limit = self._limit(scope["path"])
        try:
            receive = await self._bounded(scope, receive, limit)
        except _Oversized:
            await self._refuse(counted_send, limit)
        else:
            await self.app(scope, receive, counted_send)
        finally:
            route = scope.get("route")
            self.metrics.requests.inc(getattr(route, "path", "other"), str(status["code"]))

    async def _bounded(self, scope, receive, limit: int):
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _Oversized
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return receive
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                raise _Oversized
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return replay

    async def _refuse(self, send, limit: int) -> None:
        self.metrics.errors.inc("request_too_large")
        body = JSONResponse(error_body(f"the request body is larger than {limit} bytes", "invalid_request_error",
                                       "request_too_large"), 413, headers={"Connection": "close"})
        await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
        await send({"type": "http.response.body", "body": body.body})


class _Oversized(Exception):
    pass


class _StreamedAudio(StreamingResponse):
    """A streaming response whose body is always closed, also when the client went away mid-stream (the close
    releases the synthesizer)."""

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


# ------------------------------------------------------------------------------------------------ the app


class Server:
    """What the routes share: the models, the config, the metrics and a private folder for uploads."""

    def __init__(self, config: ServerConfig, models: dict[str, ServedModel]):
        self.config, self.models, self.limits = config, models, config.limits
        self.formats = available_formats()
        self.default_format = "mp3" if "mp3" in self.formats else "wav"
        self.metrics = ServerMetrics(lambda: {(n,): m.pool.waiting for n, m in models.items()},
                                     lambda: {(n,): m.pool.busy for n, m in models.items()})
        self._upload_dir: Path | None = None

    @property
    def upload_dir(self) -> Path:
        """A private folder (0700) for clips being analysed, made at the first upload; removed at shutdown, or at
        exit when the server is stopped without one (a killed replica)."""
        if self._upload_dir is None:
            self._upload_dir = Path(tempfile.mkdtemp(prefix="edgevoice-uploads-"))
            weakref.finalize(self, shutil.rmtree, self._upload_dir, True)
        return self._upload_dir

    def close(self) -> None:
        if self._upload_dir is not None:
            shutil.rmtree(self._upload_dir, ignore_errors=True)

    def model(self, name: str) -> ServedModel:
        if name not in self.models:
            raise NotFound(f"no model {name!r} (this server has {', '.join(sorted(self.models))})",
                           code="model_not_found", param="model")
        return self.models[name]

    def authorize(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # compare_digest takes as long for any wrong key of a given length: no timing oracle
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise Unauthorized("a valid API key is required: Authorization: Bearer KEY")

    def spec(self, body: SpeechRequest) -> SpeechSpec:
        fmt_name = body.response_format or self.default_format
        if fmt_name not in self.formats:
            raise ApiError(f"response_format {fmt_name!r} is not available here (choose from "
                           f"{', '.join(self.formats)})", param="response_format")
        if not body.input.strip():
            raise ApiError("input is empty: give the text to speak", param="input")
        for name in ("input", "prompt", "instructions"):  # JSON admits lone surrogates; no text holds them
            value = getattr(body, name)
            if value is not None and not value.isascii() and _has_surrogates(value):
                raise ApiError(f"{name} is not valid Unicode (it holds a lone surrogate)", param=name)
        if len(body.input) > self.limits.max_text_chars:
            raise ApiError(f"input is {len(body.input)} characters long; the limit is {self.limits.max_text_chars}",
                           code="text_too_long", param="input")
        options: dict[str, Any] = dict(body.model_extra or {})
        for name, value in options.items():
            if isinstance(value, (dict, list)):
                raise ApiError(f"option {name} must be a number, a string or a boolean", param=name)
        options.update(speed=body.speed, seed=body.seed)
        fmt = self.formats[fmt_name]
        if body.sample_rate is not None and fmt.rates is not None and body.sample_rate not in fmt.rates:
            raise ApiError(f"{fmt_name} takes the sample rates {', '.join(map(str, fmt.rates))}",
                           param="sample_rate")
        prompt_field = "prompt" if body.prompt is not None else "instructions"
        return SpeechSpec(body.input, body.voice, getattr(body, prompt_field), body.language, options, fmt,
                          body.stream and fmt.streams, body.sample_rate, prompt_field)

    async def speech(self, body: SpeechRequest, request: Request) -> Response:
        started = request.scope.get("state", {}).get("started", time.monotonic())
        model = self.model(body.model)
        spec = self.spec(body)
        model.check_prompt(spec)
        await anyio.to_thread.run_sync(model.check_voice, body.voice)
        synth = await model.pool.acquire()
        job = None
        try:
            if not await request.is_disconnected():  # a client that left while queued gets no work done
                job = await anyio.to_thread.run_sync(model.start, synth, spec)
                first = await self._first_bytes(job, request)
        except BaseException:
            if job is not None:
                job.close()
            model.pool.release(synth)
            raise
        if job is None or first is None:
            model.pool.release(synth)
            if job is None:
                self.metrics.cancelled.inc(model.name)
            else:
                job.close()
                self._finished(model, job, started, "cancelled")
            return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody is listening; for the access log
        self.metrics.first_byte.observe(time.monotonic() - started, model.name)
        headers = {"X-Sample-Rate": str(job.output_rate), "Cache-Control": "no-store"}
        media_type = spec.format.media_type
        if job.done:
            model.pool.release(synth)
            self._finished(model, job, started)
            return Response(first, media_type=media_type, headers=headers)
        return _StreamedAudio(self._rest(model, synth, job, first, started), media_type=media_type,
                              headers=headers)

    @staticmethod
    async def _first_bytes(job, request: Request) -> bytes | None:
        """The response's first bytes. A whole file is made a chunk per call, and abandoned (None) as soon as its
        client has gone: a long text must not hold a synthesizer for nobody."""
        first = await anyio.to_thread.run_sync(job.next_bytes)
        while job.building:
            if await request.is_disconnected():
                return None
            first = await anyio.to_thread.run_sync(job.next_bytes)
        return first

    async def _rest(self, model: ServedModel, synth, job, first: bytes, started: float):
        outcome = "cancelled"  # unless the loop ends or fails: the client went away (or the server is stopping)
        try:
            yield first
            while (data := await anyio.to_thread.run_sync(job.next_bytes)) is not None:
                if data:
                    yield data
            outcome = "complete"
        except EdgevoiceError as exc:  # after the status line: all we can do is end the stream early
            log.warning("speech stream for model %s ended early: %s", model.name, exc)
            self.metrics.errors.inc("stream_aborted")
            outcome = "failed"
        finally:
            job.close()
            model.pool.release(synth)
            self._finished(model, job, started, outcome)

    def _finished(self, model: ServedModel, job, started: float, outcome: str = "complete") -> None:
        self.metrics.audio_seconds.inc(model.name, amount=job.audio_seconds)
        if outcome == "complete":
            self.metrics.last_byte.observe(time.monotonic() - started, model.name)
        elif outcome == "cancelled":
            self.metrics.cancelled.inc(model.name)

    async def create_voice(self, name: str, model_name: str, clip: UploadFile, text: str | None,
                           language: str) -> dict:
        if not VOICE_NAME.fullmatch(name):
            raise ApiError("a voice name is 1–64 letters, digits, '_' or '-', starting with a letter or digit",
                           code="invalid_voice_name", param="name")
        model = self.model(model_name)
        if text is not None and len(text) > self.limits.max_text_chars:
            raise ApiError(f"the transcript is longer than {self.limits.max_text_chars} characters", param="text")
        if model.store.path(name) is None:
            raise ApiError("this server keeps no voices: start it with --voices DIR", code="no_voice_folder")
        if model.store.path(name).exists():
            raise Conflict(f"a voice named {name!r} already exists", param="name")
        handle, temp = tempfile.mkstemp(prefix="clip-", dir=self.upload_dir)  # never a name the client chose
        path = Path(temp)
        try:
            with open(handle, "wb") as out:
                self._copy_clip(clip.file, out)
            await anyio.to_thread.run_sync(self._check_clip, path)
            synth = await model.pool.acquire()
            try:
                voice = await anyio.to_thread.run_sync(model.create_voice, synth, path, text, language)
            finally:
                model.pool.release(synth)
            await anyio.to_thread.run_sync(model.store.save, name, voice)
        except EdgevoiceError as exc:  # the runtime names the file: say "the uploaded clip" instead
            raise type(exc)(str(exc).replace(str(path), "the uploaded clip")) from None
        finally:
            path.unlink(missing_ok=True)
        return {"id": name, "object": "voice", "model": model.name, "kind": "cloned"}

    def _copy_clip(self, source, out) -> None:
        copied = 0
        while block := source.read(1 << 20):
            copied += len(block)
            if copied > self.limits.max_upload_bytes:
                raise TooLarge(f"the clip is larger than {self.limits.max_upload_bytes} bytes",
                               code="request_too_large", param="file")
            out.write(block)

    def _check_clip(self, path: Path) -> None:
        try:
            info = soundfile.info(str(path))
        except (soundfile.LibsndfileError, RuntimeError):
            raise AudioError("the uploaded clip is not audio this server can read (wav, flac, ogg, mp3)") from None
        seconds = info.frames / info.samplerate if info.samplerate else 0
        if seconds > self.limits.max_upload_seconds:
            raise AudioError(f"the uploaded clip is {seconds:.1f} s long; the limit is "
                             f"{self.limits.max_upload_seconds:g} s")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _static(name: str) -> str:
    return (importlib.resources.files("edgevoice.server") / "static" / name).read_text(encoding="utf-8")


def create_app(config: ServerConfig, models: dict[str, ServedModel] | None = None, instance: str | None = None
               ) -> FastAPI:
    """The application for `config`; `models` lets a caller (tests) pass models it loaded; `instance` names this
    copy of the server in an `X-Edgevoice-Instance` header (Ray replicas)."""
    server = Server(config, models if models is not None else load_models(config))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        server.close()

    # no Swagger page: it loads its scripts from a CDN, and the server fetches nothing from elsewhere
    app = FastAPI(title=config.title, version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="OpenAI-compatible text-to-speech on edgevoice bundles")
    app.state.server = server
    app.state.metrics = server.metrics
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(EdgevoiceError, _edgevoice_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(Guard, limits=config.limits, metrics=server.metrics, instance=instance)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(server.authorize)])

    @v1.post("/audio/speech", response_class=Response,
             responses={200: {"content": {f.media_type: {} for f in server.formats.values()}}})
    async def speech(body: SpeechRequest, request: Request):
        """Speak `input` with `voice`: audio in `response_format`, streamed as it is produced."""
        return await server.speech(body, request)

    @v1.get("/models")
    async def list_models():
        return {"object": "list", "data": [m.describe() for m in server.models.values()]}

    @v1.get("/models/{model_id}")
    async def get_model(model_id: str):
        return server.model(model_id).describe()

    @v1.get("/voices")
    async def list_voices(model: str | None = None):
        chosen = [server.model(model)] if model is not None else list(server.models.values())
        voices = [v for m in chosen for v in await anyio.to_thread.run_sync(m.voice_names)]
        return {"object": "list", "data": voices}

    @v1.post("/voices", status_code=201)
    async def create_voice(name: str = Form(max_length=64), model: str = Form(max_length=64),
                           file: UploadFile = File(description="reference clip"),
                           text: str | None = Form(None, description="what the clip says (where the model uses it)"),
                           language: str = Form("en", max_length=16)):
        """Make a voice from a reference clip (and its transcript) and keep it as `name`."""
        return await server.create_voice(name, model, file, text, language)

    app.include_router(v1)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "models": {n: {"workers": m.pool.size, "busy": m.pool.busy,
                                               "waiting": m.pool.waiting} for n, m in server.models.items()}}

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(server.authorize)])
    async def metrics():
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(_static("index.html"))

    @app.get("/ui/app.js", include_in_schema=False)
    async def script():
        return Response(_static("app.js"), media_type="text/javascript")

    return app
