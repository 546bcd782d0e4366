"""Larq-zoo files onto onebit's registered zoo models: the object ``create_model`` gives, with the file's weights.

A file is a Larq-zoo model when its Keras model name is one of Larq-zoo's (:data:`ZOO_NAMES`:
QuickNet, QuickNetSmall, QuickNetLarge, Bi-Real Net, BinaryDenseNet 28/37/37-dilated/45,
BinaryResNetE18, BinaryAlexNet, Real-to-Binary Net, XNOR-Net) and its layers fit the family. The
onebit model is built with ``create_model(name, num_classes, in_shape, **args)``, the arguments
read from the file (the width from the stem's conv, BinaryDenseNet's growth rate from its first
binary conv, BinaryAlexNet's conv widths and dense width, XNOR-Net's conv widths and hidden
width; ``padding="keras"`` where the onebit model pads PyTorch's way by default, Bi-Real Net's
Keras BatchNorm ε, XNOR-Net's ``variant="larq"``), and the converted graph's weighted layers (convolutions,
dense layers, BatchNorms, PReLUs) are copied into the zoo model's, paired by kind and shape in the
file's order and the model's module order within each kind and shape. Layout-only differences
are undone at copy time (BinaryAlexNet's 1 × 1 convs on a (1, 1, C) reshape are its dense
layers: their kernels, already in PyTorch's (C, H, W) row order, become the dense weights).
BatchNorm's ε must agree (it is the model's, not a weight; the momentum, a training setting,
stays the zoo model's). The result must then compute what the graph computes (within 1e-5
relative on a fixed random batch, in float64); where any step fails, the generic graph is
what :func:`onebit.convert.from_larq` returns, so a mapping is never silently wrong.

Larq zoo's XNOR-Net maps onto ``xnornet_alexnet(variant="larq")`` (its channels and the 6 x 6
conv's width read from the file), not onto the default variant, which is jiecaoyu's XNOR-Net
(biases, a ReLU after every binary layer, BatchNorm1d on the flattened features), another network.
DoReFa-Net and MeliusNet have no onebit zoo model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from onebit.convert.larq import KerasGraph

__all__ = ["ZOO_NAMES", "ZooFamily", "to_zoo_model"]


def _convs(layers: list[nn.Module]) -> list[nn.Conv2d]:
    return [m for m in layers if isinstance(m, nn.Conv2d)]


def _stem_width(layers: list[nn.Module]) -> dict[str, Any] | None:
    """``width``: the first conv's outputs (Bi-Real Net's, BinaryResNetE18's, Real-to-Binary Net's stem)."""
    convs = _convs(layers)
    return {"width": convs[0].out_channels} if convs else None


def _quicknet_width(layers: list[nn.Module]) -> dict[str, Any] | None:
    """``width``: the first 1 x 1 conv's outputs (the end of QuickNet's stem)."""
    conv = next((m for m in _convs(layers) if m.kernel_size == (1, 1)), None)
    return None if conv is None else {"width": conv.out_channels}


def _densenet_args(layers: list[nn.Module]) -> dict[str, Any] | None:
    """``initial_filters`` (the stem conv's outputs) and ``growth_rate`` (the first binary conv's)."""
    convs = _convs(layers)
    binary = next((m for m in convs if getattr(m, "input_quantizer", None) is not None), None)
    if not convs or binary is None:
        return None
    return {"initial_filters": convs[0].out_channels, "growth_rate": binary.out_channels}


def _alexnet_args(layers: list[nn.Module]) -> dict[str, Any] | None:
    """``channels`` (the five convs' outputs) and ``dense`` (the first dense layer's)."""
    convs = _convs(layers)
    dense = [m for m in layers if isinstance(m, nn.Linear)]
    if len(convs) != 5 or not dense:
        return None
    return {"channels": [m.out_channels for m in convs], "dense": dense[0].out_features}


def _xnornet_args(layers: list[nn.Module]) -> dict[str, Any] | None:
    """``channels`` (the first five convs' outputs) and ``hidden`` (the 6 x 6 conv's, Larq zoo's first dense layer)."""
    convs = _convs(layers)
    if len(convs) != 7:
        return None
    return {"channels": [m.out_channels for m in convs[:5]], "hidden": convs[5].out_channels}


def _alexnet_dense(layers: list[nn.Module]) -> list[nn.Module]:
    """Larq zoo's BinaryAlexNet head: 1 x 1 convs on a (1, 1, C) reshape of the image, which are onebit's
    dense layers. The converter already put the first one's rows in PyTorch's (C, H, W) order."""
    out: list[nn.Module] = []
    convs = 0
    for m in layers:
        if isinstance(m, nn.Conv2d):
            convs += 1
            if convs > 5 and m.kernel_size == (1, 1) and m.groups == 1:
                linear = nn.Linear(m.in_channels, m.out_channels, bias=m.bias is not None)
                with torch.no_grad():
                    linear.weight.copy_(m.weight.reshape(m.out_channels, m.in_channels))
                    if m.bias is not None:
                        linear.bias.copy_(m.bias)
                m = linear
        out.append(m)
    return out


@dataclass(frozen=True)
class ZooFamily:
    """How a Larq-zoo model maps: onebit's registered ``model``, the ``args`` read from the file's weighted
    layers (None where they cannot be read), fixed ``extra`` arguments, and a layout ``adapt`` of those layers."""

    model: str
    args: Callable[[list[nn.Module]], dict[str, Any] | None]
    extra: dict[str, Any] = field(default_factory=dict)
    adapt: Callable[[list[nn.Module]], list[nn.Module]] | None = None


_KERAS = {"padding": "keras"}
# Larq zoo's Keras model name -> how it maps onto onebit's zoo.
ZOO_NAMES: dict[str, ZooFamily] = {
    "quicknet": ZooFamily("quicknet", _quicknet_width),
    "quicknet_small": ZooFamily("quicknet_small", _quicknet_width),
    "quicknet_large": ZooFamily("quicknet_large", _quicknet_width),
    "binary_resnet_e_18": ZooFamily("binary_resnet_e18", _stem_width, _KERAS),
    "birealnet18": ZooFamily("birealnet18", _stem_width, {**_KERAS, "bn_eps": 1e-3}),
    "binary_densenet28": ZooFamily("binarydensenet28", _densenet_args, _KERAS),
    "binary_densenet37": ZooFamily("binarydensenet37", _densenet_args, _KERAS),
    "binary_densenet37_dilated": ZooFamily("binarydensenet37_dilated", _densenet_args, _KERAS),
    "binary_densenet45": ZooFamily("binarydensenet45", _densenet_args, _KERAS),
    "binary_alexnet": ZooFamily("binary_alexnet", _alexnet_args, adapt=_alexnet_dense),
    "r2b_bnn": ZooFamily("real_to_binary_net", _stem_width, _KERAS),
    "xnornet": ZooFamily("xnornet_alexnet", _xnornet_args, {"variant": "larq"}),
}


def _weighted(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d, nn.PReLU))]


def _signature(m: nn.Module) -> tuple:
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return ("bn", m.num_features)
    if isinstance(m, nn.PReLU):
        return ("prelu", m.num_parameters)
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
        if isinstance(dst, nn.PReLU) or isinstance(src, nn.PReLU):
            if not (isinstance(src, nn.PReLU) and isinstance(dst, nn.PReLU)) or src.weight.shape != dst.weight.shape:
                return False
            dst.weight.copy_(src.weight)
            return True
        if isinstance(dst, (nn.BatchNorm2d, nn.BatchNorm1d)):
            if not isinstance(src, (nn.BatchNorm2d, nn.BatchNorm1d)) or src.num_features != dst.num_features:
                return False
            if dst.affine:
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
            elif not (torch.all(src.weight == 1) and torch.all(src.bias == 0)):
                return False
            if not math.isclose(src.eps, dst.eps, rel_tol=1e-6):  # ε is the model's, not a weight: it must agree
                return False
            dst.running_mean.copy_(src.running_mean)
            dst.running_var.copy_(src.running_var)
            return True
        if src.weight.shape != dst.weight.shape or (src.bias is None) != (dst.bias is None):
            return False
        dst.weight.copy_(src.weight)
        if dst.bias is not None:
            dst.bias.copy_(src.bias)
    return True


def _float64_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in float64, the model left in float32 (the round trip is exact). In float32 the
    rounding of two equal functions can put a sign input on either side of 0 (full-size models
    differ by ~1e-5 of the largest logit that way); in float64 they agree to ~1e-14."""
    try:
        with torch.no_grad():
            return model.double()(x.double())
    finally:
        model.float()


def to_zoo_model(graph: KerasGraph) -> nn.Module | None:
    """The registered zoo model equal to ``graph`` (a converted Larq-zoo file), or None."""
    from onebit.errors import OnebitError
    from onebit.models import create_model

    family = ZOO_NAMES.get(graph.keras_name)
    if family is None or len(graph.in_shape) != 3:
        return None
    src = _weighted(graph)
    if family.adapt is not None:
        src = family.adapt(src)
    args = family.args(src)
    if args is None:
        return None
    x = torch.randn((2, *graph.in_shape), generator=torch.Generator().manual_seed(0))
    expected = _float64_forward(graph.eval(), x)
    try:
        model = create_model(family.model, num_classes=int(expected.shape[1]), in_shape=tuple(graph.in_shape),
                             **args, **family.extra)
    except OnebitError:
        return None
    pairs = _pairs(src, _weighted(model))
    if pairs is None or not all(_copy(s, d) for s, d in pairs):
        return None
    try:
        got = _float64_forward(model.eval(), x)
    except (RuntimeError, ValueError):  # e.g. a size the zoo model's layers do not meet
        return None
    if got.shape != expected.shape or (got - expected).abs().max() > 1e-5 * expected.abs().max().clamp_min(1e-12):
        return None
    return model
