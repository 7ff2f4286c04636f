"""The speech server through FastAPI's test client: the OpenAI-compatible API on the tiny GPT-SoVITS and EmotiVoice
bundles, every response format, voices uploaded and used, limits, keys, metrics, a malformed-request corpus and a
hypothesis fuzz of the speech body (no request may get a 5xx)."""

from __future__ import annotations

import collections
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("fastapi", reason="the server needs the serve extra")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import edgevoice  # noqa: E402
from edgevoice.server.app import create_app  # noqa: E402
from edgevoice.server.config import ConfigError, Limits, ServerConfig, check_binding, model_names  # noqa: E402
from edgevoice.server.formats import available_formats  # noqa: E402

GS_FAST = {"max_tokens": 12, "seed": 1}  # random weights never stop on their own: keep GPT-SoVITS runs short
LIMITS = Limits(max_text_chars=300, max_upload_bytes=2 * 2 ** 20, max_upload_seconds=20, queue_size=2,
                queue_timeout=20)


@pytest.fixture(scope="module")
def config(fixture_bundle, emotivoice_bundle, server_voices):
    return ServerConfig({"gs": fixture_bundle[0], "ev": emotivoice_bundle[0]}, server_voices, workers=1, threads=1,
                        limits=LIMITS)


@pytest.fixture(scope="module")
def client(config):
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        yield test_client


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    if code is not None:
        assert error["code"] == code, error
    return error


def speak(client, **body):
    return client.post("/v1/audio/speech", json=body)


def int16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2")


# ------------------------------------------------------------------------------------------------ the API


def test_models_and_voices_come_from_the_bundles(client, fixture_bundle, emotivoice_bundle):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    gs = edgevoice.load(fixture_bundle[0])
    ev = edgevoice.load(emotivoice_bundle[0])
    assert models["gs"]["family"] == "gpt-sovits" and models["gs"]["sample_rate"] == gs.sample_rate
    assert models["ev"]["family"] == "emotivoice" and models["ev"]["speakers"] == len(ev.speakers)
    assert models["gs"]["voice_cloning"] and not models["ev"]["voice_cloning"]
    assert models["gs"]["defaults"]["top_k"] == gs.default_options.top_k
    assert client.get("/v1/models/ev").json()["id"] == "ev"
    voices = client.get("/v1/voices").json()["data"]
    assert {"id": "ref-en", "object": "voice", "model": "gs", "kind": "cloned"} in voices
    built_in = [v["id"] for v in voices if v["model"] == "ev"]
    assert built_in == ev.speakers  # and the GPT-SoVITS voice file is not offered to EmotiVoice
    assert_error(client.get("/v1/voices", params={"model": "nope"}), 404, "model_not_found")


def test_streamed_and_whole_audio_agree_in_every_format(client):
    """EmotiVoice is deterministic, so every format carries the same samples (lossy ones: the same length)."""
    base = {"model": "ev", "input": "Hello there. How are you today?", "voice": "8051", "prompt": "Happy"}
    reference = speak(client, **base, response_format="pcm", stream=False)
    assert reference.status_code == 200 and reference.headers["x-sample-rate"] == "16000"
    samples = int16(reference.content)
    assert samples.size > 0.5 * 16000 and np.abs(samples).max() > 0
    for name in available_formats():
        for stream in (True, False):
            response = speak(client, **base, response_format=name, stream=stream)
            assert response.status_code == 200, (name, stream, response.text)
            assert response.headers["content-type"].startswith(available_formats()[name].media_type)
            data = response.content
            if name == "pcm":
                np.testing.assert_allclose(int16(data), samples, atol=1)
            elif name == "mp3":  # streamed: constant bitrate, so a decoder sizes it right from its first frame
                count = soundfile.read(io.BytesIO(data))[0].size
                assert samples.size <= count <= samples.size + 3 * 1152, (stream, count, samples.size)
            else:
                decoded, rate = soundfile.read(io.BytesIO(data), dtype="int16")
                assert rate == int(response.headers["x-sample-rate"])
                if name == "opus":  # lossy, and with the codec's padding
                    assert abs(decoded.size - samples.size) < 0.05 * rate
                else:
                    np.testing.assert_allclose(decoded, samples, atol=1)


def test_resampled_output(client):
    base = {"model": "ev", "input": "Good morning.", "response_format": "pcm", "stream": False}
    native = int16(speak(client, **base).content)
    response = speak(client, **base, sample_rate=24000)
    assert response.headers["x-sample-rate"] == "24000"
    assert abs(int16(response.content).size - native.size * 1.5) <= 16


def test_gpt_sovits_speaks_with_a_voice_file_and_its_options(client):
    base = {"model": "gs", "input": "Hello there.", "voice": "ref-en", "response_format": "wav", **GS_FAST}
    first = speak(client, **base)
    assert first.status_code == 200, first.text
    audio, rate = soundfile.read(io.BytesIO(first.content), dtype="int16")
    assert rate == 32000 and audio.size > 12 * 1280 * 0.5
    assert speak(client, **base).content == first.content  # same seed, same audio
    longer = speak(client, **{**base, "max_tokens": 24, "stream": False})
    assert soundfile.read(io.BytesIO(longer.content))[0].size > audio.size
    assert_error(speak(client, **{**base, "top_k": 0}), 400, "options_error")
    assert_error(speak(client, **{**base, "sentence_pause": 0.1}), 400, "options_error")  # an EmotiVoice option
    for field in ("prompt", "instructions"):  # refused before the request queues, naming the field the client sent
        assert assert_error(speak(client, **{**base, field: "Happy"}), 400, "options_error")["param"] == field


def test_voice_upload_is_named_checked_and_kept_atomically(client, config, gpt_sovits_set):
    audio = gpt_sovits_set / "audio"
    clip = (audio / "ref_en.wav").read_bytes()
    form = {"name": "uploaded", "model": "gs", "text": (audio / "ref_en.txt").read_text().strip()}
    created = client.post("/v1/voices", data=form, files={"file": ("../../evil.wav", clip, "audio/wav")})
    assert created.status_code == 201, created.text
    assert created.json() == {"id": "uploaded", "object": "voice", "model": "gs", "kind": "cloned"}
    assert sorted(p.name for p in config.voices_dir.iterdir()) == ["ref-en.npz", "uploaded.npz"]
    assert not (config.voices_dir.parent / "evil.wav").exists()
    assert_error(client.post("/v1/voices", data=form, files={"file": ("a.wav", clip)}), 409, "already_exists")
    response = speak(client, model="gs", input="Nice to meet you.", voice="uploaded", response_format="pcm",
                     **GS_FAST)
    assert response.status_code == 200 and int16(response.content).size > 0
    assert_error(client.post("/v1/voices", data={**form, "name": "x", "model": "ev"}, files={"file": ("a.wav", clip)}),
                 400, "voice_error")


def test_a_third_family_needs_nothing_of_its_own(metavoice_bundle, metavoice_set, tmp_path):
    """MetaVoice (a voice from a ≥ 30 s reference, no transcript) through the same routes, untouched."""
    config = ServerConfig({"mv": metavoice_bundle[0]}, tmp_path, workers=1, threads=1)
    with TestClient(create_app(config)) as client:
        clip = (metavoice_set / "audio" / "ref.wav").read_bytes()
        created = client.post("/v1/voices", data={"name": "long-ref", "model": "mv"}, files={"file": ("r.wav", clip)})
        assert created.status_code == 201, created.text
        assert client.get("/v1/voices", params={"model": "mv"}).json()["data"] == [
            {"id": "long-ref", "object": "voice", "model": "mv", "kind": "cloned"}]
        response = speak(client, model="mv", input="Hello there.", voice="long-ref", response_format="wav",
                         max_new_tokens=24, seed=1)
        assert response.status_code == 200, response.text
        audio, rate = soundfile.read(io.BytesIO(response.content))
        assert rate == edgevoice.load(metavoice_bundle[0]).sample_rate and audio.size > 0
        assert_error(speak(client, model="mv", input="Hello.", voice="long-ref", prompt="Happy"), 400, "options_error")
        # OpenAI's speed at its neutral 1.0 asks nothing of a model without a rate option; another speed is refused
        # (the same seed as above: unseeded, 1 in 30 draws of this tiny random model ends before any audio, a 400)
        same = speak(client, model="mv", input="Hello there.", voice="long-ref", response_format="wav",
                     max_new_tokens=24, seed=1, speed=1.0)
        assert same.status_code == 200 and same.content == response.content
        assert_error(speak(client, model="mv", input="Hi.", voice="long-ref", max_new_tokens=8, seed=1, speed=1.5),
                     400, "options_error")
    from edgevoice.server.models import load_models

    served = load_models(config)["mv"].synthesizers[0]  # graphs that run at each text's length: onnxruntime
    assert served.backend.onnxruntime_graphs == {"speaker_encoder", "stage2", "encodec_decode"}


def test_served_models_are_long_running_synthesizers(config):
    """Voices uploaded one after another must not grow the server: the graphs that run at each clip's length go to
    onnxruntime (`edgevoice.load(..., long_running=True)`, tests/test_lazy_graphs.py)."""
    from edgevoice.server.models import load_models

    models = load_models(config)
    assert models["gs"].synthesizers[0].backend.onnxruntime_graphs == {"hubert_codes", "ref_encoder", "sv_embedding",
                                                                         "gpt_prefill", "gpt_step"}
    assert models["ev"].synthesizers[0].backend.onnxruntime_graphs == {"style_bert"}
    assert models["ev"].synthesizers[0]._vocoder_fixed_shapes()  # its vocoder stays on OpenVINO, at a few lengths


def test_api_key_is_required_when_set(config):
    keyed = ServerConfig(config.bundles, config.voices_dir, 1, 1, limits=LIMITS, api_key="s3cret-key-123")
    with TestClient(create_app(keyed)) as client:
        assert_error(client.get("/v1/models"), 401, "invalid_api_key")
        assert_error(client.get("/v1/models", headers={"Authorization": "Bearer wrong-key-1234"}), 401)
        assert_error(client.get("/metrics", headers={"Authorization": "Basic s3cret-key-123"}), 401)
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret-key-123"}).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/").status_code == 200


def test_binding_beyond_loopback_needs_a_key_or_insecure(tmp_path):
    check_binding("127.0.0.1", None, False)
    check_binding("::1", None, False)
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(ConfigError, match="--api-key"):
            check_binding(host, None, False)
        check_binding(host, "a-long-key", False)
        check_binding(host, None, True)
    from click.testing import CliRunner

    from edgevoice.cli import main

    result = CliRunner().invoke(main, ["serve", "--bundle", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "--api-key" in result.output and "Traceback" not in result.output
    assert model_names(["a=/x/b", "/y/c"]) == {"a": Path("/x/b"), "c": Path("/y/c")}
    with pytest.raises(ConfigError, match="two bundles"):
        model_names(["/x/same", "/y/same"])


def test_limits_on_bodies_text_and_uploads(client):
    huge = b'{"model": "ev", "input": "' + b"a" * (LIMITS.max_body_bytes + 10) + b'"}'
    assert_error(client.post("/v1/audio/speech", content=huge, headers={"content-type": "application/json"}),
                 413, "request_too_large")
    chunks = (huge[i:i + 4096] for i in range(0, len(huge), 4096))  # no Content-Length: read up to the limit
    assert_error(client.post("/v1/audio/speech", content=chunks, headers={"content-type": "application/json"}),
                 413, "request_too_large")
    assert_error(speak(client, model="ev", input="a" * (LIMITS.max_text_chars + 1)), 400, "text_too_long")
    big_clip = b"RIFF" + bytes(LIMITS.max_upload_bytes + 1)
    assert_error(client.post("/v1/voices", data={"name": "big", "model": "gs"}, files={"file": ("a.wav", big_clip)}),
                 413)
    rate = 8000
    long_clip = io.BytesIO()
    soundfile.write(long_clip, np.full(int(rate * (LIMITS.max_upload_seconds + 1)), 0.1, np.float32), rate,
                    format="WAV")
    error = assert_error(client.post("/v1/voices", data={"name": "long", "model": "gs"},
                                     files={"file": ("a.wav", long_clip.getvalue())}), 400, "audio_error")
    assert "limit" in error["message"]


def test_metrics_in_prometheus_text_format(client):
    assert speak(client, model="ev", input="Count me.", response_format="wav").status_code == 200
    text = client.get("/metrics").text
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+-]+$|^[a-z_]+(\{.*\})? \+Inf$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if not line.startswith("#")}
    assert values['edgevoice_audio_seconds_total{model="ev"}'] > 0
    assert values['edgevoice_time_to_first_byte_seconds_count{model="ev"}'] >= 1
    assert values['edgevoice_requests_total{route="/v1/audio/speech",status="200"}'] >= 1
    assert values['edgevoice_queue_depth{model="gs"}'] == 0 and 'edgevoice_busy_synthesizers{model="ev"}' in values


def test_page_is_served_without_anything_remote(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="speak"' in page.text and '<script src="/ui/app.js">' in page.text
    script = client.get("/ui/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    for text in (page.text, script.text):
        assert not re.search(r"(src|href)=\"(https?:)?//", text) and "cdn" not in text.lower()


def test_openai_python_client(client):
    openai = pytest.importorskip("openai", reason="the OpenAI client is not installed")
    api = openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="unused", http_client=client)
    response = api.audio.speech.create(model="ev", voice="8051", input="Hello from the OpenAI client.",
                                       response_format="wav")
    audio, rate = soundfile.read(io.BytesIO(response.content))
    assert rate == 16000 and audio.size > 0
    with pytest.raises(openai.NotFoundError):
        api.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")


def test_the_server_stays_torch_free():
    script = ("import sys; sys.modules['torch'] = None; sys.modules['edgevoice_export'] = None; "
              "import edgevoice.server.app, edgevoice.server.cli, edgevoice.server.ray_app, "
              "edgevoice.server.background")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# ------------------------------------------------------------------------------------------------ abuse

WAV_HEADER_ONLY = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(24)


def _nan_wav() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.full(32000 * 4, np.nan, np.float32), 32000, subtype="FLOAT", format="WAV")
    return buffer.getvalue()


def _short_wav() -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.full(3200, 0.1, np.float32), 32000, format="WAV")
    return buffer.getvalue()


PATH_LIKE = ["../../etc/passwd", "/etc/passwd", "..", ".", "a/b", "C:\\Windows\\win.ini", "%2e%2e%2f", "me\x00",
             "ref-en.npz", ".ref-en", "ref-en/../ref-en", "~root", "con", "\u202eref-en"]


def _malformed_corpus() -> list[tuple[str, str, dict]]:
    json_type = {"content-type": "application/json"}
    ok = {"model": "ev", "input": "Hello."}
    bodies = [b"", b"{", b"[]", b"null", b'"text"', b"42", b'{"model": }', b'{"model": "ev", "input": "hi"',
              b"\xff\xfe\x00\x01garbage", b"[" * 5000 + b"]" * 5000, b'{"model": "ev", "input": "\\ud800"}',
              b'{"model": "ev", "input": "hi", "input": 5}', json.dumps({"a": [1] * 2000}).encode(),
              b'{"model": "ev", "input": "hi", "speed": NaN}', b'{"model": "ev", "input": "hi", "seed": 1e400}']
    cases = [("post", "/v1/audio/speech", {"content": body, "headers": json_type}) for body in bodies]
    wrong = [{"model": 5, "input": "hi"}, {"model": "ev", "input": None}, {"model": "ev", "input": ["hi"]},
             {"model": "ev", "input": "hi", "voice": 3}, {"model": "ev", "input": "hi", "voice": {"id": "8051"}},
             {"model": "ev", "input": "hi", "speed": "fast"}, {"model": "ev", "input": "hi", "stream": "yes"},
             {"model": "ev", "input": "hi", "seed": -1}, {"model": "ev", "input": "hi", "seed": 1.5},
             {"model": "ev", "input": "hi", "seed": 2 ** 64}, {"model": "ev", "input": "hi", "response_format": 7},
             {"model": "ev", "input": "hi", "response_format": "aac"}, {"model": "ev", "input": "hi", "top_k": 5},
             {"model": "ev", "input": "hi", "sentence_pause": {"a": 1}}, {"model": "ev", "input": "hi", "speed": 0},
             {"model": "ev", "input": "hi", "vocoder_chunk_frames": 2 ** 40}, {"model": "ev", "input": "   "},
             {"model": "ev", "input": "hi", "stream_format": "sse"}, {"model": "ev", "input": "hi", "sample_rate": 1},
             {"model": "ev", "input": "hi", "language": "x" * 100}, {"input": "hi"}, {"model": "ev"},
             {"model": "gs", "input": "hi"}, {"model": "gs", "input": "hi", "voice": "8051"},
             {"model": "gs", "input": "hi", "voice": "ref-en", "max_tokens": 0},
             {"model": "gs", "input": "hi", "voice": "ref-en", "max_tokens": 2 ** 63},
             {"model": "gs", "input": "hi", "voice": "ref-en", "split_method": "cut9", "max_tokens": 4},
             {"model": "gs", "input": "hi", "voice": "ref-en", "language": "klingon", "max_tokens": 4},
             {"model": "gs", "input": "hi", "voice": "ref-en", "temperature": -1},
             {"model": "ev", "input": "hi", "voice": "99999"}, {"model": "../gs", "input": "hi"}]
    cases += [("post", "/v1/audio/speech", {"json": body}) for body in wrong]
    cases += [("post", "/v1/audio/speech", {"json": {**ok, "voice": name}}) for name in PATH_LIKE]
    cases += [("post", "/v1/audio/speech", {"json": {"model": "gs", "input": "hi", "voice": name}})
              for name in PATH_LIKE]
    cases += [("post", "/v1/audio/speech", {"content": b"x" * 200_000, "headers": json_type}),
              ("post", "/v1/audio/speech", {"content": b"{}", "headers": {**json_type, "content-length": "9" * 12}}),
              ("post", "/v1/audio/speech", {"data": {"model": "ev", "input": "hi"}}),
              ("post", "/v1/audio/speech", {"content": b"model=ev", "headers": {"content-type": "text/plain"}}),
              ("get", "/v1/audio/speech", {}), ("delete", "/v1/models", {}), ("put", "/v1/voices", {}),
              ("get", "/v1/models/..%2f..%2fetc", {}), ("get", "/v1/voices", {"params": {"model": "../../x"}}),
              ("get", "/static/../../etc/passwd", {}), ("get", "/ui/../app.py", {})]
    clip = (_short_wav(), "audio/wav")
    uploads = [({"name": "g1", "model": "gs"}, (b"\x00\xff" * 5000, "audio/wav")),
               ({"name": "g2", "model": "gs"}, (b"", "audio/wav")),
               ({"name": "g3", "model": "gs"}, (WAV_HEADER_ONLY, "audio/wav")),
               ({"name": "g4", "model": "gs", "text": "hello"}, (b"this is text, not audio\n" * 50, "text/plain")),
               ({"name": "g5", "model": "gs", "text": "hello"}, (_nan_wav(), "audio/wav")),
               ({"name": "g6", "model": "gs", "text": "hello"}, clip),
               ({"name": "g7", "model": "nope"}, clip), ({"name": "g8"}, clip), ({"model": "gs"}, clip),
               ({"name": "g9", "model": "gs", "language": "x" * 40}, clip),
               ({"name": "g10", "model": "gs", "text": "t" * 5000}, clip)]
    cases += [("post", "/v1/voices", {"data": form, "files": {"file": ("clip.wav", *file)}}) for form, file in uploads]
    cases += [("post", "/v1/voices", {"data": {"name": name, "model": "gs"}, "files": {"file": ("a.wav", *clip)}})
              for name in PATH_LIKE]
    cases += [("post", "/v1/voices", {"data": {"name": "nofile", "model": "gs"}}),
              ("post", "/v1/voices", {"content": b"--x\r\nbroken", "headers": {
                  "content-type": "multipart/form-data; boundary=x"}}),
              ("post", "/v1/voices", {"json": {"name": "j", "model": "gs"}})]
    return cases


def test_malformed_requests_get_json_4xx(client, config, capsys):
    before = sorted(p.name for p in config.voices_dir.iterdir())
    statuses = collections.Counter()
    for method, path, kwargs in _malformed_corpus():
        response = getattr(client, method)(path, **kwargs)
        statuses[response.status_code] += 1
        assert 400 <= response.status_code < 500, (method, path, kwargs, response.status_code, response.text[:300])
        assert_error(response, response.status_code)
    assert sorted(p.name for p in config.voices_dir.iterdir()) == before  # nothing was written
    assert not list(config.voices_dir.parent.glob("etc*"))
    with capsys.disabled():
        print(f"\nmalformed-request corpus: {sum(statuses.values())} requests, "
              f"status codes {dict(sorted(statuses.items()))}")


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(), st.text(max_size=12))
JUNK = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.text(max_size=4), SCALARS, max_size=2))
TEXTS = st.one_of(st.sampled_from(["Hello there.", "Good morning, friend! How are you?", "今天天气很好。",
                                   "Rain, 1999."]), st.text(max_size=40))
COMMON = {"response_format": st.sampled_from(["wav", "pcm", "flac", "mp3", "opus"]), "stream": st.booleans(),
          "speed": st.floats(0.25, 4), "seed": st.integers(0, 2 ** 63 - 1), "sample_rate": st.integers(8000, 48000),
          "stream_format": st.just("audio"), "instructions": st.text(max_size=20)}
FAMILY_FIELDS = {  # GPT-SoVITS on random weights runs to its token limit unless told: valid caps stay small
    "gs": {"voice": st.just("ref-en"), "max_tokens": st.integers(1, 8), "top_k": st.integers(1, 2000),
           "top_p": st.floats(0.01, 1), "temperature": st.floats(0.01, 3), "repetition_penalty": st.floats(0.5, 3),
           "noise_scale": st.floats(0, 2), "split_method": st.sampled_from(["cut0", "cut1", "cut2", "cut5"]),
           "language": st.sampled_from(["en", "zh", "ja", "auto"])},
    "ev": {"voice": st.sampled_from(["8051", "0", "11614"]), "prompt": st.text(max_size=20),
           "sentence_pause": st.floats(0, 5), "max_sentence_chars": st.integers(20, 400),
           "vocoder_chunk_frames": st.integers(8, 300)},
}


FUZZED_FIELDS = {"model", "input", *COMMON, *(name for spec in FAMILY_FIELDS.values() for name in spec)}


def test_the_fuzz_covers_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["SpeechRequest"]
    assert set(schema["properties"]) <= FUZZED_FIELDS and set(schema["required"]) == {"model", "input"}


@st.composite
def speech_bodies(draw):
    """A valid body for one of the models, with up to two fields swapped for junk (or a field of the other
    model): every check the server and the family make gets reached, and some requests speak."""
    model = draw(st.sampled_from(sorted(FAMILY_FIELDS)))
    fields = {**COMMON, **FAMILY_FIELDS[model]}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=5))
    body = {"model": model, "input": draw(TEXTS), **{name: draw(fields[name]) for name in chosen}}
    if model == "gs":
        body.setdefault("voice", "ref-en")
        body.setdefault("max_tokens", 4)
    others = sorted(FUZZED_FIELDS)
    for name in draw(st.lists(st.sampled_from(others), unique=True, max_size=2)):
        if name == "max_tokens":  # still a short run
            body[name] = draw(st.one_of(st.sampled_from([0, -3, 2.5, "4", None]), st.lists(SCALARS, max_size=1)))
        else:
            body[name] = draw(JUNK)
    return body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=speech_bodies())
def test_fuzzed_speech_bodies_never_get_a_5xx(client, body):
    response = client.post("/v1/audio/speech", content=json.dumps(body, allow_nan=True),
                           headers={"content-type": "application/json"})
    assert response.status_code < 500, (body, response.text[:300])
    if response.status_code == 200:
        assert response.content
    else:
        assert_error(response, response.status_code)


def test_error_codes_name_the_kind_of_error_in_snake_case():
    """A family's own error class reports the kind it belongs to (MetaVoice's `ReferenceTooShort` once gave
    `referencetooshort_error`)."""
    from edgevoice.errors import AudioError, OptionsError, TextError
    from edgevoice.metavoice.speaker import ReferenceTooShort
    from edgevoice.server.app import error_code

    assert error_code(ReferenceTooShort("short")) == "audio_error" == error_code(AudioError("x"))
    assert error_code(OptionsError("x")) == "options_error" and error_code(TextError("x")) == "text_error"


def test_a_job_that_makes_no_audio_is_a_request_error_not_an_empty_file():
    from edgevoice.errors import TextError
    from edgevoice.options import AudioChunk
    from edgevoice.server.formats import FORMATS
    from edgevoice.server.models import SpeechJob, SpeechSpec

    for streaming in (False, True):
        silent = (AudioChunk("hi", np.zeros(0, np.float32), 16000) for _ in range(2))
        spec = SpeechSpec("hi", None, None, None, {}, FORMATS["wav"], streaming, None)
        job = SpeechJob(silent, 16000, spec, max_seconds=10)
        sent = []  # no byte (not even a wav header) may leave before the refusal: it would start a 200
        with pytest.raises(TextError, match="produced no audio"):
            while (data := job.next_bytes()) is not None:
                sent.append(data)
        assert not b"".join(sent)


def test_an_unexpected_failure_is_a_json_500_with_no_traceback(config):
    """A bug, or a bundle broken in a way no check foresaw (a probe's: a manifest asking numpy for terabytes), got a
    plain-text 500 from the framework; the API's clients expect its JSON error."""
    app = create_app(config)

    def broken():
        raise MemoryError("Unable to allocate 36.4 TiB")

    app.add_api_route("/v1/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/broken")
    error = assert_error(response, 500, "internal_error")
    assert "TiB" not in error["message"] and "Traceback" not in response.text
