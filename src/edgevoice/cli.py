"""The `edgevoice` command line. Every user-facing failure is one line on stderr and exit status 1."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from .errors import EdgevoiceError

BACKEND_CHOICES = click.Choice(["openvino", "onnxruntime", "onnxruntime-cuda"])
LANGUAGE_HELP = "language of the text: en, zh, ja, auto (mixed), all_zh, all_ja"


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _export_modules():
    """The export extra (torch, onnx, transformers) is only needed by export commands."""
    try:
        import torch  # noqa: F401
        import edgevoice_export.gpt_sovits as gpt_sovits
        import edgevoice_export.test_model as test_model
    except ImportError as exc:
        _fail(f"this command needs the export extra ({exc.name} is missing): pip install 'edgevoice[export]'")
    return gpt_sovits, test_model


class _Errors:
    """Error classes that mean "bad input", collected lazily so the runtime never imports the export package."""

    @staticmethod
    def classes() -> tuple[type, ...]:
        classes: list[type] = [EdgevoiceError]
        export = sys.modules.get("edgevoice_export.checkpoints")
        if export is not None:
            classes.append(export.CheckpointError)
        return tuple(classes)


def guarded(action):
    try:
        return action()
    except _Errors.classes() as exc:
        _fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgevoice")
def main():
    """edgevoice: GPT-SoVITS voice-cloning TTS on ordinary CPUs (OpenVINO), checked against PyTorch."""


# ------------------------------------------------------------------------------------------------ export


@main.group()
def export():
    """Turn upstream checkpoints into an edgevoice bundle (needs the export extra)."""


@export.command("gpt-sovits")
@click.option("--gpt", "gpt_path", required=True, type=click.Path(), help="GPT (s1) .ckpt file")
@click.option("--sovits", "sovits_path", required=True, type=click.Path(), help="SoVITS (s2) .pth file")
@click.option("--hubert", "hubert_dir", required=True, type=click.Path(), help="chinese-hubert-base folder")
@click.option("--bert", "bert_dir", type=click.Path(), default=None,
              help="chinese-roberta-wwm-ext-large folder (needed for Chinese text)")
@click.option("--sv", "sv_path", type=click.Path(), default=None,
              help="v2Pro/v2ProPlus only: the speaker-verification model (pretrained_eres2netv2w24s4ep4.ckpt)")
@click.option("--out", required=True, type=click.Path(), help="bundle folder to create")
@click.option("--format", "formats", multiple=True, type=click.Choice(["openvino", "onnx"]),
              default=("openvino", "onnx"), show_default=True,
              help="files to ship (repeatable): openvino for the OpenVINO runtime, onnx for onnxruntime CPU/CUDA; "
                   "one alone makes the bundle about half the size")
@click.option("--overwrite", is_flag=True, help="replace an existing bundle")
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for export and checks")
@click.option("--int8", "int8", is_flag=True, help="also write an INT8 variant to OUT-int8 (needs --reference)")
@click.option("--reference", type=click.Path(), default=None, help="with --int8: a reference clip to calibrate on")
@click.option("--reference-text", default=None, help="with --int8: the reference clip's transcript")
@click.option("--reference-language", default="en", show_default=True, help="with --int8: its language")
@click.option("--sentences", type=int, default=24, show_default=True,
              help="with --int8: calibration corpus sentences to synthesise")
def export_gpt_sovits(gpt_path, sovits_path, hubert_dir, bert_dir, sv_path, out, formats, overwrite, threads, int8,
                      reference, reference_text, reference_language, sentences):
    """Export GPT-SoVITS v1/v2/v2Pro/v2ProPlus checkpoints to an OpenVINO + ONNX bundle, checking every graph
    against PyTorch."""
    gpt_sovits, _ = _export_modules()
    if int8 and not (reference and reference_text):
        _fail("--int8 calibrates on real synthesis: give --reference WAV and --reference-text TEXT")
    if int8 and set(formats) != {"openvino", "onnx"}:
        _fail("--int8 quantises the OpenVINO IR and finds the vocoder's float layers through the ONNX file: "
              "keep both formats")
    report = guarded(lambda: gpt_sovits.export_gpt_sovits(gpt_path, sovits_path, hubert_dir, out, bert=bert_dir,
                                                          overwrite=overwrite, threads=threads, sv=sv_path,
                                                          formats=tuple(formats)))
    click.echo("parity of every graph against PyTorch (FP32):")
    for line in report.lines():
        click.echo("  " + line)
    click.echo(f"bundle written to {report.bundle} in {report.seconds:.1f} s")
    if int8:
        from edgevoice_calibration.collect import ReferenceClip
        from edgevoice_export.quantize import calibrate_and_quantize, sample_sentences

        int8_out = Path(f"{Path(out)}-int8")
        clip = ReferenceClip(Path(reference), reference_text, reference_language)
        quantised = guarded(lambda: calibrate_and_quantize(out, int8_out, [clip], sentences=sample_sentences(sentences),
                                                           overwrite=overwrite, threads=threads))
        click.echo("int8 vs FP32 (held-out calibration inputs):")
        for line in quantised.lines():
            click.echo("  " + line)
        click.echo(f"INT8 bundle written to {quantised.bundle} in {quantised.seconds:.1f} s")


@main.command("make-test-model")
@click.option("--size", type=click.Choice(["tiny", "full"]), default="tiny", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="folder for the checkpoints")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--version", "version", type=click.Choice(["v1", "v2", "v2Pro", "v2ProPlus"]), default="v2",
              show_default=True, help="upstream model version (v2Pro/v2ProPlus also write the speaker model)")
def make_test_model(size, out, seed, version):
    """Write random-weight GPT-SoVITS checkpoints in upstream's exact file formats."""
    _, test_model = _export_modules()
    paths = test_model.make_test_model(out, size, seed, version=version)
    for name, path in paths.items():
        click.echo(f"{name:7s} {path}")


# ------------------------------------------------------------------------------------------------ quantize


def _calibration_texts(path: str, default_language: str) -> list[tuple[str, str]]:
    """One sentence per line, `LANG<TAB>TEXT` or plain text in `default_language`; blank and # lines skipped."""
    from .errors import TextError

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TextError(f"{path}: cannot read calibration texts ({exc})") from None
    pairs = []
    for line in (raw.strip() for raw in lines):
        if line and not line.startswith("#"):
            language, _, text = line.partition("\t") if "\t" in line else (default_language, "", line)
            pairs.append((language.strip(), text.strip()))
    if not pairs:
        raise TextError(f"{path}: no calibration sentences")
    return pairs


@main.command()
@click.option("--bundle", required=True, type=click.Path(), help="FP32 bundle to quantise")
@click.option("--out", required=True, type=click.Path(), help="bundle folder to create")
@click.option("--voice", "voice_paths", multiple=True, type=click.Path(), help="voice file (repeatable)")
@click.option("--reference", "references", multiple=True, type=click.Path(),
              help="reference clip (repeatable; also calibrates hubert_codes/ref_encoder)")
@click.option("--reference-text", "reference_texts", multiple=True, help="transcript of each --reference")
@click.option("--reference-language", "reference_languages", multiple=True,
              help="language of each --reference (default en)")
@click.option("--calibration-texts", type=click.Path(), default=None,
              help="sentences, one a line (LANG<TAB>TEXT or plain text); default: the built-in corpus")
@click.option("--text-language", default="en", show_default=True, help="language of plain calibration lines")
@click.option("--sentences", type=int, default=60, show_default=True,
              help="how many calibration sentences to synthesise (spread over the texts)")
@click.option("--max-tokens", type=int, default=None, help="cap on tokens per calibration sentence")
@click.option("--subset-size", type=int, default=300, show_default=True, help="NNCF calibration items per graph")
@click.option("--precision", type=click.Choice(["int8", "bf16"]), default="int8", show_default=True)
@click.option("--method", "methods", multiple=True, metavar="GRAPH=METHOD",
              help="override the policy for one graph: weights, static or float (repeatable)")
@click.option("--accuracy-drop", type=float, default=None,
              help="accuracy control for sovits_decode: the largest held-out log-mel L1 vs FP32 allowed; "
                   "parts go back to float, output side first, until it holds")
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for calibration and checks")
@click.option("--overwrite", is_flag=True, help="replace an existing output bundle")
def quantize(bundle, out, voice_paths, references, reference_texts, reference_languages, calibration_texts,
             text_language, sentences, max_tokens, subset_size, precision, methods, accuracy_drop, threads,
             overwrite):
    """Make an INT8 (NNCF) or BF16 variant of an FP32 bundle, calibrated on real synthesis, with an accuracy report.

    The ONNX files stay FP32 (onnxruntime runs them unchanged); only the OpenVINO IR is quantised."""
    try:
        import nncf  # noqa: F401
        from edgevoice_export.quantize import calibrate_and_quantize, sample_sentences
    except ImportError as exc:
        _fail(f"this command needs the export extra ({exc.name} is missing): pip install 'edgevoice[export]'")
    from edgevoice_calibration.collect import ReferenceClip

    from .errors import VoiceError
    from .voice import Voice

    if not voice_paths and not references:
        _fail("give at least one --voice or --reference clip to calibrate with")
    if len(reference_texts) != len(references):
        _fail(f"{len(references)} --reference clips but {len(reference_texts)} --reference-text values")
    languages = list(reference_languages) + ["en"] * (len(references) - len(reference_languages))
    clips = [ReferenceClip(Path(a), t, lang) for a, t, lang in zip(references, reference_texts, languages)]
    overrides = {}
    for item in methods:
        graph, sep, method = item.partition("=")
        if not sep:
            _fail(f"--method {item!r}: expected GRAPH=METHOD, e.g. gpt_prefill=weights")
        overrides[graph.strip()] = method.strip()

    def run():
        voices = [Voice.load(path) for path in voice_paths]
        texts = _calibration_texts(calibration_texts, text_language) if calibration_texts else None
        if not voices and not clips:
            raise VoiceError("no voices to calibrate with")
        return calibrate_and_quantize(bundle, out, clips, voices, sample_sentences(sentences, texts), precision,
                                      subset_size, max_tokens, accuracy_drop, overrides, overwrite, threads)

    report = guarded(run)
    click.echo(f"{precision} vs FP32 (held-out calibration inputs):")
    for line in report.lines():
        click.echo("  " + line)
    click.echo(f"bundle written to {report.bundle} in {report.seconds:.1f} s")


# ------------------------------------------------------------------------------------------------ runtime


def _synthesizer(bundle: str, backend: str, threads: int | None):
    from .synthesizer import Synthesizer

    return guarded(lambda: Synthesizer.load(bundle, backend=backend, threads=threads))


@main.group()
def voice():
    """Voice profiles made from a reference clip."""


@voice.command("create")
@click.option("--bundle", required=True, type=click.Path(), help="bundle folder")
@click.option("--audio", required=True, type=click.Path(), help="reference clip, 3–10 s of speech")
@click.option("--text", default=None,
              help="transcript of the reference clip; leave out for a reference-free voice (timbre only, the GPT "
                   "gets no prompt: usually less like the speaker)")
@click.option("--language", default="en", show_default=True, help=LANGUAGE_HELP)
@click.option("--aux-audio", multiple=True, type=click.Path(),
              help="another clip of the speaker (repeatable): its timbre is averaged in, as upstream's extra "
                   "references; the prompt still comes from --audio")
@click.option("--out", required=True, type=click.Path(), help="voice file to write (.npz)")
@click.option("--backend", type=BACKEND_CHOICES, default="openvino", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads (default: all)")
def voice_create(bundle, audio, text, language, aux_audio, out, backend, threads):
    """Analyse a reference clip once and save it as a voice profile."""
    synth = _synthesizer(bundle, backend, threads)
    profile = guarded(lambda: synth.create_voice(audio, text, language, aux_audio))
    path = profile.save(out)
    if profile.reference_free:
        click.echo(f"reference-free voice written to {path} (no transcript: timbre only)")
    else:
        click.echo(f"voice written to {path} ({profile.prompt_tokens.size} prompt tokens, "
                   f"{profile.prompt_phone_ids.size} phones)")


@main.command()
@click.option("--bundle", required=True, type=click.Path(), help="bundle folder")
@click.option("--voice", "voice_path", required=True, type=click.Path(), help="voice file from 'voice create'")
@click.option("--text", required=True, help="text to speak")
@click.option("--language", default="en", show_default=True, help=LANGUAGE_HELP)
@click.option("--out", required=True, type=click.Path(), help="wav file to write (32 kHz, 16-bit)")
@click.option("--seed", type=int, default=None, help="random seed (same seed, same audio)")
@click.option("--backend", type=BACKEND_CHOICES, default="openvino", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads (default: all)")
@click.option("--top-k", type=int, default=15, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--repetition-penalty", type=float, default=1.35, show_default=True)
@click.option("--split", "split_method", default="cut1", show_default=True,
              type=click.Choice(["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"]), help="sentence splitting")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="speech rate, 0.25–4 (2 = twice as fast); the words are the same, SoVITS stretches them")
def say(bundle, voice_path, text, language, out, seed, backend, threads, top_k, top_p, temperature,
        repetition_penalty, split_method, speed):
    """Synthesise TEXT with a voice and write a wav file."""
    import numpy as np
    from tqdm import tqdm

    from .audio import write_wav
    from .frontend import split_target_text
    from .synthesizer import SynthesisOptions
    from .voice import Voice

    synth = _synthesizer(bundle, backend, threads)
    profile = guarded(lambda: Voice.load(voice_path))
    options = guarded(lambda: SynthesisOptions(top_k=top_k, top_p=top_p, temperature=temperature,
                                               repetition_penalty=repetition_penalty, seed=seed,
                                               split_method=split_method, speed=speed))
    fragments = guarded(lambda: split_target_text(text, language, split_method)) if text.strip() else []
    chunks: list = []

    def speak() -> None:
        # one step per fragment (sentence group), on stderr and only on a terminal
        with tqdm(total=len(fragments), desc="speaking", unit="fragment", file=sys.stderr, disable=None) as bar:
            for chunk in synth.stream(text, profile, language, options):
                chunks.append(chunk.audio)
                bar.update(1)
                bar.set_postfix_str(f"{sum(c.size for c in chunks) / synth.sample_rate:.1f} s of audio")

    guarded(speak)
    if not chunks:
        _fail("the model produced no audio for this text")
    audio = np.concatenate(chunks)
    path = write_wav(out, audio, synth.sample_rate)
    click.echo(f"wrote {path} ({audio.size / synth.sample_rate:.2f} s)")


@main.command()
@click.argument("bundle", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the whole manifest as JSON")
@click.option("--no-verify", is_flag=True, help="skip the sha256 check of every file")
def info(bundle, as_json, no_verify):
    """Describe a bundle: model, graphs, precision, parity figures."""
    from .bundle import Bundle, accuracy_summary

    loaded = guarded(lambda: Bundle.load(bundle, verify=not no_verify))
    manifest = loaded.manifest
    if as_json:
        click.echo(json.dumps(manifest.to_json(), indent=1, ensure_ascii=False))
        return
    size = sum(loaded.file(rel).stat().st_size for rel in manifest.files)
    click.echo(f"{loaded.path}: {manifest.family} {manifest.upstream_version}, {manifest.sample_rate} Hz, "
               f"{len(manifest.graphs)} graphs, {size / 1e6:.1f} MB{' (verified)' if not no_verify else ''}")
    click.echo(f"model fingerprint {manifest.model_fingerprint[:16]}…")
    click.echo(f"  {'graph':14s} {'prec.':5s} {'files':14s} accuracy (worst case)")
    for name, graph in manifest.graphs.items():
        parity = graph.accuracy.get("fp32_vs_torch", {})
        figures = [f"FP32 vs torch ({backend}) rel {v['max_rel']:.1e}" for backend, v in parity.items()]
        figures += [f"{key.split('_')[0].upper()} vs FP32 {accuracy_summary(value)}"
                    for key, value in graph.accuracy.items() if key.endswith("_vs_fp32")]
        click.echo(f"  {name:14s} {graph.precision:5s} {', '.join(sorted(graph.files)):14s} {'; '.join(figures)}")



@main.command()
@click.option("--bundle", "bundles", multiple=True, required=True, type=click.Path(),
              help="bundle folder (repeatable: e.g. the FP32 bundle and its INT8 variant)")
@click.option("--backend", "backends", multiple=True, type=BACKEND_CHOICES,
              help="backend (repeatable)  [default: openvino and onnxruntime]")
@click.option("--voice", "voice_path", type=click.Path(), default=None, help="voice file from 'voice create'")
@click.option("--reference", type=click.Path(), default=None, help="or: a reference clip to make the voice from")
@click.option("--reference-text", default=None, help="transcript of --reference")
@click.option("--reference-language", default="en", show_default=True, help="language of --reference")
@click.option("--text", default="The little boat drifted past the old stone bridge.", show_default=True)
@click.option("--language", default="en", show_default=True, help=LANGUAGE_HELP)
@click.option("--tokens", "max_tokens", type=int, default=60, show_default=True, help="tokens to sample and force")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save", "save_path", type=click.Path(), default=None,
              help="write the case and the reference run (.npz) to replay with --against elsewhere")
@click.option("--against", "against_path", type=click.Path(), default=None,
              help="compare every run with a case saved by --save (e.g. on another machine)")
@click.option("--pytorch-models", type=click.Path(), default=None,
              help="folder with the checkpoints the first bundle was exported from: our PyTorch reference runs "
                   "first and is the reference (needs the export extra)")
@click.option("--min-snr-db", type=float, default=None,
              help="exit with an error when any run's audio SNR vs the reference is below this")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all)")
def parity(bundles, backends, voice_path, reference, reference_text, reference_language, text, language, max_tokens,
           seed, save_path, against_path, pytorch_models, min_snr_db, as_json, threads):
    """Show that backends, precisions and machines give the same result: the same voice, tokens and noise through
    every BUNDLE x BACKEND, compared with the first run (or with a case saved by --save, with --against)."""
    from . import parity as checks
    from .synthesizer import Synthesizer
    from .voice import Voice

    backends = backends or ("openvino", "onnxruntime")
    synths = [(b, _synthesizer(bundle, b, threads)) for bundle in bundles for b in backends]
    if pytorch_models:
        _export_modules()
        from edgevoice_export.torch_backend import TorchBackend

        first = synths[0][1].bundle
        torch_backend = guarded(lambda: TorchBackend.from_folder(first, pytorch_models, threads))
        synths.insert(0, ("pytorch", Synthesizer(first, backend=torch_backend)))

    def label(backend, synth):
        return f"{backend} {synth.bundle.path.name}"

    def prepare():
        if against_path:
            return checks.load_case(against_path)
        if voice_path:
            profile = Voice.load(voice_path)
        elif reference and reference_text:
            profile = synths[0][1].create_voice(reference, reference_text, reference_language)
        else:
            raise EdgevoiceError("give --voice, or --reference with --reference-text, or --against")
        case = checks.make_case(synths[0][1], profile, text, language, max_tokens, seed=seed)
        return case, checks.run_case(synths[0][1], case, label(*synths[0]))

    case, reference_run = guarded(prepare)
    runs = [guarded(lambda: checks.run_case(synth, case, label(backend, synth))) for backend, synth in synths]
    if not against_path:
        runs = runs[1:]  # the first run is the reference itself
    results = [guarded(lambda run=run: checks.compare_runs(reference_run, run)) for run in runs]
    if save_path:
        checks.save_case(save_path, case, reference_run)
    if as_json:
        click.echo(json.dumps({"reference": {"label": reference_run.label, **reference_run.meta},
                               "tokens": int(case.tokens.size), "runs": results}, indent=1))
    else:
        click.echo("\n".join(checks.report_lines(reference_run, results)))
        if save_path:
            click.echo(f"case written to {save_path}")
    if min_snr_db is not None:
        below = [f"{r['label']} ({r['audio_snr_db']:.1f} dB)" for r in results
                 if r["audio_snr_db"] is not None and r["audio_snr_db"] < min_snr_db]
        if below:
            _fail(f"audio SNR below {min_snr_db} dB: {', '.join(below)}")


@main.command()
@click.argument("text")
@click.option("--language", default="en", show_default=True, help=LANGUAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def phonemize(text, language, as_json):
    """Print the phones and phone ids GPT-SoVITS v2 would be fed for TEXT."""
    from . import frontend

    result = guarded(lambda: frontend.phonemize(text, language))
    if as_json:
        click.echo(json.dumps({"norm_text": result.norm_text, "phones": list(result.phones),
                               "phone_ids": list(result.phone_ids),
                               "word2ph": None if result.word2ph is None else list(result.word2ph)},
                              ensure_ascii=False))
        return
    click.echo(result.norm_text)
    click.echo(" ".join(result.phones))
    click.echo(" ".join(map(str, result.phone_ids)))


@main.command()
@click.option("--out", type=click.Path(), default=None, help="working folder (default: a new temporary folder)")
@click.option("--text", default="Every evening after work, my sister walks her small brown dog along the river.",
              show_default=True)
def demo(out, text):
    """Build a tiny random-weight GPT-SoVITS, export it, make a voice and speak (the audio is noise, not speech)."""
    from .audio import write_wav
    from .synthesizer import SynthesisOptions, Synthesizer

    gpt_sovits, test_model = _export_modules()
    work = Path(out) if out else Path(tempfile.mkdtemp(prefix="edgevoice-demo-"))
    click.echo(f"1/4 writing random-weight GPT-SoVITS v2 checkpoints (upstream formats) to {work / 'checkpoints'}")
    paths = test_model.make_test_model(work / "checkpoints", "tiny", seed=0)
    click.echo("2/4 exporting to an OpenVINO bundle")
    gpt_sovits.export_gpt_sovits(paths["gpt"], paths["sovits"], paths["hubert"], work / "bundle",
                                 bert=paths["bert"], overwrite=True)
    click.echo("3/4 making a voice from a generated reference clip")
    reference = work / "reference.wav"
    write_wav(reference, _demo_reference(), 32000)
    synth = Synthesizer.load(work / "bundle")
    profile = synth.create_voice(reference, "The morning light spread slowly across the quiet valley.", "en")
    profile.save(work / "voice.npz")
    click.echo("4/4 synthesising")
    audio = synth.synthesize(text, profile, "en", SynthesisOptions(seed=0, max_tokens=200))
    wav = write_wav(work / "demo.wav", audio, synth.sample_rate)
    click.echo(f"\nwrote {wav} ({audio.size / synth.sample_rate:.2f} s at {synth.sample_rate} Hz)")
    click.echo("The weights are random, so this is noise, not speech. With real checkpoints:")
    click.echo("  edgevoice export gpt-sovits --gpt s1.ckpt --sovits s2.pth --hubert chinese-hubert-base "
               "--bert chinese-roberta-wwm-ext-large --out my-bundle")
    click.echo("  edgevoice voice create --bundle my-bundle --audio ref.wav --text '...' --language en --out me.npz")
    click.echo("  edgevoice say --bundle my-bundle --voice me.npz --text 'Hello there.' --out hello.wav")


def _demo_reference(seconds: float = 5.0, rate: int = 32000):
    """A speech-like test signal: a gliding harmonic tone with syllable-rate amplitude changes."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.5 * t)) ** 2
    return (0.2 * voice * envelope / np.abs(voice).max()).astype(np.float32)


if __name__ == "__main__":
    main()
