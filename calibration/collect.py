"""Record the real inputs of every graph while an FP32 bundle synthesises calibration sentences (torch-free,
family-neutral).

`RecordingBackend` wraps the backend a synthesizer uses: every session it hands out is a `RecordingSession` that
copies the feeds of the calls its `Recorder` keeps, then runs the real session. No change to the synthesizer is
needed, and what is recorded is exactly what the runtime feeds the graphs. What each family synthesises to
exercise its graphs is in `gpt_sovits.py` and `emotivoice.py` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgevoice.backends import runs_graph
from edgevoice.bundle import Bundle


class Recorder:
    """Decides which calls are kept: the first `max_items` calls of each graph, and of a graph named in `strides`
    only every n-th call (a decode step called once per token would otherwise fill its quota with one sentence)."""

    def __init__(self, max_items: int, strides: dict[str, int] | None = None):
        self.max_items = max_items
        self.strides = {graph: max(1, n) for graph, n in (strides or {}).items()}
        self.items: dict[str, list[dict[str, np.ndarray]]] = {}
        self._calls: dict[str, int] = {}
        self.enabled = True

    def offer(self, graph: str, feeds: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        call = self._calls.get(graph, 0)
        self._calls[graph] = call + 1
        if call % self.strides.get(graph, 1):
            return
        kept = self.items.setdefault(graph, [])
        if len(kept) < self.max_items:
            # Copies: a decode step's feeds are views of the host KV-cache buffers, which the synthesiser keeps
            # writing.
            kept.append({name: np.array(value, copy=True) for name, value in feeds.items()})

    def new_utterance(self) -> None:
        """Strided graphs count their calls per utterance, so that each utterance's first calls (a decode step's
        short caches) are always seen."""
        for graph in self.strides:
            self._calls.pop(graph, None)


class RecordingSession:
    def __init__(self, inner, graph: str, recorder: Recorder):
        self._inner, self._graph, self._recorder = inner, graph, recorder
        self.input_names, self.output_names = inner.input_names, inner.output_names

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._recorder.offer(self._graph, feeds)
        return self._inner.run(feeds)

    def set_states(self, values: dict[str, np.ndarray]) -> None:
        self._inner.set_states(values)


@dataclass
class RecordingBackend:
    """A backend whose sessions record their feeds; pass it as `Synthesizer(bundle, backend=...)`."""

    inner: object
    recorder: Recorder

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def file_format(self) -> str:
        return self.inner.file_format

    def runs(self, graph) -> bool:
        return runs_graph(self.inner, graph)

    def session(self, bundle: Bundle, graph_name: str):
        session = self.inner.session(bundle, graph_name)
        if bundle.graph(graph_name).states:
            return session  # stateful: its real inputs are the request state, which is not recordable
        return RecordingSession(session, graph_name, self.recorder)
