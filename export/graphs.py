"""A graph as the exporter sees it: one small `nn.Module` with named, typed inputs and outputs and example inputs.

Each family cuts its model into such graphs (`<family>/graphs.py`); everything around them stays on the host in
numpy. Shapes use named dynamic axes; an axis written `"2*tokens"` is tied to the `tokens` axis, which lets the
exporter keep the relation symbolic.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from edgevoice.bundle import TensorSpec


@dataclass
class GraphSpec:
    name: str
    module: nn.Module
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    examples: list[tuple[torch.Tensor, ...]]  # [0] is traced; every one is checked after export
    formats: tuple[str, ...] = ("onnx", "openvino")  # the files the bundle ships for this graph
    stateful: dict[str, str] = field(default_factory=dict)  # cache input -> cache output, kept as OpenVINO state
    # What the exported graph is checked against, where `module` rewrites upstream's layers for the exporter (the
    # vocoders' transposed convolutions, conv_rewrite.py): the same graph on upstream's own layers.
    reference: nn.Module | None = None

    @property
    def checked_against(self) -> nn.Module:
        return self.module if self.reference is None else self.reference


def sibling(module: nn.Module, **children: nn.Module) -> nn.Module:
    """A shallow copy of `module` that shares every submodule but the ones named here, which it uses instead."""
    clone = copy.copy(module)
    clone._modules = {**module._modules, **children}
    return clone


def seeded_randint(high: int, *shape: int, seed: int) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def seeded_randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale
