"""The GPT's KV cache while it decodes, one sequence or a batch of rows, behind one interface (`logits` / `row_logits`,
`step(token)`, `step_rows(tokens)`, `keep_rows(keep)`): `HostKVCache` keeps it in host arrays the onnxruntime step
graph reads (and, fused, writes) in place; `StatefulCache` leaves it in the OpenVINO request of the stateful
`gpt_decode` graph. The synthesizer seeds either from the prefill's outputs; the quantiser and benchmarks drive them
the same way."""

from __future__ import annotations

import numpy as np

from ..errors import BundleError
from ..kv_cache import in_place_feeds


def _padded_rows(prefill_outs: list[dict], name: str, length: int) -> np.ndarray:
    """The rows' prefill caches `name` ([1, H, L_row, Dh] each) in one `[rows, H, length, Dh]` array, zeros after
    each row's own length (slots its mask hides)."""
    first = prefill_outs[0][name]
    padded = np.zeros((len(prefill_outs), first.shape[1], length, first.shape[3]), np.float32)
    for row, out in enumerate(prefill_outs):
        padded[row, :, : out[name].shape[2]] = out[name][0]
    return padded


def _slot_mask(lengths: list[int], width: int) -> np.ndarray:
    """`[rows, width]`: 0 for each row's first `lengths[row]` slots, -inf after them."""
    return np.where(np.arange(width)[None] < np.array(lengths)[:, None], 0.0, -np.inf).astype(np.float32)


class HostKVCache:
    """Host-side KV cache of one sequence or of a batch (rows): one `[2·layers, rows, H, capacity, Dh]` array (keys
    then values, each layer's buffer a contiguous view the step graph reads).

    The step graph reads the whole buffers in place; buffers grow by `GROWTH` slots when full, so per step nothing
    is copied and at most `GROWTH` spare slots are scanned. Two step interfaces:

    * masked (`past_mask`, the exported step): spare slots are masked with -inf and the graph returns only the new
      rows, which are written into the buffers here. Rows prefilled to different lengths write their new tokens to
      the same slot, after the longest prefill; a shorter row's slots in between stay masked. That is exact:
      attention does not depend on where a key sits, the GPT adds each token's position to its input.
    * in place (`seqlens_k`, the CPU step whose attention `quantize` fused: `edgevoice_export.fused_attention`):
      the graph's `present_*` outputs are bound to the buffers it reads, and it writes each row's new key and value
      itself at that row's own length; no mask, no copy here.

    Host work per token is what the step leaves of the CPU (it streams the weights through every cache level,
    so the Python after it runs cold): with onnxruntime's `bind` the new keys, values and logits land in arrays
    made once, and (masked) one copy files all layers' new slots."""

    GROWTH = 128

    def __init__(self, step_session, prefill_out: dict, n_layer: int, prompt_len: int):
        self._fill(step_session, [prefill_out], n_layer, [prompt_len])

    @classmethod
    def of_rows(cls, step_session, prefill_outs: list[dict], n_layer: int, prompt_lens: list[int]) -> "HostKVCache":
        cache = cls.__new__(cls)
        cache._fill(step_session, prefill_outs, n_layer, prompt_lens)
        return cache

    def _fill(self, step_session, prefill_outs: list[dict], n_layer: int, prompt_lens: list[int]) -> None:
        self._session = step_session
        self._in_place = "seqlens_k" in getattr(step_session, "input_names", ())
        if self._in_place and not hasattr(step_session, "bind"):
            raise BundleError("gpt_step writes its cache in place (seqlens_k): it needs a backend that binds "
                              "buffers (onnxruntime)")
        lengths = [out["present_key.0"].shape[2] for out in prefill_outs]
        self._lengths = np.array(lengths, np.int32)  # each row's filled slots
        self.length = max(lengths)  # the longest row's: masked steps write every row's new token there
        self._names = [(f"past_{kind}.{i}", f"new_{kind}.{i}", f"present_{kind}.{i}")
                       for kind in ("key", "value") for i in range(n_layer)]
        first = prefill_outs[0]["present_key.0"]
        rows, heads, head_dim = len(prefill_outs), first.shape[1], first.shape[3]
        # room for GROWTH tokens from the start: the first step does not copy the whole prefill again
        self._cache = np.zeros((len(self._names), rows, heads, self.length + self.GROWTH, head_dim), np.float32)
        for index, (_, _, present) in enumerate(self._names):
            for row, out in enumerate(prefill_outs):
                self._cache[index, row, :, : out[present].shape[2]] = out[present][0]
        self._mask = None if self._in_place else _slot_mask(lengths, self._cache.shape[3])
        self.row_logits = np.stack([out["logits"][0] for out in prefill_outs])
        self._positions = np.array(prompt_lens, np.int64)  # audio position of each row's next fed token
        self._bind()

    @property
    def _buffers(self) -> dict[str, np.ndarray]:
        """Each layer's `[rows, H, capacity, Dh]` buffer, by the step graph's input name (views of the one array)."""
        return {past: self._cache[index] for index, (past, _, _) in enumerate(self._names)}

    def _bind(self) -> None:
        """Bind the buffers (and arrays for the outputs) to the step graph by address where its session can
        (onnxruntime's `bind`): each step then passes only the tokens and positions. Again after the buffers are
        replaced."""
        rows = self._cache.shape[1]
        logits = {"logits": np.empty((rows, self.row_logits.shape[-1]), np.float32)}
        if self._in_place:  # the graph writes the new rows into the very buffers it reads (bind checked in _fill)
            outputs = {present: self._cache[index] for index, (_, _, present) in enumerate(self._names)}
            self._bound = self._session.bind(self._buffers, {**outputs, **logits})
            return
        self._new = np.empty(self._cache.shape[:3] + (1,) + self._cache.shape[4:], np.float32)
        bind = getattr(self._session, "bind", None)
        if bind is None:
            self._bound = None
            return
        outputs = {new: self._new[index] for index, (_, new, _) in enumerate(self._names)}
        self._bound = bind({**self._buffers, "past_mask": self._mask}, {**outputs, **logits})

    @property
    def logits(self) -> np.ndarray:
        return self.row_logits[0]

    def _grow(self) -> None:
        capacity = self._cache.shape[3]
        grown = np.empty(self._cache.shape[:3] + (capacity + self.GROWTH,) + self._cache.shape[4:], np.float32)
        grown[:, :, :, :capacity] = self._cache
        grown[:, :, :, capacity:] = 0.0  # masked (or past each row's length), but read: kept finite
        self._cache = grown
        if self._mask is not None:
            spare = np.full((self._mask.shape[0], self.GROWTH), -np.inf, np.float32)
            self._mask = np.concatenate([self._mask, spare], axis=1)
        self._bind()

    def step(self, token: int) -> np.ndarray:
        return self.step_rows(np.array([token], np.int64))[0]

    def step_rows(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per row → logits `[rows, V]`."""
        if self.length == self._cache.shape[3]:
            self._grow()
        feeds = {"token": np.asarray(tokens, np.int64).reshape(-1, 1), "position": self._positions}
        if self._in_place:
            feeds.update(in_place_feeds(self._lengths, 1))
            out = self._bound.run(feeds)  # each row's new key and value written at its own length
        elif self._bound:
            out = self._bound.run(feeds)  # the new keys and values are in self._new already
        else:
            out = self._session.run({**feeds, "past_mask": self._mask, **self._buffers})
            for index, (_, new, _) in enumerate(self._names):
                self._new[index] = out[new]
        if not self._in_place:
            self._cache[:, :, :, self.length] = self._new[:, :, :, 0]
            self._mask[:, self.length] = 0.0
        self._lengths = self._lengths + 1
        self.length += 1
        self._positions = self._positions + 1
        self.row_logits = out["logits"].copy()  # the bound array is overwritten by the next step
        return self.row_logits

    def keep_rows(self, keep: np.ndarray) -> None:
        """Drop the rows not in `keep` (finished sequences stop costing a step)."""
        self._cache = np.ascontiguousarray(self._cache[:, keep])
        if self._mask is not None:
            self._mask = np.ascontiguousarray(self._mask[keep])
        self._lengths = self._lengths[keep]
        if self._in_place:  # rows write at their own lengths: the longest kept row's is the next to fill up
            self.length = int(self._lengths.max())
        self._positions = self._positions[keep]
        self.row_logits = self.row_logits[keep]
        self._bind()


class StatefulCache:
    """The KV cache lives in the OpenVINO request of the stateful `gpt_decode` graph, seeded from the prefill's
    caches and appended in place by every step; the host feeds the tokens, positions and (graphs exported with
    batching) the mask. One sequence, or a batch of rows (`of_rows`), at a time per session: a new cache restarts
    the request's state. Rows prefilled to different lengths are padded at the end of the shorter prefills and
    the padding masked, exactly as `HostKVCache` does. Also what the quantiser and benchmarks drive it with."""

    def __init__(self, decode_session, prefill_out: dict, states: dict[str, str], prompt_len: int):
        self._fill(decode_session, [prefill_out], states, [prompt_len])

    @classmethod
    def of_rows(cls, decode_session, prefill_outs: list[dict], states: dict[str, str], prompt_lens: list[int]
                ) -> "StatefulCache":
        cache = cls.__new__(cls)
        cache._fill(decode_session, prefill_outs, states, prompt_lens)
        return cache

    def _fill(self, session, prefill_outs: list[dict], states: dict[str, str], prompt_lens: list[int]) -> None:
        if not states:
            raise BundleError("gpt_decode has no state description in the manifest; re-export the bundle")
        if len(prefill_outs) > 1 and "past_mask" not in session.input_names:
            raise BundleError("this bundle's gpt_decode decodes one sequence at a time; re-export it to batch")
        self._session = session
        lengths = [out[next(iter(states.values()))].shape[2] for out in prefill_outs]
        self.length = max(lengths)
        session.set_states({variable: _padded_rows(prefill_outs, name, self.length)
                            for variable, name in states.items()})
        self._masked = "past_mask" in session.input_names
        self._mask = _slot_mask(lengths, self.length + 1)
        self._mask[:, -1] = 0.0  # the fed token itself
        self.row_logits = np.stack([out["logits"][0] for out in prefill_outs])
        self._positions = np.array(prompt_lens, np.int64)
        self._beam = np.arange(len(prefill_outs), dtype=np.int32)

    @property
    def logits(self) -> np.ndarray:
        return self.row_logits[0]

    def step(self, token: int) -> np.ndarray:
        return self.step_rows(np.array([token], np.int64))[0]

    def step_rows(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per row → logits `[rows, V]`."""
        feeds = {"token": np.asarray(tokens, np.int64).reshape(-1, 1), "position": self._positions,
                 "beam_idx": self._beam}
        if self._masked:
            feeds["past_mask"] = self._mask
        out = self._session.run(feeds)
        self._beam = np.arange(len(self._positions), dtype=np.int32)
        self.length += 1
        self._positions = self._positions + 1
        if self._masked:
            self._mask = np.concatenate([self._mask, np.zeros((self._mask.shape[0], 1), np.float32)], axis=1)
        self.row_logits = out["logits"]
        return self.row_logits

    def keep_rows(self, keep: np.ndarray) -> None:
        """Drop the rows not in `keep`: the next step gathers the kept rows' caches (its `beam_idx`)."""
        self._beam = np.asarray(keep, np.int32)
        self._mask = np.ascontiguousarray(self._mask[keep])
        self._positions = self._positions[keep]
        self.row_logits = self.row_logits[keep]
