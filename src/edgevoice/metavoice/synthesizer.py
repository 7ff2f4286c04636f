"""MetaVoice-1B synthesis on a bundle: text → stage-1 GPT (two EnCodec codebooks, with speaker guidance) → stage-2
GPT (six more codebooks) → EnCodec → 24 kHz audio, for a speaker embedding made from a ≥ 30 s reference.

Stage entry points take upstream's per-stage arrays:

* `text_tokens(text)` → stage-1 ids (normalised, BPE, end-of-text, offset)
* `speaker_embedding(audio, sample_rate)` → `[256]`
* `first_stage_logits(text_ids, speaker_embedding, forced_tokens, guidance)` → (cond, uncond, guided), each
  `[1 + len(forced), vocab]`: the prefill row, then one row per forced token (teacher forcing)
* `second_stage_logits(stage2_input_ids, speaker_embedding)` → `[heads, positions, vocab]`
* `decode_codes(codes)` → EnCodec waveform of `[n_q, frames]` codes

`synthesize()` / `stream()` chain them sentence by sentence. Upstream has no long-text support: a text longer than
one context is split into sentences (then at commas and spaces) small enough that each sentence's audio fits
both stages' contexts.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import warnings
from numbers import Integral
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import textinput
from ..backends import make_backend, runs_graph
from ..bundle import Bundle
from ..onnx_files import bundle_initializer_shapes, bundle_ir_constant_shape
from ..errors import AudioError, BundleError, OptionsError, ReferenceWarning, TextError, VoiceError
from ..families import FamilySynthesizer, check_bundle
from ..fixed_shapes import padded_length
from ..kv_cache import check_step_cache_inputs, in_place_feeds
from ..options import AudioChunk, joined_audio
from ..threadsafe import serialized
from . import adapters, sampling, speaker
from .loudness import normalize_loudness
from .options import FAMILY, MIN_REFERENCE_SECONDS, SynthesisOptions
from .text import BpeTokenizer, normalize_text
from .voice import SpeakerVoice

GRAPH_INPUTS = {"speaker_encoder": {"mels"}, "stage2": {"ids", "speaker"}, "encodec_decode": {"codes"}}
# stage 1 as OpenVINO runs it (stateful) and as onnxruntime runs it (host buffers); a bundle has one or both
STAGE1_INPUTS = {"stage1": {"ids", "start", "speaker", "beam_idx"}, "stage1_step": {"ids", "start", "speaker"}}
MAX_TEXT_CHARS = 20000
# Stage-1 tokens a character of text becomes, to plan long texts: speech runs at ~14 characters per second and
# stage 1 emits 150 tokens per second of audio; a little more than that is planned for.
TOKENS_PER_CHAR = 12
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_CLAUSE_END = re.compile(r"(?<=[,])\s+")


# EnCodec's decoder is causal: on OpenVINO, which prepares and keeps kernels for each new input length, codes are
# padded at the end to 64, 96, 128, 192, … frames up to `CODES_LONGEST_PADDED` and the samples past the real ones cut
# away, in bundles whose manifest gives the fewest frames for which that is exact (`encodec.pad_exact_from_frames`,
# 7 for upstream's model: a shorter input's end reaches its start through the convolutions' reflected padding); the
# real samples are the unpadded decode's (tested). Full size, AMX Xeon, 20 code lengths of 120–700 frames
# (`python benchmarks/encodec_shapes.py --bundle B`): own lengths 5.7–5.9 s, RSS 144 → 424 MiB and growing ~7 MiB a
# length; padded 6.1–6.4 s (the padding's compute), flat at 335 MiB after five shapes. onnxruntime, which prepares
# nothing per length, decodes the codes as they are.
CODES_SMALLEST_LENGTH = 64
CODES_LONGEST_PADDED = 4096


class Synthesizer(FamilySynthesizer):
    # Graphs run at each text's (or clip's) own length. On OpenVINO a long-running process kept ~4 MiB for each new
    # one (full-size INT8, 14 sentence lengths +58 MiB, the EnCodec decoder most of it), with these on onnxruntime
    # ~1.2 MiB (the stateful stage 1, which sets the pace, stays on OpenVINO); a 150-token sentence 8.4 vs 8.2 s.
    any_length_graphs = ("speaker_encoder", "stage2", "encodec_decode")
    languages = ("en",)

    def __init__(self, bundle: Bundle, backend="openvino", threads: int | None = None):
        check_bundle(bundle, FAMILY, GRAPH_INPUTS)
        check_bundle(bundle, FAMILY, STAGE1_INPUTS, optional=True)
        manifest = bundle.manifest
        check_step_cache_inputs(bundle, "stage1_step")
        self.bundle = bundle
        self.backend = make_backend(backend, threads)
        self.sample_rate = manifest.sample_rate
        self.model = _checked_model(bundle)
        self.default_options = SynthesisOptions.from_manifest(manifest.defaults)
        self.show_progress = False  # the CLI turns on a progress bar: a CPU run takes minutes
        stateful = manifest.graphs.get("stage1")
        self._stateful = stateful is not None and runs_graph(self.backend, stateful)
        self._sessions: dict = {}
        self._lock = threading.RLock()  # see edgevoice.threadsafe
        self._tokenizer: BpeTokenizer | None = None

    def _run(self, name: str, **feeds) -> dict[str, np.ndarray]:
        return self._session(name).run(feeds)

    def _session(self, name: str):
        if name not in self._sessions:
            self._sessions[name] = self.backend.session(self.bundle, name)
        return self._sessions[name]

    @property
    def tokenizer(self) -> BpeTokenizer:
        if self._tokenizer is None:
            rel = self.model["tokenizer_file"]
            try:
                spec = json.loads(self.bundle.file(rel).read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # the hash says only that it is the file made
                raise BundleError(f"{self.bundle.path}: {rel} is not the tokenizer's JSON ({exc}; corrupt "
                                  "bundle)") from None
            self._tokenizer = BpeTokenizer.from_json(spec)
        return self._tokenizer

    @property
    def tokens_per_second(self) -> float:
        """Stage-1 tokens per second of audio: two codebooks interleaved at EnCodec's frame rate."""
        return 2 * self.sample_rate / int(self.model["encodec"]["hop"])

    @property
    def _s1(self) -> dict:
        return self.model["stage1"]

    @property
    def _s2(self) -> dict:
        return self.model["stage2"]

    # ---------------------------------------------------------------- stage entry points

    def text_tokens(self, text: str) -> np.ndarray:
        """Stage-1 ids: upstream's normalisation, BPE, end-of-text, plus the stage-1 offset."""
        return np.array(self.tokenizer.text_ids(_string(text), int(self._s1["text_offset"])), np.int64)

    def stage2_text_tokens(self, text: str) -> np.ndarray:
        return np.array(self.tokenizer.text_ids(_string(text), int(self._s2["text_offset"])), np.int64)

    def phoneme_report(self, text: str, language: str | None = None) -> dict:
        """What stage 1 reads for `text` (`edgevoice phonemize`): MetaVoice has no phones, so the normalised text,
        its BPE pieces and the stage-1 ids (end-of-text last)."""
        self.checked_language(language)
        ids = self.text_tokens(text)
        offset = int(self._s1["text_offset"])
        pieces = [self.tokenizer.decode([index - offset]) for index in ids[:-1]]
        return {"norm_text": normalize_text(text), "pieces": pieces, "ids": ids.tolist()}

    def speaker_embedding(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """A ≥ 30 s reference (mono samples at any rate) → the unit-length speaker embedding `[dim]`."""
        return self._embedding_and_sound(audio, sample_rate)[0]

    @serialized
    def _embedding_and_sound(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
        """The speaker embedding and the seconds of sound it was made from (what `trim_silence` kept of the clip)."""
        audio = speaker.as_mono_float32(audio)
        speaker.check_reference_duration(audio, sample_rate, MIN_REFERENCE_SECONDS)
        wav = speaker.resample_to_16k(audio, sample_rate)
        start, end = speaker.trim_silence(wav)
        mels = speaker.partials_of_sound(wav[start:end])
        partials = self._run("speaker_encoder", mels=np.ascontiguousarray(mels))["partial_embeddings"]
        return speaker.combine_partials(partials), (end - start) / speaker.SAMPLE_RATE

    @serialized
    def first_stage_logits(self, text_ids, speaker_embedding, forced_tokens=(), guidance=(3.0, 1.0)
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Teacher-forced stage 1: the prefill, then each forced token fed in turn → (cond, uncond, guided)."""
        sampling.guidance_scales(guidance)  # before the model runs
        ids = self._check_ids(text_ids, int(self._s1["vocab_size"]), "text_ids")
        forced = self._check_ids(forced_tokens, int(self._s1["vocab_size"]), "forced_tokens", allow_empty=True)
        if ids.size + forced.size > int(self._s1["block_size"]):
            raise OptionsError(f"{ids.size} text ids and {forced.size} forced tokens exceed stage 1's context of "
                               f"{self._s1['block_size']} positions")
        embedding = self._check_embedding(speaker_embedding)
        decoder = self.stage1_decoder(ids, embedding, forced.size)
        rows = [decoder.logits]
        for token in forced:
            rows.append(decoder.step(int(token)))
        logits = np.stack(rows)
        cond, uncond = logits[:, 0], logits[:, 1]
        return cond, uncond, sampling.guided_logits(cond, uncond, guidance)

    @serialized
    def second_stage_logits(self, stage2_input_ids, speaker_embedding) -> np.ndarray:
        """Upstream's assembled `[hierarchies, block]` rows → logits `[heads, positions, vocab]`."""
        ids = np.asarray(stage2_input_ids)
        hierarchies, block = int(self._s2["hierarchies"]), int(self._s2["block_size"])
        if ids.ndim != 2 or ids.shape[0] != hierarchies or not 0 < ids.shape[1] <= block:
            raise OptionsError(f"stage-2 input must be [{hierarchies}, ≤{block}] token ids, not {list(ids.shape)}")
        for row, vocab in zip(ids, self._s2["vocab_sizes"]):
            self._check_ids(row, int(vocab), "stage-2 input ids")
        return self._run("stage2", ids=ids.astype(np.int64), speaker=self._check_embedding(speaker_embedding))["logits"]

    @serialized
    def decode_codes(self, codes) -> np.ndarray:
        """EnCodec: codes `[n_q, frames]` (or `[1, n_q, frames]`) → waveform at the bundle's rate (float32)."""
        codes = np.asarray(codes)
        n_q = int(self.model["encodec"]["n_q"])
        codes = codes[0] if codes.ndim == 3 and codes.shape[0] == 1 else codes
        if codes.ndim != 2 or codes.shape[0] != n_q or codes.shape[1] == 0:
            raise OptionsError(f"codes must be [{n_q}, frames] with frames > 0, not {list(codes.shape)}")
        self._check_ids(codes.reshape(-1), int(self.model["encodec"]["bins"]), "codes")
        frames = codes.shape[1]
        length = self._codes_length(frames)
        padded = np.pad(codes.astype(np.int64), ((0, 0), (0, length - frames)))  # code 0 past the real ones
        wav = self._run("encodec_decode", codes=padded[None])["wav"][0]
        return wav if length == frames else wav[:frames * int(self.model["encodec"]["hop"])]

    def _codes_length(self, frames: int) -> int:
        """The frames EnCodec's decoder runs `frames` codes at: padded where the manifest says that is exact for this
        many and its engine prepares each new shape (OpenVINO), up to `CODES_LONGEST_PADDED`, else `frames`."""
        start = self.model["encodec"].get("pad_exact_from_frames")
        if not isinstance(start, int) or isinstance(start, bool) or not 0 < start <= frames:
            return frames
        padded = padded_length(frames, CODES_SMALLEST_LENGTH)
        if padded > CODES_LONGEST_PADDED or not getattr(self._session("encodec_decode"), "prepares_each_shape", True):
            return frames
        return padded

    # ---------------------------------------------------------------- generation

    def stage1_decoder(self, ids: np.ndarray, embedding: np.ndarray, room: int):
        """A stage-1 decoder primed with `ids` (the prefill) that will be fed at most `room` more tokens:
        `.logits` [2, vocab], `.step(token)`; one per caller (a decoder is not shared between threads)."""
        shape = (2, int(self._s1["n_head"]), 0, int(self._s1["n_embd"]) // int(self._s1["n_head"]))
        if self._stateful:
            return StatefulStage1(self._session("stage1"), self.bundle.graph("stage1").states, shape, ids, embedding)
        if "stage1_step" not in self.bundle.manifest.graphs:
            raise BundleError(f"{self.bundle.path}: no stage-1 graph for the {self.backend.name} backend")
        session = self._session("stage1_step")
        if "seqlens_k" in session.input_names:
            cache = next(t for t in self.bundle.graph("stage1_step").inputs if t.name == "past_key.0")
            return InPlaceStage1(session, self._s1, ids, embedding, ids.size + room, np.dtype(cache.dtype))
        return HostCacheStage1(session, int(self._s1["n_layer"]), shape, ids, embedding)

    def generate_first_stage(self, text_ids, embedding, options: SynthesisOptions, rng: np.random.Generator,
                             max_new: int) -> np.ndarray:
        """Sample stage-1 tokens after `text_ids` until end-of-audio or `max_new` tokens; returns the new tokens
        (the end-of-audio token included when it came)."""
        end = int(self._s1["end_of_audio"])
        options = self._check_options(options)
        guidance = (options.guidance, options.prompt_guidance)
        text_ids = self._check_ids(text_ids, int(self._s1["vocab_size"]), "text_ids")
        embedding = self._check_embedding(embedding)
        block = int(self._s1["block_size"])
        if isinstance(max_new, (bool, np.bool_)) or not isinstance(max_new, Integral) or max_new < 1:
            raise OptionsError(f"max_new must be a positive integer, not {max_new!r}")
        if text_ids.size + max_new > block:  # past the position table: garbage (OpenVINO) or a backend error
            raise OptionsError(f"{text_ids.size} text ids and {max_new} new tokens exceed stage 1's context of "
                               f"{block} positions")
        with self._lock:
            decoder = self.stage1_decoder(text_ids, embedding, max_new)
            tokens = []
            bar = _progress(self.show_progress, max_new)
            logits = decoder.logits
            while True:
                token = self._pick(sampling.guided_logits(logits[0], logits[1], guidance), options, rng)
                tokens.append(token)
                bar.update(1)
                if bar.n % 25 == 0:
                    bar.set_postfix_str(f"{len(tokens) / self.tokens_per_second:.1f} s of audio")
                if token == end or len(tokens) == max_new:
                    break
                logits = decoder.step(token)
            bar.close()
        return np.array(tokens, np.int64)

    @staticmethod
    def _pick(logits: np.ndarray, options: SynthesisOptions, rng) -> int:
        if options.greedy:
            return int(sampling.greedy(logits))
        top_p = None if options.top_k is not None else options.top_p
        return int(sampling.sample_logits(logits, temperature=options.temperature, top_k=options.top_k,
                                          top_p=top_p, rng=rng))

    def second_stage_codes(self, norm_text: str, codes2: np.ndarray, embedding, options: SynthesisOptions,
                           rng: np.random.Generator) -> np.ndarray:
        """Stage 2 on the first two codebooks → all `n_q` codebooks (upstream's assembly, sampling, tilted
        adapter)."""
        bins = int(self.model["encodec"]["bins"])
        in_x = adapters.stage2_input(self.stage2_text_tokens(norm_text), codes2, int(self._s2["block_size"]), bins)
        logits = self.second_stage_logits(in_x, embedding)
        if options.greedy:
            predicted = sampling.greedy(logits)
        else:
            predicted = sampling.sample_logits(logits, temperature=options.stage2_temperature,
                                               top_k=options.stage2_top_k, rng=rng)
        _, codes = adapters.tilted_decode(np.concatenate([in_x, predicted]), bins)
        return codes

    def max_new_tokens(self, text_ids: np.ndarray, stage2_ids: int, options: SynthesisOptions) -> int:
        """Stage-1 tokens one sentence may take: the user's cap, the stage-1 context, and (by default) as many
        frames as fit stage 2's block after its text, so no audio is cut there."""
        room1 = int(self._s1["block_size"]) - text_ids.size
        if room1 < 1:
            raise TextError(f"a sentence gives {text_ids.size} text tokens; stage 1 reads at most "
                            f"{int(self._s1['block_size']) - 1}")
        if options.max_new_tokens is not None:
            return min(options.max_new_tokens, room1)
        room2 = 2 * (int(self._s2["block_size"]) - stage2_ids - 1)
        if room2 < 2:
            raise TextError(f"a sentence gives {stage2_ids} text tokens, which leaves stage 2 no room for audio")
        return min(room1, room2)

    def speak_sentence(self, sentence: str, voice: SpeakerVoice, options: SynthesisOptions,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One sentence → (stage-1 tokens, waveform)."""
        ids = self.text_tokens(sentence)
        norm = normalize_text(sentence)
        max_new = self.max_new_tokens(ids, len(self.stage2_text_tokens(norm)), options)
        tokens = self.generate_first_stage(ids, voice.embedding, options, rng, max_new)
        _, codes2 = adapters.flattened_decode(np.concatenate([ids, tokens]), int(self.model["encodec"]["bins"]))
        if codes2.shape[1] == 0:
            return tokens, np.zeros(0, np.float32)
        codes = self.second_stage_codes(norm, codes2, voice.embedding, options, rng)
        if codes.shape[1] == 0:
            return tokens, np.zeros(0, np.float32)
        wav = self.decode_codes(codes)
        if options.normalize_loudness:
            wav = normalize_loudness(wav, self.sample_rate)
        return tokens, wav

    # ---------------------------------------------------------------- voices

    def create_voice(self, audio_path: str | Path, text: str | None = None, language: str | None = None,
                     aux_audio=()) -> SpeakerVoice:
        """A voice from a reference clip of at least 30 s. MetaVoice needs no transcript (`text` and `language`
        are accepted for a uniform interface and not used)."""
        from ..audio import audio_array, read_audio

        self.checked_language(language)
        if aux_audio:
            raise VoiceError("MetaVoice makes a voice from one reference of at least 30 s; join the clips into one")

        audio, rate = read_audio(audio_path)
        audio = audio_array(audio, str(audio_path))  # the same refusals as an array given to the API, naming the file
        try:
            embedding, sound = self._embedding_and_sound(audio, rate)
        except AudioError as exc:  # too short or silent: say which file
            raise type(exc)(f"{audio_path}: {exc}") from None
        if sound < speaker.MIN_SOUND_S:
            warnings.warn(f"{audio_path}: only {sound:.1f} s of the {len(audio) / rate:.1f} s reference is sound (the "
                          f"silence at its ends is left out); MetaVoice's voices come from about "
                          f"{MIN_REFERENCE_SECONDS:g} s of speech, so this one may sound little like the speaker",
                          ReferenceWarning, stacklevel=2)
        digest = hashlib.sha256(Path(audio_path).read_bytes()).hexdigest()
        return SpeakerVoice(embedding, self._speaker_encoder_sha256(), digest, len(audio) / rate)

    def _speaker_encoder_sha256(self) -> str:
        return str(self.bundle.manifest.sources.get("speaker_encoder", {}).get("sha256", ""))

    def voice_for(self, voice=None, speaker=None, prompt=None) -> SpeakerVoice:
        """A voice file path, a `SpeakerVoice`, or a raw speaker embedding `[dim]` / `[1, dim]`."""
        if speaker is not None or prompt is not None:
            raise VoiceError("MetaVoice clones a voice from a reference: give a voice (made by 'edgevoice voice "
                             "create --audio REF.wav'), not a speaker or a style prompt")
        if voice is None:
            raise VoiceError("MetaVoice needs a voice: make one with `edgevoice voice create --bundle B --audio "
                             "REF.wav --out V.npz` (a reference of at least 30 s)")
        if isinstance(voice, (str, Path)):
            voice = SpeakerVoice.load(voice)
        if not isinstance(voice, SpeakerVoice):
            return SpeakerVoice(self._check_embedding(voice)[0], self._speaker_encoder_sha256())
        self._check_embedding(voice.embedding)
        mine = self._speaker_encoder_sha256()
        # an empty hash (an embedding given as numbers, or a bundle without source hashes) is taken on trust: its
        # size and unit length are checked, and what a foreign encoder's vector can do is speak in the wrong voice
        if voice.speaker_encoder_sha256 and mine and voice.speaker_encoder_sha256 != mine:
            raise VoiceError("this voice was made with another speaker encoder; create it again with this bundle")
        return voice

    # ---------------------------------------------------------------- text in, audio out

    def split_text(self, text: str, language: str | None = None, options: SynthesisOptions | None = None
                   ) -> list[str]:
        """The pieces `stream` speaks. A text that fits both stages' contexts is spoken whole, as upstream does;
        a longer one (upstream has no long-text support) is cut into runs of sentences, then at commas, then
        between words, each small enough for its audio to fit."""
        self.checked_language(language)
        text = textinput.text_to_speak(text, MAX_TEXT_CHARS)
        normalize_text(text)  # refuse unsupported characters before any work
        if not any(char.isalnum() for char in text):  # stage 1 would still read the marks' BPE pieces aloud
            raise TextError("the text has nothing to read (only punctuation or spaces)")
        options = self._check_options(options)
        return self._group(_SENTENCE_END.split(text.strip()), options, _CLAUSE_END)

    def _fits(self, piece: str, options: SynthesisOptions) -> bool:
        """Whether `piece` and its audio fit stage 1's context and stage 2's block: the audio is
        `max_new_tokens` when given, else estimated from the text's length (`TOKENS_PER_CHAR`)."""
        n1, n2 = len(self.text_tokens(piece)), len(self.stage2_text_tokens(piece))
        new = options.max_new_tokens or int(TOKENS_PER_CHAR * len(piece))
        return n1 + new <= int(self._s1["block_size"]) and n2 + (new + 1) // 2 + 1 <= int(self._s2["block_size"])

    def _group(self, units: list[str], options: SynthesisOptions, finer: re.Pattern | None) -> list[str]:
        """Consecutive `units` joined while they fit; a unit that does not fit alone is cut at `finer` marks (then
        between words)."""
        pieces, current = [], ""
        for unit in (u.strip() for u in units):
            if not unit:
                continue
            candidate = f"{current} {unit}".strip()
            if self._fits(candidate, options):
                current = candidate
                continue
            if current:
                pieces.append(current)
            if self._fits(unit, options):
                current = unit
                continue
            parts = finer.split(unit) if finer is not None else []
            parts = parts if len(parts) > 1 else unit.split()
            if len(parts) == 1:  # one word longer than the contexts allow: max_new_tokens caps its audio
                pieces.append(unit)
                current = ""
                continue
            sub = self._group(parts, options, None)
            pieces += sub[:-1]
            current = sub[-1]
        if current:
            pieces.append(current)
        return pieces

    def stream(self, text: str, voice=None, language: str | None = None,
               options: SynthesisOptions | None = None, **overrides) -> Iterator[AudioChunk]:
        """Speak `text` sentence by sentence (MetaVoice reads English: `language` is "en" or None). Markup and
        escapes are removed first (`textinput.prepare_text`)."""
        options = self._check_options(options).with_overrides(**overrides)
        voice = self.voice_for(voice)
        text = textinput.text_to_speak(text, MAX_TEXT_CHARS)
        sentences = self.split_text(text, language, options)
        if not sentences:
            raise TextError("the text contains nothing to speak")
        rng = np.random.default_rng(options.seed)
        pause = np.zeros(int(round(options.sentence_pause * self.sample_rate)), np.float32)
        for index, sentence in enumerate(sentences):
            tokens, wav = self.speak_sentence(sentence, voice, options, rng)
            lead = pause if index else pause[:0]
            yield AudioChunk(sentence, np.concatenate([lead, wav]), self.sample_rate, tokens)

    def synthesize(self, text: str, voice=None, language: str | None = None,
                   options: SynthesisOptions | None = None, **overrides) -> np.ndarray:
        """The whole text's audio; keyword overrides (e.g. `greedy=True`, `max_new_tokens=96`) change `options`."""
        return joined_audio(self.stream(text, voice, language, options, **overrides))

    # ---------------------------------------------------------------- internals and checks

    def _check_options(self, options) -> SynthesisOptions:
        """`options`, or the bundle's defaults for None; another family's options are refused by name."""
        options = self.default_options if options is None else options
        if not isinstance(options, SynthesisOptions):
            kind = type(options)
            # every family's class is called SynthesisOptions: its module says whose it is
            shown = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            raise OptionsError(f"options must be MetaVoice's SynthesisOptions, not {shown}")
        return options

    @staticmethod
    def _check_ids(ids, vocab: int, what: str, allow_empty: bool = False) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.size and ids.dtype.kind not in "iu":
            raise OptionsError(f"{what} must be integers, not {ids.dtype}")
        ids = ids.reshape(-1).astype(np.int64)
        if ids.size == 0 and not allow_empty:
            raise OptionsError(f"{what} is empty")
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise OptionsError(f"{what} must lie in 0…{vocab - 1}")
        return ids

    def _check_embedding(self, embedding) -> np.ndarray:
        """`[dim]` or `[1, dim]`, finite → `[1, dim]` float32."""
        dim = int(self.model["speaker"]["embedding"])
        vector = np.asarray(embedding)
        if vector.dtype.kind != "f" or vector.size != dim or vector.ndim not in (1, 2):
            raise VoiceError(f"a speaker embedding is {dim} floating-point values ([{dim}] or [1, {dim}]), not "
                             f"{vector.dtype} {list(vector.shape)}")
        if not np.isfinite(vector).all():
            raise VoiceError("the speaker embedding contains NaN or infinite values")
        return vector.reshape(1, dim).astype(np.float32)


# The model facts (manifest `model`) this class reads: whole numbers, most of them positive. A manifest edited by
# hand or written by another exporter is refused by name when the synthesizer is made, instead of a KeyError, a
# division by zero or an engine error mid-sentence.
MODEL_FACTS = {"stage1": ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "text_offset", "end_of_audio"),
               "stage2": ("block_size", "hierarchies", "text_offset"), "speaker": ("embedding",),
               "encodec": ("n_q", "bins", "hop", "sample_rate")}


def _checked_model(bundle: Bundle) -> dict:
    """The manifest's model facts, each present and a positive integer, consistent with one another (stage 1's
    tokens are EnCodec's two first codebooks interleaved, its end-of-audio token right after them; the bundle's
    rate is EnCodec's) and with the graphs' own input shapes."""
    manifest = bundle.manifest
    model, where = manifest.model, f"{bundle.path}: manifest model"

    def fact(section: str, key: str) -> int:
        value = model[section].get(key) if isinstance(model.get(section), dict) else None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise BundleError(f"{where} {section}.{key} must be a positive integer, found {value!r} (made by "
                              "another exporter? re-export the bundle)")
        return value

    facts = {section: {key: fact(section, key) for key in keys} for section, keys in MODEL_FACTS.items()}
    s1, s2, encodec = facts["stage1"], facts["stage2"], facts["encodec"]
    vocab = model["stage2"].get("vocab_sizes")
    if (not isinstance(vocab, list) or len(vocab) != s2["hierarchies"]
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in vocab)):
        raise BundleError(f"{where} stage2.vocab_sizes must be {s2['hierarchies']} positive integers")
    if not isinstance(model.get("tokenizer_file"), str):
        raise BundleError(f"{where} has no tokenizer_file")
    problems = [
        (s1["n_embd"] % s1["n_head"] != 0, f"stage1.n_embd {s1['n_embd']} is not a multiple of n_head"),
        (s1["end_of_audio"] != 2 * encodec["bins"], f"stage1.end_of_audio {s1['end_of_audio']} is not twice "
                                                     f"encodec.bins {encodec['bins']}"),
        (not s1["end_of_audio"] < s1["text_offset"] < s1["vocab_size"], "stage 1's text ids do not follow its "
                                                                          "audio tokens inside its vocabulary"),
        (encodec["sample_rate"] != manifest.sample_rate, f"the bundle's sample_rate {manifest.sample_rate} is not "
                                                         f"EnCodec's {encodec['sample_rate']}"),
    ]
    step = manifest.graphs.get("stage1_step")  # the host-cache step: its cache inputs say the heads and layers
    keys = [t.shape for t in step.inputs if t.name.startswith("past_key.")] if step is not None else []
    head = [2, s1["n_head"], s1["n_embd"] // s1["n_head"]]
    problems += [(bool(keys) and len(keys) != s1["n_layer"],
                  f"stage1.n_layer {s1['n_layer']} is not its step graph's {len(keys)} cache layers"),
                 (any(list(k[:2]) + [k[-1]] != head for k in keys),
                  f"stage 1's {s1['n_head']} heads of {head[2]} are not its step graph's cache {keys[:1]}")]
    codes = [t.shape for t in manifest.graphs["encodec_decode"].inputs if t.name == "codes"]
    problems.append((bool(codes) and codes[0][1] != encodec["n_q"],
                     f"encodec.n_q {encodec['n_q']} is not the decoder graph's {codes[0][1] if codes else None}"))
    for section in ("stage1", "stage2"):
        block = facts[section]["block_size"]
        problems.extend((block > rows, f"{section}.block_size {block} is more than the {rows} positions of {graph}'s "
                                       "table") for graph, rows in _position_rows(bundle, STAGE_GRAPHS[section]))
    found = [text for wrong, text in problems if wrong]
    if found:
        raise BundleError(f"{where}: {found[0]} (corrupt bundle)")
    return model


# Each stage's position table, as our exporter names it in the ONNX graphs and OpenVINO keeps it in the IR (also in a
# weight-compressed one): a block_size past its rows would feed positions the table lacks (onnxruntime fails the run;
# OpenVINO returns rows of zeros: wrong audio, no error).
POSITION_TABLE = "gpt.transformer.wpe.weight"
STAGE_GRAPHS = {"stage1": ("stage1_step", "stage1"), "stage2": ("stage2",)}  # the graphs that run each stage


def _position_rows(bundle: Bundle, graphs: tuple[str, ...]) -> Iterator[tuple[str, int]]:
    """(graph, rows of its position table) for each of `graphs` the bundle has: from the ONNX file's header fields,
    or the IR's XML where the graph has no ONNX file (a graph whose table is named otherwise is left out)."""
    for graph in graphs:
        entry = bundle.manifest.graphs.get(graph)
        if entry is None:
            continue
        if "onnx" in entry.files:
            dims = bundle_initializer_shapes(bundle, entry.files["onnx"], {POSITION_TABLE}).get(POSITION_TABLE)
        elif "openvino" in entry.files:
            dims = bundle_ir_constant_shape(bundle, entry.files["openvino"], POSITION_TABLE)
        else:
            continue
        if dims:
            yield graph, dims[0]


def _string(text) -> str:
    if not isinstance(text, str):
        raise TextError(f"the text must be a string, not {type(text).__name__}")
    return text


def _progress(enabled: bool, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="stage 1", unit="tok", disable=not enabled, leave=False)


class StatefulStage1:
    """Both guidance rows' KV caches live in the OpenVINO request of the stateful `stage1` graph: the prefill
    starts them empty and every step appends its row in place; the host only feeds ids."""

    def __init__(self, session, states: dict[str, str], empty_shape: tuple, ids: np.ndarray, embedding: np.ndarray):
        if not states:
            raise BundleError("stage1 has no state description in the manifest; re-export the bundle")
        self._session = session
        self._speaker = embedding
        self._beam = np.arange(empty_shape[0], dtype=np.int32)
        session.set_states({variable: np.zeros(empty_shape, np.float32) for variable in states})
        self._position = 0
        self.logits = self._run(ids)

    def _run(self, ids: np.ndarray) -> np.ndarray:
        out = self._session.run({"ids": ids.reshape(1, -1).astype(np.int64), "speaker": self._speaker,
                                 "start": np.array([self._position], np.int64), "beam_idx": self._beam})
        self._position += ids.size
        return out["logits"]

    def step(self, token: int) -> np.ndarray:
        self.logits = self._run(np.array([token]))
        return self.logits


class HostCacheStage1:
    """Host KV buffers `[2, H, capacity, Dh]` with a slot mask (onnxruntime): the step graph reads them in place
    and returns only the new rows, written here; buffers grow by `GROWTH` slots."""

    GROWTH = 128

    def __init__(self, session, n_layer: int, empty_shape: tuple, ids: np.ndarray, embedding: np.ndarray):
        self._session = session
        self._names = [(f"past_{kind}.{i}", f"new_{kind}.{i}") for kind in ("key", "value") for i in range(n_layer)]
        rows, heads, _, head_dim = empty_shape
        self._buffers = {past: np.zeros((rows, heads, 0, head_dim), np.float32) for past, _ in self._names}
        self._mask = np.zeros((rows, 0), np.float32)
        self._filled = 0
        self._speaker = embedding
        self.logits = self._run(ids)

    def _grow(self, needed: int) -> None:
        extra = max(self.GROWTH, needed)
        for past, buffer in self._buffers.items():
            grown = np.zeros(buffer.shape[:2] + (buffer.shape[2] + extra,) + buffer.shape[3:], np.float32)
            grown[:, :, : buffer.shape[2]] = buffer
            self._buffers[past] = grown
        spare = np.full((self._mask.shape[0], extra), -np.inf, np.float32)
        self._mask = np.concatenate([self._mask, spare], axis=1)

    def _run(self, ids: np.ndarray) -> np.ndarray:
        new = ids.size
        if self._filled + new > self._mask.shape[1]:
            self._grow(new)
        out = self._session.run({"ids": ids.reshape(1, -1).astype(np.int64), "speaker": self._speaker,
                                 "start": np.array([self._filled], np.int64), "past_mask": self._mask,
                                 **self._buffers})
        for past, name in self._names:
            self._buffers[past][:, :, self._filled:self._filled + new] = out[name]
        self._mask[:, self._filled:self._filled + new] = 0.0
        self._filled += new
        return out["logits"]

    def step(self, token: int) -> np.ndarray:
        self.logits = self._run(np.array([token]))
        return self.logits


class InPlaceStage1:
    """Host KV buffers `[2, H, capacity, Dh]` that the step graph writes itself (its attention fused by `quantize`:
    `edgevoice.kv_cache`), in the graph's cache precision. The buffers are made once for the prefill and every
    token the caller may feed (`capacity`) and bound by address with the logits' array, so a step copies nothing;
    zero pages are not resident until written, so memory follows the tokens actually cached."""

    def __init__(self, session, stage1: dict, ids: np.ndarray, embedding: np.ndarray, capacity: int,
                 dtype: np.dtype):
        if not hasattr(session, "bind"):
            raise BundleError("stage1_step writes its cache in place (seqlens_k): it needs a backend that binds "
                              "buffers (onnxruntime)")
        heads, layers = int(stage1["n_head"]), int(stage1["n_layer"])
        self._session, self._speaker = session, embedding
        self._names = [f"{kind}.{i}" for kind in ("key", "value") for i in range(layers)]
        self._cache = np.zeros((2 * layers, 2, heads, max(capacity, 1), int(stage1["n_embd"]) // heads), dtype)
        self._logits = np.empty((2, int(stage1["vocab_size"])), np.float32)
        self._filled = 0
        self._bind()
        self.logits = self._run(ids)

    def _bind(self) -> None:
        buffers = {f"past_{name}": self._cache[index] for index, name in enumerate(self._names)}
        written = {f"present_{name}": self._cache[index] for index, name in enumerate(self._names)}
        self._bound = self._session.bind(buffers, {**written, "logits": self._logits})

    def _grow(self, needed: int) -> None:
        """Only where a caller feeds more than it announced: one copy, then bound again."""
        grown = np.zeros(self._cache.shape[:3] + (needed + HostCacheStage1.GROWTH,) + self._cache.shape[4:],
                         self._cache.dtype)
        grown[:, :, :, : self._filled] = self._cache[:, :, :, : self._filled]
        self._cache = grown
        self._bind()

    def _run(self, ids: np.ndarray) -> np.ndarray:
        new = ids.size
        if self._filled + new > self._cache.shape[3]:
            self._grow(self._filled + new)
        out = self._bound.run({"ids": ids.reshape(1, -1).astype(np.int64), "speaker": self._speaker,
                               "start": np.array([self._filled], np.int64),
                               **in_place_feeds(np.full(self._cache.shape[1], self._filled), new)})
        self._filled += new
        return out["logits"].copy()  # the bound array is overwritten by the next step

    def step(self, token: int) -> np.ndarray:
        self.logits = self._run(np.array([token]))
        return self.logits
