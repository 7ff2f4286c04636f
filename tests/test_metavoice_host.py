"""MetaVoice-1B host-side pieces (guidance, samplers, token adapters, stage-2 input) against
upstream's recorded fixtures.

Reference: ``../shared/fixtures/metavoice`` (metavoiceio/metavoice-src de3fa21 run itself;
README §4.3, §4.4, §4.6, §4.7, §4.8, §4.10, §7). Guidance and adapters must be exact; sampled
probabilities within 1e-6 with identical kept sets; samples with torch's injected noise exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dir
from edgevoice.errors import EdgevoiceError, OptionsError
from edgevoice.metavoice.adapters import flattened_decode, stage2_input, tilted_decode
from edgevoice.metavoice.sampling import (greedy, guided_logits, logits_to_probs, reference_top_p, sample_logits,
                                          sample_probs)
from edgevoice.metavoice.text import BpeTokenizer

PROB_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def metavoice_set() -> Path:
    root = shared_dir() / "fixtures" / "metavoice"
    if not (root / "fixtures" / "manifest.json").is_file():
        pytest.skip(f"MetaVoice fixture set not found at {root}")
    return root


def load(root: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(root / "fixtures" / f"{name}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


# --- guidance -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["stage1_tf_s0_tiny", "stage1_tf_s1_tiny"])
def test_guidance_is_bit_exact(metavoice_set, name):
    data = load(metavoice_set, name)
    guidance = tuple(data["guidance_scale"].tolist())
    assert guidance == (3.0, 1.0)
    out = guided_logits(data["logits_cond"], data["logits_uncond"], guidance)
    assert out.dtype == np.float32
    assert np.array_equal(out, data["logits_cfg"])


def test_greedy_stage1_rule(metavoice_set):
    data = load(metavoice_set, "stage1_greedy_tiny")
    tokens = greedy(guided_logits(data["logits_cond"], data["logits_uncond"]))
    assert np.array_equal(tokens, data["gen_tokens"])
    assert np.array_equal(sample_logits(guided_logits(data["logits_cond"], data["logits_uncond"]), top_k=1),
                          data["gen_tokens"])


def test_guidance_options():
    cond = np.array([1.0, 2.0], dtype=np.float32)
    uncond = np.array([0.5, -1.0], dtype=np.float32)
    with pytest.raises(OptionsError):
        guided_logits(cond, uncond, (0.5, 1.0))
    with pytest.raises(OptionsError, match="prompt"):
        guided_logits(cond, uncond, (3.0, 2.0))
    prompt = np.array([1.0, 1.0], dtype=np.float32)
    # 4·cond − 2·uncond − 1·prompt
    assert np.array_equal(guided_logits(cond, uncond, (3.0, 2.0), prompt), np.array([2.0, 9.0], dtype=np.float32))


# --- samplers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sampling(metavoice_set):
    return load(metavoice_set, "sampling_tiny")


def _assert_probs(ours: np.ndarray, theirs: np.ndarray):
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.array_equal(ours > 0, theirs > 0)  # the same kept set
    assert np.abs(ours - theirs).max() <= PROB_TOLERANCE


def test_top_p_fast_path(sampling):
    probs = logits_to_probs(sampling["logits"], 1.0, top_p=0.95)  # stage 1's defaults
    _assert_probs(probs, sampling["probs_fast_top_p_095"])
    kept = (probs > 0).sum(axis=1)
    assert kept.min() < 20 < kept.max()  # the peaky rows were cut, the flat ones kept many


def test_top_p_reference_path(sampling):
    logits = sampling["logits"]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    _assert_probs(reference_top_p(probs, 0.95), sampling["probs_ref_top_p_095"])


def test_top_k_with_temperature(sampling):
    _assert_probs(logits_to_probs(sampling["logits"], 0.7, top_k=50), sampling["probs_fast_t07_top_k50"])


def test_injected_noise_reproduces_torch(sampling):
    expected = sampling["sample_fast_with_noise"]
    assert np.array_equal(expected, sampling["sample_fast_upstream_rng"])
    assert np.array_equal(sample_probs(sampling["probs_fast_top_p_095"], noise=sampling["exp_noise"]), expected)
    ours = logits_to_probs(sampling["logits"], 1.0, top_p=0.95)
    assert np.array_equal(sample_probs(ours, noise=sampling["exp_noise"]), expected)
    assert np.array_equal(sample_logits(sampling["logits"], top_p=0.95, noise=sampling["exp_noise"]), expected)


def test_rng_sampler_frequencies():
    probs = np.array([0.5, 0.3, 0.2, 0.0], dtype=np.float32)
    rows = np.broadcast_to(probs, (20000, 4))
    draws = sample_probs(rows, rng=np.random.default_rng(0))
    counts = np.bincount(draws, minlength=4) / len(draws)
    assert counts[3] == 0
    assert np.abs(counts[:3] - probs[:3]).max() < 0.015
    again = sample_probs(rows, rng=np.random.default_rng(0))
    assert np.array_equal(draws, again)


def test_sampler_options():
    logits = np.zeros(8, dtype=np.float32)
    with pytest.raises(OptionsError):
        sample_probs(logits)
    with pytest.raises(OptionsError):
        sample_probs(logits, rng=np.random.default_rng(0), noise=np.ones(8))
    with pytest.raises(OptionsError, match="shape"):
        sample_probs(logits, noise=np.ones(7))
    for bad in ({"top_p": 0.0}, {"top_p": 1.5}, {"top_k": 0}, {"temperature": -1.0}, {"temperature": float("nan")}):
        with pytest.raises(OptionsError):
            logits_to_probs(logits, **bad)


def test_stage2_greedy_heads(metavoice_set):
    data = load(metavoice_set, "stage2_pad_tiny")
    positions = data["sel_positions"]
    assert np.array_equal(greedy(data["logits_sel"]), data["argmax"][:, positions])
    assert np.array_equal(sample_logits(data["logits_sel"], top_k=1), data["argmax"][:, positions])


# --- adapters and stage-2 input ------------------------------------------------------------------

@pytest.fixture(scope="module")
def adapters(metavoice_set):
    return load(metavoice_set, "adapters_tiny")


@pytest.mark.parametrize("case", ["canonical", "unequal", "messy", "stage1_greedy"])
def test_flattened_decode(adapters, case):
    text, codes = flattened_decode(adapters[f"flat_{case}_in"])
    assert codes.dtype == np.int64 and codes.shape[0] == 2
    assert np.array_equal(codes[0], adapters[f"flat_{case}_h0"])
    assert np.array_equal(codes[1], adapters[f"flat_{case}_h1"])
    assert np.array_equal(text, adapters[f"flat_{case}_text"])


@pytest.mark.parametrize("case", ["aligned", "misaligned", "stage2_pad"])
def test_tilted_decode(adapters, case):
    text, codes = tilted_decode(adapters[f"tilted_{case}_in"])
    assert np.array_equal(codes, adapters[f"tilted_{case}_codes"])
    assert np.array_equal(text, adapters[f"tilted_{case}_text"])


@pytest.mark.parametrize("name", ["stage2_pad_tiny", "stage2_cut_tiny"])
def test_stage2_input_and_decode(metavoice_set, name):
    data = load(metavoice_set, name)
    tokenizer = BpeTokenizer.from_json(json.loads((metavoice_set / "models" / "tokenizer.json").read_text()))
    text_ids = tokenizer.text_ids(str(data["text"]), 1025)
    assert text_ids == data["text_ids"].tolist()
    in_x = stage2_input(text_ids, data["codes2"], block_size=256)
    assert in_x.dtype == np.int64
    assert np.array_equal(in_x, data["in_x"])
    text, codes = tilted_decode(data["tokens8"])
    assert np.array_equal(codes, data["codes8"])
    assert np.array_equal(text, data["adapter_text_ids"])


def test_e2e_chain_adapters(metavoice_set):
    data = load(metavoice_set, "e2e_tiny")
    _, codes2 = flattened_decode(data["s1_tokens"])  # (1, N) as upstream hands it over
    assert np.array_equal(codes2, data["codes2"])
    _, codes8 = tilted_decode(data["s2_tokens8"])
    assert np.array_equal(codes8, data["codes8"])


def test_adapter_input_errors():
    with pytest.raises(EdgevoiceError, match="2 hierarchies"):
        tilted_decode(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(EdgevoiceError, match="2 codebooks"):
        stage2_input([1, 2], np.zeros((3, 4), dtype=np.int64), 16)
    with pytest.raises(EdgevoiceError, match="dimension"):
        flattened_decode(np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(EdgevoiceError, match="integer"):
        flattened_decode(np.array([0.5, 1.0]))
    # exactly the block: the closing pad survives; one more code: it is cut
    assert stage2_input([1100], np.zeros((2, 2), dtype=np.int64), 4)[:, -1].tolist() == [1024, 1024]
    assert stage2_input([1100], np.ones((2, 3), dtype=np.int64), 4)[:, -1].tolist() == [1, 1]
