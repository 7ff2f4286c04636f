"""EmotiVoice synthesis on a bundle: text → phonemes → acoustic model → HiFi-GAN, with a built-in speaker and a
free-text style prompt.

Stage entry points take upstream's per-stage arrays (ids and `[hidden]` vectors without a batch axis):

* `phonemes(text)` → (upstream's phoneme string, token ids)
* `style_embedding(text)` → pooled SimBERT output `[hidden]` (used for the prompt and for the spoken text)
* `acoustic(token_ids, speaker_row, style, content)` → (durations `[phones]`, mel `[frames, n_mels]`)
* `vocode(mel)` → waveform in [-1, 1] (`mel` as `[frames, n_mels]` or upstream's `[1, n_mels, frames]`)

`synthesize()` / `stream()` chain them sentence by sentence; streaming runs the vocoder on overlapping chunks of
mel frames and keeps only each chunk's centre, so the joined audio equals one whole-sentence call.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from numbers import Integral
from typing import Iterator

import numpy as np

from .. import textinput
from ..backends import make_backend
from ..threadsafe import serialized
from ..bundle import Bundle
from ..errors import BundleError, OptionsError, TextError, VoiceError, abbreviated
from ..families import FamilySynthesizer, check_bundle
from ..fixed_shapes import fixed_shape_calls, padded_length
from ..options import SPEED_RANGE, AudioChunk, check_speed, joined_audio
from .frontend import Frontend, split_sentences
from .options import FAMILY, SynthesisOptions
from .wordpiece import WordPiece

# The inputs this host code feeds each graph; a bundle whose graphs differ was made by another edgevoice version.
GRAPH_INPUTS = {
    "style_bert": {"input_ids"}, "am_front": {"token_ids", "speaker", "style", "content"},
    "am_back": {"hidden", "durations", "frame_index"}, "hifigan": {"mel"},
}
MAX_TEXT_CHARS = 20000
STYLE_CACHE_SIZE = 256
TANH_SLACK = 1e-5  # how far past ±1 an engine's tanh may round (a style or content embedding is one)
# Mel frames of context on each side of a vocoder call cut out of a longer mel (streamed chunks, fixed shapes): the
# manifest's `vocoder_context_frames`, which the exporter works out from the HiFi-GAN's kernels, dilations and rates
# (edgevoice_export/hifigan.py: 15 for upstream's configuration, whose measured reach is 12.4 frames). Bundles
# exported before it was recorded were all made with upstream's kernels and rates and use this; the streaming and
# fixed-shape tests check the joins against one whole-sentence call.
LEGACY_VOCODER_CONTEXT_FRAMES = 16
# A context past this is refused as a corrupt manifest (upstream's is 15; windows grow with it, and so would memory).
MAX_VOCODER_CONTEXT_FRAMES = 256
# Mel frames the vocoder runs at on OpenVINO (`fixed_shapes.py`): a sentence is cut into windows of 128 frames
# (the last `vocoder_context` frames of a shorter one come from a call of twice that), because OpenVINO prepares each new input length on
# its first run (0.7-2.5 s for the full-size vocoder, against 0.10-0.44 s run again) and keeps it. Full-size INT8
# (bf16 vocoder), AMX Xeon, 2 threads, a fresh process speaking six sentences, 15.4 s of audio
# (`python benchmarks/emotivoice_shapes.py --bundle B --frames 64,128,192,256 128`, two rounds): vocoder 4.36 / 6.68 s
# at each sentence's own length, 1.28 / 1.30 s with these, 3.14 / 3.16 s with (64, 128, 192, 256), 2.45 / 1.27 s with
# (128,); peak RSS 1140 MiB own length, 650 with these. Once every length is prepared the own length is faster
# (0.023 against 0.035 s per s of audio), but a process seldom meets a length twice: 30 sentence lengths
# (benchmarks/long_running_memory.py) took 26.1 s and 737 → 3408 MiB at the own lengths, 8.6 s and 636 → 943 MiB
# with these (the rest of the growth is the acoustic model's and BERT's). onnxruntime, which prepares nothing per
# length, runs each mel whole. A vocoder reaching 32 frames or more runs at whole multiples of these instead
# (`vocoder_windows`), so that the shortest still holds more than its context on both sides.
VOCODER_FIXED_FRAMES = (64, 128)
# The acoustic model's phones and frames are padded to `padded_length(n, AM_SMALLEST_LENGTH)` (16, 24, 32, 48, …) in
# bundles whose am_front / am_back take the real counts (`AM_COUNT_INPUTS`), because OpenVINO prepares and keeps
# kernels for each new input length: a sentence of a new length cost ~50 ms more and ~10 MiB for good (AMX Xeon,
# full-size INT8, benchmarks/long_running_memory.py). Older bundles run each sentence at its own length.
# onnxruntime prepares nothing per length, so there each sentence runs at its own counts (padding would only add
# work: a 1121-phone sentence at speed 0.25 took 31 s and 15.8 GB padded against 16.6 s and 8.4 GB). The caps below
# are on the ladder, so padding never takes a sentence past them.
AM_SMALLEST_LENGTH = 16
AM_COUNT_INPUTS = {"am_front": {"valid_phones"}, "am_back": {"valid_phones", "valid_frames"}}
# What one sentence may ask of the acoustic model: its encoder and decoder attend over every phone and frame at
# once (memory grows with the square), so a sentence past these is a one-line error instead of a process the
# system kills (full size on onnxruntime: 8783 frames took 8.4 GB). `max_sentence_chars` (at most 400) gives at most
# ~1200 phones; 8192 frames are 131 s of audio (a 400-character sentence at speed 0.25).
MAX_PHONES = 2048
MAX_FRAMES = 8192
# The model facts (manifest `model`) this class reads, each a positive integer, and the bundle files it opens; a
# manifest edited by hand or written by another exporter is refused when the synthesizer is made, by name, instead
# of failing later with a KeyError or running with a hop of 0.
MODEL_COUNTS = ("n_mels", "hop", "bert_hidden", "bert_max_tokens")
MODEL_FILES = ("speakers_file", "lexicon_file", "bert_vocab_file")
# Checked when the manifest records them: the vocoder's rate, and table sizes (a speaker row, token id or BERT id
# past its table makes onnxruntime fail and OpenVINO read whatever memory lies there, so the text files and the
# symbol list may not have more entries).
MODEL_TABLES = ("sample_rate", "n_speaker", "n_vocab", "bert_vocab_size")


@dataclass(frozen=True)
class SpeakerStyle:
    """Who speaks and how: a row of the speaker table and the pooled embedding of the style prompt."""

    speaker_row: int
    speaker_name: str
    prompt: str
    style: np.ndarray  # [hidden]


class Synthesizer(FamilySynthesizer):
    # The acoustic model and BERT run at the text's own length: on OpenVINO a long-running process kept memory for
    # each new one (full size, 18 sentence lengths: +618 MiB, HiFi-GAN +496 of it), on onnxruntime +2 MiB. The
    # vocoder, most of the time, stays on OpenVINO: it runs at a few fixed lengths (`vocode`).
    any_length_graphs = ("style_bert", "am_front", "am_back")
    takes_style_prompt = True
    languages = ("auto", "zh", "en")  # one mixed Chinese/English front end reads all three

    @classmethod
    def own_length_graphs(cls, bundle: Bundle) -> tuple[str, ...]:
        """The acoustic model runs at padded lengths where the bundle's graphs take the real counts."""
        return ("style_bert",) if _am_takes_counts(bundle) else cls.any_length_graphs

    def __init__(self, bundle: Bundle, backend="openvino", threads: int | None = None):
        check_bundle(bundle, FAMILY, GRAPH_INPUTS)
        manifest = bundle.manifest
        self.bundle = bundle
        self.model = _checked_model(bundle)
        self.backend = make_backend(backend, threads)
        self.sample_rate = manifest.sample_rate
        self.default_options = SynthesisOptions.from_manifest(manifest.defaults)
        self.speakers = _without_trailing_blanks(self._read_lines(self.model["speakers_file"]))
        if not self.speakers:
            raise BundleError(f"{bundle.path}: {self.model['speakers_file']} lists no speakers (corrupt bundle)")
        if len(self.speakers) > self.model.get("n_speaker", len(self.speakers)):
            raise BundleError(f"{bundle.path}: {self.model['speakers_file']} lists {len(self.speakers)} speakers; the "
                              f"model has {self.model['n_speaker']} (corrupt bundle)")
        self._speaker_rows = {name: row for row, name in enumerate(self.speakers)}
        self.vocoder_context = _vocoder_context(bundle, self.model)
        self._am_counts = _am_takes_counts(bundle)
        self.vocoder_windows = vocoder_windows(self.vocoder_context)
        self._sessions: dict = {}
        self._lock = threading.RLock()  # see edgevoice.threadsafe
        self._frontend: Frontend | None = None
        self._tokenizer: WordPiece | None = None
        self._styles: OrderedDict[str, np.ndarray] = OrderedDict()

    def _read_text(self, rel: str) -> str:
        path = self.bundle.file(rel)
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:  # the hash only says the file is the one exported, not that it is text
            raise BundleError(f"{self.bundle.path}: {rel} is not UTF-8 text (byte {exc.start}; corrupt "
                              "bundle)") from None
        except OSError as exc:
            raise BundleError(f"{self.bundle.path}: cannot read {rel} ({exc.strerror or exc})") from None

    def _read_lines(self, rel: str) -> list[str]:
        return self._read_text(rel).splitlines()

    def _session(self, name: str):
        if name not in self._sessions:
            self._sessions[name] = self.backend.session(self.bundle, name)
        return self._sessions[name]

    def _run(self, name: str, **feeds) -> dict[str, np.ndarray]:
        return self._session(name).run(feeds)

    @property
    def frontend(self) -> Frontend:
        if self._frontend is None:
            self._frontend = Frontend(self.bundle.manifest.symbols,
                                      lexicon_text=self._read_text(self.model["lexicon_file"]))
        return self._frontend

    @property
    def tokenizer(self) -> WordPiece:
        if self._tokenizer is None:
            rel = self.model["bert_vocab_file"]
            lines = self._read_lines(rel)
            tokens = len(_without_trailing_blanks(lines))  # an empty token is never looked up
            if tokens > self.model.get("bert_vocab_size", tokens):
                raise BundleError(f"{self.bundle.path}: {rel} has {tokens} tokens; the style encoder has "
                                  f"{self.model['bert_vocab_size']} (corrupt bundle)")
            try:
                self._tokenizer = WordPiece.from_vocab(lines)
            except ValueError as exc:  # WordPiece's own refusal: a special token is missing
                raise BundleError(f"{self.bundle.path}: {rel}: {exc} (corrupt bundle)") from None
        return self._tokenizer

    # ---------------------------------------------------------------- stage entry points

    @serialized
    def phonemes(self, text: str) -> tuple[str, list[int]]:
        """Upstream's `g2p_cn_en` phoneme string of `text` and its token ids."""
        return self.frontend.phonemes(_string(text, "the text"))

    def phoneme_report(self, text: str, language: str | None = None) -> dict:
        self.checked_language(language)
        phonemes, ids = self.phonemes(text)
        return {"phonemes": phonemes, "ids": ids}

    @serialized
    def style_embedding(self, text: str) -> np.ndarray:
        """Pooled SimBERT output `[hidden]` of any text (a style prompt, or the words spoken: the content)."""
        text = _string(text, "the style prompt")
        if text in self._styles:
            self._styles.move_to_end(text)
            return self._styles[text]
        ids = self.tokenizer.encode(text)
        limit = self.model["bert_max_tokens"]
        if ids.size > limit:
            raise TextError(f"the text gives {ids.size} BERT tokens; the style encoder reads at most {limit} "
                            "(shorten the prompt, or let long text be split into sentences)")
        pooled = self._run("style_bert", input_ids=ids.reshape(1, -1).astype(np.int64))["pooled"][0]
        self._styles[text] = pooled
        if len(self._styles) > STYLE_CACHE_SIZE:
            self._styles.popitem(last=False)
        return pooled

    @serialized
    def acoustic(self, token_ids, speaker_row: int, style, content, speed: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids `[phones]`, a speaker row and two `[hidden]` embeddings → (durations `[phones]`,
        mel `[frames, n_mels]`). At `speed` 1 the durations are the graph's own (upstream's rounding)."""
        speed = check_speed(speed)
        front = self._front(token_ids, speaker_row, style, content)
        durations = front["durations"][0]
        if speed != 1:
            # the duration predictor works in the log domain: exp(d) − 1 frames, scaled before rounding
            scaled = (np.exp(front["log_durations"][0].astype(np.float64)) - 1) / speed
            durations = np.maximum(np.round(scaled), 0).astype(np.int64)
        return durations, self._back(front["hidden"], durations)

    @serialized
    def acoustic_with_durations(self, token_ids, speaker_row: int, style, content, durations) -> np.ndarray:
        """The mel `[frames, n_mels]` with given durations instead of predicted ones (parity runs)."""
        front = self._front(token_ids, speaker_row, style, content)
        phones = front["durations"].shape[1]
        given = _array(durations, "durations", OptionsError)
        if given.size != phones or given.ndim > 2 or given.dtype.kind not in "iu":
            raise OptionsError(f"durations must be {phones} non-negative integers, not {given.dtype} "
                               f"{list(given.shape)}")
        given = given.reshape(-1)
        # At most what `acoustic` gives these phones at the slowest speed (at least one frame per phone, upstream's
        # all-zero case): replayed durations come from the same model at speed 1, so this leaves a 4x margin and
        # still refuses a count that would run for minutes (10**6 frames) or overflow the sum (2**62).
        slowest = (np.exp(front["log_durations"][0].astype(np.float64)) - 1) / SPEED_RANGE[0]
        cap = max(int(np.maximum(np.round(slowest), 0).sum()), phones)
        if given.min() < 0 or given.max() > cap or int(given.sum(dtype=np.int64)) > cap:
            raise OptionsError(f"durations must be {phones} non-negative integers of at most {cap} frames in all "
                               f"(what the slowest speed gives); found {abbreviated(str(given.tolist()))}")
        return self._back(front["hidden"], given.astype(np.int64))

    def _front(self, token_ids, speaker_row: int, style, content) -> dict[str, np.ndarray]:
        """am_front's outputs for the ids' own length (run padded where the bundle allows)."""
        ids = self._check_ids(token_ids)
        feeds = {"speaker": np.array([self._check_row(speaker_row)], np.int64),
                 "style": self._embedding(style, "style"), "content": self._embedding(content, "content")}
        if not self._am_counts:
            return self._run("am_front", token_ids=ids[None], **feeds)
        padded = np.zeros((1, self._am_length("am_front", ids.size)), np.int64)  # id 0 where padded
        padded[0, :ids.size] = ids
        outputs = self._run("am_front", token_ids=padded, valid_phones=np.array([ids.size], np.int64), **feeds)
        return {name: value[:, :ids.size] for name, value in outputs.items()}

    def _back(self, hidden: np.ndarray, durations: np.ndarray) -> np.ndarray:
        phones, frames = durations.size, int(durations.sum()) or durations.size  # all zero → one frame per phone
        if frames > MAX_FRAMES:
            seconds = MAX_FRAMES * self.model["hop"] / self.sample_rate
            raise TextError(f"the sentence would last {frames} mel frames; the acoustic model takes at most "
                            f"{MAX_FRAMES} ({seconds:.0f} s of audio) at once: split the text into shorter sentences "
                            "(max_sentence_chars) or raise the speed")
        if not self._am_counts:
            return self._run("am_back", hidden=hidden, durations=durations[None].astype(np.int64),
                             frame_index=np.arange(frames, dtype=np.float32))["mel"][0]
        width = self._am_length("am_back", phones) - phones
        mel = self._run("am_back", hidden=np.pad(hidden, ((0, 0), (0, width), (0, 0))),
                        durations=np.pad(durations.astype(np.int64), (0, width))[None],
                        frame_index=np.arange(self._am_length("am_back", frames), dtype=np.float32),
                        valid_phones=np.array([phones], np.int64), valid_frames=np.array([frames], np.int64))["mel"]
        return mel[0, :frames]

    def _am_length(self, name: str, length: int) -> int:
        """The phones or frames graph `name` runs `length` of at: padded where its engine prepares each new shape
        (OpenVINO), else `length` itself."""
        if not getattr(self._session(name), "prepares_each_shape", True):
            return length
        return padded_length(length, AM_SMALLEST_LENGTH)

    @serialized
    def vocode(self, mel) -> np.ndarray:
        """HiFi-GAN: mel `[frames, n_mels]` (what `acoustic` returns) or `[1, n_mels, frames]` → waveform. On
        OpenVINO the same samples come from calls at a few lengths (`vocoder_windows`)."""
        mel = self._check_mel(mel)
        if not self._vocoder_fixed_shapes():
            return self._vocoder_call(mel)
        return np.concatenate(list(self._fixed_shape_pieces(mel)))

    def vocode_chunks(self, mel, chunk_frames: int) -> Iterator[np.ndarray]:
        """The waveform of `mel` (either layout `vocode` takes) in pieces of `chunk_frames` frames, each vocoded
        with `vocoder_context` frames of context on both sides that is then cut away. On OpenVINO the pieces are
        the fixed-length calls' (`vocoder_windows`: ~100 frames each for upstream's vocoder, ~1.6 s of audio),
        whatever `chunk_frames`: each smaller piece would cost a whole call."""
        mel = self._check_mel(mel)  # checked now, not when the first chunk is asked for
        if isinstance(chunk_frames, (bool, np.bool_)) or not isinstance(chunk_frames, Integral) or chunk_frames < 1:
            raise OptionsError(f"chunk_frames must be a positive whole number, not {chunk_frames!r}")
        if self._vocoder_fixed_shapes():
            return self._fixed_shape_pieces(mel)
        return self._chunks(mel, int(chunk_frames))

    def _chunks(self, mel: np.ndarray, chunk_frames: int) -> Iterator[np.ndarray]:
        hop, total = self.model["hop"], mel.shape[2]
        for start in range(0, total, chunk_frames):
            stop = min(total, start + chunk_frames)
            left, right = max(0, start - self.vocoder_context), min(total, stop + self.vocoder_context)
            wav = self._vocoder_call(mel[:, :, left:right])  # `mel` was checked by vocode_chunks
            yield wav[(start - left) * hop: None if stop == total else (stop - left) * hop]

    def _fixed_shape_pieces(self, mel: np.ndarray) -> Iterator[np.ndarray]:
        """The waveform of `mel` `[1, n_mels, frames]`, one piece per call of `fixed_shape_calls`."""
        hop = self.model["hop"]
        for call in fixed_shape_calls(mel.shape[2], self.vocoder_context, self.vocoder_windows):
            piece = mel[:, :, call.start: call.stop]
            if call.length > piece.shape[2]:  # the padding's samples are cut away: any mel-like values do
                piece = np.pad(piece, ((0, 0), (0, 0), (0, call.length - piece.shape[2])), mode="edge")
            offset = call.keep_start - call.start
            # the last call ends at the true end, unpadded: its samples past frames·hop are the vocoder's own tail
            end = None if call.keep_stop == mel.shape[2] else (offset + call.keep_stop - call.keep_start) * hop
            yield self._vocoder_call(piece)[offset * hop: end]

    @serialized
    def _vocoder_call(self, mel: np.ndarray) -> np.ndarray:
        wav = self._run("hifigan", mel=mel)["wav"][0]
        if not np.isfinite(wav).all():  # finite float32 mels near 3e38 still overflow inside the vocoder
            raise OptionsError("the vocoder gives NaN for this mel: its values are far outside a log-mel's range")
        return wav

    @serialized  # vocode_chunks asks outside the lock; the session is made once
    def _vocoder_fixed_shapes(self) -> bool:
        """Whether the vocoder runs at `vocoder_windows` only: where its engine prepares each new input shape
        (OpenVINO; sessions that do not say run at fixed shapes too, as both give the same samples)."""
        return getattr(self._session("hifigan"), "prepares_each_shape", True)

    # ---------------------------------------------------------------- speakers and styles

    def speaker_row(self, speaker: str | int) -> int:
        """A speaker by name (a line of upstream's speaker2 list: names are numbers, so "1088" is the speaker
        named 1088) or, when no speaker has that name, by row number."""
        integer = isinstance(speaker, Integral) and not isinstance(speaker, (bool, np.bool_))
        if integer and not -2 ** 63 <= speaker < 2 ** 63:  # str() refuses over 4,300 digits; no name is that long
            return self._check_row(speaker)
        key = str(speaker).strip()
        if key in self._speaker_rows:
            return self._speaker_rows[key]
        if integer:
            return self._check_row(speaker)
        # a row number is plain ASCII digits: int() would also take "1_0" (row 10), "+5", "-0" and other scripts'
        # digits ("١")
        if not (key.isascii() and key.isdigit()):
            raise VoiceError(f"no speaker named {abbreviated(key, quoted=True)} in this bundle ({len(self.speakers)} "
                             f"speakers, e.g. {', '.join(self.speakers[:3])})")
        if len(key.lstrip("0")) > len(str(len(self.speakers))):  # int() refuses over 4,300 digits
            raise VoiceError(f"speaker row {abbreviated(key)} is outside 0…{len(self.speakers) - 1}")
        return self._check_row(int(key))

    def voice_for(self, voice=None, speaker=None, prompt=None) -> SpeakerStyle:
        """A speaker (name or row; default: the first) with a style prompt (default: upstream's neutral "")."""
        if voice is not None:
            if isinstance(voice, SpeakerStyle):
                return voice
            raise VoiceError("EmotiVoice has built-in speakers: give a speaker (a name or a row) and a style "
                             "prompt, not a cloned voice")
        row = self.speaker_row(self.speakers[0] if speaker is None else speaker)
        prompt = "" if prompt is None else prompt
        return SpeakerStyle(row, self.speakers[row], prompt, self.style_embedding(prompt))

    # ---------------------------------------------------------------- text in, audio out

    def split_text(self, text: str, language: str | None = None, options: SynthesisOptions | None = None
                   ) -> list[str]:
        """The sentences `stream` will speak, one chunk each (after `textinput.prepare_text`)."""
        self.checked_language(language)
        text = textinput.text_to_speak(text, MAX_TEXT_CHARS)
        return split_sentences(text, self._checked_options(options).max_sentence_chars)

    def unreadable_text(self, text: str, language: str | None = None) -> textinput.Unreadable:
        """The characters of `text` the front end cannot read (it leaves them out): it reads the ideographs
        U+4E00–U+9FA5, digits and letters whose base letter (without accents) is A–Z."""
        self.checked_language(language)
        return textinput.unreadable(text, _readable, "EmotiVoice's front end (Chinese and English)")

    def stream(self, text: str, voice: SpeakerStyle, language: str | None = None,
               options: SynthesisOptions | None = None, chunked: bool = False) -> Iterator[AudioChunk]:
        """Speak `text` sentence by sentence (`language` is not needed: the front end reads mixed Chinese and
        English). With `chunked`, each sentence also comes out in vocoder chunks as soon as they are ready.
        Markup and escapes are removed first (`textinput.prepare_text`); characters the front end cannot read are
        named in an `UnreadableTextWarning`."""
        options = self._checked_options(options)
        voice = self.voice_for(voice)
        text = textinput.text_to_speak(text, MAX_TEXT_CHARS)
        unreadable = self.unreadable_text(text, language)
        unreadable.refuse_if_nothing_is_read()
        unreadable.warn()
        sentences = self.split_text(text, language, options)
        if not sentences:
            raise TextError("the text contains nothing to speak")
        pause = np.zeros(int(round(options.sentence_pause * self.sample_rate)), np.float32)
        spoken = 0
        for sentence in sentences:
            _, ids = self.phonemes(sentence)
            if len(ids) <= 2:  # <sos/eos> twice: nothing the front end reads (emoji, other scripts)
                continue
            _, mel = self.acoustic(ids, voice.speaker_row, voice.style, self.style_embedding(sentence), options.speed)
            lead = pause if spoken else pause[:0]
            spoken += 1
            if not chunked:
                yield AudioChunk(sentence, np.concatenate([lead, self.vocode(mel)]), self.sample_rate)
                continue
            for number, wav in enumerate(self.vocode_chunks(mel, options.vocoder_chunk_frames)):
                yield AudioChunk(sentence, np.concatenate([lead, wav]) if number == 0 else wav, self.sample_rate)
        if not spoken:
            raise TextError("the text has nothing EmotiVoice's front end can read")

    def synthesize(self, text: str, voice: SpeakerStyle, language: str | None = None,
                   options: SynthesisOptions | None = None) -> np.ndarray:
        return joined_audio(self.stream(text, voice, language, options))

    # ---------------------------------------------------------------- checks

    def _checked_options(self, options) -> SynthesisOptions:
        options = self.default_options if options is None else options
        if not isinstance(options, SynthesisOptions):
            # every family's class is called SynthesisOptions: its module says which one was given
            kind = type(options)
            given = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__} {kind.__qualname__}"
            raise OptionsError(f"options must be EmotiVoice's SynthesisOptions ({SynthesisOptions.__module__}), "
                               f"not {given}")
        return options

    def _check_ids(self, token_ids) -> np.ndarray:
        ids = _array(token_ids, "token ids", TextError).reshape(-1)
        if ids.size == 0 or ids.dtype.kind not in "iu":
            raise TextError("token ids must be a non-empty sequence of integers")
        if ids.size > MAX_PHONES:
            raise TextError(f"{ids.size} phones in one sentence; the acoustic model takes at most {MAX_PHONES} at "
                            "once (split the text into shorter sentences)")
        if ids.min() < 0 or ids.max() >= len(self.bundle.manifest.symbols):
            raise TextError(f"token ids must lie in 0…{len(self.bundle.manifest.symbols) - 1}")
        return ids.astype(np.int64)

    def _check_row(self, row: int) -> int:
        if isinstance(row, (bool, np.bool_)) or not isinstance(row, Integral):
            raise VoiceError(f"a speaker row is a whole number, not {type(row).__name__} {row!r}")
        if not 0 <= int(row) < len(self.speakers):
            shown = f" {row}" if -2 ** 63 <= row < 2 ** 63 else ""  # str() refuses over 4,300 digits
            raise VoiceError(f"speaker row{shown} is outside 0…{len(self.speakers) - 1}")
        return int(row)

    def _embedding(self, vector, what: str) -> np.ndarray:
        """`[hidden]` or `[1, hidden]` floats in −1…1 → `[1, hidden]` float32."""
        vector = _array(vector, f"the {what} embedding", OptionsError)
        hidden = self.model["bert_hidden"]
        if vector.dtype.kind != "f" or vector.shape not in ((hidden,), (1, hidden)):
            raise OptionsError(f"the {what} embedding must be {hidden} real numbers ([{hidden}] or [1, {hidden}]), "
                               f"not {vector.dtype} {list(vector.shape)}")
        if not np.isfinite(vector).all():
            raise OptionsError(f"the {what} embedding contains NaN or infinite values")
        # `style_embedding` gives SimBERT's pooled output, a tanh; values far beyond it (1e38) make a NaN mel. A few
        # ulps over 1 are the engine's tanh (onnxruntime's gave 1.0000001 on one sentence in 30)
        if np.abs(vector).max() > 1 + TANH_SLACK:
            raise OptionsError(f"the {what} embedding has values outside −1…1 (SimBERT's pooled output is a tanh); "
                               "make it with style_embedding()")
        return vector.reshape(1, hidden).astype(np.float32)

    def _check_mel(self, mel) -> np.ndarray:
        """mel `[frames, n_mels]` or `[1, n_mels, frames]` of finite real numbers → `[1, n_mels, frames]` float32."""
        mel = _array(mel, "mel", OptionsError)
        n_mels = self.model["n_mels"]
        if mel.dtype.kind != "f":
            raise OptionsError(f"mel must be real (floating-point) numbers, not {mel.dtype}")
        if mel.ndim == 2 and mel.shape[1] == n_mels:
            mel = mel.T[None]
        if not (mel.ndim == 3 and mel.shape[:2] == (1, n_mels) and mel.shape[2] > 0):
            raise OptionsError(f"mel must be [frames, {n_mels}] or [1, {n_mels}, frames] with frames ≥ 1, not "
                               f"{list(mel.shape)}")
        with np.errstate(over="ignore"):  # float64 values beyond float32 become inf, refused just below
            mel = mel.astype(np.float32)
        if not np.isfinite(mel).all():
            raise OptionsError("mel contains NaN or infinite values")
        return np.ascontiguousarray(mel)


def _readable(char: str) -> bool:
    """What the front end reads: ideographs go to the Chinese G2P, digit runs become Chinese numerals (digits of
    other scripts are refused there, never dropped), and the English G2P keeps a–z after removing accents and
    lower-casing."""
    if "\u4e00" <= char <= "\u9fa5" or unicodedata.category(char) == "Nd":
        return True
    plain = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)).lower()
    return any("a" <= c <= "z" for c in plain)


def _array(value, what: str, error: type) -> np.ndarray:
    """`value` as a numpy array; a ragged or unconvertible value is a one-line `error`."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nesting, objects numpy cannot hold
        raise error(f"{what} is not an array ({abbreviated(str(exc), 80)})") from None


def _without_trailing_blanks(lines: list[str]) -> list[str]:
    """`lines` up to the last one that is not blank (a text file may end in empty lines; they name nothing)."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return lines[:end]


def _checked_model(bundle: Bundle) -> dict:
    """The manifest's model facts, refused by name when one this class reads is missing, of the wrong type, not
    positive, or at odds with another fact (`sample_rate` is the vocoder's, `hop` its total upsampling)."""
    manifest = bundle.manifest
    model, where = manifest.model, f"{bundle.path}: manifest model"
    for key in MODEL_COUNTS + MODEL_FILES:
        if key not in model:  # Bundle.load has checked the file paths that are there
            raise BundleError(f"{where} has no {key!r} (made by another exporter? re-export the bundle)")
    for key in MODEL_COUNTS + MODEL_TABLES:
        value = model.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise BundleError(f"{where} {key} must be a positive integer, found {abbreviated(repr(value))}")
    if model.get("sample_rate", manifest.sample_rate) != manifest.sample_rate:
        raise BundleError(f"{where}: the bundle's sample_rate {manifest.sample_rate} is not the vocoder's "
                          f"{model['sample_rate']}")
    rates = model.get("upsample_rates")
    if isinstance(rates, list) and rates and all(isinstance(r, int) and not isinstance(r, bool) for r in rates):
        if math.prod(rates) != model["hop"]:  # vocode_chunks cuts the audio at hop samples a frame
            raise BundleError(f"{where} hop {model['hop']} is not the vocoder's upsampling {rates}")
    if len(manifest.symbols) > model.get("n_vocab", len(manifest.symbols)):
        raise BundleError(f"{where}: the bundle has {len(manifest.symbols)} symbols; the model has "
                          f"{model['n_vocab']}")
    return model


def _am_takes_counts(bundle: Bundle) -> bool:
    """Whether the acoustic model's graphs take the real counts (and so may run padded): both with every count
    input, or (older bundles) neither with any; a graph with an input this host would not feed is refused."""
    graphs = bundle.manifest.graphs
    inputs = {name: {t.name for t in graphs[name].inputs} for name in AM_COUNT_INPUTS if name in graphs}
    if len(inputs) < len(AM_COUNT_INPUTS):
        return False  # the constructor refuses the bundle by name (check_bundle)
    for name, names in inputs.items():
        unknown = names - GRAPH_INPUTS[name] - AM_COUNT_INPUTS[name]
        if unknown:
            raise BundleError(f"{bundle.path}: graph {name!r} has inputs this edgevoice does not feed "
                              f"({', '.join(sorted(unknown))}); re-export the bundle with this version")
    counts = [needed <= inputs[name] for name, needed in AM_COUNT_INPUTS.items()]
    partial = [name for name, needed in AM_COUNT_INPUTS.items() if needed & inputs[name] and not needed <= inputs[name]]
    if partial or len(set(counts)) > 1:
        raise BundleError(f"{bundle.path}: am_front and am_back must both take their real counts "
                          f"({', '.join(sorted(AM_COUNT_INPUTS['am_back']))}) or neither (corrupt bundle)")
    return counts[0]


def vocoder_windows(context: int) -> tuple[int, ...]:
    """The mel lengths the vocoder runs at where its engine prepares each shape: `VOCODER_FIXED_FRAMES`, times the
    smallest whole number that makes the shortest longer than `context` frames on both sides."""
    scale = 1 + 2 * context // VOCODER_FIXED_FRAMES[0]
    return tuple(length * scale for length in VOCODER_FIXED_FRAMES)


def _vocoder_context(bundle: Bundle, model: dict) -> int:
    context = model.get("vocoder_context_frames", LEGACY_VOCODER_CONTEXT_FRAMES)
    if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context <= MAX_VOCODER_CONTEXT_FRAMES:
        raise BundleError(f"{bundle.path}: manifest model vocoder_context_frames must be a frame count from 1 to "
                          f"{MAX_VOCODER_CONTEXT_FRAMES}, found {abbreviated(repr(context))}")
    return context


def _string(text, what: str) -> str:
    if not isinstance(text, str):
        raise TextError(f"{what} must be a string, not {type(text).__name__}")
    return text
