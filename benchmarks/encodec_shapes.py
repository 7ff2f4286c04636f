"""MetaVoice's EnCodec decoder on OpenVINO at each sentence's own code length against the padded lengths the runtime
uses where the bundle allows (`CODES_SMALLEST_LENGTH`, `encodec.pad_exact_from_frames`), in fresh processes.

    python benchmarks/encodec_shapes.py --bundle DIR [--lengths 20] [--rounds 2] [--threads 2]

Each process decodes `--lengths` random code sequences of distinct lengths (120–700 frames, 1.6–9.3 s of audio)
with the bundle's `encodec_decode` graph and prints the seconds they took and its resident memory (VmRSS) after
every fifth. OpenVINO prepares kernels and buffers for every new input length and keeps them; padded, a process
meets a handful of lengths (`own` runs each at its own length, `padded` as the runtime does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from long_running_memory import rss_mib


def _child(args) -> None:
    import edgevoice
    from edgevoice.fixed_shapes import padded_length
    from edgevoice.metavoice.synthesizer import CODES_SMALLEST_LENGTH

    synth = edgevoice.load(args.bundle, threads=args.threads)
    session = synth.backend.session(synth.bundle, "encodec_decode")
    n_q, bins = synth.model["encodec"]["n_q"], synth.model["encodec"]["bins"]
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.choice(np.arange(120, 700), args.lengths, replace=False)]
    start, rss = time.perf_counter(), [rss_mib()]
    for index, frames in enumerate(lengths, 1):
        codes = rng.integers(0, bins, (1, n_q, frames))
        if args.variant == "padded":
            codes = np.pad(codes, ((0, 0), (0, 0), (0, padded_length(frames, CODES_SMALLEST_LENGTH) - frames)))
        session.run({"codes": codes})
        if index % 5 == 0:
            rss.append(rss_mib())
    shapes = {padded_length(n, CODES_SMALLEST_LENGTH) for n in lengths} if args.variant == "padded" else set(lengths)
    print(json.dumps({"seconds": time.perf_counter() - start, "rss": rss, "shapes": len(shapes)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--lengths", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=("own", "padded"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return _child(args)
    from edgevoice.cpu import detect

    print(f"CPU: {detect().summary()}; {args.threads} threads; bundle {args.bundle}")
    for round_ in range(1, args.rounds + 1):
        for variant in ("own", "padded"):
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--bundle", args.bundle,
                                  "--lengths", str(args.lengths), "--threads", str(args.threads)],
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{variant} failed: {out.stderr.strip().splitlines()[-1:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"round {round_} {variant:7s} {row['seconds']:.2f} s for {args.lengths} lengths "
                  f"({row['shapes']} shapes); RSS {' → '.join(str(r) for r in row['rss'])} MiB")


if __name__ == "__main__":
    main()
