"""The speech server on a real loopback socket: chunked streaming, a client that goes away, the bounded queue (429
and 503), and `edgevoice serve` itself driven by curl and the OpenAI client. Bounded request counts, timeouts on
every call, and no server outlives its test."""

from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

pytest.importorskip("fastapi", reason="the server needs the serve extra")
import httpx  # noqa: E402

from edgevoice.server.app import create_app  # noqa: E402
from edgevoice.server.background import BackgroundServer  # noqa: E402
from edgevoice.server.config import Limits, ServerConfig  # noqa: E402

# many short fragments: GPT-SoVITS splits at every sentence (cut5) and each fragment stops after a few tokens
LONG_TEXT = " ".join(f"This is sentence number {i}." for i in range(24))
STREAMING = {"model": "gs", "voice": "ref-en", "input": LONG_TEXT, "split_method": "cut5", "max_tokens": 10,
             "seed": 3, "response_format": "pcm"}


@pytest.fixture(scope="module")
def live(fixture_bundle, server_voices):
    """One synthesizer, one waiting place, one second of patience."""
    config = ServerConfig({"gs": fixture_bundle[0]}, server_voices, workers=1, threads=1,
                          limits=Limits(queue_size=1, queue_timeout=1.0))
    with BackgroundServer(create_app(config)) as server:
        yield server
    assert not server.running


def _health(url: str) -> dict:
    return httpx.get(f"{url}/healthz", timeout=10).json()["models"]["gs"]


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_audio_streams_in_chunks_as_it_is_made(live):
    with httpx.Client(timeout=60) as client:
        client.post(f"{live.url}/v1/audio/speech", json={**STREAMING, "input": "Warm up."})  # graphs compiled
        started = time.monotonic()
        with client.stream("POST", f"{live.url}/v1/audio/speech", json=STREAMING) as response:
            assert response.status_code == 200 and response.headers["transfer-encoding"] == "chunked"
            arrivals = [(time.monotonic() - started, len(part)) for part in response.iter_raw()]
    first, last = arrivals[0][0], arrivals[-1][0]
    # the audio left over most of the request, not at its end: a one-time pause before the first fragment (1.3 s of
    # 3.9 once on CI, 0.1 s usually) must not read as "not streamed"
    assert len(arrivals) >= 10 and last - first > last / 2, arrivals[:3]
    assert sum(size for _, size in arrivals) % 2 == 0


def test_a_client_that_leaves_stops_the_synthesis(live):
    seconds_before = _metric(live.url, 'edgevoice_audio_seconds_total{model="gs"}')
    cancelled_before = _metric(live.url, 'edgevoice_streams_cancelled_total{model="gs"}')
    with httpx.Client(timeout=60) as client:
        whole = client.post(f"{live.url}/v1/audio/speech", json={**STREAMING, "stream": False})
        full_seconds = len(whole.content) / 2 / 32000
        seconds_before += full_seconds
        with client.stream("POST", f"{live.url}/v1/audio/speech", json=STREAMING) as response:
            next(response.iter_raw())  # one piece, then hang up
    _wait_for(lambda: _health(live.url)["busy"] == 0)
    _wait_for(lambda: _metric(live.url, 'edgevoice_streams_cancelled_total{model="gs"}') == cancelled_before + 1)
    spoken = _metric(live.url, 'edgevoice_audio_seconds_total{model="gs"}') - seconds_before
    assert 0 < spoken < full_seconds / 2, (spoken, full_seconds)


def test_a_client_that_leaves_before_its_whole_file_stops_the_synthesis(live):
    body = json.dumps({**STREAMING, "stream": False}).encode()
    seconds_before = _metric(live.url, 'edgevoice_audio_seconds_total{model="gs"}')
    whole = httpx.post(f"{live.url}/v1/audio/speech", content=body, timeout=60,
                       headers={"content-type": "application/json"})
    assert whole.status_code == 200, whole.text
    full_seconds = len(whole.content) / 2 / 32000
    seconds_before += full_seconds
    cancelled_before = _metric(live.url, 'edgevoice_streams_cancelled_total{model="gs"}')
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        _wait_for(lambda: _health(live.url)["busy"] == 1)
    _wait_for(lambda: _health(live.url)["busy"] == 0)  # hung up before a byte of the answer
    _wait_for(lambda: _metric(live.url, 'edgevoice_streams_cancelled_total{model="gs"}') == cancelled_before + 1)
    spoken = _metric(live.url, 'edgevoice_audio_seconds_total{model="gs"}') - seconds_before
    assert spoken < full_seconds / 2, (spoken, full_seconds)


def test_a_full_queue_answers_429_and_a_long_wait_503(live, monkeypatch):
    from edgevoice.server.models import ServedModel

    results: dict[str, httpx.Response] = {}
    release, start = threading.Event(), ServedModel.start

    def held(self, synth, spec):  # the holder keeps the only synthesizer until the test lets it go, on any CPU
        if spec.text == "Hold the line.":
            release.wait(30)
        return start(self, synth, spec)

    monkeypatch.setattr(ServedModel, "start", held)

    def request(name: str, body: dict) -> None:
        results[name] = httpx.post(f"{live.url}/v1/audio/speech", json=body, timeout=60)

    holder = threading.Thread(target=request, args=("holder", {**STREAMING, "input": "Hold the line."}))
    holder.start()
    _wait_for(lambda: _health(live.url)["busy"] == 1)
    waiter = threading.Thread(target=request, args=("waiter", {**STREAMING, "input": "Wait for me."}))
    waiter.start()
    _wait_for(lambda: _health(live.url)["waiting"] == 1)
    refused = httpx.post(f"{live.url}/v1/audio/speech", json={**STREAMING, "input": "No room."}, timeout=10)
    waiter.join(30)
    release.set()
    holder.join(60)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full"
    assert refused.headers["retry-after"] == "1"
    assert results["waiter"].status_code == 503 and results["waiter"].json()["error"]["code"] == "queue_timeout"
    assert results["holder"].status_code == 200 and results["holder"].content
    assert _health(live.url) == {"workers": 1, "busy": 0, "waiting": 0}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cli_server(emotivoice_bundle, tmp_path_factory):
    """`edgevoice serve` in its own process on loopback, with an API key from the environment."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**__import__("os").environ, "EDGEVOICE_API_KEY": "key-for-the-test"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "edgevoice.cli", "serve", "--bundle",
                                    f"tts-1={emotivoice_bundle[0]}", "--port", str(port), "--threads", "1",
                                    "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: process.poll() is not None or _answers(url), timeout=60)
        assert process.poll() is None, log.read_text()
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_edgevoice_serve_with_curl(cli_server, tmp_path):
    out = tmp_path / "speech.wav"
    body = json.dumps({"model": "tts-1", "input": "Hello from curl.", "voice": "8051", "response_format": "wav"})
    command = ["curl", "-sS", "--max-time", "60", "-o", str(out), "-w", "%{http_code}", f"{cli_server}/v1/audio/speech",
               "-H", "Content-Type: application/json", "-d", body]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert refused.stdout == "401" and json.loads(out.read_text())["error"]["code"] == "invalid_api_key"
    answered = subprocess.run(command[:-4] + ["-H", "Authorization: Bearer key-for-the-test"] + command[-4:],
                              capture_output=True, text=True, timeout=90)
    assert answered.stdout == "200", answered.stderr
    audio, rate = soundfile.read(out)
    assert rate == 16000 and audio.size > 0.3 * rate and np.abs(audio).max() > 0


def test_edgevoice_serve_with_the_openai_client_streaming(cli_server):
    openai = pytest.importorskip("openai", reason="the OpenAI client is not installed")
    client = openai.OpenAI(base_url=f"{cli_server}/v1", api_key="key-for-the-test", timeout=60, max_retries=0)
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="8051", input="Hello. Goodbye.",
                                                            response_format="pcm") as response:
        pcm = b"".join(response.iter_bytes())
    assert len(pcm) > 0.3 * 16000 * 2
    wav = client.audio.speech.create(model="tts-1", voice="8051", input="Hello. Goodbye.", response_format="wav")
    assert soundfile.read(io.BytesIO(wav.content), dtype="int16")[0].tobytes() == pcm  # deterministic model
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{cli_server}/v1", api_key="wrong-key-0000", max_retries=0).models.list()
