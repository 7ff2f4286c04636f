"""EmotiVoice's vocoder on OpenVINO at each sentence's own mel length against the fixed lengths the runtime uses
(`VOCODER_FIXED_FRAMES`, `edgevoice/fixed_shapes.py`), and its acoustic model at each sentence's own phone and frame
counts against the padded ones (`AM_SMALLEST_LENGTH`), in fresh processes, as `edgevoice say` meets them.

    python benchmarks/emotivoice_shapes.py --bundle DIR [--rounds 2] [--threads 2] [--frames 64,128 ...]

Each process loads the bundle and speaks six sentences (each a new mel length), then speaks them again (every
length prepared): it prints the seconds each graph took the first time, the vocoder's seconds per second of audio
the second time, and its peak RSS. `own` runs the vocoder at each mel's own length; `am-own` the acoustic model
at each sentence's own lengths (bundles whose am_front / am_back take the real counts); `fixed` as the runtime does;
`--frames` adds other length sets to compare (e.g. `64,128,192,256`). OpenVINO prepares kernels and buffers for
each new input length on its first run at it; onnxruntime does not, and runs each mel whole.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SENTENCES = ("The weather is lovely today, and we are going to the park together. She sells sea shells by the sea "
             "shore, and the shells she sells are surely sea shells. A quick brown fox jumped over the lazy dog. We "
             "will meet again tomorrow morning at the old station near the river. Please remember to bring your "
             "umbrella. The concert starts at eight, so let us have dinner early and walk there together.")


def _child(args) -> None:
    import edgevoice
    import edgevoice.emotivoice.synthesizer as emotivoice

    synth = edgevoice.load(args.bundle, threads=args.threads)
    if args.variant == "own":
        synth._vocoder_fixed_shapes = lambda: False  # what the runtime did before fixed shapes
    elif args.variant == "am-own":
        emotivoice.padded_length = lambda length, smallest: length  # what the runtime did before padding
    elif args.variant != "fixed":
        synth.vocoder_windows = tuple(int(x) for x in args.variant.split(","))
    seconds: dict[str, float] = {}
    run = synth._run

    def timed(name, **feeds):
        start = time.perf_counter()
        out = run(name, **feeds)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        return out

    synth._run = timed
    voice = synth.voice_for(speaker=synth.speakers[0], prompt="Happy")
    start = time.perf_counter()
    audio = synth.synthesize(SENTENCES, voice)
    first = {"total": time.perf_counter() - start, **seconds}
    seconds.clear()
    synth.synthesize(SENTENCES, voice)
    audio_s = audio.size / synth.sample_rate
    print(json.dumps({"audio_s": audio_s, "first": first, "vocoder_again_s_per_s": seconds["hifigan"] / audio_s,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", nargs="*", default=[], help="other length sets, comma-separated")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return _child(args)
    from edgevoice.cpu import detect

    print(f"CPU: {detect().summary()}; {args.threads} threads; bundle {args.bundle}")
    for round_ in range(1, args.rounds + 1):
        for variant in ["own", "am-own", "fixed", *args.frames]:
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--bundle", args.bundle,
                                  "--threads", str(args.threads)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{variant} failed: {out.stderr.strip().splitlines()[-1:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            graphs = ", ".join(f"{name} {s:.2f}" for name, s in row["first"].items() if name != "total")
            print(f"round {round_} {variant:16s} first time {row['first']['total']:.2f} s for {row['audio_s']:.1f} s "
                  f"of audio ({graphs}); vocoder again {row['vocoder_again_s_per_s']:.4f} s/s; peak RSS "
                  f"{row['peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
