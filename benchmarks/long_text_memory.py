"""Memory over a long text: resident memory after each fragment of a new length, per backend configuration.

Why: OpenVINO's CPU plugin prepares kernels for every new input shape it meets and keeps them in a per-model
runtime cache; a long text is many fragments of different lengths, so its memory grew with the text (issue 10:
727 → 1,667 MB over 6 fragments, 6.5 GB peak for 4,999 characters, where onnxruntime stayed at 704 MB).
`CPU_RUNTIME_CACHE_CAPACITY` bounds that cache (0 turns it off).

Protocol: one voice from a synthetic 5 s reference; `--fragments` texts of different lengths (1, 2, 3, ... copies
of a sentence), each synthesised as one fragment (`split_method="cut0"`) with the GPT pinned to a length that also
differs per fragment (random weights never stop by themselves); fragment i gets `base + step·i` tokens. Resident
memory (VmRSS) after loading, after each fragment, and the process's peak (VmHWM); each variant runs in its own
process, one after the other.

    python benchmarks/long_text_memory.py --bundle DIR [--fragments 8] [--threads 2] [--variants ...]

Variants: `openvino` (the backend's defaults), `openvino-cache0` (CPU_RUNTIME_CACHE_CAPACITY 0),
`openvino-cache100`, `onnxruntime`. Prints a markdown table.

`--long-text` measures issue 10's goal instead: one process speaks one sentence, another a 5,000-character text
(`LONG_TEXT`: sentences of many lengths), per variant. Random weights never end a fragment, so each fragment's
token count is pinned to what speech of its phones would take (`TOKENS_PER_PHONE`; a trained model decides it
itself): the text is split as `say` splits it (the model's default method) and each fragment is synthesised with
its own count. Reports peak RSS (VmHWM), seconds and seconds of audio, and the long text's peak over the
sentence's.

    python benchmarks/long_text_memory.py --bundle DIR --long-text [--variants openvino onnxruntime]
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

SENTENCE = "Every evening my sister walks her small brown dog along the river, past the boats and the old bridge. "
LONG_SENTENCES = (
    "The rain stopped.",
    "Every evening my sister walks her small brown dog along the river, past the boats and the old bridge.",
    "Nobody in the village could remember when the clock on the church tower had last shown the right time, "
    "but everyone agreed that it had once been the pride of the whole valley.",
    "We left early.",
    "The map was old, the roads had changed, and the only shop that might have sold us a new one was closed.",
    "She laughed, put the letter back into its envelope, and said that some news is better read twice.",
    "When the train finally arrived, forty minutes late and crowded to the doors, the children cheered as if it "
    "were a holiday, and the tired commuters on the platform could not help smiling with them.",
    "Why not?",
)
LONG_TEXT_CHARS = 5000
TOKENS_PER_PHONE = 2.2  # ~11 phones per second of English speech at 25 tokens per second
PROMPT_TEXT = "The morning light spread slowly across the quiet valley, and every bird began to sing."
VARIANTS = {
    "openvino": ("openvino", {}),
    "openvino-cache0": ("openvino", {"CPU_RUNTIME_CACHE_CAPACITY": "0"}),
    "openvino-cache100": ("openvino", {"CPU_RUNTIME_CACHE_CAPACITY": "100"}),
    "onnxruntime": ("onnxruntime", {}),
}


def memory_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reference_clip(seconds: float = 5.0, rate: int = 32000) -> np.ndarray:
    """A deterministic speech-like signal (gliding harmonics, syllable-rate envelope)."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.2 * voice * (0.5 * (1 + np.sin(2 * np.pi * 3.5 * t))) ** 2 / np.abs(voice).max()).astype(np.float32)


def load_with_voice(bundle: str, variant: str, threads: int):
    """The bundle on the variant's backend and a voice from the synthetic reference: (synthesizer, voice)."""
    import soundfile

    import edgevoice
    from edgevoice.backends import OnnxRuntimeBackend, OpenVINOBackend

    kind, config = VARIANTS[variant]
    backend = (OpenVINOBackend(threads=threads, extra_config=config) if kind == "openvino"
               else OnnxRuntimeBackend(threads=threads))
    synth = edgevoice.load(bundle, backend=backend)
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "ref.wav"
        soundfile.write(clip, reference_clip(), 32000)
        return synth, synth.create_voice(clip, PROMPT_TEXT, "en")


def run_variant(bundle: str, variant: str, fragments: int, threads: int, base_tokens: int, step: int) -> dict:
    import edgevoice

    start = time.perf_counter()
    synth, voice = load_with_voice(bundle, variant, threads)
    after = [memory_mib()[0]]
    audio_s = 0.0
    for index in range(fragments):
        options = edgevoice.SynthesisOptions(seed=index, split_method="cut0", max_tokens=base_tokens + step * index)
        audio_s += synth.synthesize(SENTENCE * (index + 1), voice, "en", options).size / synth.sample_rate
        after.append(memory_mib()[0])
    return {"variant": variant, "rss_mib": [round(m) for m in after], "peak_mib": round(memory_mib()[1]),
            "seconds": round(time.perf_counter() - start, 1), "audio_s": round(audio_s, 1)}


def long_text(chars: int = LONG_TEXT_CHARS) -> str:
    """About `chars` characters of sentences of many lengths in a fixed order (cut at a word)."""
    words, index = [], 0
    while len(" ".join(words)) < chars:
        words.append(LONG_SENTENCES[index % len(LONG_SENTENCES)])
        index += 1
    return " ".join(words)[:chars].rsplit(" ", 1)[0]


def run_text(bundle: str, variant: str, text: str, threads: int) -> dict:
    """Speak `text` fragment by fragment, each pinned to a token count from its phones; memory and time."""
    import edgevoice

    start = time.perf_counter()
    synth, voice = load_with_voice(bundle, variant, threads)
    audio_s = 0.0
    fragments = synth.split_text(text, "en")
    for index, fragment in enumerate(fragments):
        phones = len(synth.phonemize(fragment, "en")[0].phone_ids)
        tokens = max(8, round(TOKENS_PER_PHONE * phones))
        options = edgevoice.SynthesisOptions(seed=index, split_method="cut0", min_tokens=tokens, max_tokens=tokens)
        audio_s += synth.synthesize(fragment, voice, "en", options).size / synth.sample_rate
    return {"variant": variant, "chars": len(text), "fragments": len(fragments), "peak_mib": round(memory_mib()[1]),
            "seconds": round(time.perf_counter() - start, 1), "audio_s": round(audio_s, 1)}


def _child(args: argparse.Namespace, variant: str, extra: list[str]) -> dict:
    """Run one measurement in a fresh process; its JSON row."""
    command = [sys.executable, __file__, "--bundle", args.bundle, "--threads", str(args.threads),
               "--child", variant, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr)
    return row


def main_long_text(args: argparse.Namespace) -> None:
    rows = [(variant, _child(args, variant, ["--child-text", "sentence"]), _child(args, variant, ["--child-text",
                                                                                                   "long"]))
            for variant in args.variants]
    print("| variant | one sentence: peak RSS MiB (s, audio s) | 5,000 characters: fragments, peak RSS MiB "
          "(s, audio s) | long ÷ sentence peak | s per s of audio (long) |")
    print("|---|---|---|---|---|")
    for variant, one, long in rows:
        print(f"| {variant} | {one['peak_mib']} ({one['seconds']}, {one['audio_s']}) | {long['fragments']}, "
              f"{long['peak_mib']} ({long['seconds']}, {long['audio_s']}) | {long['peak_mib'] / one['peak_mib']:.2f}× "
              f"| {long['seconds'] / long['audio_s']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--fragments", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--base-tokens", type=int, default=60)
    parser.add_argument("--step", type=int, default=37, help="extra GPT tokens per fragment (a new length each)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--long-text", action="store_true", help="one sentence vs a 5,000-character text")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-text", choices=["sentence", "long"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child_text:
        text = long_text() if args.child_text == "long" else LONG_SENTENCES[1]
        print(json.dumps(run_text(args.bundle, args.child, text, args.threads)))
        return
    if args.long_text:
        main_long_text(args)
        return
    if args.child:
        print(json.dumps(run_variant(args.bundle, args.child, args.fragments, args.threads, args.base_tokens,
                                     args.step)))
        return
    # one process each: a clean peak, no shared caches
    rows = [_child(args, variant, ["--fragments", str(args.fragments), "--base-tokens", str(args.base_tokens),
                                   "--step", str(args.step)]) for variant in args.variants]
    print("| variant | RSS after load (MiB) | after each fragment (MiB) | growth | peak (MiB) | time (s) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        rss = row["rss_mib"]
        print(f"| {row['variant']} | {rss[0]} | {' → '.join(map(str, rss[1:]))} | +{rss[-1] - rss[1]} | "
              f"{row['peak_mib']} | {row['seconds']} |")


if __name__ == "__main__":
    main()
