"""Resident memory of a process that meets one new input length after another, as a server does, where graphs run
at each input's own length: GPT-SoVITS's HuBERT on reference clips (once per voice), BERT on Chinese segments and
the GPT's prefill on each fragment's phone count, EmotiVoice's every graph on each sentence, MetaVoice's stage 2 and
EnCodec decoder.

    python benchmarks/long_running_memory.py --bundle DIR [--lengths 40] [--threads 2]

Each variant runs in its own process and prints VmRSS (MiB) every fifth length:

* `openvino`: the default backend (`edgevoice.load(bundle)`);
* `long-running`: `edgevoice.load(bundle, long_running=True)`, what `edgevoice serve` opens: the family's
  `own_length_graphs` on onnxruntime, and EmotiVoice's vocoder on OpenVINO at a few fixed mel lengths;
* `onnxruntime`: every graph on onnxruntime (`backend="onnxruntime"`), for comparison.

Each variant also prints the seconds its whole run took (the same sentences or clips in each).

Zen 4, 2 threads (2026-12-06). GPT-SoVITS full-size v2 INT8, 60 clip lengths of 3–9 s: `openvino` 359 → 865 MiB
(+9.5 MiB per length, still growing), `long-running` flat (442–476 MiB); HuBERT on a 5 s clip 0.20 s (OpenVINO
INT8) vs 0.49 s (onnxruntime FP32). BERT (not moved: it runs per sentence, 0.04 vs 0.17 s on onnxruntime) grows
+7.6 MiB per new Chinese segment length on OpenVINO. EmotiVoice full size, 18 sentence lengths: +618 MiB on
OpenVINO (HiFi-GAN +496 of it), +2 MiB long-running. Since the vocoder runs at fixed mel lengths on OpenVINO
(`emotivoice/synthesizer.py` VOCODER_FIXED_FRAMES; AMX Xeon, full-size INT8, 30 lengths, 2026-12-07): `openvino`
8.6 s, 636 → 943 MiB (BERT and the acoustic model), `long-running` 9.2 s, flat at 890–948, `onnxruntime` 18.3 s,
flat at 674; before it, `openvino` took 26.1 s and grew 737 → 3408 MiB. With the acoustic model padded (bundles
whose am_front / am_back take the real counts; same CPU, 2026-12-07): `openvino` 8.0 s, 634 → 733 MiB (the same
model unpadded: 8.7 s, 636 → 943), `long-running` (now the acoustic model on OpenVINO too) 8.3 s, 843 → 921 (9.8 s,
890 → 948 with it on onnxruntime). MetaVoice full-size INT8, 14 sentence lengths: +58 MiB on
OpenVINO (EnCodec's decoder most of it), +16 MiB long-running (stage 1, which sets the pace, stays on OpenVINO).
GPT-SoVITS' fragments (one word longer each time, 4 tokens each; AMX Xeon, full-size v2, 30 lengths, 2026-12-07),
VmRSS from the 5th to the 30th: FP32 bundle `openvino` 3332 → 3527 MiB (the prefill on OpenVINO, ~7.8 MiB per phone
count), `long-running` 2729 → 2799 with the prefill on onnxruntime and the stateful decode still on OpenVINO (~2.8 MiB
per starting length), 2691 → 2715 once it steps `gpt_step` on onnxruntime (29.8 s for the run against `openvino`'s
30.4; a second sitting: `openvino` 3300 → 3466), `onnxruntime` 2502 → 2516; the INT8 bundle `quantize` made for this
CPU (every English graph on onnxruntime) +12 MiB in every variant.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("openvino", "long-running", "onnxruntime")
ENGLISH = "the quick brown fox jumps over the lazy dog and runs far away into the green forest by the river".split()
CHINESE = "春天到了公园里的花都开了孩子们在草地上放风筝老人们坐在长椅上聊天湖面上还有几只白色的小船慢慢地划过"


def rss_mib() -> int:
    """This process's resident memory (VmRSS) in MiB (also read by encodec_shapes.py)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def _child(args) -> None:
    import edgevoice

    backend = "onnxruntime" if args.variant == "onnxruntime" else "openvino"
    synth = edgevoice.load(args.bundle, backend, threads=args.threads, long_running=args.variant == "long-running")
    start = time.perf_counter()
    if synth.bundle.manifest.family == "emotivoice":
        rows = {"sentences": _emotivoice_sentences(synth, args.lengths)}
    elif synth.bundle.manifest.family == "metavoice":
        rows = {"sentences": _metavoice_sentences(synth, args.lengths)}
    else:
        rows = {"clips": _gpt_sovits_clips(synth, args.lengths), "Chinese segments": _chinese(synth, args.lengths),
                "English fragments": _gpt_sovits_fragments(synth, args.lengths)}
    print(json.dumps({"variant": args.variant, "seconds": round(time.perf_counter() - start, 2), **rows}), flush=True)


def _gpt_sovits_clips(synth, lengths: int) -> list[int]:
    from e2e_speed import reference_clip

    clip, rss = reference_clip(3.0 + 0.1 * lengths)[::2], []  # 16 kHz
    for index in range(lengths):
        synth.reference_codes(clip[: 48000 + 1600 * index])  # 3 s, then 0.1 s longer each time
        if index % 5 == 4:
            rss.append(rss_mib())
    return rss


def _gpt_sovits_fragments(synth, lengths: int) -> list[int]:
    """One word longer each time: the prefill meets a new phone count per fragment (SoVITS runs at padded shapes)."""
    import tempfile

    import soundfile as sf
    from e2e_speed import reference_clip

    from edgevoice import SynthesisOptions

    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "timbre.wav"
        sf.write(clip, reference_clip(5.0), 32000)
        voice = synth.create_voice(clip, None, "en")  # reference-free: the fragment's phones alone reach the prefill
    options = SynthesisOptions(seed=0, max_tokens=4)  # a few steps: the prefill's lengths are what is measured
    words, rss = (ENGLISH * (1 + lengths // len(ENGLISH)))[: lengths + 3], []
    for index in range(lengths):
        synth.synthesize(" ".join(words[: 3 + index]) + ".", voice, "en", options)
        if index % 5 == 4:
            rss.append(rss_mib())
    return rss


def _chinese(synth, lengths: int) -> list[int]:
    rss = []
    if "bert" in synth.bundle.manifest.graphs:
        for index in range(min(lengths, len(CHINESE) - 4)):
            synth.phonemize(CHINESE[: 4 + index] + "。", "zh")
            if index % 5 == 4:
                rss.append(rss_mib())
    return rss


def _metavoice_sentences(synth, lengths: int) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(0)
    embedding = synth.speaker_embedding(0.1 * rng.standard_normal(24000 * 31).astype(np.float32), 24000)
    words, rss = (ENGLISH * (1 + lengths // len(ENGLISH)))[: lengths + 2], []
    for index in range(lengths):  # greedy, stage 1 capped: the lengths, not the speech, are what is measured
        synth.synthesize(" ".join(words[: 2 + index]) + ".", embedding, greedy=True, max_new_tokens=30 + 7 * index)
        if index % 5 == 4:
            rss.append(rss_mib())
    return rss


def _emotivoice_sentences(synth, lengths: int) -> list[int]:
    voice = synth.voice_for(speaker=synth.speakers[0], prompt="Happy")
    words, rss = (ENGLISH * (1 + lengths // len(ENGLISH)))[: lengths + 3], []
    for index in range(lengths):
        synth.synthesize(" ".join(words[: 3 + index]) + ".", voice)  # one word longer each time
        if index % 5 == 4:
            rss.append(rss_mib())
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--lengths", type=int, default=40, help="how many distinct lengths each graph meets")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return _child(args)
    from edgevoice.cpu import detect

    print(f"CPU: {detect().summary()}")
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--bundle", args.bundle, "--lengths",
                              str(args.lengths), "--threads", str(args.threads)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"{variant} failed: {out.stderr.strip().splitlines()[-1:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{variant:13s} {row.pop('seconds')} s for the whole run (the same work in each variant)")
        for what, rss in row.items():
            if what != "variant" and rss:
                print(f"{variant:13s} {what}: {' → '.join(map(str, rss))} MiB")

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
