"""MetaVoice-1B: checkpoint loading and our PyTorch reference against the stages recorded from upstream itself
(`shared/fixtures/metavoice`), and the random-weight model writer."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import metavoice_files  # noqa: E402
from edgevoice_export.checkpoints import CheckpointError  # noqa: E402
from edgevoice_export.metavoice.checkpoints import load_speaker_encoder, load_stage  # noqa: E402
from edgevoice_export.metavoice.models import MetaVoiceGPT, SpeakerLSTM  # noqa: E402


@pytest.fixture(scope="module")
def models(metavoice_set):
    return metavoice_set / "models"


@pytest.fixture(scope="module")
def fixtures(metavoice_set):
    return metavoice_set / "fixtures"


@pytest.fixture(scope="module")
def stage1(models):
    return MetaVoiceGPT.from_checkpoint(load_stage(models / "first_stage.pt", 1))


def _max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


def test_stage_checkpoints_read_with_sizes_from_model_args(models):
    first = load_stage(models / "first_stage.pt", 1)
    assert (first.args.n_layer, first.args.n_embd, first.args.block_size, first.args.mlp_width) == (2, 64, 256, 256)
    assert first.tokenizer["offset"] == 2049 and len(first.tokenizer["mergeable_ranks"]) == 512
    assert all(isinstance(k, bytes) for k in first.tokenizer["mergeable_ranks"])
    second = load_stage(models / "second_stage.pt", 2)
    assert second.args.target_vocab_sizes == (1025,) * 6 and second.args.vocab_sizes == (1538, 1025)


def test_compiled_prefix_is_stripped(models):
    plain = load_stage(models / "first_stage.pt", 1)
    compiled = load_stage(models / "first_stage_orig_mod.pt", 1)
    assert plain.weights.keys() == compiled.weights.keys()
    assert all(np.array_equal(plain.weights[k], compiled.weights[k]) for k in plain.weights)


def test_swapped_stages_are_refused(models):
    with pytest.raises(CheckpointError, match="stage 1 must be causal"):
        load_stage(models / "second_stage.pt", 1)
    with pytest.raises(CheckpointError, match="non-causal"):
        load_stage(models / "first_stage.pt", 2)


def test_a_missing_tensor_is_one_line_error(models, tmp_path):
    state = torch.load(models / "first_stage.pt", weights_only=True)
    del state["model"]["transformer.h.1.attn.c_proj.weight"]
    torch.save(state, tmp_path / "first_stage.pt")
    with pytest.raises(CheckpointError, match="missing") as info:
        load_stage(tmp_path / "first_stage.pt", 1)
    assert "\n" not in str(info.value)


def test_a_wrong_shape_is_refused(models, tmp_path):
    state = torch.load(models / "second_stage.pt", weights_only=True)
    state["model"]["lm_heads.3.weight"] = torch.zeros(1024, 64)
    torch.save(state, tmp_path / "second_stage.pt")
    with pytest.raises(CheckpointError, match="lm_heads.3.weight has shape"):
        load_stage(tmp_path / "second_stage.pt", 2)


def test_a_pickle_with_code_is_refused(models, tmp_path):
    bad = tmp_path / "first_stage.pt"
    shutil.copy(models / "first_stage.pt", bad)
    with zipfile.ZipFile(bad, "a") as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as archive:
        archive.writestr(name, pickle.dumps({"model": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_stage(tmp_path / "evil.pt", 1)


@pytest.mark.parametrize("case", ["s0", "s1"])
def test_stage1_teacher_forced_matches_upstream(stage1, fixtures, case):
    from edgevoice.metavoice.sampling import guided_logits

    data = np.load(fixtures / f"stage1_tf_{case}_tiny.npz")
    cond, uncond = stage1.teacher_forced(torch.from_numpy(data["text_ids"])[None], torch.from_numpy(data["spk_emb"]),
                                         data["forced_tokens"])
    assert _max_abs(cond, data["logits_cond"]) <= 1e-5
    assert _max_abs(uncond, data["logits_uncond"]) <= 1e-5
    assert _max_abs(guided_logits(cond.numpy(), uncond.numpy()), data["logits_cfg"]) <= 1e-5


@pytest.mark.parametrize("case", ["pad", "cut"])
def test_stage2_matches_upstream(models, fixtures, case):
    stage2 = MetaVoiceGPT.from_checkpoint(load_stage(models / "second_stage.pt", 2))
    data = np.load(fixtures / f"stage2_{case}_tiny.npz")
    with torch.no_grad():
        logits = stage2.non_causal(torch.from_numpy(data["in_x"]), torch.from_numpy(data["spk_emb"])).numpy()
    assert _max_abs(logits[:, data["sel_positions"]], data["logits_sel"]) <= 1e-5
    assert np.array_equal(logits.argmax(-1), data["argmax"])


def test_speaker_lstm_matches_upstream(models, fixtures):
    encoder = SpeakerLSTM.from_checkpoint(load_speaker_encoder(models / "speaker_encoder.pt"))
    data = np.load(fixtures / "speaker_tiny.npz")
    with torch.no_grad():
        partials = encoder(torch.from_numpy(data["mels"])).numpy()
    assert _max_abs(partials, data["partial_embeds"]) <= 1e-6


def test_random_model_has_the_released_geometry_and_loads(tmp_path):
    from edgevoice_export.metavoice.random_model import make_test_model, model_args
    from edgevoice_export.metavoice.checkpoints import GPTArgs
    from edgevoice_export.metavoice.reference import MetaVoiceModel
    from edgevoice_export.metavoice.checkpoints import MetaVoiceFiles

    full = GPTArgs.from_model_args(model_args(1, "full"), tmp_path)
    count = sum(int(np.prod(s)) for k, s in full.expected_shapes(256).items() if k != "lm_heads.0.weight")
    assert count == 1_243_191_296  # the released stage 1's unique parameters
    with pytest.raises(CheckpointError, match="n_layer 500000 / n_head 16: at most 1024"):  # would list 5M shapes
        GPTArgs.from_model_args({**model_args(1, "full"), "n_layer": 500_000}, tmp_path)
    paths = make_test_model(tmp_path / "tiny", "tiny", seed=3)
    model = MetaVoiceModel.load(MetaVoiceFiles(paths["first_stage"], paths["second_stage"], paths["speaker_encoder"],
                                               paths["encodec"], paths["encodec_config"]))
    assert model.facts()["stage1"]["text_offset"] == 2049
    first = load_stage(paths["first_stage"], 1)
    assert np.shares_memory(first.weights["lm_heads.0.weight"], first.weights["transformer.wtes.0.weight"]) or \
        np.array_equal(first.weights["lm_heads.0.weight"], first.weights["transformer.wtes.0.weight"])


def test_fixture_set_loads_as_a_whole(metavoice_set):
    from edgevoice_export.metavoice.reference import MetaVoiceModel

    facts = MetaVoiceModel.load(metavoice_files(metavoice_set)).facts()
    assert facts["encodec"] == {"n_q": 8, "bins": 1024, "hop": 320, "sample_rate": 24000, "pad_exact_from_frames": 7}
    assert facts["stage2"]["heads"] + 2 == facts["encodec"]["n_q"]
