"""The speech server under load, on loopback: latency to first and last byte, throughput and peak memory at 1, 4,
16 and 64 concurrent clients, then a burst of 200 clients at once that must each get audio or a 429/503, after
which the server must still answer.

Protocol: `edgevoice serve` runs in its own process (its peak RSS is read from /proc: VmHWM, reset before each
level); the clients are one asyncio process (httpx), each sending streamed requests back to back until the level's
request count is reached. Every request speaks the same sentence; on GPT-SoVITS the length is pinned with
`max_tokens` (random weights never stop on their own), so every request asks for the same audio.

    python benchmarks/server_load.py --bundle tiny=/tmp/bundle --voice me.npz [--workers 2] [--threads 1]
        [--clients 1,4,16,64] [--requests 64] [--burst 200] [--max-tokens 100] [--write-results FILE [--append]]
    python benchmarks/server_load.py --bundle ev=/tmp/emotivoice-bundle --speaker 8051 ...

TTFB / TTLB: from sending the request to its first / last body byte. Throughput: seconds of audio received per
second of wall time over the level. Results go to stdout as JSON lines and, with --write-results, to a markdown
file (benchmarks/results/server_load.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TEXT = "Every evening after work, my sister walks her small brown dog along the river and watches the boats."


# ------------------------------------------------------------------------------------------------ the server


def cpu_name() -> str:
    """The CPU as /proc/cpuinfo names it, with its family/model numbers and the vector extensions that matter
    here (a virtual machine often shows only "AMD EPYC")."""
    fields, flags = {}, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        return platform.processor() or "unknown"
    vector = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return (f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family', '?')}, model "
            f"{fields.get('model', '?')}; {' '.join(vector) or 'no AVX2'})")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmHWM") / 1024


def reset_peak_rss(pid: int) -> bool:
    """Start VmHWM again from the current RSS (Linux: `5` into clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`edgevoice serve` in a subprocess on loopback; stopped (SIGINT, then SIGKILL) on exit."""

    def __init__(self, args, voices: Path | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "edgevoice.cli", "serve", "--bundle", args.bundle, "--port", str(self.port),
                   "--workers", str(args.workers), "--queue-size", str(args.queue_size),
                   "--queue-timeout", str(args.queue_timeout), "--log-level", "error"]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if voices is not None:
            command += ["--voices", str(voices)]
        self.log = tempfile.NamedTemporaryFile(prefix="edgevoice-serve-", suffix=".log", delete=False)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__()
        raise SystemExit("the server did not start within 300 s")

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        os.unlink(self.log.name)


# ------------------------------------------------------------------------------------------------ the clients


async def one_request(client: httpx.AsyncClient, url: str, body: dict, rate: int) -> dict:
    started = time.perf_counter()
    first = None
    received = 0
    try:
        async with client.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
            async for part in response.aiter_raw():
                if first is None and part:
                    first = time.perf_counter() - started
                received += len(part)
            status = response.status_code
    except httpx.HTTPError as exc:
        return {"status": type(exc).__name__, "ttfb": None, "ttlb": time.perf_counter() - started, "audio_s": 0}
    audio = received / 2 / rate if status == 200 else 0.0
    return {"status": status, "ttfb": first, "ttlb": time.perf_counter() - started, "audio_s": audio}


async def level(url: str, body: dict, rate: int, clients: int, requests: int) -> tuple[list[dict], float]:
    """`clients` loops sending requests back to back until `requests` have been sent; returns results, wall."""
    remaining = [requests]
    results: list[dict] = []
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)

    async def loop(client):
        while remaining[0] > 0:
            remaining[0] -= 1
            results.append(await one_request(client, url, body, rate))

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=60), limits=limits) as client:
        await asyncio.gather(*(loop(client) for _ in range(clients)))
    return results, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summarize(name: str, results: list[dict], wall: float, rss: float) -> dict:
    ok = [r for r in results if r["status"] == 200]
    first = [r["ttfb"] for r in ok if r["ttfb"] is not None]
    last = [r["ttlb"] for r in ok]
    return {"level": name, "requests": len(results), "ok": len(ok),
            "statuses": dict(collections.Counter(str(r["status"]) for r in results)),
            **{f"ttfb_p{q}": percentile(first, q) for q in (50, 95, 99)},
            **{f"ttlb_p{q}": percentile(last, q) for q in (50, 95, 99)},
            "audio_s_per_s": sum(r["audio_s"] for r in ok) / wall, "wall_s": wall, "peak_rss_mib": rss}


# ------------------------------------------------------------------------------------------------ report


def markdown(args, rows: list[dict], burst: dict | None, recovery: dict | None, model: dict, idle_rss: float,
             load: tuple) -> str:
    lines = [
        f"## `{args.bundle.split('=')[0]}` ({model['family']}, {model['sample_rate']} Hz)", "",
        f"CPU: **{cpu_name()}**, {os.cpu_count()} cores visible; load average {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f} at the start ({time.strftime('%Y-%m-%d %H:%M')}).", "",
        f"`python benchmarks/server_load.py {' '.join(sys.argv[1:])}`", "",
        f"Server: `edgevoice serve`, {args.workers} synthesizer(s) with {args.threads or 'default'} thread(s) each, "
        f"queue {args.queue_size} (timeout {args.queue_timeout:g} s), {args.backend_note}. Every request: "
        f"\"{args.text[:60]}…\" streamed as 16-bit PCM{f', max_tokens {args.max_tokens}' if args.max_tokens else ''}"
        f". Peak RSS after the warm-up requests {idle_rss:.0f} MiB.", "",
        "| clients | requests | answered | TTFB p50 / p95 / p99 s | TTLB p50 / p95 / p99 s | audio s per s | "
        "peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['level']} | {row['requests']} | {_statuses(row)} | "
                     f"{row['ttfb_p50']:.2f} / {row['ttfb_p95']:.2f} / {row['ttfb_p99']:.2f} | "
                     f"{row['ttlb_p50']:.2f} / {row['ttlb_p95']:.2f} / {row['ttlb_p99']:.2f} | "
                     f"{row['audio_s_per_s']:.2f} | {row['peak_rss_mib']:.0f} |")
    if burst is not None:
        lines += ["", f"Burst: {burst['requests']} clients at once, one request each: {_statuses(burst)}; "
                      f"{burst['wall_s']:.1f} s until the last answer; peak RSS {burst['peak_rss_mib']:.0f} MiB. "
                      f"Afterwards: {_statuses(recovery)} for a single request "
                      f"(TTLB {recovery['ttlb_p50']:.2f} s), queue empty: {recovery['queue_empty']}."]
    lines += ["", "TTFB/TTLB: request sent → first/last body byte, requests answered with audio only. Clients and "
                  "server share the machine's cores (the clients are one asyncio process)."]
    return "\n".join(lines) + "\n"


def _statuses(row: dict) -> str:
    return ", ".join(f"{count}× {status}" for status, count in sorted(row["statuses"].items()))


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="NAME=DIR of the bundle to serve")
    parser.add_argument("--voice", help="a voice file (GPT-SoVITS): served as voice 'bench'")
    parser.add_argument("--speaker", help="a built-in speaker (EmotiVoice)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--queue-size", type=int, default=64)
    parser.add_argument("--queue-timeout", type=float, default=120)
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--requests", type=int, default=64, help="requests per level (at least the clients)")
    parser.add_argument("--burst", type=int, default=200, help="clients in the burst (0: none)")
    parser.add_argument("--max-tokens", type=int, default=None, help="GPT-SoVITS: tokens per request (25 per s)")
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("--write-results", type=Path, default=None)
    parser.add_argument("--append", action="store_true", help="add to --write-results instead of replacing it")
    args = parser.parse_args()
    args.backend_note = "OpenVINO"
    name = args.bundle.partition("=")[0]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="edgevoice-bench-voices-") as folder:
        voices = None
        if args.voice:
            voices = Path(folder)
            shutil.copy(args.voice, voices / "bench.npz")
        body = {"model": name, "input": args.text, "response_format": "pcm", "seed": 1}
        if args.voice:
            body["voice"] = "bench"
        if args.speaker:
            body["voice"] = args.speaker
        if args.max_tokens:
            body["max_tokens"] = args.max_tokens
        with Server(args, voices) as server:
            rows, burst, recovery = run(server, args, body)
            model = httpx.get(f"{server.url}/v1/models/{name}", timeout=10).json()
            idle_rss = rows[0].pop("idle_rss")
    if args.write_results:
        with open(args.write_results, "a" if args.append else "w", encoding="utf-8") as out:
            out.write(("\n" if args.append else "# Server load\n\n") +
                      markdown(args, rows, burst, recovery, model, idle_rss, load))
        print(f"written to {args.write_results}")


def run(server: Server, args, body: dict) -> tuple[list[dict], dict | None, dict | None]:
    pid = server.process.pid
    rate = int(httpx.get(f"{server.url}/v1/models/{body['model']}", timeout=10).json()["sample_rate"])
    asyncio.run(level(server.url, body, rate, 1, 2))  # warm-up: OpenVINO compiles each graph on first use
    idle_rss = peak_rss_mib(pid)
    rows = []
    for clients in (int(c) for c in args.clients.split(",")):
        reset_peak_rss(pid)
        results, wall = asyncio.run(level(server.url, body, rate, clients, max(args.requests, clients)))
        rows.append(summarize(str(clients), results, wall, peak_rss_mib(pid)))
        print(json.dumps(rows[-1]), flush=True)
    rows[0]["idle_rss"] = idle_rss
    if not args.burst:
        return rows, None, None
    reset_peak_rss(pid)
    results, wall = asyncio.run(level(server.url, body, rate, args.burst, args.burst))
    burst = summarize("burst", results, wall, peak_rss_mib(pid))
    print(json.dumps(burst), flush=True)
    unexpected = {s for s in burst["statuses"] if s not in ("200", "429", "503")}
    results, wall = asyncio.run(level(server.url, body, rate, 1, 1))
    recovery = summarize("after", results, wall, peak_rss_mib(pid))
    health = httpx.get(f"{server.url}/healthz", timeout=10).json()["models"][body["model"]]
    recovery["queue_empty"] = health["busy"] == 0 and health["waiting"] == 0
    print(json.dumps(recovery), flush=True)
    if unexpected or recovery["ok"] != 1:
        raise SystemExit(f"the burst got {sorted(unexpected)} or the server did not recover: {recovery}")
    return rows, burst, recovery


if __name__ == "__main__":
    main()
