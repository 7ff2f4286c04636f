"""Response formats: the audio of a request as wav, pcm, flac, mp3 or opus bytes, whole or as it is produced.

wav and pcm are written here (a streamed wav carries the largest sizes in its header, as streaming servers do:
the length is not known yet). flac, mp3 and opus go through libsndfile and are offered only where the installed
libsndfile can write them. libsndfile writes each format front to back and, at close, seeks back to patch a
header (FLAC's STREAMINFO, the MP3 Xing frame); a stream cannot take those patches back, so a streamed MP3 is a
plain frame stream (what internet radio sends: every decoder plays it, the leading info frame stays silent), and
FLAC, whose decoders rely on STREAMINFO's length, is always sent whole.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

from ..audio import to_int16, wav_header

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the only rates Opus codes at
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # MPEG-1/2/2.5 layer III


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    soundfile_format: str | None = None  # None: written here
    subtype: str | None = None
    streams: bool = True  # bytes can leave before the audio is complete
    rates: tuple[int, ...] | None = None  # the rates the codec takes; None: any
    stream_settings: tuple[tuple[str, object], ...] = ()  # libsndfile settings when the bytes leave as they come

    def available(self) -> bool:
        if self.soundfile_format is None:
            return True
        return (self.soundfile_format in soundfile.available_formats()
                and self.subtype in soundfile.available_subtypes(self.soundfile_format))

    def output_rate(self, rate: int) -> int:
        """The rate this format is written at for audio at `rate`: the same, else the codec's next rate up."""
        if self.rates is None or rate in self.rates:
            return rate
        return min((r for r in self.rates if r >= rate), default=max(self.rates))


FORMATS = {f.name: f for f in (
    Format("wav", "audio/wav"),
    Format("pcm", "audio/pcm"),  # 16-bit little-endian mono at the rate in the X-Sample-Rate header
    Format("flac", "audio/flac", "FLAC", "PCM_16", streams=False),
    # Streamed mp3 is constant-bitrate: libsndfile's default VBR file is only right once its first frame is
    # rewritten at close (the Xing header), and a streamed first frame has already left, so decoders that size a
    # stream from its first frame's bitrate (libsndfile, mpg123) stopped at a third. Level 0.7: ~116 kbps at
    # 32/48 kHz, ~57 kbps at 16/24 kHz (measured).
    Format("mp3", "audio/mpeg", "MP3", "MPEG_LAYER_III", rates=MP3_RATES,
           stream_settings=(("bitrate_mode", "CONSTANT"), ("compression_level", 0.7))),
    Format("opus", "audio/ogg; codecs=opus", "OGG", "OPUS", rates=OPUS_RATES),
)}


def available_formats() -> dict[str, Format]:
    return {name: f for name, f in FORMATS.items() if f.available()}


class _Tail(io.RawIOBase):
    """A write-only file for libsndfile whose bytes are taken away as they become final. Writes behind what was
    already taken (header patches at close) are dropped."""

    def __init__(self):
        super().__init__()
        self._pending = bytearray()
        self._base = 0  # file offset of _pending[0]
        self._pos = 0

    def writable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        end = self._base + len(self._pending)
        self._pos = {io.SEEK_SET: offset, io.SEEK_CUR: self._pos + offset, io.SEEK_END: end + offset}[whence]
        return self._pos

    def write(self, data):
        data = bytes(data)
        start = self._pos - self._base
        if start >= 0:
            self._pending[start:start + len(data)] = data
        self._pos += len(data)
        return len(data)

    def take(self) -> bytes:
        done = max(0, self._pos - self._base)
        out = bytes(self._pending[:done])
        del self._pending[:done]
        self._base += done
        return out


class Encoder:
    """Feed float32 chunks at `rate`, get the bytes of `fmt` as they are ready; `close()` gives the rest."""

    def __init__(self, fmt: Format, rate: int, output_rate: int | None = None):
        self.format = fmt
        self.rate = output_rate or fmt.output_rate(rate)
        self._resampler = soxr.ResampleStream(rate, self.rate, 1, dtype="float32") if self.rate != rate else None
        self._file = None
        self._tail = None
        self._started = False

    def _resampled(self, audio: np.ndarray, last: bool) -> np.ndarray:
        audio = np.asarray(audio, np.float32)
        return audio if self._resampler is None else self._resampler.resample_chunk(audio, last=last)

    def feed(self, audio: np.ndarray) -> bytes:
        return self._encode(self._resampled(audio, last=False))

    def close(self) -> bytes:
        out = self._encode(self._resampled(np.zeros(0, np.float32), last=True))
        if self._file is not None:
            self._file.close()
            out += self._tail.take()
        return out

    def _encode(self, audio: np.ndarray) -> bytes:
        if self.format.soundfile_format is None:
            head = wav_header(self.rate) if self.format.name == "wav" and not self._started else b""
            self._started = True
            return head + to_int16(audio).tobytes()
        if self._file is None:
            self._tail = _Tail()
            self._file = soundfile.SoundFile(self._tail, "w", self.rate, 1, self.format.subtype,
                                             format=self.format.soundfile_format, **dict(self.format.stream_settings))
        if audio.size:
            self._file.write(audio)
        return self._tail.take()


def encode_whole(audio: np.ndarray, rate: int, fmt: Format, output_rate: int | None = None) -> tuple[bytes, int]:
    """The complete file of `fmt` (exact sizes in every header) and the rate it is written at."""
    target = output_rate or fmt.output_rate(rate)
    if target != rate:
        audio = soxr.resample(np.asarray(audio, np.float32), rate, target, quality="HQ")
    samples = to_int16(audio)
    if fmt.name == "pcm":
        return samples.tobytes(), target
    if fmt.name == "wav":
        return wav_header(target, samples.size * 2) + samples.tobytes(), target
    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(audio, np.float32), target, fmt.subtype, format=fmt.soundfile_format)
    return buffer.getvalue(), target
