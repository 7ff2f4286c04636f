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
from ..errors import OptionsError, TextError, VoiceError
from ..families import FamilySynthesizer, check_bundle
from ..options import AudioChunk
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
# Mel frames of context on each side of a streamed vocoder chunk. HiFi-GAN's receptive field, counted in input
# frames, is conv_pre's 3 plus each stage's resblock reach divided by the upsampling so far (< 4 for upstream's
# configuration); 16 leaves a wide margin, and the streaming test checks the join against a whole-sentence call.
VOCODER_CONTEXT_FRAMES = 16


@dataclass(frozen=True)
class SpeakerStyle:
    """Who speaks and how: a row of the speaker table and the pooled embedding of the style prompt."""

    speaker_row: int
    speaker_name: str
    prompt: str
    style: np.ndarray  # [hidden]


class Synthesizer(FamilySynthesizer):
    # Every graph runs at the text's own length. On OpenVINO a long-running process kept ~34 MiB for each new one
    # (full size, 18 sentence lengths: +618 MiB, HiFi-GAN most of it); on onnxruntime +2 MiB, at about twice the
    # time per second of audio (FP32 0.24 vs INT8 0.12, benchmarks/results/emotivoice_speed.md). A server takes flat.
    any_length_graphs = tuple(GRAPH_INPUTS)

    def __init__(self, bundle: Bundle, backend="openvino", threads: int | None = None):
        check_bundle(bundle, FAMILY, GRAPH_INPUTS)
        manifest = bundle.manifest
        self.bundle = bundle
        self.backend = make_backend(backend, threads)
        self.sample_rate = manifest.sample_rate
        self.model = manifest.model
        self.default_options = SynthesisOptions.from_manifest(manifest.defaults)
        self.speakers = self._read_lines(self.model["speakers_file"])
        self._speaker_rows = {name: row for row, name in enumerate(self.speakers)}
        self._sessions: dict = {}
        self._lock = threading.RLock()  # see edgevoice.threadsafe
        self._frontend: Frontend | None = None
        self._tokenizer: WordPiece | None = None
        self._styles: OrderedDict[str, np.ndarray] = OrderedDict()

    def _read_lines(self, rel: str) -> list[str]:
        return self.bundle.file(rel).read_text(encoding="utf-8").splitlines()

    def _run(self, name: str, **feeds) -> dict[str, np.ndarray]:
        if name not in self._sessions:
            self._sessions[name] = self.backend.session(self.bundle, name)
        return self._sessions[name].run(feeds)

    @property
    def frontend(self) -> Frontend:
        if self._frontend is None:
            self._frontend = Frontend(self.bundle.manifest.symbols, self.bundle.file(self.model["lexicon_file"]))
        return self._frontend

    @property
    def tokenizer(self) -> WordPiece:
        if self._tokenizer is None:
            self._tokenizer = WordPiece.from_vocab(self._read_lines(self.model["bert_vocab_file"]))
        return self._tokenizer

    # ---------------------------------------------------------------- stage entry points

    @serialized
    def phonemes(self, text: str) -> tuple[str, list[int]]:
        """Upstream's `g2p_cn_en` phoneme string of `text` and its token ids."""
        return self.frontend.phonemes(_string(text, "the text"))

    def phoneme_report(self, text: str, language: str | None = None) -> dict:
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
        limit = int(self.model["bert_max_tokens"])
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
        durations = np.asarray(durations, np.int64).reshape(-1)
        if durations.shape != front["durations"][0].shape or durations.min(initial=0) < 0:
            raise OptionsError(f"durations must be {front['durations'].shape[1]} non-negative integers")
        return self._back(front["hidden"], durations)

    def _front(self, token_ids, speaker_row: int, style, content) -> dict[str, np.ndarray]:
        ids = self._check_ids(token_ids)
        row = self._check_row(speaker_row)
        return self._run("am_front", token_ids=ids[None], speaker=np.array([row], np.int64),
                         style=self._embedding(style, "style"), content=self._embedding(content, "content"))

    def _back(self, hidden: np.ndarray, durations: np.ndarray) -> np.ndarray:
        frames = int(durations.sum()) or durations.size  # upstream: all zero → one frame per phone
        mel = self._run("am_back", hidden=hidden, durations=durations[None].astype(np.int64),
                        frame_index=np.arange(frames, dtype=np.float32))["mel"]
        return mel[0]

    @serialized
    def vocode(self, mel) -> np.ndarray:
        """HiFi-GAN: mel `[frames, n_mels]` (what `acoustic` returns) or `[1, n_mels, frames]` → waveform."""
        mel = np.asarray(mel, np.float32)
        n_mels = int(self.model["n_mels"])
        if mel.ndim == 2 and mel.shape[1] == n_mels:
            mel = mel.T[None]
        if not (mel.ndim == 3 and mel.shape[:2] == (1, n_mels) and mel.shape[2] > 0):
            raise OptionsError(f"mel must be [frames, {n_mels}] or [1, {n_mels}, frames] with frames ≥ 1, not "
                               f"{list(mel.shape)}")
        if not np.isfinite(mel).all():
            raise OptionsError("mel contains NaN or infinite values")
        return self._run("hifigan", mel=np.ascontiguousarray(mel))["wav"][0]

    def vocode_chunks(self, mel: np.ndarray, chunk_frames: int) -> Iterator[np.ndarray]:
        """The waveform of `mel` `[frames, n_mels]` in pieces of `chunk_frames` frames, each vocoded with
        `VOCODER_CONTEXT_FRAMES` of context on both sides that is then cut away."""
        hop, total = int(self.model["hop"]), mel.shape[0]
        for start in range(0, total, chunk_frames):
            stop = min(total, start + chunk_frames)
            left, right = max(0, start - VOCODER_CONTEXT_FRAMES), min(total, stop + VOCODER_CONTEXT_FRAMES)
            wav = self.vocode(mel[left:right])
            yield wav[(start - left) * hop: (stop - left) * hop]

    # ---------------------------------------------------------------- speakers and styles

    def speaker_row(self, speaker: str | int) -> int:
        """A speaker by name (a line of upstream's speaker2 list: names are numbers, so "1088" is the speaker
        named 1088) or, when no speaker has that name, by row number."""
        key = str(speaker).strip()
        if key in self._speaker_rows:
            return self._speaker_rows[key]
        try:
            row = int(key)
        except ValueError:
            raise VoiceError(f"no speaker named {key!r} in this bundle ({len(self.speakers)} speakers, e.g. "
                             f"{', '.join(self.speakers[:3])})") from None
        return self._check_row(row)

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
        text = self._checked_text(text)
        return split_sentences(text, (options or self.default_options).max_sentence_chars)

    def unreadable_text(self, text: str, language: str | None = None) -> textinput.Unreadable:
        """The characters of `text` the front end cannot read (it leaves them out): it reads the ideographs
        U+4E00–U+9FA5, digits and letters whose base letter (without accents) is A–Z."""
        return textinput.unreadable(text, _readable, "EmotiVoice's front end (Chinese and English)")

    def stream(self, text: str, voice: SpeakerStyle, language: str | None = None,
               options: SynthesisOptions | None = None, chunked: bool = False) -> Iterator[AudioChunk]:
        """Speak `text` sentence by sentence (`language` is not needed: the front end reads mixed Chinese and
        English). With `chunked`, each sentence also comes out in vocoder chunks as soon as they are ready.
        Markup and escapes are removed first (`textinput.prepare_text`); characters the front end cannot read are
        named in an `UnreadableTextWarning`."""
        options = options or self.default_options
        if not isinstance(options, SynthesisOptions):
            raise OptionsError(f"options must be SynthesisOptions, not {type(options).__name__}")
        voice = self.voice_for(voice)
        text = self._checked_text(text)
        unreadable = self.unreadable_text(text)
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
        return np.concatenate([chunk.audio for chunk in self.stream(text, voice, language, options)])

    # ---------------------------------------------------------------- checks

    def _checked_text(self, text: str) -> textinput.PreparedText:
        text = textinput.prepare_text(text)
        if not text.strip():
            raise TextError("the text to synthesise is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise TextError(f"the text is {len(text)} characters long; the limit is {MAX_TEXT_CHARS} per call")
        return text

    def _check_ids(self, token_ids) -> np.ndarray:
        ids = np.asarray(token_ids).reshape(-1)
        if ids.size == 0 or ids.dtype.kind not in "iu":
            raise TextError("token ids must be a non-empty sequence of integers")
        if ids.min() < 0 or ids.max() >= len(self.bundle.manifest.symbols):
            raise TextError(f"token ids must lie in 0…{len(self.bundle.manifest.symbols) - 1}")
        return ids.astype(np.int64)

    def _check_row(self, row: int) -> int:
        if isinstance(row, (bool, np.bool_)) or not isinstance(row, Integral):
            raise VoiceError(f"a speaker row is a whole number, not {type(row).__name__} {row!r}")
        if not 0 <= int(row) < len(self.speakers):
            raise VoiceError(f"speaker row {row} is outside 0…{len(self.speakers) - 1}")
        return int(row)

    def _embedding(self, vector, what: str) -> np.ndarray:
        vector = np.asarray(vector, np.float32).reshape(-1)
        hidden = int(self.model["bert_hidden"])
        if vector.size != hidden:
            raise OptionsError(f"{what} embedding must have {hidden} values, not {vector.size}")
        if not np.isfinite(vector).all():
            raise OptionsError(f"{what} embedding contains NaN or infinite values")
        return vector[None]


def _readable(char: str) -> bool:
    """What the front end reads: ideographs go to the Chinese G2P, digit runs become Chinese numerals (digits of
    other scripts are refused there, never dropped), and the English G2P keeps a–z after removing accents and
    lower-casing."""
    if "\u4e00" <= char <= "\u9fa5" or unicodedata.category(char) == "Nd":
        return True
    plain = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)).lower()
    return any("a" <= c <= "z" for c in plain)


def _string(text, what: str) -> str:
    if not isinstance(text, str):
        raise TextError(f"{what} must be a string, not {type(text).__name__}")
    return text
