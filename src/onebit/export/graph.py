"""From a PyTorch model to the runtime's node list: a walk over its layers in order.

The walk accepts ``nn.Sequential`` models (nested ones are flattened) built from the
layers the engine runs: ``QuantLinear``/``nn.Linear``, ``BatchNorm1d`` after them,
``Hardtanh``/``ReLU``, ``Flatten``, ``Dropout``/``Identity`` (no-ops in eval).
Anything else fails with an :class:`ExportError` that names the layer. Every dense
layer is recorded with the reason it runs binary or stays float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from onebit.errors import ExportError
from onebit.export.fold import bn_affine, thresholds
from onebit.nn.layers import QuantLayer

# Input quantizers whose forward is sign(x) with sign(0) = +1: the engine packs their input.
SIGN_QUANTIZERS = ("ste_sign", "approx_sign", "swish_sign")
_NO_OPS = (nn.Dropout, nn.Identity)


@dataclass
class LayerReport:
    """One exported layer: where it runs and why."""

    name: str
    kind: str  # "binary", "binary weights, float input", "float"
    reason: str

    def __str__(self) -> str:
        return f"{self.name:24s} {self.kind:28s} {self.reason}"


@dataclass
class _Dense:
    name: str
    k: int
    n: int
    in_bits: bool
    weight_bits: bool
    weight: np.ndarray  # ±1 or float, (n, k) float32
    alpha: np.ndarray  # float64 (n,)
    beta: np.ndarray
    act: list[nn.Module] = field(default_factory=list)
    bn: str | None = None


def _layers(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    if isinstance(model, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            out += _layers(child, f"{prefix}{name}.")
        return out
    if prefix == "" :
        raise ExportError(
            f"the exporter walks nn.Sequential models; {type(model).__name__} is not one "
            "(graphs with branches come with the convolutional engine)"
        )
    return [(prefix[:-1], model)]


def _binary_weight(name: str, layer: nn.Linear) -> tuple[np.ndarray, np.ndarray] | None:
    """(±1 weights, per-row scale α) if the layer's effective weight is binary, else None."""
    if not isinstance(layer, QuantLayer) or layer.weight_quantizer is None:
        return None
    if layer.weight_bits != 1:
        raise ExportError(
            f"layer {name!r}: {layer.weight_bits}-bit weights ({layer.weight_quantizer.name}) are not supported "
            "by the engine; it runs 1-bit or float weights"
        )
    wq = layer.quantized_weight().detach().double().numpy().reshape(layer.weight.shape[0], -1)
    alpha = np.abs(wq).max(axis=1)
    signs = np.where(wq >= 0, 1.0, -1.0)
    if not np.allclose(wq, signs * alpha[:, None], rtol=1e-6, atol=0):
        raise ExportError(f"layer {name!r}: weight quantizer {layer.weight_quantizer.name!r} does not give ±α per row")
    if (alpha <= 0).any():
        raise ExportError(f"layer {name!r}: a row of weights has scale 0")
    return signs.astype(np.float32), alpha


def capture(model: nn.Module, example: torch.Tensor) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[LayerReport]]:
    """Nodes, tensors and the per-layer report for ``model`` on inputs shaped like ``example``."""
    layers = _layers(model)
    nodes: list[dict[str, Any]] = []
    tensors: dict[str, np.ndarray] = {}
    report: list[LayerReport] = []
    value, bits, shape = "input", False, tuple(example.shape[1:])
    pending: _Dense | None = None
    counter = iter(range(1 << 30))

    def emit(op: str, name: str, attrs: dict[str, Any], arrays: dict[str, np.ndarray], out_bits: bool, out_shape: tuple[int, ...]) -> None:
        nonlocal value, bits, shape
        out = f"v{next(counter)}"
        refs = {}
        for key, array in arrays.items():
            refs[key] = f"{name}.{key}"
            tensors[refs[key]] = array
        nodes.append({"op": op, "name": name, "input": value, "output": out, **attrs, **({"tensors": refs} if refs else {})})
        value, bits, shape = out, out_bits, out_shape

    def finish(next_is_binary: bool) -> None:
        nonlocal pending
        d = pending
        if d is None:
            return
        pending = None
        attrs: dict[str, Any] = {"k": d.k, "n": d.n, "weights": "bits" if d.weight_bits else "float"}
        arrays: dict[str, np.ndarray] = {}
        if d.weight_bits:
            from onebit.runtime.bitpack import pack_bits

            arrays["weight"] = pack_bits(d.weight)
        else:
            arrays["weight"] = d.weight.astype(np.float32)
        if next_is_binary:
            for a in d.act:
                if not isinstance(a, nn.Hardtanh) or not a.min_val < 0 <= a.max_val:
                    raise ExportError(
                        f"layer {d.name!r}: {type(a).__name__} before a sign changes the sign of its input; "
                        "the engine folds only sign-preserving activations (Hardtanh) into the threshold"
                    )
            attrs["out"] = "bits"
            if d.in_bits:
                t, f = thresholds(d.alpha, d.beta, d.k)
                arrays["threshold"], arrays["flip"] = t, f
            else:
                arrays["scale"], arrays["bias"] = d.alpha.astype(np.float32), d.beta.astype(np.float32)
        else:
            attrs["out"] = "float"
            attrs["act"] = _activation(d)
            arrays["scale"], arrays["bias"] = d.alpha.astype(np.float32), d.beta.astype(np.float32)
        emit("dense", d.name, attrs, arrays, next_is_binary, (d.n,))

    for name, m in layers:
        if isinstance(m, _NO_OPS):
            continue
        if isinstance(m, nn.Flatten):
            if pending is None and len(shape) > 1:
                emit("flatten", name, {}, {}, False, (int(np.prod(shape)),))
            continue
        if isinstance(m, nn.Linear):
            iq = m.input_quantizer if isinstance(m, QuantLayer) else None
            if iq is not None and iq.name not in SIGN_QUANTIZERS:
                raise ExportError(
                    f"layer {name!r}: input quantizer {iq.name!r} is not supported by the engine; "
                    f"supported: {', '.join(SIGN_QUANTIZERS)} or float (None)"
                )
            in_bits = iq is not None
            if pending is not None:
                finish(in_bits)
            elif in_bits and not bits:
                if len(shape) != 1:
                    raise ExportError(f"layer {name!r}: expects a flat input, got shape {shape}")
                emit("sign", f"{name}.sign", {}, {}, True, shape)
            if shape != (m.in_features,):
                raise ExportError(f"layer {name!r}: expects {m.in_features} features, its input has shape {shape}")
            binary = _binary_weight(name, m)
            n = m.out_features
            if binary is not None:
                weight, alpha = binary
            else:
                weight, alpha = m.weight.detach().float().numpy(), np.ones(n)
            if isinstance(m, QuantLayer) and m.scale is not None:
                alpha = alpha * m.scale.detach().double().numpy()
            beta = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(n)
            pending = _Dense(name, m.in_features, n, in_bits, binary is not None, weight, alpha, beta)
            if in_bits and binary is not None:
                report.append(LayerReport(name, "binary", "1-bit input and weights: XNOR-popcount GEMM"))
            elif binary is not None:
                report.append(LayerReport(name, "binary weights, float input",
                                          "float input (first layer): BLAS on ±1 weights stored at 1 bit"))
            else:
                why = "float weights" if not isinstance(m, QuantLayer) or m.weight_quantizer is None else "?"
                report.append(LayerReport(name, "float", why + (" and float input" if not in_bits else "")))
            continue
        if isinstance(m, nn.BatchNorm1d):
            if pending is None or pending.act or pending.bn is not None:
                raise ExportError(f"layer {name!r}: BatchNorm1d must directly follow a linear layer to be folded")
            a, b = bn_affine(m)
            pending.alpha, pending.beta = pending.alpha * a, pending.beta * a + b
            pending.bn = name
            continue
        if isinstance(m, (nn.Hardtanh, nn.ReLU)):
            if pending is None:
                raise ExportError(f"layer {name!r}: {type(m).__name__} must follow a linear layer")
            pending.act.append(m)
            continue
        raise ExportError(
            f"layer {name!r} ({type(m).__name__}) is not supported by the exporter; supported: QuantLinear, "
            "Linear, BatchNorm1d, Hardtanh, ReLU, Flatten, Dropout, Identity"
        )
    if pending is None:
        raise ExportError("the model ends without a linear layer; nothing to export")
    finish(False)
    return nodes, tensors, report


def _activation(d: _Dense) -> str:
    if not d.act:
        return "none"
    if len(d.act) == 1 and isinstance(d.act[0], nn.ReLU):
        return "relu"
    if len(d.act) == 1 and isinstance(d.act[0], nn.Hardtanh) and (d.act[0].min_val, d.act[0].max_val) == (-1.0, 1.0):
        return "hardtanh"
    raise ExportError(f"layer {d.name!r}: activations {[type(a).__name__ for a in d.act]} are not supported on a float output")
