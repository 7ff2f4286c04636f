"""Random-weight checkpoints written by our code in upstream's formats load back, and match upstream's layout."""

from __future__ import annotations

import pickletools
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevoice_export.checkpoints import load_hf_weights  # noqa: E402
from edgevoice_export.gpt_sovits.checkpoints import load_gpt_checkpoint, load_sovits_checkpoint  # noqa: E402
from edgevoice_export.gpt_sovits.models.gpt import Text2SemanticDecoder  # noqa: E402
from edgevoice_export.gpt_sovits.models.sovits import SoVITS  # noqa: E402
from edgevoice_export.gpt_sovits.random_model import make_test_model, write_gpt, write_sovits  # noqa: E402


def _pickle_globals(path):
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        ops = pickletools.genops(archive.read(name))
        strings, found = [], set()
        for op, arg, _ in ops:
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL":
                found.add(f"{strings[-2]}.{strings[-1]}")
            elif op.name == "GLOBAL":
                found.add(arg.replace(" ", "."))
        return found


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_test_model(tmp_path_factory.mktemp("tiny"), "tiny", seed=5)


def test_tiny_set_has_upstreams_layout(tiny_set, gpt_sovits_set):
    """Same config as upstream's tiny fixture set ⇒ identical tensor names, shapes and stored dtypes."""
    ours, theirs = load_gpt_checkpoint(tiny_set["gpt"]), load_gpt_checkpoint(gpt_sovits_set / "models" / "s1_v2_tiny.ckpt")
    assert {k: (v.shape, v.dtype) for k, v in ours.weights.items()} == \
           {k: (v.shape, v.dtype) for k, v in theirs.weights.items()}
    ours = load_sovits_checkpoint(tiny_set["sovits"])
    theirs = load_sovits_checkpoint(gpt_sovits_set / "models" / "s2_v2_tiny.pth")
    assert {k: (v.shape, v.dtype) for k, v in ours.weights.items()} == \
           {k: (v.shape, v.dtype) for k, v in theirs.weights.items()}
    assert ours.config["model"] == theirs.config["model"] | {"version": "v2"}
    for part in ("hubert", "bert"):
        mine, _ = load_hf_weights(tiny_set[part])
        upstream, _ = load_hf_weights(gpt_sovits_set / "models" / {"hubert": "chinese-hubert-base",
                                                                 "bert": "chinese-roberta-wwm-ext-large"}[part])
        assert {k: v.shape for k, v in mine.items()} == {k: v.shape for k, v in upstream.items()}


def test_sovits_config_is_pickled_as_upstreams_hparams(tiny_set):
    assert "utils.HParams" in _pickle_globals(tiny_set["sovits"])
    assert (tiny_set["hubert"] / "pytorch_model.bin").is_file()


def test_tiny_round_trip_reproduces_the_model(tiny_set):
    ckpt = load_gpt_checkpoint(tiny_set["gpt"])
    model = Text2SemanticDecoder.from_checkpoint(ckpt)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), ckpt.weights[key].astype(np.float32))
    sovits = SoVITS.from_checkpoint(load_sovits_checkpoint(tiny_set["sovits"]))
    assert float(sovits.quantizer.codebook.inited) == 1.0
    assert float(sovits.flow.flows[0].post.weight.detach().abs().max()) > 0  # the flow is not an identity


def test_full_size_round_trip(tmp_path):
    write_gpt(tmp_path / "gpt.ckpt", "full", seed=1)
    write_sovits(tmp_path / "sovits.pth", "full", seed=2)
    gpt = load_gpt_checkpoint(tmp_path / "gpt.ckpt")
    sovits = load_sovits_checkpoint(tmp_path / "sovits.pth")
    assert gpt.config["model"]["n_layer"] == 24
    assert sum(v.size for v in gpt.weights.values()) == 77_606_402  # spec §1.1
    assert len(sovits.weights) == 673 and sum(v.size for v in sovits.weights.values()) == 42_389_633  # spec §1.2
    model = SoVITS.from_checkpoint(sovits)
    assert model.gin_channels == 512 and model.samples_per_token == 1280
