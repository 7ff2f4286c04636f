"""The torch-side `edgevoice` commands: `export`, `make-test-model`, `quantize`, `demo`.

They join the runtime's command line through the `edgevoice.commands` entry points (pyproject.toml), so
`edgevoice export ...` works wherever the export extra is installed while the runtime never imports this package.
Only click is imported here at module level: `edgevoice --help` stays fast and torch loads when a command runs.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import click

from edgevoice.cli import fail, guarded
from edgevoice.errors import EdgevoiceError, OptionsError
from edgevoice.families import FAMILIES
from edgevoice_calibration.emotivoice import DEFAULT_SENTENCES as EMOTIVOICE_SENTENCES
from edgevoice_calibration.gpt_sovits import DEFAULT_MAX_TOKENS, DEFAULT_SENTENCES as GPT_SOVITS_SENTENCES

from .gpt_sovits.checkpoints import SUPPORTED_VERSIONS
from .gpt_sovits.choices import VOCODER_TAIL_CHOICES
from .quantize import ENGINE_CHOICES, QuantizeOptions


def bundle_output_options(command):
    """--out, --format, --overwrite, --threads: what every exporter's `ExportOptions` is made of."""
    for option in reversed((
        click.option("--out", required=True, type=click.Path(), help="bundle folder to create"),
        click.option("--format", "formats", multiple=True, type=click.Choice(["openvino", "onnx"]),
                     default=("openvino", "onnx"), show_default=True,
                     help="files to ship (repeatable): openvino for the OpenVINO runtime, onnx for onnxruntime "
                          "CPU/CUDA; one alone makes the bundle about half the size"),
        click.option("--overwrite", is_flag=True, help="replace an existing bundle (nothing else: a folder that "
                                                       "is no bundle, or one holding an input, is refused)"),
        click.option("--threads", type=click.IntRange(1), default=2, show_default=True,
                     help="CPU threads for export and checks"),
    )):
        command = option(command)
    return command


def _print_export(report) -> None:
    click.echo("parity of every graph against PyTorch (FP32):")
    for line in report.lines():
        click.echo("  " + line)
    click.echo(f"bundle written to {report.bundle} in {report.seconds:.1f} s")


def _print_quantised(report) -> None:
    click.echo(f"{report.precision} vs FP32 (held-out calibration inputs):")
    for line in report.lines():
        click.echo("  " + line)
    click.echo(f"bundle written to {report.bundle} in {report.seconds:.1f} s")


def _print_metavoice(report) -> None:
    for line in report.lines():
        click.echo(line)
    click.echo(f"bundle written to {report.bundle} in {report.seconds:.1f} s")


# ------------------------------------------------------------------------------------------------ export


@click.group()
def export():
    """Turn upstream checkpoints into an edgevoice bundle, checking every graph against PyTorch."""


@export.command("gpt-sovits")
@click.option("--gpt", "gpt_path", required=True, type=click.Path(), help="GPT (s1) .ckpt file")
@click.option("--sovits", "sovits_path", required=True, type=click.Path(), help="SoVITS (s2) .pth file")
@click.option("--hubert", "hubert_dir", required=True, type=click.Path(), help="chinese-hubert-base folder")
@click.option("--bert", "bert_dir", type=click.Path(), default=None,
              help="chinese-roberta-wwm-ext-large folder (needed for Chinese text)")
@click.option("--sv", "sv_path", type=click.Path(), default=None,
              help="v2Pro/v2ProPlus only: the speaker-verification model (pretrained_eres2netv2w24s4ep4.ckpt)")
@bundle_output_options
@click.option("--int8", "int8", is_flag=True, help="also write an INT8 variant to OUT-int8 (needs --reference)")
@click.option("--reference", type=click.Path(), default=None, help="with --int8: a reference clip to calibrate on")
@click.option("--reference-text", default=None, help="with --int8: the reference clip's transcript")
@click.option("--reference-language", default="en", show_default=True, help="with --int8: its language")
@click.option("--sentences", type=click.IntRange(1), default=GPT_SOVITS_SENTENCES, show_default=True,
              help="with --int8: calibration corpus sentences to synthesise")
def export_gpt_sovits(gpt_path, sovits_path, hubert_dir, bert_dir, sv_path, out, formats, overwrite, threads, int8,
                      reference, reference_text, reference_language, sentences):
    """Export GPT-SoVITS v1/v2/v2Pro/v2ProPlus checkpoints to an OpenVINO + ONNX bundle."""
    from .gpt_sovits.exporter import GptSovitsFiles, export_gpt_sovits as run_export
    from .graph_export import ExportOptions

    if int8 and not (reference and reference_text):
        fail("--int8 calibrates on real synthesis: give --reference WAV and --reference-text TEXT")
    if int8 and set(formats) != {"openvino", "onnx"}:
        fail("--int8 quantises the OpenVINO IR and finds the vocoder's float layers through the ONNX file: "
             "keep both formats")
    files = GptSovitsFiles(Path(gpt_path), Path(sovits_path), Path(hubert_dir),
                           Path(bert_dir) if bert_dir else None, Path(sv_path) if sv_path else None)
    options = ExportOptions(Path(out), tuple(formats), overwrite, threads)
    if int8:  # --overwrite replaces OUT-int8 whole: the calibration clip must not be inside it
        _check_inputs_outside(f"{Path(out)}-int8", [reference])
    _print_export(guarded(lambda: run_export(files, options)))
    if int8:  # what `quantize --bundle OUT --reference ...` does with every other default
        flags = CalibrationFlags((), (reference,), (reference_text,), (reference_language,), None, "en", sentences)
        _print_quantised(guarded(lambda: _quantize_gpt_sovits(
            out, Path(f"{Path(out)}-int8"), QuantizeOptions(overwrite=overwrite, threads=threads), flags)))


@export.command("emotivoice")
@click.option("--root", type=click.Path(), default=None,
              help="upstream's EmotiVoice folder with its downloaded checkpoints (outputs/, WangZeJun/, data/, "
                   "lexicon/, config/)")
@click.option("--am", "am_path", type=click.Path(), default=None,
              help="acoustic model + vocoder checkpoint (default: ROOT/outputs/prompt_tts_open_source_joint/ckpt/g_*)")
@click.option("--style", "style_path", type=click.Path(), default=None,
              help="style encoder checkpoint (default: ROOT/outputs/style_encoder/ckpt/checkpoint_*)")
@click.option("--bert", "bert_dir", type=click.Path(), default=None,
              help="SimBERT folder (default: ROOT/WangZeJun/simbert-base-chinese)")
@click.option("--text-assets", "text_dir", type=click.Path(), default=None,
              help="folder with tokenlist, speaker2, emotion, pitch, speed, energy (default: ROOT/data/youdao/text)")
@click.option("--lexicon", "lexicon_path", type=click.Path(), default=None,
              help="English lexicon (default: ROOT/lexicon/librispeech-lexicon.txt)")
@click.option("--config", "config_path", type=click.Path(), default=None,
              help="model configuration (default: ROOT/config/joint/config.yaml)")
@bundle_output_options
def export_emotivoice(root, am_path, style_path, bert_dir, text_dir, lexicon_path, config_path, out, formats,
                      overwrite, threads):
    """Export EmotiVoice (acoustic model, HiFi-GAN, style BERT, text assets) to a bundle that speaks on its own."""
    from .emotivoice.exporter import export_emotivoice as run_export, resolve_files
    from .graph_export import ExportOptions

    named = {"am": am_path, "style": style_path, "bert": bert_dir, "text": text_dir, "lexicon": lexicon_path,
             "config": config_path}
    files = guarded(lambda: resolve_files(root, {k: Path(v) for k, v in named.items() if v}))
    options = ExportOptions(Path(out), tuple(formats), overwrite, threads)
    _print_export(guarded(lambda: run_export(files, options)))


@export.command("metavoice")
@click.option("--first-stage", required=True, type=click.Path(), help="upstream's first_stage.pt")
@click.option("--second-stage", required=True, type=click.Path(), help="upstream's second_stage.pt")
@click.option("--speaker-encoder", required=True, type=click.Path(), help="upstream's speaker_encoder.pt")
@click.option("--encodec", required=True, type=click.Path(),
              help="EnCodec 24 kHz state dict (the encodec package's encodec_24khz-d7cc33bc.th)")
@click.option("--encodec-config", type=click.Path(), default=None,
              help="EnCodec constructor arguments as JSON (default: the released 24 kHz model's)")
@bundle_output_options
def export_metavoice(first_stage, second_stage, speaker_encoder, encodec, encodec_config, out, formats, overwrite,
                     threads):
    """Export MetaVoice-1B (both GPT stages, speaker encoder, EnCodec decoder) to a bundle; nothing is downloaded."""
    from .graph_export import ExportOptions
    from .metavoice.checkpoints import MetaVoiceFiles
    from .metavoice.exporter import export_metavoice as run_export

    files = MetaVoiceFiles(Path(first_stage), Path(second_stage), Path(speaker_encoder), Path(encodec),
                           Path(encodec_config) if encodec_config else None)
    for path in (files.first_stage, files.second_stage, files.speaker_encoder, files.encodec,
                 files.encodec_config):
        if path is not None and not path.is_file():
            fail(f"{path}: file not found")
    options = ExportOptions(Path(out), tuple(formats), overwrite, threads)
    _print_export(guarded(lambda: run_export(files, options)))


# ------------------------------------------------------------------------------------------------ test models


@click.command("make-test-model")
@click.option("--family", type=click.Choice(list(FAMILIES)), default="gpt-sovits",
              show_default=True)
@click.option("--size", type=click.Choice(["tiny", "full"]), default="tiny", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="folder for the checkpoints (new or empty)")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True)
@click.option("--version", "version", type=click.Choice(list(SUPPORTED_VERSIONS)), default="v2",
              show_default=True, help="GPT-SoVITS version (v2Pro/v2ProPlus also write the speaker model)")
def make_test_model(family, size, out, seed, version):
    """Write random-weight checkpoints in upstream's exact file formats and layout."""
    _require_empty_folder(out)
    target = Path(out)
    try:
        with _filled_whole(target) as folder:  # an interrupted run leaves no half a model set
            written = _write_test_model(family, size, folder, seed, version)
    except EdgevoiceError as exc:
        fail(str(exc))
    moved = {name: target / Path(path).relative_to(folder) for name, path in written.items()}
    if family == "emotivoice":
        click.echo(f"upstream-style EmotiVoice folder written to {moved['root']}")
        click.echo(f"export it with: edgevoice export emotivoice --root {shlex.quote(str(moved['root']))} --out BUNDLE")
        return
    width = max(map(len, moved))
    for name, path in moved.items():
        click.echo(f"{name:{width}s} {path}")
    # the flags are named as these keys; paths quoted for a shell
    options = " ".join(f"--{name.replace('_', '-')} {shlex.quote(str(path))}" for name, path in moved.items())
    click.echo(f"export it with: edgevoice export {family} {options} --out BUNDLE")


@contextlib.contextmanager
def _filled_whole(target: Path) -> Iterator[Path]:
    """A folder to write into whose files appear in `target` together at the end, or not at all: a new folder is a
    sibling renamed into place (`atomic_folder`); an empty folder that exists (`.`, a mount point) gets a hidden
    folder inside it whose entries move up."""
    from edgevoice.bundle import atomic_folder

    if not target.is_dir():
        with atomic_folder(target) as folder:
            yield folder
        return
    staging = Path(tempfile.mkdtemp(prefix=".make-test-model.", suffix=".partial", dir=target))
    try:
        yield staging
        for entry in staging.iterdir():
            entry.rename(target / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_test_model(family: str, size: str, folder: Path, seed: int, version: str) -> dict[str, Path]:
    """The family's random-weight files in `folder`, by the export flag that reads each (EmotiVoice: its `root`)."""
    if family == "emotivoice":
        from .emotivoice.random_model import make_test_model as write

        return {"root": write(folder, size=size, seed=seed)}
    if family == "metavoice":
        from .metavoice.random_model import make_test_model as write

        return write(folder, size=size, seed=seed)
    from .gpt_sovits.random_model import make_test_model as write

    return write(folder, size, seed, version=version)


def _require_empty_folder(out: str) -> None:
    """Random weights are written under upstream's real names (`chinese-hubert-base`, `s1v3.ckpt`, …): into a
    folder of real checkpoints they would replace them, so only a new or empty folder is taken."""
    path = Path(out)
    try:
        taken = path.is_symlink() or path.exists() and (not path.is_dir() or any(path.iterdir()))
    except OSError as exc:
        fail(f"{out}: cannot write ({exc.strerror or exc})")
    if taken:
        fail(f"{out}: exists and is not an empty folder; random test weights go into a new or empty one")


# ------------------------------------------------------------------------------------------------ quantize


def _calibration_texts(path: str, default_language: str) -> list[tuple[str, str]]:
    """One sentence per line, `LANG<TAB>TEXT` or plain text in `default_language`; blank and # lines skipped."""
    from edgevoice.errors import TextError

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


def _methods(items) -> dict[str, str]:
    overrides = {}
    for item in items:
        graph, sep, method = item.partition("=")
        if not sep:
            fail(f"--method {item!r}: expected GRAPH=METHOD, e.g. gpt_prefill=weights")
        overrides[graph.strip()] = method.strip()
    return overrides


@click.command()
@click.option("--bundle", required=True, type=click.Path(), help="FP32 bundle to quantise")
@click.option("--out", required=True, type=click.Path(), help="bundle folder to create")
@click.option("--voice", "voice_paths", multiple=True, type=click.Path(), help="voice file (repeatable)")
@click.option("--reference", "references", multiple=True, type=click.Path(),
              help="reference clip (repeatable; also calibrates hubert_codes/ref_encoder)")
@click.option("--reference-text", "reference_texts", multiple=True, help="transcript of each --reference")
@click.option("--reference-language", "reference_languages", multiple=True,
              help="language of each --reference  [default: en]")
@click.option("--calibration-texts", type=click.Path(), default=None,
              help="sentences, one a line (LANG<TAB>TEXT or plain text); default: the built-in corpus")
@click.option("--text-language", default="en", show_default=True, help="language of plain calibration lines")
@click.option("--sentences", type=click.IntRange(1), default=None,
              help="how many calibration sentences to synthesise, spread over the texts  [default: the family's: "
                   f"GPT-SoVITS {GPT_SOVITS_SENTENCES}, EmotiVoice {EMOTIVOICE_SENTENCES}]")
@click.option("--max-tokens", type=click.IntRange(1), default=None,
              help=f"GPT-SoVITS: cap on tokens per calibration sentence  [default: {DEFAULT_MAX_TOKENS}]")
@click.option("--subset-size", type=click.IntRange(1), default=QuantizeOptions.subset_size, show_default=True,
              help="NNCF calibration items per graph")
@click.option("--precision", type=click.Choice(["int8", "bf16", "int4"]), default="int8", show_default=True,
              help="int4: MetaVoice's stage 1 only (weight-only, group-wise)")
@click.option("--method", "methods", multiple=True, metavar="GRAPH=METHOD",
              help="override the policy for one graph: weights, static, float, or bf16 (the FP32 graph computed in "
                   "bf16) (repeatable)")
@click.option("--accuracy-drop", type=float, default=None,
              help="accuracy control for sovits_vocoder: the largest held-out log-mel L1 vs FP32 allowed; "
                   "parts go back to float, output side first, until it holds")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True,
              help="CPU threads for calibration and checks")
@click.option("--overwrite", is_flag=True, help="replace an existing output bundle (only a bundle, never one holding "
                                                "the source)")
@click.option("--compute", type=click.Choice(["auto", "f32"]), default="auto", show_default=True,
              help="GPT-SoVITS INT8: what the quantised graphs' float parts run in; auto: bf16 where this CPU has "
                   "native bf16, bf16 was measured faster for the graph and it passes the accuracy gate, else f32")
@click.option("--decode-engine", type=click.Choice(ENGINE_CHOICES), default="auto",
              show_default=True,
              help="GPT-SoVITS INT8 and MetaVoice INT8/INT4: which engine runs the token-by-token decode; auto: time "
                   "OpenVINO's stateful INT8 step against onnxruntime's block-INT8 step (attention fused, cache "
                   "written in place) on this CPU and keep the faster (GPT-SoVITS's also tries 4-bit blocks, kept "
                   "only within an accuracy gate and 5 % faster)")
@click.option("--vocoder-engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
              help="GPT-SoVITS INT8, CPUs with VNNI: auto also writes the vocoder as onnxruntime's 8-bit operators "
                   "(run at exact lengths, on VNNI CPUs only; its last stages back in float until it is as "
                   "accurate as OpenVINO's) where it is no slower; onnxruntime takes it regardless, openvino never")
@click.option("--prefill-engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
              help="GPT-SoVITS INT8, CPUs with VNNI: auto also writes the prefill as onnxruntime's dynamic INT8 "
                   "(run on VNNI CPUs only; less memory) where it is as accurate as OpenVINO's and at most 1.75x "
                   "slower; onnxruntime takes it regardless, openvino never")
@click.option("--latent-engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
              help="GPT-SoVITS INT8, CPUs with VNNI: the same for SoVITS's encoder and flow (sovits_latent) as "
                   "onnxruntime's static INT8")
@click.option("--vocoder-tail", type=click.Choice(VOCODER_TAIL_CHOICES), default="auto", show_default=True,
              help="GPT-SoVITS INT8 with onnxruntime's 8-bit vocoder: its float stages as their own graph on "
                   "OpenVINO, kept where measured faster (~10 % faster vocoder, ~100 MiB more peak memory where "
                   "nothing else loads OpenVINO); auto ships it beside the one graph and runs it where OpenVINO is "
                   "loaded anyway, split in its place, whole not at all")
def quantize(bundle, out, voice_paths, references, reference_texts, reference_languages, calibration_texts,
             text_language, sentences, max_tokens, subset_size, precision, methods, accuracy_drop, threads,
             overwrite, compute, decode_engine, vocoder_engine, prefill_engine, latent_engine, vocoder_tail):
    """Make an INT8 (NNCF) or BF16 variant of an FP32 bundle, calibrated on real synthesis, with an accuracy
    report; the precision of each graph is chosen for this CPU. GPT-SoVITS calibrates with --voice/--reference
    clips, EmotiVoice with its built-in speakers. NNCF quantises the OpenVINO IR; the ONNX files stay FP32 except
    the graphs made for onnxruntime where they measured faster on this CPU (GPT-SoVITS' decode step, 8-bit vocoder
    and VNNI stand-ins, MetaVoice's stage-1 step: --decode-engine and the other engine options)."""
    from edgevoice.bundle import Bundle

    family = guarded(lambda: Bundle.load(bundle, verify=False)).manifest.family
    if family not in QUANTIZERS:
        fail(f"--bundle {bundle}: its manifest names the family {family!r}, which this version cannot quantise "
             f"({', '.join(sorted(QUANTIZERS))})")
    given = {"--compute": compute, "--decode-engine": decode_engine, "--vocoder-engine": vocoder_engine,
             "--prefill-engine": prefill_engine, "--latent-engine": latent_engine, "--vocoder-tail": vocoder_tail,
             "--max-tokens": max_tokens, "--accuracy-drop": accuracy_drop}
    for flag, value in given.items():
        if value not in (None, "auto") and family not in FAMILY_FLAGS[flag]:
            fail(f"{flag} is for {' and '.join(_FAMILY_NAMES[f] for f in FAMILY_FLAGS[flag])} bundles")
    options = QuantizeOptions(precision, subset_size, _methods(methods), overwrite, threads,
                              decode_engine=decode_engine, family=FAMILY_CHOICES[family](
                                  max_tokens=max_tokens, max_drop=accuracy_drop, compute=compute,
                                  vocoder_engine=vocoder_engine, prefill_engine=prefill_engine,
                                  latent_engine=latent_engine, vocoder_tail=vocoder_tail))
    calibration = CalibrationFlags(voice_paths, references, reference_texts, reference_languages, calibration_texts,
                                   text_language, sentences)
    _check_inputs_outside(out, [*voice_paths, *references, *([calibration_texts] if calibration_texts else [])])
    if Path(bundle).resolve() in Path(out).resolve().parents:  # a folder inside a bundle is no part of it
        fail(f"--out {out} is inside the source bundle {bundle}; write the variant beside it")
    run, show = QUANTIZERS[family]
    show(guarded(lambda: run(bundle, out, options, calibration)))


def _check_inputs_outside(out: str, inputs: list[str]) -> None:
    """The calibration's own files may not lie inside --out: an --overwrite would delete them with the old bundle
    (the quantiser itself keeps the source bundle safe the same way)."""
    target = Path(out).resolve()
    for path in inputs:
        if target in Path(path).resolve().parents:
            fail(f"--out {out} holds the input {path}; choose another --out")


# Family-specific flags and the families that take them; given for another family's bundle, they are refused.
FAMILY_FLAGS = {"--compute": ("gpt-sovits",), "--decode-engine": ("gpt-sovits", "metavoice"),
                "--vocoder-engine": ("gpt-sovits",), "--prefill-engine": ("gpt-sovits",),
                "--latent-engine": ("gpt-sovits",), "--vocoder-tail": ("gpt-sovits",),
                "--max-tokens": ("gpt-sovits",), "--accuracy-drop": ("gpt-sovits",)}


def _no_choices(**given) -> None:
    """A family without choices of its own (its flags were refused above)."""
    return None


def _gpt_sovits_choices(**given):
    from .gpt_sovits.choices import GptSovitsChoices

    return GptSovitsChoices(**given)


# family -> its `QuantizeOptions.family` from the flags
FAMILY_CHOICES = {"gpt-sovits": _gpt_sovits_choices, "emotivoice": _no_choices, "metavoice": _no_choices}
_FAMILY_NAMES = {"gpt-sovits": "GPT-SoVITS", "emotivoice": "EmotiVoice", "metavoice": "MetaVoice"}


@dataclass(frozen=True)
class CalibrationFlags:
    """What `quantize` was given to calibrate with; only GPT-SoVITS takes voices, clips and texts."""

    voice_paths: tuple[str, ...]
    references: tuple[str, ...]
    reference_texts: tuple[str, ...]
    reference_languages: tuple[str, ...]
    calibration_texts: str | None
    text_language: str
    sentences: int | None

    def sources(self) -> bool:
        return bool(self.voice_paths or self.references or self.calibration_texts)


def _refuse_int4(options) -> None:
    if options.precision == "int4":
        raise OptionsError("--precision int4 is for MetaVoice bundles (its memory-bound 1.2 B stage 1)")


def _quantize_gpt_sovits(bundle, out, options, flags: CalibrationFlags):
    from edgevoice.gpt_sovits.voice import Voice
    from edgevoice_calibration import sample_sentences
    from edgevoice_calibration.gpt_sovits import CalibrationInputs, ReferenceClip

    from .gpt_sovits.quantize import calibrate_and_quantize

    _refuse_int4(options)
    if not flags.voice_paths and not flags.references:
        raise OptionsError("give at least one --voice or --reference clip to calibrate with")
    if len(flags.reference_texts) != len(flags.references):
        raise OptionsError(f"{len(flags.references)} --reference clips but {len(flags.reference_texts)} "
                         "--reference-text values")
    languages = list(flags.reference_languages) + ["en"] * (len(flags.references) - len(flags.reference_languages))
    clips = tuple(ReferenceClip(Path(a), t, lang) for a, t, lang in zip(flags.references, flags.reference_texts,
                                                                          languages))
    voices = tuple(Voice.load(path) for path in flags.voice_paths)
    texts = _calibration_texts(flags.calibration_texts, flags.text_language) if flags.calibration_texts else None
    count = GPT_SOVITS_SENTENCES if flags.sentences is None else flags.sentences
    inputs = CalibrationInputs(clips, voices, tuple(sample_sentences(count, texts)))
    return calibrate_and_quantize(bundle, out, inputs, options)


def _quantize_emotivoice(bundle, out, options, flags: CalibrationFlags):
    from .emotivoice.quantize import quantize_emotivoice

    _refuse_int4(options)
    if flags.sources():
        raise OptionsError("EmotiVoice calibrates on its built-in speakers and corpus: leave out --voice, --reference "
                         "and --calibration-texts")
    return quantize_emotivoice(bundle, out, options, sentences=flags.sentences)


def _quantize_metavoice(bundle, out, options, flags: CalibrationFlags):
    from .metavoice.quantize import quantize_metavoice

    if flags.sources() or options.methods or flags.sentences is not None:
        raise OptionsError("MetaVoice's stage 1 is compressed weight-only (no calibration): leave out --voice, "
                           "--reference, --calibration-texts, --sentences and --method")
    return quantize_metavoice(bundle, out, options)


# family -> (run the quantiser, print its report)
QUANTIZERS = {"gpt-sovits": (_quantize_gpt_sovits, _print_quantised),
              "emotivoice": (_quantize_emotivoice, _print_quantised),
              "metavoice": (_quantize_metavoice, _print_metavoice)}


# ------------------------------------------------------------------------------------------------ demo


@click.command()
@click.option("--out", type=click.Path(), default=None, help="working folder (default: a new temporary folder)")
@click.option("--text", default="Every evening after work, my sister walks her small brown dog along the river.",
              show_default=True)
def demo(out, text):
    """Build a tiny random-weight GPT-SoVITS, export it, make a voice and speak (the audio is noise, not speech)."""
    from edgevoice.audio import write_wav
    from edgevoice.gpt_sovits import SynthesisOptions, Synthesizer

    from .gpt_sovits.exporter import GptSovitsFiles, export_gpt_sovits
    from .gpt_sovits.random_model import make_test_model as write_test_model
    from .graph_export import ExportOptions

    if out:
        _require_empty_folder(out)
    work = Path(out) if out else Path(tempfile.mkdtemp(prefix="edgevoice-demo-"))
    click.echo(f"1/4 writing random-weight GPT-SoVITS v2 checkpoints (upstream formats) to {work / 'checkpoints'}")
    paths = write_test_model(work / "checkpoints", "tiny", seed=0)
    click.echo("2/4 exporting to a bundle (OpenVINO IR and ONNX)")
    files = GptSovitsFiles(paths["gpt"], paths["sovits"], paths["hubert"], paths["bert"])
    export_gpt_sovits(files, ExportOptions(work / "bundle", overwrite=True))
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
