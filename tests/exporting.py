"""Shared by the export tests: random BatchNorm statistics, runtime == PyTorch checks, and edited
graphs the runtime must refuse."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

import onebit.runtime as rt
from onebit.export import ExportReport, export
from onebit.nn import RPReLU, RSign
from onebit.nn.quantizers import Quantizer
from onebit.runtime.container import read_container, write_container
from onebit.errors import ModelFileError


def randomize_bn(model: nn.Module, seed: int = 0, positive: bool = False) -> nn.Module:
    """Random running statistics and (where affine) γ, β of every BatchNorm; eval mode.

    γ takes both signs (flipped thresholds, constant channels after a ReLU) unless ``positive``."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 3)
            m.running_var.copy_(torch.rand(n, generator=g) * 10 + 1)
            if m.affine:  # QuickNet's stem has a BatchNorm without γ, β (Keras scale=False, center=False)
                w = torch.randn(n, generator=g)
                m.weight.data.copy_(w.abs() + 0.1 if positive else w)
                m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def randomize_react(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial RSign thresholds and RPReLU shifts/slopes (they start at 0, 0.25, 0)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, RSign):
            m.shift.data.copy_(torch.randn(m.channels, generator=g) * 0.5)
        if isinstance(m, RPReLU):
            m.shift_in.data.copy_(torch.randn(m.channels, generator=g) * 0.5)
            m.slope.data.copy_(torch.randn(m.channels, generator=g))
            m.shift_out.data.copy_(torch.randn(m.channels, generator=g) * 0.5)
    return model


TIE = 1e-5  # a sign input this close to 0 (float64) is a tie that float32 rounding may break either way


def sign_margins(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Per sample, the smallest |input| of any activation sign in the float64 forward (``|x − β|``
    for RSign): how close the sample comes to a tie. Weight quantizers are not counted."""
    model = copy.deepcopy(model).double().eval()
    weight_quantizers = {id(m.weight_quantizer) for m in model.modules() if getattr(m, "weight_quantizer", None)}
    margins = torch.full((len(x),), float("inf"), dtype=torch.float64)

    def hook(module: nn.Module, args: tuple) -> None:
        v = args[0]
        if isinstance(module, RSign):
            v = v - module.shift.view(1, -1, *[1] * (v.dim() - 2))
        torch.minimum(margins, v.abs().flatten(1).min(1).values, out=margins)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, Quantizer) and id(m) not in weight_quantizers]
    try:
        with torch.no_grad():
            model(x.double())
    finally:
        for h in handles:
            h.remove()
    return margins.numpy()


def check_export(model: nn.Module, x: torch.Tensor, path, reference: str = "float32", ties: int = 0) -> ExportReport:
    """Export on ``x[:8]``; the runtime on all of ``x`` equals the PyTorch eval forward (max |Δ| ≤ 1e-4 ×
    max |logit|, same argmax) and takes an empty batch. ``reference="float64"`` compares with the forward
    in float64: in deep nets float32 PyTorch itself lands on the wrong side of a sign now and then
    (BinaryDenseNet-45 at 16×16, input 25: a BatchNorm output of +9.2e-8 in float32 is −2.4e-7 in float64,
    2.8 logits away at the end), where the runtime agrees with float64 to 1e-6.

    ``ties``: how many samples may differ beyond the tolerance, each only where its float64 forward
    has a sign input within :data:`TIE` of 0 (a tie that float32 sums in another order break the
    other way: the runtime's float first layer against oneDNN's differs by CPU kind) and with the
    same argmax. Measured where used; 0 everywhere else."""
    report = export(model, path, x[:8], verbose=False)
    with torch.no_grad():
        if reference == "float64":
            want = copy.deepcopy(model).double()(x.double()).float().numpy()
        else:
            want = model(x).numpy()
    engine = rt.load(path)
    got = engine(x.numpy())
    assert got.shape == want.shape
    differ = np.abs(got - want).max(axis=1) > 1e-4 * np.abs(want).max()
    assert differ.sum() <= ties, f"{differ.sum()} samples differ (allowed ties: {ties})"
    if differ.any():
        margins = sign_margins(model, x[torch.from_numpy(differ)])
        assert (margins < TIE).all(), f"samples differ without a sign tie: smallest margins {margins}"
    assert engine(np.zeros((0, *x.shape[1:]), np.float32)).shape == (0, *want.shape[1:])  # empty batch
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    return report



def refuses(model_file: Path, path: Path) -> Callable[[Callable[[dict[str, Any]], None], str], None]:
    """``rewrite(mutate, match)``: ``model_file``'s graph edited by ``mutate``, written to ``path``, must be
    refused at load with a :class:`ModelFileError` matching ``match``."""
    tensors, meta = read_container(model_file)
    graph = json.loads(meta["onebit"])

    def rewrite(mutate: Callable[[dict[str, Any]], None], match: str) -> None:
        g = json.loads(json.dumps(graph))
        mutate(g)
        write_container(path, tensors, {"onebit": json.dumps(g)})
        with pytest.raises(ModelFileError, match=match):
            rt.load(path)

    return rewrite
