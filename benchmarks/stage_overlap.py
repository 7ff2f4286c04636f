"""Would running GPT-SoVITS's two big stages at the same time pay on this CPU?

A 10 s sentence spends most of its time in two stages: the GPT's decode (memory-bound: every token reads the
weights and the KV cache) and the vocoder (compute-bound). On a 2-core box one idea is to overlap them: vocode
one piece of audio on one core while the GPT writes the next on the other. That only pays if the two stages,
run side by side on one thread each, finish sooner than one after the other on two threads each. This measures
exactly that, each stage in its own process (its own thread pool), on the same tokens:

    python benchmarks/stage_overlap.py --bundle INT8_BUNDLE [--seconds 12]

It prints, per configuration, the median seconds of one 250-token decode (prefill included) and of one vocoding
of the same 250 tokens (10 s of audio, encoder and flow included): each stage alone at 2 and at 1 thread, both
stages together at 1 + 1 and at 2 + 2 threads, and the most overlap could save. Zen 4 (2 cores, 2026-12-06), two
runs: one after the other 1.52 + 1.02 = 2.54 s and 1.69 + 1.04 = 2.73 s; side by side at 1 + 1 threads 2.12 / 2.00 s
and 2.03 / 1.95 s, so at most 15-25 %; at 2 + 2 threads both slow to 2.7-3.2 s (oversubscribed). That ceiling
is before the cost of overlapping: the vocoder must then work in chunks with 12 tokens of context on each side
(`chunking.STREAM_CONTEXT_TOKENS`), ~25 % more vocoder work at 100-token chunks, which makes the one-thread
vocoder (~2.4 s) the slower stage and leaves about what one after the other takes, plus the last chunk's tail and
a second copy of every graph compiled for one thread. Not built; rerun it where the balance differs (Zen 5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKENS = 250  # 10 s of speech at 25 tokens per second


def _child(args) -> None:
    import numpy as np

    import edgevoice
    from e2e_speed import PROMPT_TEXT, TEXT, reference_clip
    from edgevoice.audio import write_wav
    from edgevoice.gpt_sovits.sampler import SamplingOptions

    synth = edgevoice.load(args.bundle, threads=args.threads)
    clip = Path(args.work) / "reference.wav"
    write_wav(clip, reference_clip(), 32000)
    voice = synth.create_voice(clip, PROMPT_TEXT, "en")
    target, gpt_phones, gpt_bert = synth._fragment_inputs(TEXT, voice, "en")
    sampling, rng = SamplingOptions(min_tokens=TOKENS, max_tokens=TOKENS), np.random.default_rng(0)
    tokens = synth.generate_tokens(gpt_phones, gpt_bert, voice.prompt_tokens, sampling, rng)
    channels = synth.bundle.manifest.model["sovits"]["inter_channels"]
    noise = 0.5 * np.random.default_rng(1).standard_normal((1, channels, 2 * TOKENS)).astype(np.float32)

    def once():
        if args.stage == "decode":
            synth.generate_tokens(gpt_phones, gpt_bert, voice.prompt_tokens, sampling, rng)
        else:
            synth.decode_tokens(tokens, target, noise=noise, ge=voice.ge)

    once()  # compiled and warm before the clock starts
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        began = time.perf_counter()
        once()
        times.append(time.perf_counter() - began)
    print(json.dumps({"stage": args.stage, "threads": args.threads, "median_s": statistics.median(times),
                      "runs": len(times)}), flush=True)


def _run(bundle: str, seconds: float, work: str, *stages: tuple[str, int]) -> dict:
    """The stages (name, threads) started together, each its own process → {(name, threads): median seconds}."""
    children = [subprocess.Popen([sys.executable, __file__, "--child", name, "--threads", str(threads), "--bundle",
                                  bundle, "--seconds", str(seconds), "--work", work], stdout=subprocess.PIPE, text=True)
                for name, threads in stages]
    results = {}
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"a measuring process failed (exit {child.returncode})")
        row = json.loads(out.strip().splitlines()[-1])
        results[(row["stage"], row["threads"])] = row["median_s"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="a GPT-SoVITS bundle (the INT8 one `quantize` made)")
    parser.add_argument("--seconds", type=float, default=12.0, help="how long each configuration is timed")
    parser.add_argument("--work", default=tempfile.gettempdir(), help="folder for the reference clip")
    parser.add_argument("--child", choices=("decode", "vocode"), dest="stage", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        return _child(args)
    from edgevoice.cpu import detect

    print(f"CPU: {detect().summary()}")
    alone = {}
    for stage in ("decode", "vocode"):
        for threads in (2, 1):
            alone.update(_run(args.bundle, args.seconds, args.work, (stage, threads)))
    together_1 = _run(args.bundle, args.seconds, args.work, ("decode", 1), ("vocode", 1))
    together_2 = _run(args.bundle, args.seconds, args.work, ("decode", 2), ("vocode", 2))
    print("| configuration | decode 250 tokens s | vocode 10 s of audio s | both stages s |\n|---|---|---|---|")
    sequential = alone[("decode", 2)] + alone[("vocode", 2)]
    print(f"| one after the other, 2 threads each | {alone[('decode', 2)]:.2f} | {alone[('vocode', 2)]:.2f} | "
          f"{sequential:.2f} |")
    print(f"| alone, 1 thread | {alone[('decode', 1)]:.2f} | {alone[('vocode', 1)]:.2f} | — |")
    for label, together in (("side by side, 1 + 1 threads", together_1), ("side by side, 2 + 2 threads", together_2)):
        decode = next(v for (s, _), v in together.items() if s == "decode")
        vocode = next(v for (s, _), v in together.items() if s == "vocode")
        print(f"| {label} | {decode:.2f} | {vocode:.2f} | {max(decode, vocode):.2f} (at best) |")
    best = min(max(together_1.values()), max(together_2.values()))
    print(f"overlap could save at most {100 * (1 - best / sequential):.0f} % of the two stages "
          "(before chunking overhead and the last chunk's tail)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
