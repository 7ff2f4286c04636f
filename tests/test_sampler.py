"""The numpy sampler follows upstream's order of operations and stopping rules."""

from __future__ import annotations

import numpy as np
import pytest

from edgevoice.gpt_sovits.sampler import SamplingOptions, penalise, sample_token

EOS = 8


def _logits(**values):
    row = np.zeros(EOS + 1, np.float32)
    for index, value in values.items():
        row[int(index[1:])] = value
    return row


def test_eos_is_banned_before_min_tokens_and_stops_after():
    logits = _logits(t8=50.0, t3=1.0)
    rng = np.random.default_rng(0)
    for step in range(11):
        token, stop = sample_token(logits, np.array([], np.int64), step, EOS, SamplingOptions(), rng)
        assert token != EOS and not stop
    token, stop = sample_token(logits, np.array([], np.int64), 11, EOS, SamplingOptions(), rng)
    assert stop


def test_argmax_eos_stops_even_when_the_draw_is_not_eos():
    # EOS has the top logit but top_k=2 with temperature makes a non-EOS draw likely; the greedy test still stops.
    logits = _logits(t8=2.0, t1=1.99)
    stops = 0
    for seed in range(20):
        token, stop = sample_token(logits, np.array([], np.int64), 20, EOS, SamplingOptions(top_k=2, temperature=50),
                                   np.random.default_rng(seed))
        stops += stop
    assert stops == 20


def test_repetition_penalty_once_per_id_and_sign_aware():
    logits = np.array([2.0, -2.0, 1.0], np.float32)
    penalise(logits, np.array([0, 0, 1, 0]), 2.0)
    np.testing.assert_allclose(logits, [1.0, -4.0, 1.0])


def test_penalty_changes_the_greedy_choice():
    logits = _logits(t1=1.0, t2=0.9)
    options = SamplingOptions(top_k=1, repetition_penalty=1.35)
    token, _ = sample_token(logits, np.array([1]), 0, EOS, options, np.random.default_rng(0))
    assert token == 2  # 1.0 / 1.35 < 0.9


def test_top_p_keeps_at_least_the_best_token():
    logits = _logits(t4=3.0, t5=2.9)
    tokens = {sample_token(logits, np.array([], np.int64), 0, EOS, SamplingOptions(top_k=5, top_p=1e-6),
                           np.random.default_rng(s))[0] for s in range(20)}
    assert tokens == {4}


def test_top_k_sampling_is_seeded_and_stays_in_the_top_k():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal(EOS + 1).astype(np.float32)
    top3 = set(np.argsort(-logits[:EOS])[:3])
    draws = [sample_token(logits, np.array([], np.int64), 0, EOS, SamplingOptions(top_k=3),
                          np.random.default_rng(7))[0] for _ in range(3)]
    assert len(set(draws)) == 1  # same seed, same token
    many = {sample_token(logits, np.array([], np.int64), 0, EOS, SamplingOptions(top_k=3), rng)[0]
            for _ in range(200)}
    assert many == top3


@pytest.mark.parametrize("kwargs", [{"top_k": 0}, {"top_p": 0}, {"temperature": 0}, {"max_tokens": 0}])
def test_invalid_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        SamplingOptions(**kwargs)


def test_token_limit_follows_upstream_early_stop_and_step_cap():
    from edgevoice.gpt_sovits.sampler import upstream_token_limit

    # released configs: max_sec 54 → early_stop_num 2700 never fires; the 1500-step loop keeps 1499 tokens
    assert upstream_token_limit(54) == 1499
    assert upstream_token_limit(None) == 1499
    # the fixture harness's max_sec 250/50: 250 tokens (upstream stops after drawing 251, drops the last)
    assert upstream_token_limit(5) == 250
    assert upstream_token_limit(0.4) == 20
    # reference-free runs upstream's naive decoder, which keeps the token drawn at the stopping step
    assert upstream_token_limit(54, reference_free=True) == 1500
    assert upstream_token_limit(5, reference_free=True) == 251
