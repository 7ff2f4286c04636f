"""GPT-SoVITS synthesis on a bundle: the host side of the graphs (loops, sampling, caches, text, audio).

Stage entry points take exactly upstream's per-stage arrays so that tests and the parity tool can drive each
stage with recorded inputs:

* `reference_codes(wav16k)` → prompt tokens (HuBERT + VQ, after upstream's 0.6 s of appended silence)
* `reference_embedding(refer_spec)` → `ge`
* `bert_features(norm_text, word2ph)` → per-phone BERT features `[1024, N]`
* `teacher_forced_logits(phone_ids, bert_features, prompt_tokens, forced_tokens)` → raw logits `[steps, V]`
* `generate_tokens(...)` → sampled semantic tokens (upstream's sampler and stopping rules)
* `decode_tokens(tokens, phone_ids, refer_spec, noise)` → waveform

`synthesize()` / `stream()` chain them for text in, audio out.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import frontend
from .. import textinput
from ..audio import audio_array, resample_sinc
from .reference import HUBERT_RATE, load_reference, load_timbre_clip
from ..backends import make_backend, runs_graph
from ..cpu import detect
from ..threadsafe import serialized
from ..bundle import Bundle
from ..errors import AudioError, BundleError, OptionsError, TextError, VoiceError, abbreviated
from ..kv_cache import check_step_cache_inputs
from ..memory import cyclic_gc_paused
from ..families import FamilySynthesizer, check_bundle
from ..options import AudioChunk, joined_audio
from .options import FAMILY, MAX_BATCH, SynthesisOptions, stretched_frames
from .decode_cache import HostKVCache, StatefulCache
from .chunking import (BERT_TOKEN_BUCKETS, LONG_FRAGMENT_CONTEXT, LONG_FRAGMENT_TOKENS, SOVITS_TOKEN_BUCKETS,
                       STREAM_CHUNK_GROWTH, STREAM_CHUNK_TOKENS, STREAM_CONTEXT_TOKENS, STREAM_FIRST_BUCKETS, STREAM_FIRST_CHUNK_TOKENS,
                       STREAM_FIRST_CONTEXT_TOKENS, VOCODER_FRAME_BUCKETS, FrameNoise, Window, check_chunk_tokens,
                       next_window, bucketed_length, padded_phones, vocoder_windows, windows)
from .sampler import MAX_TOKENS, SamplingOptions, sample_token, upstream_token_limit
from .spectrogram import kaldi_fbank, linear_spectrogram
from .model_facts import checked_model
from .split_vocoder import VOCODER_HEAD, VOCODER_TAIL, SplitVocoder
from .voice import BERT_FEATURES, Voice

# The inputs this host code feeds each graph; a bundle whose graphs differ was made by another edgevoice version.
GRAPH_INPUTS = {
    "hubert_codes": {"wav16k"}, "ref_encoder": {"refer_spec"}, "bert": {"input_ids"},
    "gpt_prefill": {"phone_ids", "bert_features", "prompt_tokens"}, "gpt_step": {"token", "position"},
    "gpt_decode": {"token", "position", "beam_idx"},
    "gpt_batch_decode": {"token", "position", "past_mask", "beam_idx"},
    "sovits_latent": {"codes", "phone_ids", "ge", "noise", "valid_tokens", "valid_phones"},
    "sovits_vocoder": {"z", "ge", "valid_frames"},
    "sovits_vocoder_vnni": {"z", "ge"},
    "sovits_vocoder_tail": {"hidden", "valid_frames"},
    "sovits_vocoder_vnni_head": {"z", "ge"},
}
# The vocoder as onnxruntime's 8-bit operators, without masks, run at each window's exact length: in INT8 bundles
# quantised on a CPU with 8-bit dot products where it measured faster (edgevoice_export.gpt_sovits.vocoder_engine).
EXACT_VOCODER = "sovits_vocoder_vnni"
# It runs in windows that keep at most this many frames (each computes its reach on both sides as well): at 512
# frames its activations set the peak of a whole synthesis. Measured (full-size v2 INT8, Zen 4, 2 threads, a 10 s
# sentence after a short one): peak RSS 736 → 668 MiB (the OpenVINO prefill and latent then; 541 → 468 MiB with the
# stand-ins), for 8 % more vocoder time at 500 frames (the same z in one process, alternating: 1.185 s in two windows
# vs 1.099 s in one; 280 frames: one window either way).
EXACT_VOCODER_WINDOW_FRAMES = 256
# The prefill as onnxruntime's dynamic INT8 matmuls and SoVITS's encoder + flow as its static INT8: in INT8 bundles
# quantised on a CPU with 8-bit dot products where they were as accurate as OpenVINO's and about as fast, for less
# memory (edgevoice_export.gpt_sovits.stand_ins).
PREFILL_VNNI = "gpt_prefill_vnni"
LATENT_VNNI = "sovits_latent_vnni"
# All are run only on CPUs with 8-bit dot products (their s8 weights saturate without VNNI) and by a backend on the
# CPU; everywhere else the OpenVINO graph they stand in for runs.
VNNI_STAND_INS = {"sovits_vocoder": EXACT_VOCODER, "gpt_prefill": PREFILL_VNNI, "sovits_latent": LATENT_VNNI}
GRAPH_INPUTS.update({PREFILL_VNNI: GRAPH_INPUTS["gpt_prefill"], LATENT_VNNI: GRAPH_INPUTS["sovits_latent"]})
REFERENCE_GRAPHS = ("hubert_codes", "ref_encoder", "sv_embedding")  # run by create_voice only
HUBERT_PAD_SAMPLES = 9600  # upstream appends int(32000 * 0.3) zeros to the *16 kHz* reference (0.6 s)
MAX_TEXT_CHARS = 5000
MAX_TRANSCRIPT_CHARS = 1000  # a 10 s reference is read in about 200 characters
MAX_AUX_CLIPS = 32  # extra timbre clips per voice (averaged: more add nothing but time)
BERT_MAX_POSITIONS = 512  # chinese-roberta-wwm-ext-large's position table, for bundles that do not record theirs


@dataclass
class Fragment:
    """Everything one fragment went through: the inputs of each stage and the raw (unnormalised) waveform."""

    text: str
    phone_ids: np.ndarray  # target phones (what SoVITS sees)
    gpt_phone_ids: np.ndarray  # prompt + target phones (what the GPT sees)
    gpt_bert: np.ndarray  # [1024, len(gpt_phone_ids)]
    tokens: np.ndarray
    noise: np.ndarray  # flow noise, already multiplied by the noise scale
    audio: np.ndarray


@dataclass(frozen=True)
class TokenRequest:
    """One sequence for `Synthesizer.generate_rows`: the GPT's inputs, its sampling options and generator."""

    phone_ids: np.ndarray
    bert_features: np.ndarray
    prompt_tokens: np.ndarray
    options: SamplingOptions
    rng: np.random.Generator


@dataclass(frozen=True)
class BatchRequest:
    """One request of `Synthesizer.synthesize_batch`: its own text, voice, language and options."""

    text: str
    voice: Voice
    language: str = "en"
    options: SynthesisOptions | None = None


@dataclass(frozen=True)
class _FragmentJob:
    text: str
    voice: Voice
    language: str
    sampling: SamplingOptions
    noise_scale: float
    rng: np.random.Generator
    speed: float = 1.0


def fragment_rngs(seed: int | None) -> Iterator[np.random.Generator]:
    """One generator per fragment, from the call's seed and the fragment's index: a fragment's tokens and noise
    do not depend on how many tokens the fragments before it took, so batched and one-by-one runs agree."""
    index = 0
    while True:
        yield np.random.default_rng(None if seed is None else [seed, index])
        index += 1


def phoneme_report(text: str, language: str, version: str = "v2") -> dict:
    """What the front end feeds the model for `text`: normalised text, phones, their ids, phones per character."""
    result = frontend.phonemize(text, language, version=version)
    return {"norm_text": result.norm_text, "phones": list(result.phones), "phone_ids": list(result.phone_ids),
            "word2ph": None if result.word2ph is None else list(result.word2ph)}


def unreadable_text(text: str, language: str) -> textinput.Unreadable:
    """The characters of `text` that the front end for `language` cannot read (it leaves them out)."""
    return textinput.unreadable(text, lambda char: frontend.reads(char, language), f"the {language!r} front end")


def _row(array, dtype) -> np.ndarray:
    """Accept `[N]` or `[1, N]` and return `[1, N]` of the given dtype."""
    array = np.asarray(array)
    if array.ndim > 1 and array.size != array.shape[-1]:
        raise OptionsError(f"expected a row [N] or [1, N], not an array of shape {list(array.shape)}")
    return array.astype(dtype).reshape(1, -1)


def _ids(values, limit: int, what: str, error: type = OptionsError) -> np.ndarray:
    """`values` as a `[1, N]` int64 row, refused unless every id lies in 0…limit−1: a graph looks its tables up at
    these ids, and outside them onnxruntime fails and OpenVINO reads whatever memory is there."""
    array = np.asarray(values)
    if array.size and array.dtype.kind not in "iu":
        raise error(f"{what} must be integers, not {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= limit):
        raise error(f"{what} must lie in 0…{limit - 1}; found {array.min()}…{array.max()}")
    return _row(array, np.int64)


def _finite(values, what: str) -> np.ndarray:
    """`values` as float32, refused when any is NaN or infinite (they would come out as NaN audio)."""
    array = np.asarray(values, np.float32)
    if not np.isfinite(array).all():
        raise OptionsError(f"{what} contains NaN or infinite values")
    return array


class Synthesizer(FamilySynthesizer):
    stream_chunk_tokens = STREAM_CHUNK_TOKENS  # chunk size for callers that stream without choosing one
    # graphs run at a reference clip's own length, once per voice, and the prefill at each fragment's: OpenVINO's INT8
    # prefill kept ~3.5 MiB for every new phone count (full size, AMX Xeon: 15 lengths 270 → 321 MiB, 88 ms a
    # fragment of 80 phones; onnxruntime's FP32 graph 168 ms, its memory flat but for its arena; the VNNI stand-in,
    # where `quantize` took it, runs on onnxruntime anyway: 105 ms, flat), so a server grew with every phone count
    # it met (hundreds: a few hundred MiB to over a GiB). BERT too sees each Chinese segment's length, but runs padded (`BERT_TOKEN_BUCKETS`).
    any_length_graphs = REFERENCE_GRAPHS + ("gpt_prefill",)
    languages = frontend.LANGUAGES

    @classmethod
    def own_length_graphs(cls, bundle: Bundle) -> tuple[str, ...]:
        """Also the decode step where it matches OpenVINO's stateful decode in precision (an FP32 bundle): the
        stateful graph keeps ~2.8 MiB for every new starting length (full-size FP32 v2, AMX Xeon,
        benchmarks/long_running_memory.py), onnxruntime's step stays flat and steps about as fast (run.py, same CPU:
        20.8 / 23.2 / 27.0 ms vs 17.7 / 23.2 / 30.4 at 50 / 400 / 1000 positions; faster at every length on the Zen
        4). An INT8 bundle whose `quantize` took OpenVINO's decode keeps it (its step is FP32 there: slower on the
        CPUs where that happens)."""
        decode, step = bundle.manifest.graphs.get("gpt_decode"), bundle.manifest.graphs.get("gpt_step")
        same_precision = decode is not None and step is not None and step.precision == decode.precision
        return cls.any_length_graphs + (("gpt_step",) if same_precision else ())

    def __init__(self, bundle: Bundle, backend="openvino", threads: int | None = None):
        check_bundle(bundle, FAMILY, GRAPH_INPUTS, optional=True)  # which graphs a bundle has depends on its version
        manifest = bundle.manifest
        check_step_cache_inputs(bundle, "gpt_step")
        self.bundle = bundle
        self.backend = make_backend(backend, threads)
        self.sample_rate = manifest.sample_rate
        self._model = checked_model(bundle)
        self.default_options = SynthesisOptions.from_manifest(manifest.defaults)  # the model's own defaults
        self._sessions: dict = {}
        self._lock = threading.RLock()  # see edgevoice.threadsafe
        # OpenVINO keeps the KV cache inside a stateful `gpt_decode` graph; other backends (and older bundles)
        # run `gpt_step` with host-side caches, and so does a long-running process that hands the step to
        # onnxruntime (`own_length_graphs`).
        decode = manifest.graphs.get("gpt_decode")
        self._stateful_decode = (decode is not None and runs_graph(self.backend, decode)
                                 and "gpt_step" not in getattr(self.backend, "onnxruntime_graphs", ()))
        self._bert_vocab: dict[str, int] | None = None
        # the lengths BERT's ids are padded to; None: bundles from before its mask run it at each segment's length
        bert = manifest.graphs.get("bert")
        self._bert_buckets = BERT_TOKEN_BUCKETS if bert and "attention_mask" in {t.name for t in bert.inputs} else None
        # tokens kept when the GPT never ends a fragment, as upstream (from the GPT config's max_sec)
        self.token_limit = upstream_token_limit(self._model["gpt"].get("max_sec"))
        if not {"sovits_latent", "sovits_vocoder"} <= set(manifest.graphs):
            raise BundleError(f"{bundle.path}: this bundle lacks sovits_latent or sovits_vocoder (an older edgevoice "
                              "made SoVITS as one graph); re-export it with this version")
        sovits = manifest.graphs["sovits_latent"]
        context = self._model["sovits"].get("vocoder_context_frames")
        if isinstance(context, bool) or not isinstance(context, int) \
                or not 0 <= context < VOCODER_FRAME_BUCKETS[-1] // 2:
            raise BundleError(f"{bundle.path}: model.sovits.vocoder_context_frames must be a frame count below "
                              f"{VOCODER_FRAME_BUCKETS[-1] // 2}, not {context!r}")
        self._vocoder_context = context
        self.vocoder_graph = self._graph_here("sovits_vocoder")
        self._vocoder_tail = self._tail_shape() if self.vocoder_graph == EXACT_VOCODER else None
        self.prefill_graph = self._graph_here("gpt_prefill")
        self.latent_graph = self._graph_here("sovits_latent")
        # sizes a voice's arrays are checked against: the phone table (the GPT's and SoVITS's embeddings) and `ge`
        symbols = len(manifest.symbols)
        self._phone_count = min(symbols, self._model["gpt"].get("phone_vocab_size", symbols))
        ge = next(t for t in sovits.inputs if t.name == "ge")
        self._ge_shape = tuple(ge.shape) if all(isinstance(d, int) for d in ge.shape) else None

    def _graph_here(self, name: str) -> str:
        """`name`'s 8-bit stand-in (`VNNI_STAND_INS`) where the bundle has it, this backend runs it on the CPU and
        the CPU has VNNI; else `name`."""
        stand_in = VNNI_STAND_INS[name]
        entry = self.bundle.manifest.graphs.get(stand_in)
        on_cpu = getattr(self.backend, "device", "cpu") == "cpu"
        return stand_in if entry and on_cpu and runs_graph(self.backend, entry) and detect().int8_dot else name

    def _tail_shape(self) -> tuple[int, tuple[int, ...]] | None:
        """(context frames, window frames) of the 8-bit vocoder's float tail where the bundle split it off
        (`split_vocoder`), else None."""
        if VOCODER_TAIL not in self.bundle.manifest.graphs:
            return None
        sovits = self._model["sovits"]
        context, windows = sovits.get("vocoder_tail_context_frames"), sovits.get("vocoder_tail_windows")
        if isinstance(context, bool) or not isinstance(context, int) or not 0 <= context <= self._vocoder_context \
                or not isinstance(windows, list) or not windows or windows != sorted(set(windows)) \
                or not all(type(w) is int and 2 * context < w <= VOCODER_FRAME_BUCKETS[-1] for w in windows):
            raise BundleError(f"{self.bundle.path}: {VOCODER_TAIL} needs model.sovits.vocoder_tail_context_frames "
                              f"(0…{self._vocoder_context}) and vocoder_tail_windows (ascending frame counts above "
                              f"twice it, at most {VOCODER_FRAME_BUCKETS[-1]}), not {context!r} and {windows!r}")
        return context, tuple(windows)

    def _session(self, name: str):
        # under the lock: a stream opens its decode graph between its own locked calls, while another thread may
        # be releasing graphs (a probe's `dictionary changed size during iteration`) or opening the same one
        with self._lock:
            if name not in self._sessions:
                if name == EXACT_VOCODER and self._vocoder_tail and self._split_here():
                    head = VOCODER_HEAD if VOCODER_HEAD in self.bundle.manifest.graphs else name
                    head, tail = (self.backend.session(self.bundle, graph) for graph in (head, VOCODER_TAIL))
                    self._sessions[name] = SplitVocoder(head, tail, *self._vocoder_tail)  # behind one session
                else:
                    self._sessions[name] = self.backend.session(self.bundle, name)
            return self._sessions[name]

    def _split_here(self) -> bool:
        """Whether the 8-bit vocoder runs as head + float tail (`split_vocoder`): always where the bundle ships only
        the split; where it ships the split beside the one graph, only once this backend runs OpenVINO anyway (the
        tail's ~100 MiB are paid then: full-size v2, Zen 4, a voice made in the process peaks 16 MiB *lower* with
        the split) - a process that loads no OpenVINO graph keeps the one onnxruntime graph. Decided when the
        vocoder is opened; both give the same samples to float rounding (>= 90 dB, tests/test_exact_vocoder.py)."""
        if VOCODER_HEAD not in self.bundle.manifest.graphs:
            return True
        return bool(getattr(self.backend, "openvino_loaded", False))

    @serialized
    def release_graphs(self, names: Sequence[str] | None = None) -> list[str]:
        """Unload compiled graphs (all loaded ones when `names` is None), giving their memory back; a later call that
        needs one compiles it again (from the compile cache: a fraction of a second). Returns the names unloaded.
        A stream in progress keeps the graphs it holds until it ends."""
        if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)
                                  or not all(isinstance(n, str) for n in names)):
            raise OptionsError(f"names must be a list of graph names, not {abbreviated(repr(names))}")
        unloaded = [name for name in self._sessions if names is None or name in names]
        for name in unloaded:
            del self._sessions[name]
        return unloaded

    def release_reference_graphs(self) -> list[str]:
        """Unload the graphs only `create_voice` runs (HuBERT, the reference encoder, the speaker embedding):
        synthesis with a finished voice never needs them (full-size INT8: ~280 MiB of RSS, see
        benchmarks/results/startup_memory.md)."""
        return self.release_graphs(REFERENCE_GRAPHS)

    def _run(self, name: str, **feeds) -> dict[str, np.ndarray]:
        return self._session(name).run(feeds)

    # ---------------------------------------------------------------- stage entry points

    @serialized
    def reference_codes(self, wav16k: np.ndarray) -> np.ndarray:
        """Prompt tokens of a 16 kHz reference (any array `audio.audio_array` takes: float, int16 or int32 PCM)."""
        wav16k = audio_array(wav16k, "the 16 kHz reference")
        padded = np.concatenate([wav16k, np.zeros(HUBERT_PAD_SAMPLES, np.float32)])
        return self._run("hubert_codes", wav16k=padded[None])["prompt_tokens"][0]

    def reference_spectrogram(self, audio: np.ndarray) -> np.ndarray:
        """The reference's linear spectrogram with the model's own STFT sizes → `[1, n_fft/2+1, frames]`."""
        sovits = self._model["sovits"]
        return linear_spectrogram(audio_array(audio, "the reference"), n_fft=sovits["filter_length"],
                                  hop_length=sovits["hop_length"],
                                  win_length=sovits["win_length"])

    @serialized
    def speaker_embedding(self, audio: np.ndarray) -> np.ndarray | None:
        """v2Pro/v2ProPlus: the ERes2NetV2 embedding `[1, 20480]` of the reference at the model's rate (resampled
        to 16 kHz, Kaldi fbank); None for models without a speaker-verification branch."""
        audio = audio_array(audio, "the reference")
        if "sv_embedding" not in self.bundle.manifest.graphs:
            return None
        wav16k = resample_sinc(audio, self.sample_rate, HUBERT_RATE)
        return self._run("sv_embedding", fbank=kaldi_fbank(wav16k)[None])["sv"]

    @serialized
    def reference_embedding(self, refer_spec: np.ndarray, sv: np.ndarray | None = None) -> np.ndarray:
        """`ge` from the reference spectrogram (+ the speaker embedding for v2Pro/v2ProPlus)."""
        spec = _finite(refer_spec, "refer_spec")
        bins = self._model["sovits"]["spec_channels"]
        if spec.ndim not in (2, 3) or spec.shape[-2] != bins or spec.size != bins * spec.shape[-1]:
            raise OptionsError(f"refer_spec must be [{bins}, frames] or [1, {bins}, frames], not {list(spec.shape)}")
        feeds = {"refer_spec": spec.reshape(1, *spec.shape[-2:])}
        if "sv" in {t.name for t in self.bundle.graph("ref_encoder").inputs}:
            if sv is None:
                raise OptionsError(f"GPT-SoVITS {self.bundle.manifest.upstream_version} needs the speaker embedding "
                                   "(speaker_embedding(audio)) with the spectrogram")
            feeds["sv"] = _finite(sv, "sv").reshape(1, -1)
        return self._run("ref_encoder", **feeds)["ge"]

    @serialized
    def bert_features(self, norm_text: str, word2ph) -> np.ndarray:
        """Chinese BERT `hidden_states[-3]` per character, repeated `word2ph[i]` times → `[1024, N]`."""
        if "bert" not in self.bundle.manifest.graphs:
            raise BundleError(f"{self.bundle.path}: this bundle has no BERT graph, which Chinese text needs; export "
                              "it with --bert")
        if len(word2ph) != len(norm_text):
            raise TextError(f"internal: word2ph has {len(word2ph)} entries for {len(norm_text)} characters")
        limit = self._model["bert"].get("max_positions", BERT_MAX_POSITIONS)
        if len(norm_text) + 2 > limit:  # upstream's BERT fails there too (its position table ends)
            raise TextError(f"a Chinese passage of {len(norm_text)} characters without a break is longer than BERT "
                            f"reads ({limit - 2}); add punctuation")
        vocab = self._vocab()
        ids = [vocab["[CLS]"], *(self._bert_token_id(ch) for ch in norm_text), vocab["[SEP]"]]
        feeds = {"input_ids": np.array([ids], dtype=np.int64)}
        if self._bert_buckets is not None:  # padded to one of a few lengths, the padding masked out
            size = min(bucketed_length(len(ids), self._bert_buckets), limit)
            feeds["input_ids"] = np.pad(feeds["input_ids"], ((0, 0), (0, size - len(ids))),
                                        constant_values=vocab.get("[PAD]", 0))
            feeds["attention_mask"] = (np.arange(size) < len(ids)).astype(np.int64)[None]
        hidden = self._run("bert", **feeds)["hidden"][0, 1:len(ids) - 1]
        return np.repeat(hidden, np.asarray(word2ph, dtype=np.int64), axis=0).T.astype(np.float32)

    @serialized
    def teacher_forced_logits(self, phone_ids, bert_features, prompt_tokens, forced_tokens) -> np.ndarray:
        """Raw logits (before EOS masking and penalty) of the prefill and of one step per forced token but the last."""
        forced = _ids(forced_tokens, self._model["gpt"]["vocab_size"], "forced tokens")[0]
        cache = self._prefill(phone_ids, bert_features, prompt_tokens)
        rows = [cache.logits]
        for token in forced[:-1]:
            rows.append(cache.step(int(token)))
        return np.stack(rows)

    @serialized
    def generate_tokens(self, phone_ids, bert_features, prompt_tokens, options: SamplingOptions | None = None,
                        rng: np.random.Generator | None = None) -> np.ndarray:
        with cyclic_gc_paused():  # the stream is drained here: no caller code runs between its tokens
            return np.fromiter(self._token_stream(phone_ids, bert_features, prompt_tokens, options, rng), np.int64)

    def _token_stream(self, phone_ids, bert_features, prompt_tokens, options: SamplingOptions | None = None,
                      rng: np.random.Generator | None = None, own_cache: bool = False) -> Iterator[int]:
        """Semantic tokens one by one as the GPT samples them (upstream's sampler and stopping rules).

        `own_cache`: the sequence gets a KV cache of its own (a new OpenVINO request), so other calls may use this
        synthesizer between two tokens — what streaming needs, as its caller may resume it from any thread."""
        options = options or SamplingOptions()
        rng = rng or np.random.default_rng()
        prompt = _ids(prompt_tokens, self._model["gpt"]["vocab_size"], "prompt tokens")[0]
        limit = options.max_tokens or upstream_token_limit(self._model["gpt"].get("max_sec"),
                                                           reference_free=prompt.size == 0)
        cache = self._prefill(phone_ids, bert_features, prompt, own_cache)
        eos = self._model["gpt"]["eos"]
        history = np.empty(prompt.size + limit, dtype=np.int64)
        history[: prompt.size] = prompt
        logits, generated = cache.logits, 0
        for step in range(limit):
            token, stop = sample_token(logits, history[: prompt.size + generated], step, eos, options, rng)
            if stop:
                return
            history[prompt.size + generated] = token
            generated += 1
            yield token
            if generated == limit:
                return
            logits = cache.step(token)

    @serialized
    def decode_tokens(self, tokens, phone_ids, refer_spec=None, noise=None, ge=None, speed: float = 1.0,
                      buckets: tuple[int, ...] = SOVITS_TOKEN_BUCKETS) -> np.ndarray:
        """SoVITS: tokens `[T]`, target phones `[N]`, the reference (spectrogram or its `ge`) and the flow noise
        `[1, C, F]` already multiplied by the noise scale (None = noise scale 0; F = `stretched_frames(T, speed)`,
        2T at speed 1) → waveform `[hop·F]` (1280·T at speed 1). `buckets`: the token counts the encoder is padded
        to (the vocoder runs on the matching frame counts, `chunking`)."""
        # semantic tokens index SoVITS's codebook, which has one entry fewer than the GPT's vocabulary (no EOS)
        codes = _ids(tokens, self._model["gpt"]["eos"], "semantic tokens").reshape(1, 1, -1)
        if codes.shape[-1] == 0:
            raise TextError("the GPT produced no tokens for this text")
        if ge is None:
            if refer_spec is None:
                raise OptionsError("decode_tokens needs refer_spec or ge")
            ge = self.reference_embedding(refer_spec)
        ge = _finite(ge, "ge")
        if self._ge_shape and ge.shape != self._ge_shape:
            raise OptionsError(f"ge must have shape {list(self._ge_shape)}, not {list(ge.shape)}")
        channels = self._model["sovits"]["inter_channels"]
        if noise is None:
            noise = np.zeros((1, channels, stretched_frames(codes.shape[-1], speed)), np.float32)
        noise = _finite(noise, "noise")
        if noise.size % channels or noise.size == 0:
            raise OptionsError(f"noise must be [1, {channels}, frames], not {list(noise.shape)}")
        noise = noise.reshape(1, channels, -1)
        phone_ids = _ids(phone_ids, self._phone_count, "phone ids").reshape(1, -1)
        return self._vocode(self._latent(codes, phone_ids, ge, noise, buckets), ge)

    def _latent(self, codes: np.ndarray, phone_ids: np.ndarray, ge: np.ndarray, noise: np.ndarray,
                buckets: tuple[int, ...]) -> np.ndarray:
        """SoVITS's encoder and flow at a bucket shape: tokens, phones and noise padded (zeros), the real lengths
        fed → `z` of the real frames `[1, C, F]`. At other speeds than 1 the frames are stretched over the whole
        input, so those run at their own length."""
        tokens, phones = codes.shape[-1], phone_ids.shape[-1]
        size = bucketed_length(tokens, buckets) if noise.shape[-1] == 2 * tokens else tokens
        width = padded_phones(phones)
        feeds = {"codes": np.pad(codes, ((0, 0), (0, 0), (0, size - tokens))),
                 "phone_ids": np.pad(phone_ids, ((0, 0), (0, width - phones))),
                 "ge": ge, "noise": np.pad(noise, ((0, 0), (0, 0), (0, 2 * (size - tokens)))),
                 "valid_tokens": np.array([tokens], np.int64), "valid_phones": np.array([phones], np.int64)}
        return self._run(self.latent_graph, **feeds)["z"][:, :, : noise.shape[-1]]

    def _vocode(self, z: np.ndarray, ge: np.ndarray) -> np.ndarray:
        """The vocoder over `z` `[1, C, F]` in windows of at most one length (`vocoder_windows`), each padded to a few
        fixed lengths for `sovits_vocoder` → `[hop·F]`."""
        hop = self._model["sovits"]["hop_length"]
        pieces = []
        longest = EXACT_VOCODER_WINDOW_FRAMES + 2 * self._vocoder_context if self.vocoder_graph == EXACT_VOCODER \
            else VOCODER_FRAME_BUCKETS[-1]
        for window in vocoder_windows(z.shape[-1], context=self._vocoder_context, window=longest):
            piece = z[:, :, window.start:window.stop]
            if self.vocoder_graph == EXACT_VOCODER:  # runs at any length: no padding, no masks
                feeds = {"z": piece, "ge": ge}
            else:
                real = window.stop - window.start
                padded = bucketed_length(real, VOCODER_FRAME_BUCKETS)
                feeds = {"z": np.pad(piece, ((0, 0), (0, 0), (0, padded - real))), "ge": ge,
                         "valid_frames": np.array([real], np.int64)}
            audio = self._run(self.vocoder_graph, **feeds)["audio"].reshape(-1)
            pieces.append(audio[(window.keep_start - window.start) * hop:(window.keep_stop - window.start) * hop])
        return np.concatenate(pieces)

    # ---------------------------------------------------------------- text and voices

    def phonemize(self, text: str, language: str):
        """Phones and per-phone BERT features `[1024, N]` of one piece of text."""
        result = frontend.phonemize(text, language, version=self.bundle.manifest.upstream_version)
        features = []
        for segment in result.segments:
            # upstream reads Chinese through BERT and gives every other language zeros; a bundle exported without
            # BERT (English and Japanese only) refuses Chinese rather than speak it with features upstream never uses
            if segment.lang == "zh":
                features.append(self.bert_features(segment.norm_text, segment.word2ph))
            else:
                features.append(np.zeros((BERT_FEATURES, len(segment.phone_ids)), np.float32))
        bert = np.concatenate(features, axis=1) if features else np.zeros((BERT_FEATURES, 0), np.float32)
        return result, bert

    def phoneme_report(self, text: str, language: str) -> dict:
        return phoneme_report(text, language, self.bundle.manifest.upstream_version)

    def timbre(self, audio: np.ndarray) -> np.ndarray:
        """`ge` of one clip at the model's rate: spectrogram (+ speaker embedding for v2Pro/Plus) → ref_encoder.
        `audio`: mono float samples, or int16/int32 PCM (see `audio.audio_array`)."""
        audio = audio_array(audio, "the reference")
        return self.reference_embedding(self.reference_spectrogram(audio), self.speaker_embedding(audio))

    def create_voice(self, audio_path: str | Path, text: str | None, language: str,
                     aux_audio: Sequence[str | Path] = ()) -> Voice:
        """A voice from a reference clip and its transcript; without a transcript (None or "") a reference-free
        voice, as upstream's `ref_free`: the clip gives only the timbre, the GPT gets no prompt. `aux_audio`:
        more clips whose timbre is averaged in (upstream's aux_ref_audio_paths: `ge` is the mean over all)."""
        if isinstance(aux_audio, (str, Path)):
            raise AudioError("aux_audio is a list of paths; give [path] for one clip")
        if len(aux_audio) > MAX_AUX_CLIPS:
            raise AudioError(f"{len(aux_audio)} extra timbre clips; at most {MAX_AUX_CLIPS} are averaged")
        if text:
            text = textinput.prepare_text(text)
            if not text.strip():
                raise TextError("the reference transcript is empty once markup is removed; give the words, or none "
                                "for reference-free")
            if len(text) > MAX_TRANSCRIPT_CHARS:
                raise TextError(f"the reference transcript is {len(text)} characters long; a 3–10 s clip's "
                                f"transcript has at most {MAX_TRANSCRIPT_CHARS}")
            unreadable = self.unreadable_text(text, language)
            unreadable.refuse_if_nothing_is_read()
            unreadable.warn()
        wav16k, wav_model_rate = load_reference(audio_path, self.sample_rate)
        # every clip is read and checked before any graph runs
        timbres = [wav_model_rate] + [load_timbre_clip(path, self.sample_rate) for path in aux_audio]
        manifest = self.bundle.manifest
        if text:
            phones, bert = self.phonemize(frontend.prepare_prompt_text(text, language), language)
            prompt_tokens, prompt_phones, norm_text = self.reference_codes(wav16k), phones.phone_ids, phones.norm_text
        else:
            prompt_tokens, prompt_phones, norm_text = np.zeros(0, np.int64), [], ""
            bert = np.zeros((BERT_FEATURES, 0), np.float32)
        voice = Voice(
            prompt_tokens=np.asarray(prompt_tokens, np.int64), prompt_phone_ids=np.asarray(prompt_phones, np.int64),
            prompt_bert=bert, ge=np.mean([self.timbre(clip) for clip in timbres], axis=0).astype(np.float32),
            text=text or "", language=language, norm_text=norm_text, model_fingerprint=manifest.model_fingerprint,
            family=manifest.family, upstream_version=manifest.upstream_version,
            source_audio_sha256=hashlib.sha256(Path(audio_path).read_bytes()).hexdigest(),
            aux_audio_sha256=[hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in aux_audio],
        )
        self.check_voice(voice)
        return voice

    def voice_for(self, voice: str | Path | Voice | None = None, speaker=None, prompt=None) -> Voice:
        """The voice a command line names: a voice file made by `create_voice` (GPT-SoVITS has no built-in
        speakers and no style prompt)."""
        if speaker is not None or prompt is not None:
            raise OptionsError("GPT-SoVITS clones a voice: give a voice (a file from 'edgevoice voice create'), not "
                               "a speaker or a style prompt")
        if voice is None:
            raise VoiceError("GPT-SoVITS needs a voice: give one (make it with 'edgevoice voice create')")
        if not isinstance(voice, (Voice, str, PathLike)):
            raise VoiceError(f"a voice is a Voice or the path of a voice file, not {type(voice).__name__}")
        voice = voice if isinstance(voice, Voice) else Voice.load(voice)
        self.check_voice(voice)
        return voice

    def split_text(self, text: str, language: str, options: SynthesisOptions | None = None) -> list[str]:
        """The fragments `stream` will yield, one chunk each (after `textinput.prepare_text`)."""
        text = textinput.prepare_text(text)
        return frontend.split_target_text(text, language, (options or self.default_options).split_method)

    def unreadable_text(self, text: str, language: str) -> textinput.Unreadable:
        return unreadable_text(text, language)

    def check_voice(self, voice: Voice) -> None:
        """Refuse a voice made with other weights, or whose arrays this bundle cannot take (ids beyond its tables,
        `ge` of another size): checked before any graph runs, as a voice file may come from anyone."""
        if not isinstance(voice, Voice):
            raise VoiceError(f"expected a Voice (from create_voice or Voice.load), not {type(voice).__name__}")
        if voice.model_fingerprint != self.bundle.manifest.model_fingerprint:
            raise VoiceError("this voice was made with a different model; create it again with this bundle")
        _ids(voice.prompt_phone_ids, self._phone_count, "the voice's prompt phone ids", VoiceError)
        _ids(voice.prompt_tokens, self._model["gpt"]["eos"], "the voice's prompt tokens", VoiceError)
        if self._ge_shape and voice.ge.shape != self._ge_shape:
            raise VoiceError(f"the voice's ge has shape {list(voice.ge.shape)}; this bundle's is "
                             f"{list(self._ge_shape)}")

    def stream(self, text: str, voice: Voice, language: str = "en", options: SynthesisOptions | None = None,
               chunk_tokens: int | None = None) -> Iterator[AudioChunk]:
        """Synthesise fragment by fragment (sentences grouped by the split method), yielding audio as it is ready.
        Markup and escapes are removed first (`textinput.prepare_text`); characters the front end cannot read are
        named in an `UnreadableTextWarning`.

        `chunk_tokens`: yield audio once `chunk_tokens` semantic tokens (25 = 1 s of audio) and their context are
        generated (the first chunk: at most `chunking.STREAM_FIRST_CHUNK_TOKENS`, 0.4 s, for an early first audio),
        then in chunks growing to 4 × `chunk_tokens` while the GPT is still writing the fragment, then
        the fragment's pause as a chunk of its own (see `chunking`: the joined audio
        matches the unchunked decode to ~80 dB or better). Chunks are clipped at ±1 rather than scaled by the
        fragment's peak, which is not known yet. Speeds other than 1 stretch a fragment as a whole, so they are
        decoded per fragment."""
        options = options or self.default_options
        if not isinstance(options, SynthesisOptions):
            raise OptionsError(f"options must be SynthesisOptions, not {type(options).__name__}")
        if chunk_tokens is not None:
            chunk_tokens = check_chunk_tokens(chunk_tokens)
        self.check_voice(voice)
        if chunk_tokens is not None and options.batch_size > 1:
            raise OptionsError("chunk_tokens streams one fragment at a time: use batch_size 1 with it")
        fragments = self._fragments(text, language, options)
        pause = np.zeros(int(round(options.fragment_interval * self.sample_rate)), np.float32)
        jobs = [_FragmentJob(piece, voice, language, options.sampling(), options.noise_scale, rng, options.speed)
                for piece, rng in zip(fragments, fragment_rngs(options.seed))]
        if chunk_tokens is not None and options.speed == 1:
            for job in jobs:
                yield from self._fragment_chunks(job, chunk_tokens, pause)
            return
        for start in range(0, len(jobs), options.batch_size):
            group = jobs[start:start + options.batch_size]
            for job, fragment in zip(group, self._synthesize_fragments(group)):
                if fragment is not None:
                    yield self._fragment_chunk(fragment, pause)

    def _fragment_chunk(self, fragment: "Fragment", pause: np.ndarray) -> AudioChunk:
        audio = fragment.audio
        peak = float(np.abs(audio).max())
        if peak > 1.0:
            audio = audio / peak
        return AudioChunk(fragment.text, np.concatenate([audio, pause]), self.sample_rate, fragment.tokens)

    def synthesize_batch(self, requests: Sequence[BatchRequest], batch_size: int = 8) -> list[np.ndarray]:
        """Several independent requests (each its own voice, language and options) at once: their fragments go
        through the GPT `batch_size` at a time (`generate_rows`), SoVITS one by one. Each request's audio is the
        audio `synthesize` gives it alone with the same options."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH:
            raise OptionsError(f"batch_size must be 1…{MAX_BATCH}, not {batch_size}")
        if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence) or not requests:
            raise OptionsError(f"requests must be a non-empty list of BatchRequest objects, not "
                               f"{abbreviated(repr(requests))}")
        jobs: list[tuple[int, _FragmentJob, np.ndarray]] = []
        for index, request in enumerate(requests):
            if not isinstance(request, BatchRequest):
                raise OptionsError(f"requests are BatchRequest objects, not {type(request).__name__}")
            options = request.options or self.default_options
            if not isinstance(options, SynthesisOptions):
                raise OptionsError(f"options must be SynthesisOptions, not {type(options).__name__}")
            self.check_voice(request.voice)
            pause = np.zeros(int(round(options.fragment_interval * self.sample_rate)), np.float32)
            for piece, rng in zip(self._fragments(request.text, request.language, options),
                                  fragment_rngs(options.seed)):
                job = _FragmentJob(piece, request.voice, request.language, options.sampling(), options.noise_scale,
                                   rng, options.speed)
                jobs.append((index, job, pause))
        audio: list[list[np.ndarray]] = [[] for _ in requests]
        for start in range(0, len(jobs), batch_size):
            group = jobs[start:start + batch_size]
            for (index, _, pause), fragment in zip(group, self._synthesize_fragments([job for _, job, _ in group])):
                if fragment is not None:
                    audio[index].append(self._fragment_chunk(fragment, pause).audio)
        if not all(audio):
            raise TextError(f"the model produced no audio for request {audio.index([])}")
        return [np.concatenate(parts) for parts in audio]

    def _fragments(self, text: str, language: str, options: SynthesisOptions) -> list[str]:
        """The text's fragments, after every check a call makes before any graph runs."""
        text = textinput.text_to_speak(text, MAX_TEXT_CHARS)
        unreadable = self.unreadable_text(text, language)
        unreadable.refuse_if_nothing_is_read()
        unreadable.warn()
        fragments = frontend.split_target_text(text, language, options.split_method)
        if not fragments:
            raise TextError("the text contains nothing to speak")
        return fragments

    def _fragment_inputs(self, text: str, voice: Voice, language: str):
        """Target phones (what SoVITS reads) and the GPT's phones and BERT features (the voice's prompt first)."""
        phones, bert = self.phonemize(text, language)
        target = np.asarray(phones.phone_ids, np.int64)
        return target, np.concatenate([voice.prompt_phone_ids, target]), np.concatenate([voice.prompt_bert, bert],
                                                                                         axis=1)

    def _fragment_noise(self, rng: np.random.Generator, noise_scale: float) -> FrameNoise:
        # drawn from a generator of the fragment's own, seeded before its tokens, so that streaming (noise drawn
        # between tokens) and whole fragments consume `rng` alike
        return FrameNoise(np.random.default_rng(rng.integers(2 ** 63)), self._model["sovits"]["inter_channels"],
                          noise_scale)

    def synthesize_fragment(self, text: str, voice: Voice, language: str, sampling: SamplingOptions,
                            noise_scale: float, rng: np.random.Generator, speed: float = 1.0
                            ) -> "Fragment | None":
        """One fragment through phones → GPT → SoVITS; None when the GPT ends at once (no tokens). SoVITS's encoder
        reads the whole fragment (padded to one of a few lengths) up to `LONG_FRAGMENT_TOKENS`, a longer one in
        windows; the vocoder runs on windows of at most one length (`chunking`: memory does not grow per length)."""
        return self._synthesize_fragments([_FragmentJob(text, voice, language, sampling, noise_scale, rng, speed)])[0]

    def _synthesize_fragments(self, jobs: Sequence[_FragmentJob]) -> "list[Fragment | None]":
        """Fragments whose GPT runs as one batch (`generate_rows`); SoVITS decodes each in turn."""
        inputs = [self._fragment_inputs(job.text, job.voice, job.language) for job in jobs]
        noises = [self._fragment_noise(job.rng, job.noise_scale) for job in jobs]  # drawn before the tokens
        rows = [TokenRequest(gpt_phones, gpt_bert, job.voice.prompt_tokens, job.sampling, job.rng)
                for job, (_, gpt_phones, gpt_bert) in zip(jobs, inputs)]
        tokens = self.generate_rows(rows)
        return [self._decode_fragment(job, inp, noise, toks) for job, inp, noise, toks in zip(jobs, inputs, noises,
                                                                                             tokens)]

    def _decode_fragment(self, job: _FragmentJob, inputs, noise: FrameNoise, tokens: np.ndarray
                         ) -> "Fragment | None":
        if tokens.size == 0:
            return None
        target, gpt_phones, gpt_bert = inputs
        frames = noise.take(0, stretched_frames(tokens.size, job.speed))
        if job.speed == 1 and tokens.size > LONG_FRAGMENT_TOKENS:
            parts = windows(tokens.size, LONG_FRAGMENT_TOKENS - 2 * LONG_FRAGMENT_CONTEXT, LONG_FRAGMENT_CONTEXT)
            audio = np.concatenate([self._decode_window(tokens, target, noise, job.voice.ge, w, SOVITS_TOKEN_BUCKETS)
                                    for w in parts])
        else:
            audio = self.decode_tokens(tokens, target, noise=frames, ge=job.voice.ge)  # the noise sets the rate
        return Fragment(job.text, target, gpt_phones, gpt_bert, tokens, frames, audio)

    def _fragment_chunks(self, job: _FragmentJob, chunk_tokens: int, pause: np.ndarray) -> Iterator[AudioChunk]:
        """One fragment as audio chunks of `chunk_tokens` tokens, each decoded as soon as its right context is
        generated, then the pause; nothing when the GPT ends at once."""
        text, voice, sampling, rng = job.text, job.voice, job.sampling, job.rng
        target, gpt_phones, gpt_bert = self._fragment_inputs(text, voice, job.language)
        noise = self._fragment_noise(rng, job.noise_scale)
        tokens = np.empty(MAX_TOKENS, np.int64)
        count = kept = 0

        def ready(final: bool) -> Iterator[AudioChunk]:
            nonlocal kept
            while True:
                # the first window decides when the first audio leaves: less right context, smaller shapes
                context, shapes, chunk = ((STREAM_FIRST_CONTEXT_TOKENS, STREAM_FIRST_BUCKETS,
                                           min(chunk_tokens, STREAM_FIRST_CHUNK_TOKENS)) if kept == 0
                                          else (STREAM_CONTEXT_TOKENS, SOVITS_TOKEN_BUCKETS, chunk_tokens))
                window = next_window(kept, count, final, chunk, context, STREAM_CHUNK_GROWTH, SOVITS_TOKEN_BUCKETS)
                if window is None:
                    return
                audio = np.clip(self._decode_window(tokens[:count], target, noise, voice.ge, window, shapes),
                                -1.0, 1.0)
                kept = window.keep_stop
                yield AudioChunk(text, audio, self.sample_rate, tokens[window.keep_start:window.keep_stop].copy())

        for token in self._token_stream(gpt_phones, gpt_bert, voice.prompt_tokens, sampling, rng, own_cache=True):
            tokens[count] = token
            count += 1
            yield from ready(final=False)
        yield from ready(final=True)
        if count:
            yield AudioChunk(text, pause, self.sample_rate, np.zeros(0, np.int64))

    def _decode_window(self, tokens: np.ndarray, target: np.ndarray, noise: FrameNoise, ge: np.ndarray,
                       window: Window, buckets: tuple[int, ...]) -> np.ndarray:
        """The audio of tokens `[window.keep_start, window.keep_stop)`, decoded with the window's context."""
        per_token = 2 * self._model["sovits"]["hop_length"]  # two 50 Hz frames per 25 Hz token
        audio = self.decode_tokens(tokens[window.start:window.stop], target,
                                   noise=noise.take(2 * window.start, 2 * window.stop), ge=ge, buckets=buckets)
        return audio[(window.keep_start - window.start) * per_token:(window.keep_stop - window.start) * per_token]

    def synthesize(self, text: str, voice: Voice, language: str = "en", options: SynthesisOptions | None = None
                   ) -> np.ndarray:
        return joined_audio(self.stream(text, voice, language, options))

    # ---------------------------------------------------------------- internals

    def _prefill(self, phone_ids, bert_features, prompt_tokens, own_cache: bool = False
                 ) -> "HostKVCache | StatefulCache":
        out, prompt_len = self._prefill_run(phone_ids, bert_features, prompt_tokens)
        if self._stateful_decode:
            states = self.bundle.graph("gpt_decode").states
            session = self._session("gpt_decode")
            return StatefulCache(session.fork() if own_cache else session, out, states, prompt_len)
        return HostKVCache(self._session("gpt_step"), out, self._model["gpt"]["n_layer"], prompt_len)

    def _prefill_run(self, phone_ids, bert_features, prompt_tokens) -> tuple[dict, int]:
        """The checked prefill of one sequence → (its outputs, the prompt's length)."""
        phone_ids = _ids(phone_ids, self._phone_count, "phone ids")
        bert = _finite(bert_features, "bert_features")
        phones = phone_ids.shape[1]
        if bert.shape[-2:] != (BERT_FEATURES, phones) or bert.size != BERT_FEATURES * phones:
            raise OptionsError(f"bert_features {list(bert.shape)} do not match {phones} phones "
                               f"([{BERT_FEATURES}, {phones}] expected)")
        bert = bert.reshape(1, *bert.shape[-2:])
        prompt = _ids(prompt_tokens, self._model["gpt"]["vocab_size"], "prompt tokens")
        with self._lock:
            out = self._run(self.prefill_graph, phone_ids=phone_ids, bert_features=bert, prompt_tokens=prompt)
        return out, prompt.shape[1]

    @property
    def batches_tokens(self) -> bool:
        """Whether this bundle and backend decode several sequences in one step: OpenVINO's stateful
        `gpt_batch_decode`, else `gpt_step` with a batch axis (bundles exported before batching have neither)."""
        if self._stateful_decode:
            batch = self.bundle.manifest.graphs.get("gpt_batch_decode")
            return batch is not None and runs_graph(self.backend, batch)
        step = self.bundle.manifest.graphs.get("gpt_step")
        return step is not None and runs_graph(self.backend, step) and step.inputs[0].shape[0] == "batch"

    @serialized
    def generate_rows(self, rows: "Sequence[TokenRequest]") -> list[np.ndarray]:
        """The GPT's tokens for several independent sequences, decoded together: one step feeds one token per
        unfinished row, so the weights are read once for all of them. Each row samples with its own options and
        generator exactly as `generate_tokens` would; finished rows leave the batch."""
        if len(rows) < 2 or not self.batches_tokens:
            return [self.generate_tokens(r.phone_ids, r.bert_features, r.prompt_tokens, r.options, r.rng)
                    for r in rows]
        max_sec = self._model["gpt"].get("max_sec")
        prefills, histories, limits = [], [], []
        for row in rows:
            prompt = _ids(row.prompt_tokens, self._model["gpt"]["vocab_size"], "prompt tokens")[0]
            limit = row.options.max_tokens or upstream_token_limit(max_sec, reference_free=prompt.size == 0)
            prefills.append(self._prefill_run(row.phone_ids, row.bert_features, prompt)[0])
            history = np.empty(prompt.size + limit, np.int64)
            history[: prompt.size] = prompt
            histories.append(history)
            limits.append(limit)
        prompt_lens = [h.size - limit for h, limit in zip(histories, limits)]
        if self._stateful_decode:
            cache = StatefulCache.of_rows(self._session("gpt_batch_decode"), prefills,
                                          self.bundle.graph("gpt_batch_decode").states, prompt_lens)
        else:
            cache = HostKVCache.of_rows(self._session("gpt_step"), prefills, self._model["gpt"]["n_layer"],
                                        prompt_lens)
        with cyclic_gc_paused():
            counts = self._sample_rows(rows, cache, histories, prompt_lens, limits)
        return [h[n: n + c].copy() for h, n, c in zip(histories, prompt_lens, counts)]

    def _sample_rows(self, rows, cache, histories: list[np.ndarray], prompt_lens: list[int], limits: list[int]
                     ) -> list[int]:
        """The token loop of `generate_rows`: each row's tokens go into its history; → how many each row got."""
        eos = self._model["gpt"]["eos"]
        counts = [0] * len(rows)
        active = list(range(len(rows)))  # rows still generating, in the cache's row order
        for step in range(max(limits)):
            fed, stays = [], []
            for slot, index in enumerate(active):
                row, end = rows[index], prompt_lens[index] + counts[index]
                token, stop = sample_token(cache.row_logits[slot], histories[index][:end], step, eos, row.options,
                                           row.rng)
                if stop:
                    continue
                histories[index][end] = token
                counts[index] += 1
                if counts[index] < limits[index]:
                    fed.append(token)
                    stays.append(slot)
            if not stays:
                break
            if len(stays) < len(active):
                cache.keep_rows(np.array(stays))
                active = [active[slot] for slot in stays]
            cache.step_rows(np.array(fed, np.int64))
        return counts

    def _vocab(self) -> dict[str, int]:
        if self._bert_vocab is None:
            path = self.bundle.file(self._model["bert"]["vocab_file"])
            lines = path.read_text(encoding="utf-8").splitlines()
            self._bert_vocab = {token: i for i, token in enumerate(lines)}
        return self._bert_vocab

    def _bert_token_id(self, char: str) -> int:
        vocab = self._vocab()
        return vocab.get(char, vocab.get(char.lower(), vocab["[UNK]"]))
