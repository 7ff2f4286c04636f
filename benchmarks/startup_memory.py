"""Start-up time and memory of English GPT-SoVITS synthesis, each case in a fresh process.

Why: a command-line `say` or a newly started server worker pays for compiling every graph before its first audio,
and a small device has to hold every loaded graph at once. Cases (each one process, under `/usr/bin/time -v` when
it exists, `--rounds` times, medians reported):

* compile: every graph the English path and voice creation load, compiled with an empty compile cache and then
  again from the warm cache (OpenVINO's LOADED_FROM_CACHE says which happened);
* first audio: process start (just before the parent spawns it) → the first chunk `stream()` yields, with a voice
  file made beforehand, with an empty and with a warm cache (the cases interleaved round by round, as the machine's
  load drifts); `whole`: a short sentence (`--short-tokens` tokens) as one fragment; `stream`: the long sentence
  streamed in chunks of `--chunk-tokens` tokens (when the synthesizer streams by tokens);
* memory: the ~10 s sentence (`--tokens` tokens: random weights never stop by themselves) with the voice file, and
  with the voice made in the same process (with and without `release_reference_graphs()`), plus variants: no
  cache, token-chunk streaming, `MALLOC_ARENA_MAX=2`, OpenVINO's and oneDNN's per-shape caches off. Per case: peak
  RSS (VmHWM, and /usr/bin/time's maximum), RssAnon/RssFile at the end, and a timeline of each graph's compile and
  first inference (what each one adds), the graphs loaded, and whether the BERT weights were ever mapped.

    python benchmarks/startup_memory.py --bundle DIR --reference WAV --reference-text TEXT [--rounds 3]
        [--threads 2] [--out benchmarks/results/startup_memory.md] [--json FILE] [--cases compile,first,memory]

Writes a markdown report (CPU model and flags, load average, OpenVINO version, the command) to `--out`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

LONG_TEXT = ("Every evening my sister walks her small brown dog along the river, past the boats and the old stone "
             "bridge, and then they rest together on a bench while the sun goes down.")
SHORT_TEXT = "Hello there, how are you today?"
ENGLISH_GRAPHS = ("gpt_prefill", "gpt_decode", "sovits_latent", "sovits_vocoder")  # or gpt_step for the decode


def english_graphs(bundle: str) -> tuple[str, ...]:
    """The graphs English synthesis runs with this bundle on this CPU (its decode: gpt_decode, or onnxruntime's
    gpt_step; prefill, encoder + flow and vocoder: the OpenVINO graphs, or their onnxruntime stand-ins on a CPU with
    VNNI, the vocoder's float tail apart where `quantize` split it off)."""
    from edgevoice.gpt_sovits.synthesizer import Synthesizer

    synth = Synthesizer.load(bundle, verify=False)
    here = {"gpt_prefill": synth.prefill_graph, "sovits_latent": synth.latent_graph,
            "sovits_vocoder": synth.vocoder_graph}
    graphs = synth.bundle.manifest.graphs
    # the 8-bit vocoder's float tail, where it runs split off in a process that has loaded no OpenVINO graph yet
    tail = ("sovits_vocoder_tail",) if synth._vocoder_tail and synth._split_here() else ()
    return tuple(here.get(g, g) if g in graphs else "gpt_step" for g in ENGLISH_GRAPHS) + tail
REFERENCE_GRAPHS = ("hubert_codes", "ref_encoder")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


# ------------------------------------------------------------------------------------------------ child side


def status_mib() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of this process in MiB (/proc/self/status)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


def mapped(path_fragment: str) -> bool:
    return any(path_fragment in line for line in Path("/proc/self/maps").read_text().splitlines())


@dataclass
class Timeline:
    """Seconds since the child started (or since the parent spawned it) and memory at each event."""

    origin: float
    events: list = field(default_factory=list)

    def mark(self, what: str, **extra) -> None:
        self.events.append({"what": what, "t": round(time.time() - self.origin, 3), **status_mib(), **extra})


def metered_backend(timeline: Timeline, threads: int, cache_dir, extra_config: dict):
    """An OpenVINO backend that records each graph's compile and first inference on `timeline`."""
    from edgevoice.backends import OpenVINOBackend

    class Metered(OpenVINOBackend):
        def session(self, bundle, graph_name):
            timeline.mark(f"compile {graph_name} start")
            start = time.perf_counter()
            session = super().session(bundle, graph_name)
            compiled = getattr(session, "_compiled", None)  # None: a graph the bundle runs on onnxruntime
            timeline.mark(f"compile {graph_name}", seconds=round(time.perf_counter() - start, 3),
                          from_cache=None if compiled is None else bool(compiled.get_property("LOADED_FROM_CACHE")))
            def first_run(feeds, _session=session, _name=graph_name):
                del _session.run  # later runs go straight to the class's method, and no cycle keeps the session
                start = time.perf_counter()
                out = _session.run(feeds)
                timeline.mark(f"first run {_name}", seconds=round(time.perf_counter() - start, 3))
                return out

            session.run = first_run
            return session

    return Metered(threads=threads, cache_dir=cache_dir, extra_config=extra_config)


def child_compile(spec: dict) -> dict:
    """Compile each graph once (cache given by the parent: empty or warm)."""
    from edgevoice.bundle import Bundle

    timeline = Timeline(time.time())
    backend = metered_backend(timeline, spec["threads"], spec["cache_dir"], {})
    bundle = Bundle.load(spec["bundle"], lazy=True)
    for name in spec["graphs"]:
        backend.session(bundle, name)
    return {"graphs": {e["what"].split()[1]: {"seconds": e["seconds"], "from_cache": e["from_cache"]}
                       for e in timeline.events if "seconds" in e}}


def child_make_voice(spec: dict) -> dict:
    import edgevoice

    synth = edgevoice.load(spec["bundle"], threads=spec["threads"], cache_dir=None)
    synth.create_voice(spec["reference"], spec["reference_text"], "en").save(spec["voice"])
    return {"voice": spec["voice"]}


def child_synthesis(spec: dict) -> dict:
    """First audio and memory: load, (make the voice,) stream the text; events timed from the parent's spawn."""
    timeline = Timeline(spec["spawned"])
    timeline.mark("python started")
    import edgevoice

    timeline.mark("edgevoice imported")
    backend = metered_backend(timeline, spec["threads"], spec["cache_dir"], spec.get("extra_config", {}))
    synth = edgevoice.load(spec["bundle"], backend=backend)
    timeline.mark("bundle opened")
    if spec.get("voice"):
        voice = synth.voice_for(spec["voice"])
    else:
        voice = synth.create_voice(spec["reference"], spec["reference_text"], "en")
        timeline.mark("voice created")
        if spec.get("release_reference"):
            timeline.mark("reference graphs released", graphs=synth.release_reference_graphs())
    options = edgevoice.SynthesisOptions(seed=0, max_tokens=spec["tokens"])
    keywords = {}
    if spec.get("chunk_tokens"):
        if "chunk_tokens" not in inspect.signature(synth.stream).parameters:
            return {"skipped": "this synthesizer does not stream by tokens"}
        keywords["chunk_tokens"] = spec["chunk_tokens"]
    audio_s, first = 0.0, None
    for chunk in synth.stream(spec["text"], voice, "en", options, **keywords):
        audio_s += chunk.audio.size / synth.sample_rate
        if first is None:
            first = time.time() - spec["spawned"]
            timeline.mark("first audio")
            if spec.get("first_only"):
                break
    timeline.mark("done")
    return {"first_audio_s": round(first, 3), "audio_s": round(audio_s, 2), "timeline": timeline.events,
            "end": status_mib(), "graphs_loaded": sorted(synth._sessions),
            "bert_mapped": mapped(str(Path(spec["bundle"]).resolve() / "bert"))}


CHILDREN = {"compile": child_compile, "make-voice": child_make_voice, "synthesis": child_synthesis}


# ------------------------------------------------------------------------------------------------ parent side


@dataclass
class Run:
    result: dict
    max_rss_mib: float | None  # /usr/bin/time's "Maximum resident set size"
    wall_s: float


def spawn(mode: str, spec: dict, env: dict | None = None) -> Run:
    """One child process (under /usr/bin/time -v when present); its JSON result."""
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    command = timer + [sys.executable, __file__, "--child", mode]
    spec = {**spec, "spawned": time.time()}
    start = time.perf_counter()
    done = subprocess.run(command, input=json.dumps(spec), capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{done.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return Run(json.loads(done.stdout.strip().splitlines()[-1]), int(peak.group(1)) / 1024 if peak else None, wall)


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict:
    from edgevoice.parity import host

    facts = host()
    return {"cpu": facts["cpu"]["model"], "cores": len(os.sched_getaffinity(0)),
            "flags": [f for f in REPORTED_FLAGS if f in facts["cpu"]["flags"]],
            "openvino": facts["libraries"].get("openvino"), "memory_gib": round(
                os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)}


def measure_compile(args, rounds: int, scratch: Path) -> dict:
    graphs = english_graphs(args.bundle) + REFERENCE_GRAPHS
    cold, warm = [], []
    for index in range(rounds):
        cache = scratch / f"compile-{index}"
        spec = {"bundle": args.bundle, "threads": args.threads, "cache_dir": str(cache), "graphs": graphs}
        cold.append(spawn("compile", spec).result["graphs"])
        warm.append(spawn("compile", spec).result["graphs"])
        size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    out = {}
    for name in graphs:
        out[name] = {"cold_s": median(r[name]["seconds"] for r in cold),
                     "warm_s": median(r[name]["seconds"] for r in warm),
                     "warm_from_cache": all(r[name]["from_cache"] for r in warm),
                     "cold_from_cache": any(r[name]["from_cache"] for r in cold),
                     "onnxruntime": any(r[name]["from_cache"] is None for r in warm)}  # no compile cache there
    out["cache_mib"] = round(size / 2 ** 20, 1)
    return out


def synthesis_spec(args, **overrides) -> dict:
    return {"bundle": args.bundle, "threads": args.threads, "text": LONG_TEXT, "tokens": args.tokens,
            "reference": args.reference, "reference_text": args.reference_text, **overrides}


def measure_first_audio(args, rounds: int, scratch: Path, voice: str, warm_cache: Path) -> dict:
    cases = {f"{name}, {cache} cache": (case, cache) for name, case in (
        ("whole", {"text": SHORT_TEXT, "tokens": args.short_tokens}), ("stream", {"chunk_tokens": args.chunk_tokens}))
        for cache in ("empty", "warm")}
    runs: dict[str, list] = {name: [] for name in cases}
    for index in range(rounds):  # round by round: every case sees the same drift of the machine's load
        for name, (case, cache) in cases.items():
            folder = scratch / f"first-{len(runs[name])}-{name.split(',')[0]}" if cache == "empty" else warm_cache
            runs[name].append(spawn("synthesis", synthesis_spec(args, voice=voice, cache_dir=str(folder),
                                                                first_only=True, **case)))
    out = {}
    for name, done in runs.items():
        if "skipped" in done[0].result:
            out[name] = done[0].result
            continue
        middle = sorted(done, key=lambda r: r.result["first_audio_s"])[len(done) // 2]
        out[name] = {"first_audio_s": median(r.result["first_audio_s"] for r in done),
                     "all_s": [r.result["first_audio_s"] for r in done], "breakdown": middle.result["timeline"]}
    return out


MEMORY_CASES = {
    # name: (spec overrides, environment)
    "voice file": ({}, {}),
    "voice file, no cache": ({"cache_dir": None}, {}),
    "voice file, streamed": ({"stream": True}, {}),
    "voice created": ({"voice": None}, {}),
    "voice created, reference graphs released": ({"voice": None, "release_reference": True}, {}),
    "voice file, MALLOC_ARENA_MAX=2": ({}, {"MALLOC_ARENA_MAX": "2"}),
    "voice file, per-shape caches off": ({"extra_config": {"CPU_RUNTIME_CACHE_CAPACITY": "0"}},
                                         {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"}),
}


def measure_memory(args, rounds: int, voice: str, warm_cache: Path) -> dict:
    out = {}
    for name, (overrides, env) in MEMORY_CASES.items():
        overrides = dict(overrides)
        if overrides.pop("stream", False):
            overrides["chunk_tokens"] = args.chunk_tokens
        spec = {**synthesis_spec(args, voice=voice, cache_dir=str(warm_cache)), **overrides}
        runs = [spawn("synthesis", spec, env) for _ in range(rounds)]
        if "skipped" in runs[0].result:
            out[name] = runs[0].result
            continue
        middle = sorted(runs, key=lambda r: r.result["timeline"][-1]["VmHWM"])[len(runs) // 2]
        out[name] = {"peak_mib": median(r.result["timeline"][-1]["VmHWM"] for r in runs),
                     "time_max_rss_mib": median(r.max_rss_mib for r in runs),
                     "end": middle.result["end"], "audio_s": middle.result["audio_s"],
                     "graphs_loaded": middle.result["graphs_loaded"], "bert_mapped": middle.result["bert_mapped"],
                     "per_graph": per_graph(middle.result["timeline"]), "timeline": middle.result["timeline"]}
    return out


def per_graph(events: list) -> dict:
    """What each graph added to RssAnon at its compile and at its first inference (graphs load one after the
    other, so the differences are theirs), and the RSS peak reached by then."""
    out, before = {}, None
    for event in events:
        what = event["what"]
        if what.startswith("compile ") and what.endswith(" start"):
            before = event
        elif what.startswith("compile "):
            name = what.split()[1]
            out[name] = {"compile_s": event["seconds"], "compile_anon_mib": round(event["RssAnon"] - before["RssAnon"]),
                         "anon_before_first_run": event["RssAnon"]}
        elif what.startswith("first run "):
            entry = out[what.split()[2]]
            entry["first_run_anon_mib"] = round(event["RssAnon"] - entry.pop("anon_before_first_run"))
            entry["first_run_s"] = event["seconds"]
            entry["peak_mib_by_then"] = event["VmHWM"]
    for entry in out.values():
        entry.pop("anon_before_first_run", None)  # compiled but never run
    return out


# ------------------------------------------------------------------------------------------------ report


def report(meta: dict, results: dict) -> str:
    lines = [f"# Start-up and memory: {Path(meta['bundle']).name} (`benchmarks/startup_memory.py`)", "",
             f"{meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory_gib']} GiB, "
             f"flags: {', '.join(meta['machine']['flags']) or 'none of ' + ', '.join(REPORTED_FLAGS)}; OpenVINO "
             f"{meta['machine']['openvino']}; {meta['threads']} threads; load average {meta['load_before']} before, "
             f"{meta['load_after']} after ({meta['date']}, shared machine). Medians of {meta['rounds']} fresh "
             "processes per case.", "", f"`{meta['command']}`", ""]
    compile_times = results.get("compile")
    if compile_times:
        lines += ["## Compile time per graph: empty cache vs warm cache", "",
                  "| graph | empty cache (s) | warm cache (s) | read from the cache |", "|---|---|---|---|"]
        for name, row in compile_times.items():
            if isinstance(row, dict):
                cached = ("– (onnxruntime: session built from the file)" if row.get("onnxruntime") else
                          "yes" if row["warm_from_cache"] and not row["cold_from_cache"] else "NO")
                lines.append(f"| {name} | {row['cold_s']:.2f} | {row['warm_s']:.2f} | {cached} |")
        english = [compile_times[g] for g in english_graphs(meta["bundle"]) if g in compile_times]
        lines += ["", f"English synthesis graphs together: {sum(r['cold_s'] for r in english):.2f} s → "
                      f"{sum(r['warm_s'] for r in english):.2f} s; cache folder {compile_times['cache_mib']} MiB.", ""]
    first = results.get("first")
    if first:
        lines += ["## Process start → first audio (voice file ready)", "",
                  "| case | first audio (s) | rounds (s) | python + import | bundle opened | graph compiles (s) | "
                  "their first inferences (s) |", "|---|---|---|---|---|---|---|"]
        for name, row in first.items():
            if "skipped" in row:
                lines.append(f"| {name} | skipped: {row['skipped']} | | | | | |")
                continue
            marks = {e["what"]: e["t"] for e in row["breakdown"]}
            compiles = [e for e in row["breakdown"] if e["what"].startswith("compile ") and "seconds" in e]
            runs = [e for e in row["breakdown"] if e["what"].startswith("first run ")]
            lines.append(f"| {name} | **{row['first_audio_s']:.2f}** | {', '.join(f'{v:.2f}' for v in row['all_s'])} "
                         f"| {marks.get('edgevoice imported', 0):.2f} | {marks.get('bundle opened', 0):.2f} | "
                         + " + ".join(f"{e['seconds']:.2f}" for e in compiles) + " | "
                         + " + ".join(f"{e['seconds']:.2f}" for e in runs) + " |")
        lines += ["", "whole: the short sentence as one fragment; stream: the long sentence in token chunks. Times "
                      "from just before the parent spawns the process; compiles and first inferences in the order "
                      + " → ".join(english_graphs(meta["bundle"]))
                      + " (the median round's); the rest is the text front end, "
                      "the GPT's steps and Python.", ""]
    memory = results.get("memory")
    if memory:
        lines += ["## Peak memory, English synthesis of the long sentence", "",
                  "| case | peak RSS (MiB) | /usr/bin/time max RSS | end: RssAnon / RssFile | audio (s) | graphs loaded "
                  "| BERT mapped |", "|---|---|---|---|---|---|---|"]
        for name, row in memory.items():
            if "skipped" in row:
                lines.append(f"| {name} | skipped: {row['skipped']} | | | | | |")
                continue
            lines.append(f"| {name} | **{row['peak_mib']:.0f}** | {row['time_max_rss_mib'] or 0:.0f} | "
                         f"{row['end']['RssAnon']:.0f} / {row['end']['RssFile']:.0f} | {row['audio_s']:.1f} | "
                         f"{', '.join(row['graphs_loaded'])} | {'yes' if row['bert_mapped'] else 'no'} |")
        lines += ["", "### Where the memory goes (voice created in the process, reference graphs released)", "",
                  "| graph | compile (s) | RssAnon added by compile (MiB) | by first inference | peak RSS by then |",
                  "|---|---|---|---|---|"]
        source = memory.get("voice created, reference graphs released") or next(iter(memory.values()))
        for name, row in source.get("per_graph", {}).items():
            lines.append(f"| {name} | {row['compile_s']:.2f} | {row['compile_anon_mib']} | "
                         f"{row.get('first_run_anon_mib', '')} | {row.get('peak_mib_by_then', '')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle")
    parser.add_argument("--reference", help="reference clip (wav) of the voice")
    parser.add_argument("--reference-text", help="its transcript")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=250, help="GPT tokens of the long sentence (25 = 1 s)")
    parser.add_argument("--short-tokens", type=int, default=50, help="GPT tokens of the short sentence")
    parser.add_argument("--chunk-tokens", type=int, default=25, help="tokens per chunk when streaming")
    parser.add_argument("--cases", default="compile,first,memory")
    parser.add_argument("--out", type=Path, default=None, help="markdown report")
    parser.add_argument("--json", type=Path, default=None, help="every measurement as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(sys.stdin.read()))))
        return
    if not (args.bundle and args.reference and args.reference_text):
        parser.error("--bundle, --reference and --reference-text are required")
    cases = set(args.cases.split(","))
    meta = {"bundle": args.bundle, "threads": args.threads, "rounds": args.rounds, "machine": machine(),
            "load_before": load_average(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + [
                f'"{a}"' if " " in a else a for a in sys.argv[1:]])}
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="startup-memory-") as scratch:
        scratch = Path(scratch)
        voice = str(scratch / "voice.npz")
        spawn("make-voice", {"bundle": args.bundle, "threads": args.threads, "reference": args.reference,
                             "reference_text": args.reference_text, "voice": voice})
        warm = scratch / "warm-cache"
        spawn("compile", {"bundle": args.bundle, "threads": args.threads, "cache_dir": str(warm),
                          "graphs": english_graphs(args.bundle) + REFERENCE_GRAPHS})
        if "compile" in cases:
            results["compile"] = measure_compile(args, args.rounds, scratch)
            print(json.dumps(results["compile"]), file=sys.stderr)
        if "first" in cases:
            results["first"] = measure_first_audio(args, args.rounds, scratch, voice, warm)
            print(json.dumps({k: v.get("first_audio_s") for k, v in results["first"].items()}), file=sys.stderr)
        if "memory" in cases:
            results["memory"] = measure_memory(args, args.rounds, voice, warm)
            print(json.dumps({k: v.get("peak_mib") for k, v in results["memory"].items()}), file=sys.stderr)
    meta["load_after"] = load_average()
    text = report(meta, results)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
