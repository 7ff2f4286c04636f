"""The server as a Ray Serve deployment: a private Ray instance on loopback, two replicas of the tiny EmotiVoice
model behind Ray's HTTP proxy, concurrent requests, and both replicas answering (each names itself in
`X-Edgevoice-Instance`). Needs the `cluster` extra."""

from __future__ import annotations

import io
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import soundfile

pytest.importorskip("fastapi", reason="the server needs the serve extra")
serve = pytest.importorskip("ray.serve", reason="needs the cluster extra: pip install 'edgevoice[cluster]'")
import httpx  # noqa: E402
import ray  # noqa: E402

from edgevoice.server.config import Limits, ServerConfig  # noqa: E402
from edgevoice.server.ray_app import RayOptions, run_on_ray  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_url(emotivoice_bundle):
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="warning")
    port = _free_port()
    # no waiting room in a replica: Ray's proxy must hand a request to a free replica, so both take turns
    config = ServerConfig({"ev": emotivoice_bundle[0]}, workers=1, threads=1, limits=Limits(queue_size=0))
    try:
        run_on_ray(config, RayOptions(replicas=2, num_cpus=0.5, host="127.0.0.1", port=port))
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_two_replicas_share_concurrent_requests(ray_url):
    def speak(index: int) -> httpx.Response:
        return httpx.post(f"{ray_url}/v1/audio/speech", timeout=60,
                          json={"model": "ev", "input": f"Request number {index}.", "response_format": "wav"})

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(speak, range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    for response in responses:
        audio, rate = soundfile.read(io.BytesIO(response.content))
        assert rate == 16000 and audio.size > 0
    instances = {r.headers["x-edgevoice-instance"] for r in responses}
    assert len(instances) == 2, instances
    models = httpx.get(f"{ray_url}/v1/models", timeout=30).json()["data"]
    assert [m["id"] for m in models] == ["ev"]
