"""The export's own parity check: a graph is compared with its `reference` module where it has one (upstream's
layers, where the exporter rewrote them), and a graph of ids is gated on the share of ids that differ."""

import pytest

torch = pytest.importorskip("torch", reason="the exporter needs the export extra")
pytest.importorskip("openvino")

from torch import nn  # noqa: E402

from edgevoice.bundle import TensorSpec  # noqa: E402
from edgevoice_export.graph_export import ID_PARITY_LIMIT, ParityCheckError, export_graph  # noqa: E402
from edgevoice_export.graphs import GraphSpec, seeded_randn, sibling  # noqa: E402


class NearestCode(nn.Module):
    """Each frame's nearest row of a codebook, as HuBERT's codes are made."""

    def __init__(self, codebook: torch.Tensor):
        super().__init__()
        self.codebook = nn.Parameter(codebook)

    def forward(self, frames):
        return torch.cdist(frames, self.codebook[None]).argmin(-1)


def _spec(module: nn.Module, reference: nn.Module | None) -> GraphSpec:
    return GraphSpec("codes", module, [TensorSpec("frames", "float32", [1, "frames", 8])],
                     [TensorSpec("ids", "int64", [1, "frames"])],
                     [(seeded_randn(1, 40, 8, seed=1),), (seeded_randn(1, 97, 8, seed=2),)],
                     formats=("onnx", "openvino"), reference=reference)


def test_ids_equal_to_the_reference_pass_at_two_lengths(tmp_path):
    codebook = seeded_randn(16, 8, seed=0)
    entry, results = export_graph(_spec(NearestCode(codebook), NearestCode(codebook.clone())), tmp_path)
    assert {r.backend for r in results} == {"onnxruntime", "openvino"}
    assert all(r.max_abs == 0 and len(set(r.shapes)) == 2 for r in results)
    assert entry.accuracy["fp32_vs_torch"]["openvino"]["shapes"] == ["frames=40", "frames=97"]


def test_a_graph_is_checked_against_its_reference_not_itself(tmp_path):
    codebook = seeded_randn(16, 8, seed=0)
    shuffled = codebook[torch.randperm(16, generator=torch.Generator().manual_seed(3))]
    with pytest.raises(ParityCheckError, match=rf"codes .*limit {ID_PARITY_LIMIT:g}, share of the ids that differ"):
        export_graph(_spec(NearestCode(codebook), NearestCode(shuffled)), tmp_path)


def test_sibling_swaps_one_child_and_shares_the_rest():
    parent = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    other = nn.Tanh()
    clone = sibling(parent, **{"1": other})
    assert clone[0] is parent[0] and clone[1] is other and isinstance(parent[1], nn.ReLU)
