"""Which runtime speaks which bundle: a manifest's `family` names a package under `edgevoice/`.

A family package exposes `Synthesizer` (with `load`, `sample_rate`, `default_options`, `stream`, `synthesize`)
and its `SynthesisOptions`. Families are imported only when a bundle of theirs is opened.
"""

from __future__ import annotations

import importlib
from os import PathLike
from pathlib import Path

from .backends import make_backend
from .bundle import Bundle
from .errors import BundleError, OptionsError, VoiceError, abbreviated
from .memory import hand_back_large_blocks

FAMILIES = {"gpt-sovits": "edgevoice.gpt_sovits", "emotivoice": "edgevoice.emotivoice",
            "metavoice": "edgevoice.metavoice"}


def family_module(name: str):
    try:
        return importlib.import_module(FAMILIES[name])
    except KeyError:
        raise BundleError(f"model family {name!r} is not supported by this edgevoice "
                          f"(it runs {', '.join(sorted(FAMILIES))}); is edgevoice older than the bundle?") from None


def check_voice_family(header: dict, source, family: str) -> None:
    """Refuse by name a voice file another family made (its arrays would not fit this family's model)."""
    made_for = header.get("family")
    if not isinstance(made_for, str):  # a crafted header's list or object: not a voice file of any family
        raise VoiceError(f"{source}: not an edgevoice voice file (its family is not a name)")
    if made_for != family and made_for in FAMILIES:
        raise VoiceError(f"{source}: this voice was made for a {made_for} model, not {family}; create the voice with "
                         "this bundle")


def check_bundle(bundle: Bundle, family: str, graph_inputs: dict[str, set[str]], optional: bool = False) -> None:
    """Refuse a bundle of another family, or whose graphs lack the inputs the family's host code feeds (a bundle
    made by another edgevoice version). With `optional`, graphs the bundle does not have are not an error."""
    manifest = bundle.manifest
    if manifest.family != family:
        raise BundleError(f"{bundle.path}: this is a {manifest.family!r} bundle, not {family}")
    for name, expected in graph_inputs.items():
        graph = manifest.graphs.get(name)
        if graph is None and optional:
            continue
        if graph is None or not expected <= {t.name for t in graph.inputs}:
            raise BundleError(f"{bundle.path}: graph {name!r} is missing or does not have the inputs this edgevoice "
                              f"feeds ({', '.join(sorted(expected))}); re-export the bundle with this version")


def _open_bundle(path, verify: bool) -> Bundle:
    if not isinstance(path, (str, PathLike)):
        raise BundleError(f"a bundle is a folder path, not {type(path).__name__}")
    bundle = Bundle.load(path, verify=verify, lazy=True)
    hand_back_large_blocks()
    return bundle


def load(path: str | Path, backend="openvino", threads: int | None = None, verify: bool = True,
         cache_dir: str | PathLike | bool | None = True, long_running: bool = False):
    """Open a bundle with its family's synthesizer. `backend`: "openvino" (default), "onnxruntime",
    "onnxruntime-cuda" or a backend instance. `cache_dir`: where OpenVINO keeps compiled graphs: True (default) for
    the user's cache folder ($EDGEVOICE_CACHE_DIR, else $XDG_CACHE_HOME/edgevoice/openvino, else
    ~/.cache/edgevoice/openvino, see `compile_cache`), a folder, or None for no cache. `long_running` (a server):
    with OpenVINO, the graphs that run at every input's own length (`Synthesizer.own_length_graphs`) go to
    onnxruntime, so memory does not grow with each new length (`OpenVINOBackend.onnxruntime_graphs`)."""
    bundle = _open_bundle(path, verify)
    return family_module(bundle.manifest.family).Synthesizer.open(bundle, backend, threads, cache_dir, long_running)


class FamilySynthesizer:
    """What every family's `Synthesizer` inherits: `load`, the same as `edgevoice.load` but refusing a bundle of
    another family (the constructor checks), and `any_length_graphs`, the graphs it runs at each input's own length
    rather than at a few fixed ones (see `load`'s `long_running`)."""

    any_length_graphs: tuple[str, ...] = ()
    takes_style_prompt = False  # `voice_for(prompt=...)`: a text that sets the speaking style (EmotiVoice's)
    languages: tuple[str, ...] = ()  # what the text calls' `language` may be (None always: the front end decides)

    def checked_language(self, language):
        """`language` if this family reads it, else an OptionsError naming what it reads (a family whose front end
        decides by itself still refuses a language it cannot read rather than ignoring it)."""
        if language is None or (isinstance(language, str) and language in self.languages):
            return language
        raise OptionsError(f"unsupported language {abbreviated(repr(language))} for {self.bundle.manifest.family}: "
                           f"expected one of {', '.join(self.languages)}")

    @classmethod
    def load(cls, path: str | Path, backend="openvino", threads: int | None = None, verify: bool = True,
             cache_dir: str | PathLike | bool | None = True, long_running: bool = False):
        return cls.open(_open_bundle(path, verify), backend, threads, cache_dir, long_running)

    @classmethod
    def own_length_graphs(cls, bundle: Bundle) -> tuple[str, ...]:
        """`any_length_graphs` for this bundle (a family may run some of them padded in newer bundles)."""
        return cls.any_length_graphs

    @classmethod
    def open(cls, bundle: Bundle, backend, threads: int | None, cache_dir, long_running: bool):
        """`load` on an opened bundle: a named backend is made here (an instance passes through unchanged)."""
        backend = make_backend(backend, threads, cache_dir, cls.own_length_graphs(bundle) if long_running else ())
        return cls(bundle, backend=backend, threads=threads)
