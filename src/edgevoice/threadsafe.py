"""One synthesizer, many threads: each backend session holds one infer request, and a GPT-SoVITS decode keeps its
KV cache inside a request across steps, so a synthesizer serialises its graph-running stage calls with one
re-entrant lock. Sharing a synthesizer between threads is therefore safe (calls take turns; the audio is what a
sequential run gives); for parallel throughput, give each thread its own synthesizer."""

from __future__ import annotations

import functools


def serialized(method):
    """Run `method` under the instance's `_lock` (a `threading.RLock`)."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked
