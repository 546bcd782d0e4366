"""Larq-zoo files onto onebit's registered zoo models: the object ``create_model`` gives, with the file's weights.

A file is a Larq-zoo model when its Keras model name is one of Larq-zoo's (``quicknet``,
``quicknet_small``, ``quicknet_large``, ``binary_resnet_e_18``) and its layer counts fit the family. The onebit
model is built with ``create_model(name, num_classes, in_shape, width=...)`` (the width read
from the file), and the converted graph's weighted layers (convolutions, dense layers,
BatchNorms) are copied into the zoo model's, paired by kind and shape in the file's order and
the model's module order within each kind and shape. The result must then compute what the graph
computes (within 1e-5 relative on a fixed random batch); where any step fails, the
generic graph is what :func:`onebit.convert.from_larq` returns, so a mapping is never
silently wrong.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from onebit.convert.larq import KerasGraph

__all__ = ["ZOO_NAMES", "to_zoo_model"]

# Larq-zoo's Keras model name -> (onebit's registered model, which conv gives its ``width``: the first
# 1 x 1 conv (QuickNet's stem) or the first conv (BinaryResNetE18's stem)).
ZOO_NAMES = {"quicknet": ("quicknet", "pointwise"), "quicknet_small": ("quicknet_small", "pointwise"),
             "quicknet_large": ("quicknet_large", "pointwise"), "binary_resnet_e_18": ("binary_resnet_e18", "first")}


def _weighted(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d))]


def _signature(m: nn.Module) -> tuple:
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return ("bn", m.num_features)
    return ("conv" if isinstance(m, nn.Conv2d) else "linear", tuple(m.weight.shape))


def _pairs(src: list[nn.Module], dst: list[nn.Module]) -> list[tuple[nn.Module, nn.Module]] | None:
    """Layers paired by kind and shape, in order within each kind and shape (Keras lists a block's
    shortcut and main branch interleaved, a PyTorch module one branch after the other); None where
    the counts differ."""
    if len(src) != len(dst):
        return None
    groups: dict[tuple, tuple[list[nn.Module], list[nn.Module]]] = {}
    for side, layers in enumerate((src, dst)):
        for m in layers:
            groups.setdefault(_signature(m), ([], []))[side].append(m)
    if any(len(a) != len(b) for a, b in groups.values()):
        return None
    return [pair for a, b in groups.values() for pair in zip(a, b)]


def _copy(src: nn.Module, dst: nn.Module) -> bool:
    """Copy ``src``'s weights into ``dst`` (same kind and shapes); False where they differ."""
    if isinstance(src, nn.Conv2d) != isinstance(dst, nn.Conv2d) or isinstance(src, nn.Linear) != isinstance(
            dst, nn.Linear):
        return False
    with torch.no_grad():
        if isinstance(dst, (nn.BatchNorm2d, nn.BatchNorm1d)):
            if not isinstance(src, (nn.BatchNorm2d, nn.BatchNorm1d)) or src.num_features != dst.num_features:
                return False
            if dst.affine:
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
            elif not (torch.all(src.weight == 1) and torch.all(src.bias == 0)):
                return False
            dst.running_mean.copy_(src.running_mean)
            dst.running_var.copy_(src.running_var)
            dst.eps, dst.momentum = src.eps, src.momentum
            return True
        if src.weight.shape != dst.weight.shape or (src.bias is None) != (dst.bias is None):
            return False
        dst.weight.copy_(src.weight)
        if dst.bias is not None:
            dst.bias.copy_(src.bias)
    return True


def to_zoo_model(graph: KerasGraph) -> nn.Module | None:
    """The registered zoo model equal to ``graph`` (a converted Larq-zoo file), or None."""
    from onebit.errors import OnebitError
    from onebit.models import create_model

    entry = ZOO_NAMES.get(graph.keras_name)
    if entry is None or len(graph.in_shape) != 3:
        return None
    name, which = entry
    src = _weighted(graph)
    conv = next((m for m in src if isinstance(m, nn.Conv2d) and (which == "first" or m.kernel_size == (1, 1))), None)
    if conv is None:
        return None
    args: dict[str, Any] = {"width": conv.out_channels}
    x = torch.randn((2, *graph.in_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = graph.eval()(x)
    try:
        model = create_model(name, num_classes=int(expected.shape[1]), in_shape=tuple(graph.in_shape), **args)
    except OnebitError:
        return None
    dst = _weighted(model)
    pairs = _pairs(src, dst)
    if pairs is None or not all(_copy(s, d) for s, d in pairs):
        return None
    model.eval()
    with torch.no_grad():
        got = model(x)
    if got.shape != expected.shape or (got - expected).abs().max() > 1e-5 * expected.abs().max().clamp_min(1e-12):
        return None
    return model
