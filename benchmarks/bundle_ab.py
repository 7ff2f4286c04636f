"""Two (or more) bundles of one model side by side: synthesis time and first streamed audio, interleaved.

    python benchmarks/bundle_ab.py BUNDLE_A BUNDLE_B [--rounds 3] [--tokens 250] [--chunks 20 25] [--threads 2]

For comparing exports of the same checkpoints made by different edgevoice versions or options (e.g. SoVITS at
padded shapes or not). Each round runs every bundle in a fresh process, one after the other: load, a voice from
a synthetic 5 s reference, one warm-up synthesis, then two timed syntheses of one sentence pinned to `--tokens`
tokens (ready voice) and, per `--chunks` size, the seconds until `stream` yields its first chunk. Prints the
medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from long_text_memory import PROMPT_TEXT, SENTENCE, reference_clip


def measure(bundle: str, tokens: int, chunks: list[int], threads: int) -> dict:
    import soundfile

    import edgevoice

    synth = edgevoice.load(bundle, threads=threads)
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "ref.wav"
        soundfile.write(clip, reference_clip(), 32000)
        voice = synth.create_voice(clip, PROMPT_TEXT, "en")
    options = edgevoice.SynthesisOptions(seed=1, min_tokens=tokens, max_tokens=tokens, split_method="cut0")
    synth.synthesize(SENTENCE, voice, "en", options)  # warm-up: every graph compiled
    result = {}
    for run in ("synthesis_s", "synthesis_again_s"):
        start = time.perf_counter()
        synth.synthesize(SENTENCE, voice, "en", options)
        result[run] = time.perf_counter() - start
    for chunk in chunks:
        start = time.perf_counter()
        stream = synth.stream(SENTENCE, voice, "en", options, chunk_tokens=chunk)
        next(stream)
        result[f"first_audio_s_chunk_{chunk}"] = time.perf_counter() - start
        for _ in stream:
            pass
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=250)
    parser.add_argument("--chunks", type=int, nargs="*", default=[20, 25])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.bundles[0], args.tokens, args.chunks, args.threads)))
        return
    runs: dict[str, list[dict]] = {bundle: [] for bundle in args.bundles}
    for _ in range(args.rounds):
        for bundle in args.bundles:
            command = [sys.executable, __file__, bundle, "--child", "--tokens", str(args.tokens),
                       "--threads", str(args.threads), "--chunks", *map(str, args.chunks)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[bundle].append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = list(runs[args.bundles[0]][0])
    print("| bundle | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for bundle, results in runs.items():
        medians = [float(np.median([r[key] for r in results])) for key in keys]
        print(f"| {bundle} | " + " | ".join(f"{m:.3f}" for m in medians) + " |")


if __name__ == "__main__":
    main()
