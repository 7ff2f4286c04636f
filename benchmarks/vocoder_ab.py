"""The vocoders of several GPT-SoVITS bundles as the runtime runs them, in one process, calls alternating.

    python benchmarks/vocoder_ab.py NAME=BUNDLE NAME=BUNDLE [...] [--frames 64 250 500] [--calls 7] [--threads 2]
        [--no-openvino-loaded]

Each bundle's synthesizer opens the vocoder it would run here (`Synthesizer.vocoder_graph`; an 8-bit vocoder
shipped with its float tail beside runs split only where the process already runs OpenVINO, as one that made its
voice does: by default an OpenVINO graph is opened first so that it does). For each frame count (50 frames = 1 s of
audio) the bundles are called in turns, the order reversed every round, after one warm-up call each; prints median
seconds and seconds per second of audio. Alternating calls in one process is what ranks small differences on a
noisy box: whole runs one after the other drift by 10-20 %.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import edgevoice

FRAMES_PER_SECOND = 50


def open_vocoders(bundles: dict[str, str], threads: int, openvino_loaded: bool) -> dict:
    sessions = {}
    for name, path in bundles.items():
        synth = edgevoice.load(path, threads=threads)
        if openvino_loaded:
            synth._session("ref_encoder")  # an OpenVINO graph: the process runs OpenVINO, as one that made a voice
        sessions[name] = (synth._session(synth.vocoder_graph), synth.bundle.manifest.model["sovits"])
    return sessions


def alternate(sessions: dict, frames: int, calls: int) -> dict[str, float]:
    rng = np.random.default_rng(frames)
    times = {name: [] for name in sessions}
    feeds = {}
    for name, (session, sovits) in sessions.items():
        z = (rng.standard_normal((1, sovits["inter_channels"], frames)) * 0.9).astype(np.float32)
        ge = (rng.standard_normal((1, sovits["gin_channels"], 1)) * 0.1).astype(np.float32)
        feed = {"z": z, "ge": ge}
        if "valid_frames" in session.input_names:  # the masked OpenVINO vocoder
            feed["valid_frames"] = np.array([frames], np.int64)
        feeds[name] = feed
        session.run(feed)
    order = list(sessions)
    for round_ in range(calls):
        for name in order if round_ % 2 else reversed(order):
            start = time.perf_counter()
            sessions[name][0].run(feeds[name])
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", help="NAME=BUNDLE")
    parser.add_argument("--frames", type=int, nargs="+", default=[64, 250, 500])
    parser.add_argument("--calls", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-openvino-loaded", action="store_true",
                        help="open no OpenVINO graph first (a process with a saved voice: the one 8-bit graph)")
    args = parser.parse_args(argv)
    bundles = dict(item.split("=", 1) for item in args.bundles)
    sessions = open_vocoders(bundles, args.threads, not args.no_openvino_loaded)
    print("| frames (s of audio) | " + " | ".join(bundles) + " |")
    print("|---|" + "---|" * len(bundles))
    for frames in args.frames:
        seconds = alternate(sessions, frames, args.calls)
        audio = frames / FRAMES_PER_SECOND
        print(f"| {frames} ({audio:.1f} s) | "
              + " | ".join(f"{s:.3f} s ({s / audio:.3f} s/s)" for s in seconds.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
