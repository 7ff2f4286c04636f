"""The runtime's `edgevoice` command line (never imports torch). Every user-facing failure is one line on stderr
and exit status 1.

Torch-side commands (`export`, `quantize`, `make-test-model`, `demo`) live with the export package and join this
group through the `edgevoice.commands` entry points when the export extra is installed; they are imported only
when invoked or asked for help, and a missing extra is a one-line error.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import signal
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

import click

from .backends import BACKEND_NAMES
from .errors import EdgevoiceError

BACKEND_CHOICES = click.Choice(BACKEND_NAMES)
LANGUAGE_HELP = ("language of the text: en, zh, ja, auto (mixed), all_zh, all_ja (GPT-SoVITS; EmotiVoice reads mixed "
                 "zh/en, MetaVoice English)")
COMMAND_GROUP = "edgevoice.commands"
INFO_LINE_CHARS = 160  # `info`'s per-graph lines; --why prints the quantiser's reasons whole


def fail(message: str) -> None:
    raise click.ClickException(printable(message))


def printable(message: str) -> str:
    """`message` with control and format characters escaped: names in errors come from untrusted files, and a
    right-to-left override (U+202E) or a carriage return in one would make the terminal show another text."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in message)


def _require_suffix(flag: str, path, suffixes: tuple[str, ...], what: str, advice: str = "") -> None:
    """An output named for another format is refused rather than written under that name (no suffix is taken)."""
    suffix = os.path.splitext(str(path))[1]
    if str(path) != "-" and suffix.lower() not in ("",) + suffixes:
        fail(f"{flag} {path}: {what}, not {suffix}; name it {suffixes[0]}{advice}")


def guarded(action):
    """Run `action`, turning anticipated failures (bad input, files, options) into one-line errors."""
    try:
        return action()
    except EdgevoiceError as exc:
        fail(str(exc))


def _missing_extra(name: str, error: ImportError) -> click.Command:
    """A stand-in command that says why `name` could not be loaded: a module is not installed (the export extra's), or
    the installation is broken (a module that is there lacks a name edgevoice imports from it)."""
    def explain():
        if isinstance(error, ModuleNotFoundError):
            fail(f"'{name}' needs the export extra ({error.name or error} is missing): pip install 'edgevoice[export]'")
        fail(f"'{name}' could not be loaded ({error}): is this edgevoice installation broken? reinstall it")

    return click.Command(name, callback=explain, help="(needs the export extra)", add_help_option=False,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


class _Terminated(SystemExit):
    """SIGTERM, raised where the process was, so that every `finally` on the way out runs."""


@contextlib.contextmanager
def _terminated_as_exit():
    """SIGTERM (a `kill`, a container stopping) unwinds the command like Ctrl-C, so an interrupted export or quantize
    removes its partial bundle and lock (a probe's SIGTERM left 515 MB behind), and then the process still ends by
    the signal, as service managers expect of a stop. A long native call (an ONNX export, NNCF) finishes first."""
    def leave(signum, _frame):
        raise _Terminated(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, leave)
    except ValueError:  # not the main thread (an embedding application's): leave its signals alone
        yield
        return
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # everything has unwound: end by the signal itself
        raise
    finally:
        if previous is not None:  # None: a handler installed from C, which cannot be put back from Python
            signal.signal(signal.SIGTERM, previous)


class _Commands(click.Group):
    """The runtime's own commands plus the plug-in ones, loaded only when used."""

    def _plugins(self) -> dict:
        return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        plugin = self._plugins().get(name)
        if plugin is None:
            return None
        try:
            return plugin.load()
        except ImportError as exc:
            return _missing_extra(name, exc)

    def invoke(self, ctx):
        try:
            with _terminated_as_exit():
                return super().invoke(ctx)
        except BrokenPipeError:
            raise  # the reader left (`edgevoice info B | head -1`): click exits quietly, as other tools do
        except OSError as exc:  # a path the system refuses where it is first touched (a name too long, a loop)
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}")


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgevoice")
def main():
    """edgevoice: voice-cloning and expressive TTS (GPT-SoVITS, EmotiVoice, MetaVoice-1B) on ordinary CPUs,
    checked against PyTorch."""


# ------------------------------------------------------------------------------------------------ runtime


def _synthesizer(bundle: str, backend: str, threads: int | None, cache_dir=True):
    from .families import load

    if threads is not None and threads < 1:
        fail(f"--threads must be at least 1, not {threads}")
    return guarded(lambda: load(bundle, backend=backend, threads=threads, cache_dir=cache_dir))


def cache_options(command):
    """--cache-dir / --no-cache for commands that compile a bundle's graphs; the command gets `cache_dir`
    (True: the user's cache folder, a folder, or None)."""
    command = click.option("--no-cache", is_flag=True,
                           help="do not read or write compiled graphs (each run compiles them again)")(command)
    return click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                        help="folder for OpenVINO's compiled graphs  [default: $EDGEVOICE_CACHE_DIR, else "
                             "$XDG_CACHE_HOME/edgevoice/openvino, else ~/.cache/edgevoice/openvino]")(command)


def chosen_cache_dir(cache_dir: str | None, no_cache: bool):
    if cache_dir is not None and no_cache:
        fail("give --cache-dir or --no-cache, not both")
    if no_cache:
        return None
    return os.path.abspath(os.path.expanduser(cache_dir)) if cache_dir else True  # absolute: Ray replicas too


def _text_given(text: str | None, text_file: str | None) -> str:
    """The text of --text (- reads standard input) or --text-file, UTF-8 checked, markup and escapes removed."""
    from . import textinput

    if (text is None) == (text_file is None):
        fail("give the text with --text or with --text-file (one of them)")
    source = text_file if text_file is not None else ("-" if text == "-" else None)
    if source is not None:
        text = guarded(lambda: textinput.read_text(source, sys.stdin.buffer))
    return guarded(lambda: textinput.prepare_text(textinput.check_encoding(text, "--text")))


def _cleaned_text(text: str, what: str) -> str:
    """`text` UTF-8 checked, markup and escapes removed (as `say` reads it); nothing left is an error naming `what`."""
    from . import textinput

    text = guarded(lambda: textinput.prepare_text(textinput.check_encoding(text, what)))
    if not text.strip():
        fail(f"{what} is empty once markup, escapes and invisible characters are removed")
    return text


def _check_readable(synth, text: str, language: str, strict: bool) -> None:
    """Name the characters the family's front end cannot read: a warning, or with --strict an error. Families
    without the check refuse such text themselves (MetaVoice reads Latin-1 and says so)."""
    finder = getattr(synth, "unreadable_text", None)
    if finder is None:
        return
    unreadable = guarded(lambda: finder(text, language))
    guarded(unreadable.refuse_if_nothing_is_read)
    if unreadable and strict:
        fail(f"{unreadable.message()} (refused: --strict)")
    if unreadable:
        click.echo(f"Warning: {unreadable.warning()}", err=True)


STRICT_HELP = "refuse text with characters the model cannot read (default: a warning naming them; they are left out)"


@main.group()
def voice():
    """Voice profiles made from a reference clip."""


@voice.command("create")
@click.option("--bundle", required=True, type=click.Path(), help="bundle folder")
@click.option("--audio", required=True, type=click.Path(),
              help="reference clip: 3–10 s of speech for GPT-SoVITS, at least 30 s for MetaVoice")
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
@click.option("--strict", is_flag=True, help=STRICT_HELP)
@cache_options
def voice_create(bundle, audio, text, language, aux_audio, out, backend, threads, strict, cache_dir, no_cache):
    """Analyse a reference clip once and save it as a voice profile."""
    import warnings

    from .files import check_output
    from .errors import ReferenceWarning, VoiceError
    from .textinput import UnreadableTextWarning, check_encoding, prepare_text

    guarded(lambda: check_output(out, VoiceError, inputs=[audio, *aux_audio], input_folders=[bundle]))
    _require_suffix("--out", out, (".npz",), "a voice is an .npz file")
    if text is not None and not text.strip():  # "" used to make a reference-free voice, "  " an error
        fail("--text is empty: give the clip's transcript, or leave --text out for a reference-free voice")
    synth = _synthesizer(bundle, backend, threads, chosen_cache_dir(cache_dir, no_cache))
    if not hasattr(synth, "create_voice"):
        fail(f"{synth.bundle.manifest.family} bundles have built-in speakers, not cloned voices: "
             "use 'say --speaker NAME'")
    if text:  # create_voice cleans the transcript itself (and refuses one that is only markup)
        _check_readable(synth, guarded(lambda: prepare_text(check_encoding(text, "--text"))), language, strict)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", UnreadableTextWarning)  # reported above, once
        warnings.simplefilter("always", ReferenceWarning)
        profile = guarded(lambda: synth.create_voice(audio, text, language, aux_audio))
    for warning in caught:
        if issubclass(warning.category, ReferenceWarning):
            click.echo(f"Warning: {printable(str(warning.message))}", err=True)
    path = guarded(lambda: profile.save(out))
    if hasattr(profile, "summary"):
        what, facts = "voice", profile.summary()
    elif profile.reference_free:
        what, facts = "reference-free voice", "no transcript: timbre only"
    else:
        what, facts = "voice", f"{profile.prompt_tokens.size} prompt tokens, {profile.prompt_phone_ids.size} phones"
    if aux_audio:
        facts += f"; timbre averaged over {1 + len(aux_audio)} clips"
    to_stdout = str(out) == "-"  # the npz itself is there: the summary goes to stderr
    click.echo(f"{what} written to {'standard output' if to_stdout else path} ({facts})", err=to_stdout)


@main.command()
@click.option("--bundle", required=True, type=click.Path(), help="bundle folder")
@click.option("--voice", "voice_path", type=click.Path(), default=None,
              help="GPT-SoVITS, MetaVoice: voice file from 'voice create'")
@click.option("--speaker", default=None,
              help="EmotiVoice: a built-in speaker, by name (a line of upstream's speaker2 list) or row number")
@click.option("--prompt", default=None, help="EmotiVoice: the style/emotion prompt, any text (e.g. 'Happy')")
@click.option("--text", default=None,
              help="text to speak; - reads it from standard input. SSML/HTML markup is removed (tags dropped, "
                   "&amp;-style references decoded), and so are terminal escapes")
@click.option("--text-file", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="read the text to speak from this UTF-8 file (instead of --text)")
@click.option("--strict", is_flag=True, help=STRICT_HELP)
@click.option("--language", default="en", show_default=True, help=LANGUAGE_HELP)
@click.option("--out", required=True, type=click.Path(allow_dash=True),
              help="wav file to write (16-bit, the model's rate); - for standard output")
@click.option("--seed", type=int, default=None, help="random seed (same seed, same audio)")
@click.option("--backend", type=BACKEND_CHOICES, default="openvino", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads (default: all)")
@click.option("--top-k", type=int, default=None,
              help="GPT-SoVITS, MetaVoice (stage 1; it replaces --top-p, as upstream) sampling  [default: the model's]")
@click.option("--top-p", type=float, default=None,
              help="GPT-SoVITS, MetaVoice (stage 1) sampling  [default: the model's]")
@click.option("--temperature", type=float, default=None,
              help="GPT-SoVITS, MetaVoice (stage 1) sampling  [default: the model's]")
@click.option("--repetition-penalty", type=float, default=None, help="GPT-SoVITS sampling  [default: the model's]")
@click.option("--split", "split_method", default=None,
              type=click.Choice(["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"]),
              help="GPT-SoVITS sentence splitting  [default: the model's]")
@click.option("--speed", type=float, default=None,
              help="GPT-SoVITS, EmotiVoice: speech rate, 0.25–4 (2 = twice as fast)  [default: the model's, 1]")
@click.option("--guidance", type=float, default=None,
              help="MetaVoice: speaker guidance scale, ≥ 1 (how closely to follow the voice)  [default: the model's, 3]")
@click.option("--greedy", is_flag=True, flag_value=True, default=None,
              help="MetaVoice: no sampling (top-k 1 in both stages): the same text and voice give the same audio")
@click.option("--max-new-tokens", type=int, default=None,
              help="MetaVoice: stage-1 tokens per sentence at most (150 per second of audio)  [default: as many as "
                   "the contexts allow]")
@click.option("--min-tokens", type=int, default=None,
              help="GPT-SoVITS: hold the end of each fragment back until this many tokens (25 per second)")
@click.option("--max-tokens", type=int, default=None,
              help="GPT-SoVITS: tokens per fragment at most  [default: the model's limit]")
@click.option("--batch-size", type=int, default=None,
              help="GPT-SoVITS: sentences whose GPT decodes together (more throughput on long texts, same audio)")
@click.option("--stream", "stream_format", type=click.Choice(["wav", "pcm"]), default=None,
              help="write the audio to standard output (--out -) as it is made: a wav of unknown length, or raw "
                   "16-bit mono PCM at the model's rate")
@click.option("--chunk-tokens", type=int, default=None,
              help="GPT-SoVITS with --stream: audio every N tokens while a sentence is still being generated "
                   "(25 = 1 s)  [default: the model's, 25]")
@cache_options
def say(bundle, voice_path, speaker, prompt, text, text_file, strict, language, out, seed, backend, threads,
        stream_format, chunk_tokens, cache_dir, no_cache, **given):
    """Synthesise TEXT and write a wav file: with a cloned voice (GPT-SoVITS) or a built-in speaker and a style
    prompt (EmotiVoice). Options left out take the bundle's defaults. Markup and terminal escapes are removed from
    the text; characters the model cannot read are named in a warning (an error with --strict)."""
    import warnings

    import numpy as np
    from tqdm import tqdm

    from .audio import write_wav
    from .files import check_output
    from .textinput import UnreadableTextWarning

    text = _text_given(text, text_file)
    if stream_format and str(out) != "-":
        fail("--stream writes to standard output: give --out -")
    if chunk_tokens is not None and not stream_format:
        fail("--chunk-tokens applies to --stream")
    guarded(lambda: check_output(out, inputs=[text_file, voice_path], input_folders=[bundle]))  # before synthesis
    _require_suffix("--out", out, (".wav", ".wave"), "say writes 16-bit WAV",
                    " (`edgevoice serve` gives flac, mp3 and opus)")
    synth = _synthesizer(bundle, backend, threads, chosen_cache_dir(cache_dir, no_cache))
    if hasattr(synth, "show_progress"):  # token-level progress for families whose sentences take minutes
        synth.show_progress = sys.stderr.isatty()
    profile = guarded(lambda: synth.voice_for(voice=voice_path, speaker=speaker, prompt=prompt))
    _refuse_other_families_flags(synth, given)
    options = guarded(lambda: synth.default_options.with_overrides(seed=seed, **given))
    fragments = guarded(lambda: synth.split_text(text, language, options)) if text.strip() else []
    _check_readable(synth, text, language, strict)
    if stream_format:
        _say_streaming(synth, text, profile, language, options, stream_format, chunk_tokens)
        return
    chunks: list = []

    def speak() -> None:
        # one step per fragment (sentence group), on stderr and only on a terminal
        with tqdm(total=len(fragments), desc="speaking", unit="fragment", file=sys.stderr, disable=None) as bar:
            for chunk in synth.stream(text, profile, language, options):
                chunks.append(chunk.audio)
                bar.update(1)
                bar.set_postfix_str(f"{sum(c.size for c in chunks) / synth.sample_rate:.1f} s of audio")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableTextWarning)  # reported above, once
        guarded(speak)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if not audio.size:  # pauses are audio too, so this is a model that ended every sentence at once
        fail("the model produced no audio for this text")
    path = guarded(lambda: write_wav(out, audio, synth.sample_rate))
    seconds = audio.size / synth.sample_rate
    if str(out) == "-":  # the wav itself is on standard output, so the summary goes to stderr
        click.echo(f"wrote {seconds:.2f} s of audio to standard output", err=True)
    else:
        click.echo(f"wrote {path} ({seconds:.2f} s)")


def _refuse_other_families_flags(synth, given: dict) -> None:
    """A synthesis flag this bundle's family has no option for, named as the user typed it (`--split` fills
    `split_method`: the flag is read from the command, not made from the option's name)."""
    from dataclasses import fields

    known = {item.name for item in fields(synth.default_options)}
    flags = {param.name: param.opts[0] for param in click.get_current_context().command.params}
    unknown = [flags.get(name, name) for name, value in given.items() if value is not None and name not in known]
    if unknown:
        verb = "do" if len(unknown) > 1 else "does"
        fail(f"{', '.join(unknown)} {verb} not apply to {synth.bundle.manifest.family} bundles (each option in "
             "'edgevoice say --help' names the families it is for)")


def _say_streaming(synth, text, voice, language, options, stream_format: str, chunk_tokens: int | None) -> None:
    """`say --stream`: 16-bit audio to standard output chunk by chunk (GPT-SoVITS: every `chunk_tokens` tokens)."""
    import inspect
    import warnings

    from tqdm import tqdm

    from .audio import to_int16, wav_header
    from .textinput import UnreadableTextWarning

    keywords = {}
    if "chunk_tokens" in inspect.signature(synth.stream).parameters:
        if chunk_tokens is not None or options.batch_size == 1:  # batched sentences stream sentence by sentence
            keywords["chunk_tokens"] = synth.stream_chunk_tokens if chunk_tokens is None else chunk_tokens
    elif chunk_tokens is not None:
        fail(f"--chunk-tokens does not apply to {synth.bundle.manifest.family}: it streams sentence by sentence")
    sink = sys.stdout.buffer
    samples = 0

    def write(data: bytes) -> None:
        try:
            sink.write(data)
            sink.flush()
        except BrokenPipeError:
            raise EdgevoiceError("standard output was closed before the audio ended") from None
        except OSError as exc:
            raise EdgevoiceError(f"cannot write to standard output: {exc.strerror or exc}") from None

    def speak() -> None:
        nonlocal samples
        # the header waits for the first chunk: text refused before any audio must leave nothing on the output
        header = wav_header(synth.sample_rate) if stream_format == "wav" else b""
        with tqdm(desc="speaking", unit=" s of audio", file=sys.stderr, disable=None,
                  bar_format="{desc}: {n:.1f}{unit} [{elapsed}]") as bar:
            for chunk in synth.stream(text, voice, language, options, **keywords):
                write(header + to_int16(chunk.audio).tobytes())
                header = b""
                samples += chunk.audio.size
                bar.update(chunk.audio.size / synth.sample_rate)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableTextWarning)  # reported before, once
        guarded(speak)
    if not samples:
        fail("the model produced no audio for this text")
    click.echo(f"streamed {samples / synth.sample_rate:.2f} s of audio", err=True)


@main.command()
@click.argument("bundle", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the whole manifest as JSON")
@click.option("--no-verify", is_flag=True, help="skip the sha256 check of every file")
@click.option("--why", "whole_reasons", is_flag=True, help="every reason whole (else cut to one line per graph)")
def info(bundle, as_json, no_verify, whole_reasons):
    """Describe a bundle: model, graphs, precision, parity figures."""
    from .bundle import MANIFEST_HASH, Bundle, accuracy_summary

    loaded = guarded(lambda: Bundle.load(bundle, verify=not no_verify))
    manifest = loaded.manifest
    if as_json:
        click.echo(json.dumps(manifest.to_json(), indent=1, ensure_ascii=False))
        return
    size = sum(loaded.file(rel).stat().st_size for rel in manifest.files)
    click.echo(f"{loaded.path}: {manifest.family} {manifest.upstream_version}, {manifest.sample_rate} Hz, "
               f"{len(manifest.graphs)} graphs, {size / 1e6:.1f} MB"
               f"{' (every file matches its sha256)' if not no_verify else ''}")
    if not (loaded.path / MANIFEST_HASH).is_file():
        click.echo(f"note: no {MANIFEST_HASH} (a bundle written before it existed): an edit to the manifest itself "
                   "would go unnoticed; re-export or re-quantise to add it")
    click.echo(f"model fingerprint {manifest.model_fingerprint[:16]}…")
    width = max(len("graph"), *map(len, manifest.graphs))  # the column fits the longest graph name
    click.echo(f"  {'graph':{width}s} {'prec.':5s} {'files':14s} accuracy (worst case)")
    for name, graph in manifest.graphs.items():
        parity = graph.accuracy.get("fp32_vs_torch", {})
        figures = [f"FP32 vs torch ({backend}) rel {v['max_rel']:.1e}" for backend, v in parity.items()]
        figures += [f"{key.split('_')[0].upper()} vs FP32 {accuracy_summary(value)}"
                    for key, value in graph.accuracy.items() if key.endswith("_vs_fp32")]
        click.echo(f"  {name:{width}s} {graph.precision:5s} {', '.join(sorted(graph.files)):14s} {'; '.join(figures)}")
    # what each graph runs in here with OpenVINO, and why (the quantiser's recorded choice or the load-time fallback)
    from .cpu import detect, precision_here

    here = detect()
    click.echo(f"on this CPU: {here.summary()}")
    cut = False
    for name in manifest.graphs:
        runs = precision_here(manifest, name, here)
        line = f"  {name:{width}s} {runs.summary():40s} {runs.why}"
        if not whole_reasons and len(line) > INFO_LINE_CHARS:
            line, cut = line[:INFO_LINE_CHARS - 1] + "…", True
        click.echo(line)
    if cut:
        click.echo("(reasons cut to a line: edgevoice info BUNDLE --why prints them whole)")



def _reference_backend(bundle, folder: str, threads: int | None):
    """Our PyTorch reference behind the backend interface, from the export extra (`edgevoice.reference_backends`
    entry point named after the bundle's family)."""
    family = bundle.manifest.family
    found = [ep for ep in entry_points(group="edgevoice.reference_backends") if ep.name == family]
    if not found:
        raise EdgevoiceError(f"--pytorch-models needs the export extra with a {family} reference: "
                             "pip install 'edgevoice[export]'")
    try:
        backend_class = found[0].load()
    except ImportError as exc:
        raise EdgevoiceError(f"--pytorch-models needs the export extra ({exc.name} is missing): "
                             "pip install 'edgevoice[export]'") from None
    return backend_class.from_folder(bundle, folder, threads)


@main.command()
@click.option("--bundle", "bundles", multiple=True, required=True, type=click.Path(),
              help="bundle folder (repeatable: e.g. the FP32 bundle and its INT8 variant)")
@click.option("--backend", "backends", multiple=True, type=BACKEND_CHOICES,
              help="backend (repeatable)  [default: openvino and onnxruntime]")
@click.option("--voice", "voice_path", type=click.Path(), default=None,
              help="GPT-SoVITS, MetaVoice: voice file from 'voice create'")
@click.option("--reference", type=click.Path(), default=None,
              help="GPT-SoVITS, MetaVoice: a reference clip to make the voice from, instead of --voice")
@click.option("--speaker", default=None, help="EmotiVoice: built-in speaker (name or row)  [default: the first]")
@click.option("--prompt", default=None, help="EmotiVoice: style prompt")
@click.option("--reference-text", default=None,
              help="GPT-SoVITS: transcript of --reference (left out: a reference-free voice)")
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
@click.option("--gate", "gate_settings", multiple=True, metavar="[PRECISION:]NAME=LIMIT",
              help="change a gate (repeatable): audio_snr_db=40 for every precision, int8:top1_agreement=0.9 for "
                   "one, log_mel_l1=off to drop it; defaults per precision in docs/parity.md")
@click.option("--seeds", "free_seeds", type=int, default=0, show_default=True,
              help="also run the text freely (nothing forced) with this many seeds on every run and compare: token "
                   "agreement, first divergence, length, log-mel distance (saved with --save, replayed by --against)")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="folder to write report.json and a self-contained report.html into (plots need the report extra)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--threads", type=int, default=None, help="CPU threads (default: all)")
def parity(bundles, backends, voice_path, reference, speaker, prompt, reference_text, reference_language, text,
           language, max_tokens, seed, save_path, against_path, pytorch_models, min_snr_db, gate_settings,
           free_seeds, report_dir, as_json, threads):
    """Show that backends, precisions and machines give the same result: the same voice, tokens and noise through
    every BUNDLE x BACKEND, compared with the first run (or with a case saved by --save, with --against). Every
    run is held to gates that depend on its precision; the command exits 1 when one fails."""
    from . import parity_report
    from .files import check_output

    _check_parity_options(max_tokens, seed, min_snr_db, free_seeds, against_path)
    text = _cleaned_text(text, "--text")
    if save_path:
        guarded(lambda: check_output(save_path, inputs=[voice_path, reference, against_path], input_folders=bundles))
        _require_suffix("--save", save_path, (".npz",), "a parity case is an .npz file")
    if report_dir:
        guarded(lambda: check_output(report_dir, folder=True, input_folders=bundles))  # before the runs
    if as_json and str(save_path) == "-":
        fail("--json and --save - would both write to standard output: save the case to a file")
    voice = _VoiceChoice(voice_path, reference, reference_text, reference_language, speaker, prompt)
    voice.check()
    if against_path and (voice_path or reference or speaker or prompt):
        fail("--against replays a saved case with its own voice: leave out --voice, --reference, --speaker and "
             "--prompt")
    request = _ParityRequest(text, language, max_tokens, seed, free_seeds, against_path, voice)
    synths, checks = _parity_synthesizers(bundles, backends or ("openvino", "onnxruntime"), threads, pytorch_models)
    if len(synths) < 2 and not (against_path or save_path):
        fail("one run has nothing to compare with: add a --backend or a bundle, or --save the case to compare on "
             "another machine (--against)")
    all_gates = {**checks.GATES, **parity_report.FREE_RUNNING_GATES}
    gates = guarded(lambda: parity_report.with_overrides(all_gates, gate_settings))
    case, reference_run, runs, seeds = _parity_runs(checks, request, synths)
    rate = synths[0][1].sample_rate
    results, verdicts = _judged(checks, reference_run, runs, gates, rate)
    if save_path:
        guarded(lambda: checks.save_case(save_path, case, reference_run))
    _print_parity(checks, case, reference_run, results, verdicts, as_json, save_path)
    if report_dir:
        facts = {"text": case.text, "forced_steps": int(case.tokens.size), "seed": None if against_path else seed,
                 "free_running_seeds": seeds, "replayed_from": against_path}
        family = synths[0][1].bundle.manifest.family
        reference_view = parity_report.ReportRun.of(reference_run)
        doc = parity_report.document(family, facts, reference_view, verdicts, gates, all_gates)
        views = [parity_report.ReportRun.of(run) for run in runs]
        paths = guarded(lambda: parity_report.write_report(report_dir, doc, reference_view, views, rate))
        click.echo(f"report written to {paths[1]}", err=as_json)
    _fail_parity(results, verdicts, min_snr_db)


@dataclass(frozen=True)
class _VoiceChoice:
    """How `parity` gets its voice: a voice file, a reference clip (with a transcript where the family reads one),
    or a built-in speaker and prompt (EmotiVoice)."""

    path: str | None
    reference: str | None
    reference_text: str | None
    reference_language: str
    speaker: str | None
    prompt: str | None

    def check(self) -> None:
        if self.path and self.reference:
            fail("give --voice or --reference, not both")
        if self.reference_text is not None and not self.reference:
            fail("--reference-text is the transcript of --reference: give the clip too")

    def of(self, synth):
        if self.reference and not hasattr(synth, "create_voice"):
            raise EdgevoiceError(f"{synth.bundle.manifest.family} bundles have built-in speakers, not cloned "
                                 "voices: give --speaker and --prompt instead of --reference")
        if self.reference:
            return synth.create_voice(self.reference, self.reference_text, self.reference_language)
        if self.path or not hasattr(synth, "create_voice"):  # EmotiVoice: a built-in speaker and a prompt
            return synth.voice_for(voice=self.path, speaker=self.speaker, prompt=self.prompt)
        raise EdgevoiceError("give --voice, or --reference (a clip to make the voice from), or --against")


@dataclass(frozen=True)
class _ParityRequest:
    """What `parity` compares: a case made on the first run (text, forced tokens, seed, voice), or one replayed
    from a file (`against`), and the seeds of its free runs."""

    text: str
    language: str
    max_tokens: int
    seed: int
    free_seeds: int
    against: str | None
    voice: _VoiceChoice

    def reference_case(self, checks, label: str, synth):
        """(case, reference run): the saved one, or a case made and run on the first synthesizer."""
        if self.against:
            return checks.load_case(self.against)
        case = checks.make_case(synth, self.voice.of(synth), self.text, self.language, self.max_tokens,
                                seed=self.seed)
        return case, checks.run_case(synth, case, label)

    def seeds(self, checks, reference_run) -> list[int]:
        """The free-running seeds: as saved with a replayed case, else `free_seeds` from `seed`."""
        if self.against:  # a replayed case brings the seeds it was saved with
            return [free.seed for free in reference_run.free_runs]
        count = self.free_seeds if checks.SAMPLED else min(self.free_seeds, 1)  # unsampled runs: one is all
        return list(range(self.seed, self.seed + count))


def _parity_runs(checks, request: _ParityRequest, synths: list):
    """The case and every run of it: (case, reference run, tested runs, free-running seeds), a bar on a terminal
    (a run at full size takes a while). Without --against the first synthesizer's run is the reference itself."""
    from tqdm import tqdm

    tested = synths if request.against else synths[1:]
    with tqdm(total=1 + len(tested), desc="parity runs", unit="run", file=sys.stderr, disable=None) as bar:
        def counted(label: str, work):
            bar.set_postfix_str(label)
            done = guarded(work)
            bar.update(1)
            return done

        case, reference_run = counted(f"{synths[0][0]} (reference)", lambda: request.reference_case(checks, *synths[0]))
        runs = [counted(label, lambda: checks.run_case(synth, case, label)) for label, synth in tested]
        seeds = request.seeds(checks, reference_run)
        free = [(reference_run, synths[0])] if not request.against else []
        free += [(run, labelled) for run, labelled in zip(runs, tested)]
        bar.total += len(free) * len(seeds)
        for run, (label, synth) in free:
            run.free_runs = [counted(f"{label}, seed {s}", lambda: checks.free_run(synth, case, s)) for s in seeds]
    return case, reference_run, runs, seeds


def _parity_synthesizers(bundles, backends, threads: int | None, pytorch_models: str | None):
    """([(label, synthesizer)] for every bundle x backend, our PyTorch reference first with --pytorch-models; the
    family's parity module)."""
    from .families import family_module

    opened = [(backend, _synthesizer(bundle, backend, threads)) for bundle in bundles for backend in backends]
    synths = [(f"{backend} {synth.bundle.path.name}", synth) for backend, synth in opened]
    first = synths[0][1].bundle
    others = sorted({s.bundle.manifest.family for _, s in synths} - {first.manifest.family})
    if others:
        fail(f"--bundle: {first.path.name} holds {first.manifest.family}, another bundle {', '.join(others)}: parity "
             "compares runs of one model; give bundles of one family")
    family = family_module(first.manifest.family)
    if pytorch_models:
        torch_backend = guarded(lambda: _reference_backend(first, pytorch_models, threads))
        synths.insert(0, (f"pytorch {first.path.name}", family.Synthesizer(first, backend=torch_backend)))
    return synths, importlib.import_module(f"{family.__name__}.parity")


def _judged(checks, reference_run, runs, gates, rate: int):
    """Each run compared with the reference (the family's figures) and judged by its precision's gates."""
    from . import parity_report

    results = [guarded(lambda run=run: checks.compare_runs(reference_run, run)) for run in runs]
    reference_view = parity_report.ReportRun.of(reference_run)
    verdicts = [guarded(lambda run=run, result=result: parity_report.judge(
        reference_view, parity_report.ReportRun.of(run), result, gates, rate)) for run, result in zip(runs, results)]
    for result, verdict in zip(results, verdicts):
        result.update(verdict.to_json())
    return results, verdicts


def _print_parity(checks, case, reference_run, results, verdicts, as_json: bool, save_path) -> None:
    from . import parity_report

    if as_json:
        click.echo(json.dumps({"reference": {"label": reference_run.label, **reference_run.meta},
                               "tokens": int(case.tokens.size), "runs": results,
                               "passed": all(v.passed for v in verdicts)}, indent=1))
        return
    to_stderr = str(save_path) == "-"  # the case itself is on standard output
    click.echo("\n".join(checks.report_lines(reference_run, results) + parity_report.gate_lines(verdicts)),
               err=to_stderr)
    if save_path:
        click.echo(f"case written to {'standard output' if to_stderr else save_path}", err=to_stderr)


def _fail_parity(results, verdicts, min_snr_db: float | None) -> None:
    """Exit 1 naming the runs below --min-snr-db, or those that failed their gates."""
    if min_snr_db is not None:
        below = [f"{r['label']} ({r['audio_snr_db']:.1f} dB)" for r in results
                 if r["audio_snr_db"] is not None and r["audio_snr_db"] < min_snr_db]
        if below:
            fail(f"audio SNR below {min_snr_db} dB: {', '.join(below)}")
    failed = [f"{v.label} ({v.precision}: {', '.join(v.failures())})" for v in verdicts if not v.passed]
    if failed:
        fail(f"parity gates failed: {'; '.join(failed)}")


# free runs are whole syntheses on every run: a hundred already takes hours at full size
MAX_FREE_SEEDS = 100


def _check_parity_options(max_tokens: int, seed: int, min_snr_db: float | None, free_seeds: int,
                          against_path) -> None:
    if max_tokens < 1:
        fail(f"--tokens must be at least 1, not {max_tokens}")
    if not 0 <= seed < 2 ** 63:
        fail(f"--seed must be 0…2⁶³−1, not {seed}")
    if min_snr_db is not None and not math.isfinite(min_snr_db):
        fail(f"--min-snr-db must be a finite number of dB, not {min_snr_db}")
    if not 0 <= free_seeds <= MAX_FREE_SEEDS:
        fail(f"--seeds must be 0…{MAX_FREE_SEEDS}, not {free_seeds}")
    if free_seeds and against_path:
        fail("--seeds does not go with --against: a replayed case brings the seeds it was saved with")


@main.command()
@click.argument("text")
@click.option("--bundle", type=click.Path(), default=None,
              help="the bundle whose front end to use (needed for EmotiVoice and MetaVoice; default: GPT-SoVITS v2's)")
@click.option("--language", default="en", show_default=True, help=LANGUAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def phonemize(text, bundle, language, as_json):
    """Print the phones and ids the model would be fed for TEXT (cleaned as `say` cleans it)."""
    text = _cleaned_text(text, "TEXT")
    if bundle:
        synth = _synthesizer(bundle, "openvino", None)
        _check_readable(synth, text, language, strict=False)
        report = guarded(lambda: synth.phoneme_report(text, language))
    else:
        from .gpt_sovits.synthesizer import phoneme_report, unreadable_text

        unreadable = guarded(lambda: unreadable_text(text, language))
        guarded(unreadable.refuse_if_nothing_is_read)
        if unreadable:  # as `say` says it
            click.echo(f"Warning: {unreadable.warning()}", err=True)
        report = guarded(lambda: phoneme_report(text, language))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    for value in report.values():
        if value is not None:
            click.echo(value if isinstance(value, str) else " ".join(map(str, value)))


if __name__ == "__main__":
    main()
