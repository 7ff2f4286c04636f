"""End-to-end speed of one bundle against our PyTorch reference, in the same run.

Protocol: a 5 s reference clip, one English sentence, the GPT forced to generate exactly `--seconds` × 25 tokens
(random weights never emit EOS on their own, so length is pinned the same way for every pipeline), flow noise
scale 0.5, `--threads` CPU threads. Each pipeline runs in its own subprocess (clean peak-memory figure, no shared
thread pools), rounds are interleaved so a noisy machine affects every pipeline alike, and the median is kept.

    python benchmarks/e2e_speed.py --models DIR --bundle DIR [--threads 2] [--seconds 10] [--rounds 2]

`--models` is a folder from `edgevoice make-test-model` (gpt.ckpt, sovits.pth, chinese-hubert-base,
chinese-roberta-wwm-ext-large); `--bundle` is its export. Results go to stdout as JSON lines and, with
`--write-results`, into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TOKENS_PER_SECOND = 25
TEXT = ("Every evening after work, my sister walks her small brown dog along the river and watches the boats "
        "sail past the old bridge.")
PROMPT_TEXT = "The morning light spread slowly across the quiet valley, and every bird began to sing."
PIPELINES = ("pytorch", "openvino", "onnxruntime")  # + "openvino-int8" when --int8-bundle is given


def reference_clip(seconds: float = 5.0, rate: int = 32000) -> np.ndarray:
    """A deterministic speech-like signal (gliding harmonics, syllable-rate envelope)."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.2 * voice * (0.5 * (1 + np.sin(2 * np.pi * 3.5 * t))) ** 2 / np.abs(voice).max()).astype(np.float32)


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def run_runtime(bundle: str, backend: str, threads: int, tokens: int) -> dict:
    from edgevoice import Synthesizer, frontend
    from edgevoice.audio import resample_soxr
    from edgevoice.gpt_sovits.reference import HUBERT_RATE
    from edgevoice.gpt_sovits.sampler import SamplingOptions

    synth, load_s = _timed(Synthesizer.load, bundle, backend, threads)
    ref = reference_clip()
    wav16k = resample_soxr(ref, 32000, HUBERT_RATE)
    # Compile every graph before timing (first calls include OpenVINO's compile).
    warm = synth.reference_codes(wav16k)
    synth.timbre(ref)
    codes, hubert_s = _timed(synth.reference_codes, wav16k)
    ge, ref_s = _timed(synth.timbre, ref)  # spectrogram → ge (+ the speaker embedding for v2Pro/Plus)
    start = time.perf_counter()
    prompt, prompt_bert = synth.phonemize(frontend.prepare_prompt_text(PROMPT_TEXT, "en"), "en")
    target, target_bert = synth.phonemize(TEXT, "en")
    text_s = time.perf_counter() - start
    phones = np.concatenate([prompt.phone_ids, target.phone_ids])
    bert = np.concatenate([prompt_bert, target_bert], axis=1)
    options = SamplingOptions(min_tokens=tokens, max_tokens=tokens)
    synth.generate_tokens(phones, bert, codes, SamplingOptions(min_tokens=4, max_tokens=4))  # warm-up
    generated, gpt_s = _timed(synth.generate_tokens, phones, bert, codes, options, np.random.default_rng(0))
    noise = np.random.default_rng(1).standard_normal((1, 192, 2 * generated.size)).astype(np.float32) * 0.5
    synth.decode_tokens(generated[:8], target.phone_ids, noise=noise[..., :16], ge=ge)  # warm-up
    audio, sovits_s = _timed(lambda: synth.decode_tokens(generated, target.phone_ids, noise=noise, ge=ge))
    del warm
    return {"load_s": load_s, "hubert_s": hubert_s, "ref_enc_s": ref_s, "text_s": text_s, "gpt_s": gpt_s,
            "sovits_s": sovits_s, "tokens": int(generated.size), "audio_s": audio.size / synth.sample_rate,
            "prefill_len": int(phones.size + codes.size)}


def run_pytorch(models: str, threads: int, tokens: int) -> dict:
    import torch

    from edgevoice import frontend
    from edgevoice.audio import resample_soxr
    from edgevoice.gpt_sovits.reference import HUBERT_RATE
    from edgevoice.gpt_sovits.sampler import SamplingOptions, sample_token
    from edgevoice.gpt_sovits.spectrogram import linear_spectrogram
    from edgevoice_export.gpt_sovits.checkpoints import load_gpt_checkpoint, load_sovits_checkpoint
    from edgevoice_export.gpt_sovits.models.gpt import Text2SemanticDecoder
    from edgevoice_export.gpt_sovits.models.sovits import SoVITS
    from edgevoice_export.gpt_sovits.models.ssl import HubertContent

    torch.set_num_threads(threads)
    root = Path(models)
    start = time.perf_counter()
    gpt = Text2SemanticDecoder.from_checkpoint(load_gpt_checkpoint(root / "gpt.ckpt"))
    sovits = SoVITS.from_checkpoint(load_sovits_checkpoint(root / "sovits.pth")).fold_weight_norm().eval()
    hubert = HubertContent.from_dir(root / "chinese-hubert-base")
    load_s = time.perf_counter() - start
    ref = reference_clip()
    wav16k = np.concatenate([resample_soxr(ref, 32000, HUBERT_RATE), np.zeros(9600, np.float32)])
    with torch.no_grad():
        def codes_fn():
            return sovits.extract_latent(hubert(torch.from_numpy(wav16k)[None]))[0]

        codes_fn()
        codes, hubert_s = _timed(codes_fn)
        ge, ref_s = _timed(lambda: sovits.reference_embedding(torch.from_numpy(linear_spectrogram(ref))))
        start = time.perf_counter()
        prompt = frontend.phonemize(frontend.prepare_prompt_text(PROMPT_TEXT, "en"), "en")
        target = frontend.phonemize(TEXT, "en")
        text_s = time.perf_counter() - start
        phones = torch.tensor([prompt.phone_ids + target.phone_ids])
        bert = torch.zeros(1, 1024, phones.shape[1])  # English: BERT features are zeros upstream too
        options = SamplingOptions(min_tokens=tokens, max_tokens=tokens)

        def generate():
            rng = np.random.default_rng(0)
            logits, keys, values = gpt.prefill(phones, bert, codes)
            history = list(codes[0].tolist())
            position = codes.shape[1]
            for step in range(tokens):
                token, _ = sample_token(logits[0].numpy(), np.array(history), step, gpt.eos, options, rng)
                history.append(token)
                if step == tokens - 1:
                    break
                # Upstream's way: grow every layer's cache with torch.cat each step.
                mask = torch.zeros(1, keys[0].shape[2])
                logits, new_k, new_v = gpt.step(torch.tensor([[token]]), torch.tensor([position]), mask, keys, values)
                keys = [torch.cat([k, n], dim=2) for k, n in zip(keys, new_k)]
                values = [torch.cat([v, n], dim=2) for v, n in zip(values, new_v)]
                position += 1
            return np.array(history[codes.shape[1]:])

        generated, gpt_s = _timed(generate)
        noise = np.random.default_rng(1).standard_normal((1, 192, 2 * generated.size)).astype(np.float32) * 0.5
        decode = lambda: sovits.decode(torch.from_numpy(generated).view(1, 1, -1), torch.tensor([target.phone_ids]),
                                       ge, torch.from_numpy(noise))
        audio, sovits_s = _timed(decode)
    return {"load_s": load_s, "hubert_s": hubert_s, "ref_enc_s": ref_s, "text_s": text_s, "gpt_s": gpt_s,
            "sovits_s": sovits_s, "tokens": int(generated.size), "audio_s": audio.numel() / 32000,
            "prefill_len": int(phones.shape[1] + codes.shape[1])}


def child(args) -> None:
    if args.pipeline == "pytorch":
        result = run_pytorch(args.models, args.threads, args.tokens)
    elif args.pipeline == "openvino-int8":
        result = run_runtime(args.int8_bundle, "openvino", args.threads, args.tokens)
    else:
        result = run_runtime(args.bundle, args.pipeline, args.threads, args.tokens)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def summarize(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], float)]
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["tokens"] = runs[0]["tokens"]
    out["synthesis_s"] = out["text_s"] + out["gpt_s"] + out["sovits_s"]
    out["with_reference_s"] = out["synthesis_s"] + out["hubert_s"] + out["ref_enc_s"]
    out["rtf"] = out["synthesis_s"] / out["audio_s"]
    out["rtf_with_reference"] = out["with_reference_s"] / out["audio_s"]
    out["ms_per_token"] = 1000 * out["gpt_s"] / out["tokens"]
    out["vocoder_s_per_audio_s"] = out["sovits_s"] / out["audio_s"]
    return out


def markdown(summary: dict[str, dict], args, load: tuple[float, float, float]) -> str:
    base_name = "pytorch" if "pytorch" in summary else next(iter(summary))
    base = summary[base_name]
    lines = [
        "## End to end: OpenVINO FP32 / INT8, onnxruntime FP32 vs our PyTorch reference",
        "",
        f"`python benchmarks/e2e_speed.py --models {args.models} --bundle {args.bundle} "
        f"{'--int8-bundle ' + args.int8_bundle + ' ' if args.int8_bundle else ''}--threads {args.threads} "
        f"--seconds {args.seconds} --rounds {args.rounds}`: full-size random-weight v2 model set "
        f"(`edgevoice make-test-model --size full`), 5 s reference, {base['tokens']} tokens "
        f"(= {base['audio_s']:.1f} s of audio) forced, {args.threads} threads, median of "
        f"{args.rounds} interleaved rounds, load average {load[0]:.1f} at the start.",
        "",
        "| pipeline | GPT ms/token | SoVITS s per audio s | HuBERT s | synthesis RTF | RTF incl. reference | "
        f"peak RSS MiB | speed-up vs {base_name} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['ms_per_token']:.1f} | {s['vocoder_s_per_audio_s']:.3f} | {s['hubert_s']:.2f} | "
                     f"{s['rtf']:.3f} | {s['rtf_with_reference']:.3f} | {s['peak_rss_mib']:.0f} | "
                     f"{base['synthesis_s'] / s['synthesis_s']:.2f}× |")
    lines += ["", "RTF = seconds of compute per second of audio (lower is faster); synthesis = text front-end + "
              "GPT + SoVITS for a voice whose reference was analysed once; 'incl. reference' adds HuBERT and the "
              "reference encoder."]
    if "openvino" in summary and "openvino-int8" in summary:
        fp32, int8 = summary["openvino"], summary["openvino-int8"]
        lines.append(f"OpenVINO INT8 vs FP32, same run: synthesis {fp32['synthesis_s'] / int8['synthesis_s']:.2f}×, "
                     f"GPT {fp32['ms_per_token'] / int8['ms_per_token']:.2f}×, SoVITS "
                     f"{fp32['vocoder_s_per_audio_s'] / int8['vocoder_s_per_audio_s']:.2f}×.")
    lines.append("")
    return "\n".join(lines)


def write_results(text: str, heading: str) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    current = path.read_text() if path.exists() else "# Benchmark results\n\nEvery table below comes from a " \
        "script in this folder; rerun it to reproduce.\n\n"
    start = current.find(heading)
    if start >= 0:
        end = current.find("\n## ", start + len(heading))
        current = current[:start] + current[end + 1 :] if end >= 0 else current[:start]
    path.write_text(current.rstrip("\n") + "\n\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--int8-bundle", default=None, help="also time this INT8 variant with OpenVINO")
    parser.add_argument("--pipelines", default=None, help="comma-separated subset of the pipelines")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline:
        child(args)
        return
    tokens = int(round(args.seconds * TOKENS_PER_SECOND))
    load = os.getloadavg()
    pipelines = args.pipelines.split(",") if args.pipelines else list(PIPELINES) + (
        ["openvino-int8"] if args.int8_bundle else [])
    runs: dict[str, list[dict]] = {p: [] for p in pipelines}
    for round_index in range(args.rounds):
        for pipeline in runs:
            command = [sys.executable, __file__, "--models", args.models, "--bundle", args.bundle, "--threads",
                       str(args.threads), "--pipeline", pipeline, "--tokens", str(tokens)]
            if args.int8_bundle:
                command += ["--int8-bundle", args.int8_bundle]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                sys.exit(f"{pipeline} failed:\n{result.stderr[-4000:]}")
            runs[pipeline].append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(json.dumps({"round": round_index, "pipeline": pipeline, **runs[pipeline][-1]}), flush=True)
    summary = {name: summarize(r) for name, r in runs.items()}
    table = markdown(summary, args, load)
    print(table)
    if args.write_results:
        write_results(table, "## End to end: OpenVINO")


if __name__ == "__main__":
    main()
