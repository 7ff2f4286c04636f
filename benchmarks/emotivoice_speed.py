"""EmotiVoice speed, memory and BF16 accuracy on the CPU: OpenVINO FP32, OpenVINO BF16 and onnxruntime FP32.

Protocol: a random-weight model set in upstream's layout (`make_test_model(size=--size)`, written under `--work`
unless already there) is exported into a bundle (export time, peak RSS and bundle size recorded), then, in the same
run, every variant is measured in its own subprocesses (clean peak-memory figures, no shared thread pools):

* warm (one process per variant): load, style prompt "Happy", every sentence synthesised once as warm-up (graph
  compilation, jieba, the CMU dictionary), then `--rounds` rounds, median kept, of
  - the stage entry points on each sentence piece (`split_text`): `phonemes`, `style_embedding` of the spoken text
    (its cache emptied first), `acoustic` (am_front + am_back) and `vocode`, with the time inside each graph call
    recorded separately (style_bert, am_front, am_back, hifigan);
  - `synthesize(sentence, voice)` end to end, prompt embedding cached, content embeddings not;
  - first audio: `stream(SENTENCE_20_WORDS, voice, chunked=True)` until its first chunk;
* cold (`--cold-rounds` fresh processes per variant, interleaved): import, `edgevoice.load`, `voice_for(prompt=...)`
  and the first sentence, then `ru_maxrss` (peak RSS); a separate fresh process per round times jieba's first-call
  initialisation (the first Chinese g2p call against the second, and the RSS it adds).

Random weights predict almost no duration (0–2 frames per token), so, as e2e_speed.py pins the GPT's length, every
run here pins am_front's durations to 4, 5, 6, 4, … frames per token (mean 5 frames = 80 ms at 16 kHz / hop 256,
about real speech's rate); the durations the graph predicted are kept for the accuracy comparison. Seconds of
compute per second of audio (RTF, lower is faster) divide by the speech the vocoder produced (pauses between the
pieces of a long sentence are not counted). BF16 runs only when /proc/cpuinfo lists avx512_bf16 or
amx_bf16 (OpenVINO would otherwise emulate it or fall back to FP32); its accuracy is measured against OpenVINO FP32
on the same sentences: waveform SNR, max |Δmel| / max |mel|, whether the rounded durations agree, and the vocoder
alone (BF16 HiFi-GAN on the FP32 mel).

    python benchmarks/emotivoice_speed.py --work DIR [--size full] [--threads 2] [--rounds 3] [--json FILE]

The table goes to stdout and to benchmarks/results/emotivoice_speed.md (`--markdown` to change, '' for none).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROMPT = "Happy"
# (label, text): English, Chinese, mixed; the `long` ones give several seconds of audio each.
SENTENCES = [
    ("en short", "The quick brown fox jumps over the lazy dog."),
    ("zh short", "今天天气很好，我们一起去公园散步吧。"),
    ("mixed short", "我们明天上午开一个 online meeting，讨论一下 project 的进度。"),
    ("en long", "My sister walks her small brown dog along the river every evening and watches the boats sail "
                "under the old bridge."),
    ("zh long", "春天到了，公园里的花都开了，孩子们在草地上放风筝，老人们坐在长椅上聊天，湖面上还有几只白色的小船慢慢地划过。"),
    ("mixed long", "这个周末我想去 library 借几本关于 history 的书，然后和朋友一起去喝 coffee，晚上再回家看一部 movie。"),
]
FIRST_AUDIO_TEXT = SENTENCES[3][1]  # ~20 words, one piece
COLD_TEXT = SENTENCES[1][1]  # Chinese: the cold figure includes jieba's start-up
JIEBA_TEXT = "我们一起去公园散步吧。"
EARLY_FRAMES = 128  # mel error is also reported over a piece's first frames (BF16 error grows with frame index)
GRAPHS = ("style_bert", "am_front", "am_back", "hifigan")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
# openvino-int8: the variant `edgevoice quantize` makes for this CPU (per-graph INT8/BF16 policy), made here unless
# the bundle's `-int8` sibling exists
VARIANTS = ("openvino-f32", "openvino-bf16", "openvino-int8", "onnxruntime")


# ------------------------------------------------------------------------------------------------ helpers


def cpu_info() -> dict:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", "", platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "flags": {f: f in flags for f in CPU_FLAGS}, "cores": os.cpu_count()}


def rss_mib() -> float:
    """Current resident set size (VmRSS) in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def make_backend(variant: str, threads: int):
    from edgevoice.backends import OnnxRuntimeBackend, OpenVINOBackend

    if variant == "onnxruntime":
        return OnnxRuntimeBackend(threads=threads)
    if variant == "openvino-int8":
        return OpenVINOBackend(threads=threads)  # each graph's own precision from the manifest
    return OpenVINOBackend(threads=threads, precision=variant.split("-", 1)[1])


def pinned_durations(n: int) -> np.ndarray:
    """The speech-like durations every run uses: 4, 5, 6, 4, 5, 6, … frames per token (mean 5 frames = 80 ms)."""
    return (4 + np.arange(n) % 3).astype(np.int64)


class Probe:
    """Wraps `synth._run`: pins am_front's durations to `pinned_durations` (random weights predict ~0–2 frames per
    token, i.e. almost no audio), keeps the durations the graph itself predicted, and adds up the seconds spent
    inside each graph call (feeds → outputs, including the backend's copies)."""

    def __init__(self, synth):
        self.synth, self.run = synth, synth._run
        self.seconds = {name: 0.0 for name in GRAPHS}
        self.predicted: list[np.ndarray] = []
        synth._run = self

    def reset(self) -> None:
        self.seconds = {name: 0.0 for name in GRAPHS}
        self.predicted = []

    def __call__(self, name, **feeds):
        start = time.perf_counter()
        out = self.run(name, **feeds)
        self.seconds[name] += time.perf_counter() - start
        if name == "am_front":  # padded past `valid_phones` on OpenVINO (bundles that take it): the host cuts that
            real = int(feeds["valid_phones"][0]) if "valid_phones" in feeds else out["durations"].shape[-1]
            self.predicted.append(out["durations"][0, :real].copy())
            out["durations"] = pinned_durations(out["durations"].shape[-1])[None]
        return out


def load_synth(bundle: str, variant: str, threads: int):
    import edgevoice

    if variant == "openvino-int8":
        bundle = f"{bundle}-int8"
    synth = edgevoice.load(bundle, backend=make_backend(variant, threads), threads=threads)
    return synth, Probe(synth)


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - test) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise)


def max_rel(reference: np.ndarray, test: np.ndarray) -> float:
    return float(np.max(np.abs(reference - test)) / max(float(np.max(np.abs(reference))), 1e-12))


def hifigan_gflop_per_second(config_yaml: Path) -> float | None:
    """Multiply-adds × 2 of upstream's HiFi-GAN per second of audio, from config.yaml (convolutions only)."""
    try:
        import yaml

        cfg = yaml.safe_load(config_yaml.read_text(encoding="utf-8"))
    except (ImportError, OSError):
        return None
    m = cfg["model"]
    frames = cfg["sr"] / cfg["hop_length"]
    channels = m["upsample_initial_channel"]
    flops = frames * m["initial_channel"] * channels * 7 * 2  # conv_pre
    length = frames
    convs_per_dilation = 2 if str(m["resblock"]) == "1" else 1
    for rate, kernel in zip(m["upsample_rates"], m["upsample_kernel_sizes"]):
        flops += length * channels * (channels // 2) * kernel * 2  # transposed conv
        length, channels = length * rate, channels // 2
        for size, dilations in zip(m["resblock_kernel_sizes"], m["resblock_dilation_sizes"]):
            flops += convs_per_dilation * len(dilations) * length * channels * channels * size * 2
    flops += length * channels * 7 * 2  # conv_post
    return flops / 1e9


def run_child(args, *extra: str) -> dict:
    command = [sys.executable, __file__, "--work", args.work, "--size", args.size, "--threads", str(args.threads),
               "--rounds", str(args.rounds), *extra]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(extra)} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ children


def child_export(work: Path, size: str, threads: int) -> dict:
    """Write the random model set (unless present) and export it; parameter counts from the files themselves."""
    import torch

    from edgevoice_export.emotivoice.exporter import export_emotivoice, resolve_files
    from edgevoice_export.emotivoice.random_model import (AM_CKPT_NAME, STYLE_CKPT_NAME, make_test_model,
                                                       parameter_counts)
    from edgevoice_export.emotivoice.checkpoints import AM_CKPT_DIR, STYLE_CKPT_DIR
    from edgevoice_export.graph_export import ExportOptions

    root, bundle = work / f"model-{size}", work / f"bundle-{size}"
    am_file, style_file = root / AM_CKPT_DIR / AM_CKPT_NAME, root / STYLE_CKPT_DIR / STYLE_CKPT_NAME
    made_s = None
    if not (am_file.exists() and style_file.exists()):
        start = time.perf_counter()
        make_test_model(root, size=size, seed=0)
        made_s = time.perf_counter() - start
    # parameters = tensors in the files, less registered buffers (BERT's position_ids)
    g = {k: t for k, t in torch.load(am_file, map_location="cpu", weights_only=True)["generator"].items()
         if not k.endswith("position_ids")}
    style = {k: t for k, t in torch.load(style_file, map_location="cpu", weights_only=True)["model"].items()
             if not k.endswith("position_ids")}
    counts = {"g": sum(t.numel() for t in g.values()), "g_tensors": len(g),
              "g_am": sum(t.numel() for k, t in g.items() if k.startswith("am.")),
              "g_generator": sum(t.numel() for k, t in g.items() if k.startswith("generator.")),
              "g_alignment_module": sum(t.numel() for k, t in g.items() if k.startswith("am.alignment_module.")),
              "style": sum(t.numel() for t in style.values()), "style_tensors": len(style),
              "style_bert": sum(t.numel() for k, t in style.items() if k.startswith("module.bert."))}
    del g, style
    start = time.perf_counter()
    report = export_emotivoice(resolve_files(root, {}),
                               ExportOptions(bundle, overwrite=True, progress=False, threads=threads))
    export_s = time.perf_counter() - start
    formats: dict[str, float] = {}
    for path in bundle.rglob("*"):
        if path.is_file():
            kind = {".xml": "openvino", ".bin": "openvino", ".onnx": "onnx", ".data": "onnx"}.get(path.suffix, "other")
            formats[kind] = formats.get(kind, 0.0) + path.stat().st_size / 2**20
    return {"model_written_s": made_s, "export_s": export_s, "export_peak_rss_mib": peak_rss_mib(),
            "bundle_mib": folder_mib(bundle), "bundle_mib_by_format": formats, "model_mib": folder_mib(root),
            "parameters": counts, "parameters_expected": parameter_counts(size), "parity": report.lines()}


def child_cold(bundle: str, variant: str, threads: int) -> dict:
    """A fresh process: import, load, the prompt's embedding and the first (Chinese) sentence; then peak RSS."""
    start = time.perf_counter()
    import edgevoice  # noqa: F401  (import cost)
    import_s = time.perf_counter() - start
    rss = {"imported": rss_mib()}
    t0 = time.perf_counter()
    synth, _ = load_synth(bundle, variant, threads)
    load_s = time.perf_counter() - t0
    rss["loaded"] = rss_mib()
    t1 = time.perf_counter()
    voice = synth.voice_for(prompt=PROMPT)
    voice_s = time.perf_counter() - t1
    rss["after_prompt"] = rss_mib()
    t2 = time.perf_counter()
    audio = synth.synthesize(COLD_TEXT, voice)
    first_s = time.perf_counter() - t2
    rss["after_first_sentence"] = rss_mib()
    from edgevoice.emotivoice import zh

    precision = {}
    for name, session in synth._sessions.items():  # what OpenVINO actually compiled for
        compiled = getattr(session, "_compiled", None)
        if compiled is not None:
            precision[name] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    return {"import_s": import_s, "load_s": load_s, "voice_s": voice_s, "first_sentence_s": first_s,
            "cold_s": load_s + voice_s + first_s, "jieba_pinyin_init_s": zh.engines_init_seconds(),
            "audio_s": audio.size / synth.sample_rate, "rss_mib": rss, "peak_rss_mib": peak_rss_mib(),
            "compiled_precision": precision}


def child_jieba() -> dict:
    """jieba + pypinyin first-call initialisation, in a process that has not touched them."""
    from edgevoice.emotivoice import zh

    before = rss_mib()
    t0 = time.perf_counter()
    zh.g2p_cn(JIEBA_TEXT)
    first = time.perf_counter() - t0
    after = rss_mib()
    t1 = time.perf_counter()
    zh.g2p_cn(JIEBA_TEXT)
    second = time.perf_counter() - t1
    return {"first_call_s": first, "second_call_s": second, "init_s": zh.engines_init_seconds(),
            "rss_added_mib": after - before, "peak_rss_mib": peak_rss_mib()}


def child_warm(bundle: str, variant: str, threads: int, rounds: int, outputs: Path, reference: Path | None) -> dict:
    synth, probe = load_synth(bundle, variant, threads)
    voice = synth.voice_for(prompt=PROMPT)
    hop, rate = int(synth.model["hop"]), synth.sample_rate
    pieces = [(label, piece) for label, text in SENTENCES for piece in synth.split_text(text)]
    for _, text in SENTENCES:  # warm-up: compile every graph, load jieba / pypinyin / the CMU dictionary
        synth.synthesize(text, voice)
    next(iter(synth.stream(FIRST_AUDIO_TEXT, voice, chunked=True)))

    def stage_round() -> tuple[list[dict], dict]:
        rows, saved = [], {}
        for index, (label, piece) in enumerate(pieces):
            probe.reset()
            row = {"label": label, "text": piece}
            t = time.perf_counter()
            phonemes, ids = synth.phonemes(piece)
            row["frontend_s"] = time.perf_counter() - t
            synth._styles.pop(piece, None)
            t = time.perf_counter()
            content = synth.style_embedding(piece)
            row["style_s"] = time.perf_counter() - t
            t = time.perf_counter()
            durations, mel = synth.acoustic(ids, voice.speaker_row, voice.style, content)
            row["acoustic_s"] = time.perf_counter() - t
            t = time.perf_counter()
            wav = synth.vocode(mel)
            row["vocode_s"] = time.perf_counter() - t
            row.update(probe.seconds)
            row.update({"phones": len(ids), "bert_tokens": int(synth.tokenizer.encode(piece).size),
                        "frames": int(mel.shape[0]), "audio_s": wav.size / rate})
            saved.update({f"durations_{index}": probe.predicted[0], f"mel_{index}": mel, f"wav_{index}": wav})
            rows.append(row)
        return rows, saved

    def e2e_round() -> list[float]:
        out = []
        for _, text in SENTENCES:
            synth._styles.clear()  # content embeddings are recomputed; the prompt's lives in `voice`
            t = time.perf_counter()
            synth.synthesize(text, voice)
            out.append(time.perf_counter() - t)
        return out

    def first_audio() -> float:
        synth._styles.clear()
        t = time.perf_counter()
        stream = synth.stream(FIRST_AUDIO_TEXT, voice, chunked=True)
        chunk = next(iter(stream))
        elapsed = time.perf_counter() - t
        stream.close()
        assert chunk.audio.size > 0
        return elapsed

    stage_rounds, e2e_rounds, first = [], [], []
    saved = {}
    usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(rounds):  # interleaved so a noisy neighbour hits every measurement alike
        rows, saved = stage_round()
        stage_rounds.append(rows)
        e2e_rounds.append(e2e_round())
        first.append(first_audio())
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    cpu_share = cpu_s / ((time.perf_counter() - wall) * threads)  # 1.0: all `threads` cores busy the whole time

    stage = []
    for index, (label, piece) in enumerate(pieces):
        row = dict(stage_rounds[0][index])
        for key in ("frontend_s", "style_s", "acoustic_s", "vocode_s", *GRAPHS):
            row[key] = statistics.median(r[index][key] for r in stage_rounds)
        stage.append(row)
    np.savez(outputs / f"{variant}.npz", **saved)
    result = {"variant": variant, "pieces": stage,
              "e2e_s": [statistics.median(r[i] for r in e2e_rounds) for i in range(len(SENTENCES))],
              "first_audio_s": statistics.median(first), "first_audio_rounds": first,
              "cpu_share": cpu_share, "first_chunk_frames": synth.default_options.vocoder_chunk_frames,
              "vocoder_context_frames": synth.vocoder_context, "hop": hop, "sample_rate": rate}
    if reference is not None and reference.exists():
        # vocoder alone: this variant's HiFi-GAN on the reference's mel
        ref = np.load(reference)
        result["vocoder_only_snr_db"] = [snr_db(ref[f"wav_{i}"], synth.vocode(ref[f"mel_{i}"]))
                                         for i in range(len(pieces))]
    return result


# ------------------------------------------------------------------------------------------------ report


def accuracy(outputs: Path, test: str, reference: str, n: int) -> list[dict]:
    """Per piece: do the durations the graph predicted agree (the run itself uses pinned ones), max |Δmel| / max
    |mel| and the waveform's SNR against `reference`."""
    ref, other = np.load(outputs / f"{reference}.npz"), np.load(outputs / f"{test}.npz")
    rows = []
    for i in range(n):
        a, b = ref[f"durations_{i}"], other[f"durations_{i}"]
        rows.append({"durations_changed": int(np.sum(a != b)), "phones": int(a.size),
                     "mel_max_rel": max_rel(ref[f"mel_{i}"], other[f"mel_{i}"]),
                     "mel_max_rel_first": max_rel(ref[f"mel_{i}"][:EARLY_FRAMES], other[f"mel_{i}"][:EARLY_FRAMES]),
                     "wav_snr_db": snr_db(ref[f"wav_{i}"], other[f"wav_{i}"])})
    return rows


def summarize(warm: dict, cold: list[dict]) -> dict:
    pieces = warm["pieces"]
    audio = sum(p["audio_s"] for p in pieces)
    out = {f"{name}_rtf": sum(p[name] for p in pieces) / audio for name in GRAPHS}
    out["graphs_rtf"] = sum(out[f"{name}_rtf"] for name in GRAPHS)
    out["stages_rtf"] = sum(p["frontend_s"] + p["style_s"] + p["acoustic_s"] + p["vocode_s"] for p in pieces) / audio
    out["e2e_rtf"] = sum(warm["e2e_s"]) / audio
    out["frontend_ms_mean"] = 1000 * statistics.mean(p["frontend_s"] for p in pieces)
    out["frontend_ms_max"] = 1000 * max(p["frontend_s"] for p in pieces)
    out["audio_s"] = audio
    out["first_audio_s"] = warm["first_audio_s"]
    for key in ("cold_s", "load_s", "voice_s", "first_sentence_s", "import_s", "peak_rss_mib"):
        out[key] = statistics.median(c[key] for c in cold)
    for stage in ("loaded", "after_prompt", "after_first_sentence"):
        out[f"rss_{stage}_mib"] = statistics.median(c["rss_mib"][stage] for c in cold)
    out["cpu_share"] = warm["cpu_share"]
    return out


def markdown(info: dict) -> str:
    cpu, args, summary = info["cpu"], info["args"], info["summary"]
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in cpu["flags"].items())
    ex = info["export"]
    p, pe = ex["parameters"], ex["parameters_expected"]
    lines = [
        f"## EmotiVoice at {args['size']} size: OpenVINO FP32 / BF16 and onnxruntime FP32 ({info['date']})",
        "",
        f"`{info['command']}`",
        "",
        f"CPU: {cpu['model']}, {cpu['cores']} logical cores; {flags}. {args['threads']} threads, OpenVINO "
        f"{info['versions']['openvino']}, onnxruntime {info['versions']['onnxruntime']}, load average "
        f"{info['load'][0]:.1f} at the start and {info['load_end'][0]:.1f} at the end (the machine is shared: "
        "timings are noisy).",
        "",
        f"Random weights in upstream's layout (`make_test_model(size={args['size']!r})`): g_* "
        f"{p['g']:,} parameters in {p['g_tensors']} tensors (am {p['g_am']:,} of which alignment_module "
        f"{p['g_alignment_module']:,}, generator {p['g_generator']:,}); style checkpoint {p['style']:,} in "
        f"{p['style_tensors']} tensors (BERT {p['style_bert']:,})"
        + ("" if (p["g"], p["style"]) == (pe["g"], pe["style"]) else
           f" — **differs from parameter_counts(): g {pe['g']:,}, style {pe['style']:,}**") + ".",
        f"Export (OpenVINO IR + ONNX, parity-checked): {ex['export_s']:.0f} s, peak RSS "
        f"{ex['export_peak_rss_mib']:.0f} MiB; bundle {ex['bundle_mib']:.0f} MiB ("
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(ex["bundle_mib_by_format"].items())) + ")."
        + ("" if info["export_fresh"] else " (export figures from an earlier run: the bundle was reused)"),
        "",
        "| variant | style_bert | am_front | am_back | hifigan | all graphs | synthesize (warm) | front-end ms "
        "mean / max | first audio s | cold s (load + first sentence) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['style_bert_rtf']:.4f} | {s['am_front_rtf']:.4f} | {s['am_back_rtf']:.4f} | "
            f"{s['hifigan_rtf']:.4f} | {s['graphs_rtf']:.4f} | {s['e2e_rtf']:.4f} | {s['frontend_ms_mean']:.1f} / "
            f"{s['frontend_ms_max']:.1f} | {s['first_audio_s']:.3f} | {s['cold_s']:.2f} ({s['load_s']:.2f} + "
            f"{s['voice_s']:.2f} + {s['first_sentence_s']:.2f}) | {s['peak_rss_mib']:.0f} |")
    first = next(iter(summary.values()))
    lines += [
        "",
        f"Graph and synthesize columns: seconds of compute per second of audio over the {len(SENTENCES)} sentences "
        f"({first['audio_s']:.1f} s of speech at pinned durations of 4–6 frames per token; median of "
        f"{args['rounds']} rounds after warm-up). Cold: a fresh "
        "process, `edgevoice.load` + `voice_for(prompt=...)` (style_bert compile and run) + the first (Chinese) "
        f"sentence, which includes jieba/pypinyin's start-up; median of {args['cold_rounds']} processes; the "
        "import of edgevoice (~" + f"{first['import_s']:.2f} s) is not counted. Peak RSS: ru_maxrss of that process. "
        f"First audio: `stream(..., chunked=True)` to its first chunk ({info['first_audio_words']} words, "
        "content embedding not cached).",
        f"jieba + pypinyin first-call initialisation (fresh process, median of {len(info['jieba'])}): "
        f"{statistics.median(j['init_s'] for j in info['jieba']):.2f} s; the same call afterwards "
        f"{1000 * statistics.median(j['second_call_s'] for j in info['jieba']):.1f} ms; it adds "
        f"{statistics.median(j['rss_added_mib'] for j in info['jieba']):.0f} MiB of RSS. RSS in the cold process "
        "(median; after load / after the prompt's embedding (style_bert compiled) / after the first sentence): "
        + "; ".join(f"{v} {c['rss_loaded_mib']:.0f} / {c['rss_after_prompt_mib']:.0f} / "
                    f"{c['rss_after_first_sentence_mib']:.0f} MiB" for v, c in summary.items()) + ".",
        "CPU share during the warm rounds (process CPU time / (wall × threads); 1.0 = both cores ours throughout): "
        + ", ".join(f"{v} {c['cpu_share']:.2f}" for v, c in summary.items()) + ".",
    ]
    if info.get("hifigan_gflop_per_audio_s"):
        g = info["hifigan_gflop_per_audio_s"]
        lines.append(f"HiFi-GAN costs {g:.1f} GFLOP per second of audio (convolutions, from config.yaml): "
                     + ", ".join(f"{v} ran it at {g / c['hifigan_rtf']:.0f} GFLOP/s" for v, c in summary.items())
                     + f"; at 0.05 s per audio second the vocoder alone would need {g / 0.05:.0f} GFLOP/s.")
    if info["bf16_note"]:
        lines.append(info["bf16_note"])
    # per sentence
    variants = list(info["warm"])
    lines += ["", "Per sentence piece (warm; RTF = synthesize-equivalent stage time / audio seconds):", "",
              "| sentence | chars | phones | BERT tokens | audio s | front-end ms | "
              + " | ".join(f"{v} RTF" for v in variants) + " |",
              "|---|---|---|---|---|---|" + "---|" * len(variants)]
    pieces0 = info["warm"][variants[0]]["pieces"]
    for i, piece in enumerate(pieces0):
        rtfs = []
        for v in variants:
            q = info["warm"][v]["pieces"][i]
            rtfs.append(f"{(q['frontend_s'] + q['style_s'] + q['acoustic_s'] + q['vocode_s']) / q['audio_s']:.4f}")
        lines.append(f"| {piece['label']} | {len(piece['text'])} | {piece['phones']} | {piece['bert_tokens']} | "
                     f"{piece['audio_s']:.2f} | {1000 * piece['frontend_s']:.1f} | " + " | ".join(rtfs) + " |")
    if info.get("accuracy"):
        lines += ["", "Accuracy against OpenVINO FP32 on the same pieces (BF16; onnxruntime FP32 as a yardstick). "
                  "Predicted durations: tokens whose rounded duration differs from FP32's (the run itself uses the "
                  "pinned ones, so mel and waveform are compared frame for frame); HiFi-GAN alone: this variant's "
                  "vocoder on FP32's mel.", "",
                  "| sentence | variant | predicted durations differing | max abs Δmel / max abs mel | "
                  f"same, first {EARLY_FRAMES} frames | waveform SNR dB | HiFi-GAN alone SNR dB |",
                  "|---|---|---|---|---|---|---|"]
        for name, rows in info["accuracy"].items():
            vocoder = info["warm"][name].get("vocoder_only_snr_db", [None] * len(rows))
            for piece, row, voc in zip(pieces0, rows, vocoder):
                lines.append(f"| {piece['label']} | {name} | {row['durations_changed']} / {row['phones']} | "
                             f"{row['mel_max_rel']:.2e} | {row['mel_max_rel_first']:.2e} | {row['wav_snr_db']:.1f} | "
                             f"{'—' if voc is None else f'{voc:.1f}'} |")
        for name, rows in info["accuracy"].items():
            lines.append(f"{name} worst case: max rel mel error {max(r['mel_max_rel'] for r in rows):.2e}, "
                         f"lowest waveform SNR {min(r['wav_snr_db'] for r in rows):.1f} dB.")
    lines += ["", "Goals (issue): ≤ 0.05 s of compute per second of audio with 2 threads on an AVX-512 BF16 CPU; "
              "peak RSS ≤ 400 MB in a fresh process."]
    for name, s in summary.items():
        share = max(GRAPHS, key=lambda g: s[f"{g}_rtf"])
        lines.append(f"* {name}: synthesize {s['e2e_rtf']:.3f} s/s ({s['e2e_rtf'] / 0.05:.1f}× the goal), "
                     f"peak RSS {s['peak_rss_mib']:.0f} MiB ({s['peak_rss_mib'] * 2**20 / 1e6:.0f} MB); "
                     f"largest share: {share} ({100 * s[f'{share}_rtf'] / s['graphs_rtf']:.0f} % of graph time).")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder for the model set, the bundle and the outputs")
    parser.add_argument("--size", default="full", choices=("tiny", "full"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds (median kept)")
    parser.add_argument("--cold-rounds", type=int, default=3, help="fresh processes per variant (median kept)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--reuse-bundle", action="store_true",
                        help="skip the export when the bundle and its export.json exist")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", default=str(Path(__file__).parent / "results" / "emotivoice_speed.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    bundle = work / f"bundle-{args.size}"
    outputs = work / "outputs"

    if args.child:
        if args.child == "export":
            result = child_export(work, args.size, args.threads)
        elif args.child == "cold":
            result = child_cold(str(bundle), args.variant, args.threads)
        elif args.child == "jieba":
            result = child_jieba()
        else:
            result = child_warm(str(bundle), args.variant, args.threads, args.rounds, outputs,
                                Path(args.reference) if args.reference else None)
        print(json.dumps(result))
        return

    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    outputs.mkdir(exist_ok=True)
    cpu = cpu_info()
    load = os.getloadavg()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    bf16_note = ""
    if "openvino-bf16" in variants and not any(cpu["flags"].get(f) for f in BF16_FLAGS):
        variants.remove("openvino-bf16")
        bf16_note = ("OpenVINO BF16 not measured: this CPU lists neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo "
                     "(BF16 would be emulated or fall back to FP32).")
        print(bf16_note, flush=True)

    export_json = work / f"export-{args.size}.json"
    export_fresh = not (args.reuse_bundle and export_json.exists() and (bundle / "manifest.json").exists())
    if export_fresh:
        print(f"writing the {args.size} model set (unless present) and exporting it …", flush=True)
        export = run_child(args, "--child", "export")
        export_json.write_text(json.dumps(export, indent=1))
    else:
        export = json.loads(export_json.read_text())
    print(json.dumps({"export": export}), flush=True)
    int8 = Path(f"{bundle}-int8")
    if "openvino-int8" in variants and not (int8 / "manifest.json").exists():
        # in its own process: Linux keeps a process's peak RSS across fork and exec, so a parent grown by
        # quantising would lift every child's ru_maxrss
        print("making the INT8/BF16 variant for this CPU (edgevoice quantize) …", flush=True)
        command = [sys.executable, "-c", "from edgevoice.cli import main; main()", "quantize", "--bundle",
                   str(bundle), "--out", str(int8), "--threads", str(args.threads)]
        subprocess.run(command, check=True)

    # jieba / pypinyin start-up, in fresh processes
    jieba = [run_child(args, "--child", "jieba") for _ in range(args.cold_rounds)]
    print(json.dumps({"jieba": jieba}), flush=True)

    warm = {}
    order = sorted(variants, key=lambda v: v != "openvino-f32")  # FP32 first: BF16 vocodes its mels
    for variant in order:
        extra = ["--child", "warm", "--variant", variant]
        if variant != "openvino-f32" and "openvino-f32" in variants:
            extra += ["--reference", str(outputs / "openvino-f32.npz")]
        warm[variant] = run_child(args, *extra)
        print(json.dumps({"warm": variant, "first_audio_s": warm[variant]["first_audio_s"],
                          "e2e_s": warm[variant]["e2e_s"]}), flush=True)
    cold: dict[str, list[dict]] = {v: [] for v in order}
    for _ in range(args.cold_rounds):
        for variant in order:
            cold[variant].append(run_child(args, "--child", "cold", "--variant", variant))
            print(json.dumps({"cold": variant, **cold[variant][-1]}), flush=True)

    summary = {v: summarize(warm[v], cold[v]) for v in order}
    gflop = hifigan_gflop_per_second(work / f"model-{args.size}" / "config" / "joint" / "config.yaml")
    n_pieces = len(warm[order[0]]["pieces"])
    acc = {}
    if "openvino-f32" in order:
        for v in order:
            if v != "openvino-f32":
                acc[v] = accuracy(outputs, v, "openvino-f32", n_pieces)
    import onnxruntime
    import openvino

    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *sys.argv[1:]])
    info = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": command, "cpu": cpu,
            "args": vars(args), "versions": {"openvino": openvino.__version__.split("-")[0],
                                             "onnxruntime": onnxruntime.__version__},
            "load": load, "load_end": os.getloadavg(), "export": export, "export_fresh": export_fresh,
            "jieba": jieba, "warm": warm, "cold": cold, "summary": summary, "accuracy": acc, "bf16_note": bf16_note,
            "first_audio_words": len(FIRST_AUDIO_TEXT.split()), "sentences": SENTENCES,
            "hifigan_gflop_per_audio_s": gflop}
    text = markdown(info)
    info["benchmark_s"] = time.perf_counter() - started
    print(text)
    print(f"benchmark took {info['benchmark_s']:.0f} s", flush=True)
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# EmotiVoice speed (benchmarks/emotivoice_speed.py)\n\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1, default=str))


if __name__ == "__main__":
    main()
