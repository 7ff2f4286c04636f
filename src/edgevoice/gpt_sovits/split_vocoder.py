"""The 8-bit vocoder as two graphs: its head on onnxruntime's 8-bit operators, its float tail on the backend's engine.

Why: the 8-bit vocoder keeps its last upsampling stages in float (edgevoice_export.gpt_sovits.vocoder_engine), and
onnxruntime's float convolutions with 16 and 32 channels are slow: those two stages, 15 % of the vocoder's
operations, took half its time (full-size v2, 10 s of audio, Zen 4, 2 threads: 0.53–0.60 s on onnxruntime,
0.38–0.47 s on OpenVINO f32 in the windows below; onnxruntime's NCHWc 2-d convolutions were slower still, 0.74 s).
So `quantize` may cut the graph where the float stages begin (`sovits_vocoder_vnni` then returns `hidden`, the
tensor the tail starts from) and add the tail as `sovits_vocoder_tail`, the same operators taken from the FP32
vocoder, masks included. Or (the default) it keeps the one graph and adds the head beside it as
`sovits_vocoder_vnni_head`: OpenVINO's libraries, runtime and buffers cost ~100 MiB in a process that otherwise loads
none (a voice read from a file), so the synthesizer runs the split only where its backend already runs OpenVINO
(a voice made in the process: HuBERT is an OpenVINO graph), else the one graph (`Synthesizer._split_here`).

The tail runs at a few fixed window lengths only (OpenVINO keeps memory and kernels per input shape: at the exact
length of every call its RSS grew by hundreds of MiB over a dozen lengths), each window keeping the frames it sees
`context` frames around (the tail's reach, measured by `quantize`); a fragment's last window is padded to the
shortest length that holds it and its padding masked (`valid_frames`), so every sample equals the one-graph
decode's.
"""

from __future__ import annotations

import numpy as np

from ..errors import BundleError
from .chunking import vocoder_windows

VOCODER_TAIL = "sovits_vocoder_tail"
VOCODER_HEAD = "sovits_vocoder_vnni_head"  # the head beside the one graph (bundles that keep both)


class SplitVocoder:
    """Runs like the one-graph 8-bit vocoder (`z`, `ge` → `audio`) from its `head` (`z`, `ge` → `hidden`, at the
    exact length) and `tail` (`hidden` window + `valid_frames` → `audio`) sessions. `windows`: the frame counts the
    tail runs at (ascending); every window but a fragment's last has the largest."""

    input_names = ["z", "ge"]
    output_names = ["audio"]

    def __init__(self, head, tail, context: int, windows: tuple[int, ...]):
        for session, what, output in ((head, "head", "hidden"), (tail, VOCODER_TAIL, "audio")):
            if output not in getattr(session, "output_names", [output]):
                raise BundleError(f"the 8-bit vocoder's {what} has no {output!r} output (it has "
                                  f"{', '.join(session.output_names)[:200]}); re-quantise the bundle")
        self._head, self._tail = head, tail
        self.context = context
        self.windows = tuple(windows)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hidden = self._head.run(feeds)["hidden"]
        frames = feeds["z"].shape[-1]
        per_frame, rest = divmod(hidden.shape[-1], frames)
        if rest or not per_frame:
            raise BundleError(f"{VOCODER_TAIL}: the head returned {hidden.shape[-1]} samples for {frames} frames")
        pieces = []
        for part in vocoder_windows(frames, context=self.context, window=self.windows[-1]):
            real = part.stop - part.start
            size = next(size for size in self.windows if size >= real)
            piece = hidden[:, :, part.start * per_frame:part.stop * per_frame]
            if real < size:  # the padding is masked inside the graph: it never reaches a kept sample
                piece = np.pad(piece, ((0, 0), (0, 0), (0, (size - real) * per_frame)))
            audio = self._tail.run({"hidden": piece, "valid_frames": np.array([real], np.int64)})["audio"].reshape(-1)
            hop = audio.size // size
            pieces.append(audio[(part.keep_start - part.start) * hop:(part.keep_stop - part.start) * hop])
        return {"audio": np.concatenate(pieces)[None, None]}
