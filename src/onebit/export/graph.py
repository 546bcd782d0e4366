"""From a PyTorch model to the runtime's node list: a walk over its layers in order.

The walk accepts ``nn.Sequential`` models (nested ones are flattened) built from the
layers the engine runs: ``QuantLinear``/``nn.Linear``, ``QuantConv1d/2d``/``nn.Conv1d/2d``,
``BatchNorm1d``/``BatchNorm2d`` after them, ``MaxPool1d/2d``, ``Hardtanh``/``ReLU``,
``Flatten``, ``Dropout``/``Identity`` (no-ops in eval). Anything else fails with an
:class:`ExportError` that names the layer. Each weighted layer is recorded with the
reason it runs binary or stays float.

Image values are NHWC in the runtime (a 1-D signal (C, L) is the image (1, L, C), its
convolutions and pools 1 × k): the first convolution is preceded by a ``to_nhwc`` node, and a dense layer after a ``Flatten`` of an image gets its weight
columns permuted from PyTorch's (C, H, W) order to (H, W, C), so no transpose runs.
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
from onebit.runtime.bitpack import pack_bits

# Input quantizers whose forward is sign(x) with sign(0) = +1: the engine packs their input.
SIGN_QUANTIZERS = ("ste_sign", "approx_sign", "swish_sign")
_NO_OPS = (nn.Dropout, nn.Identity)
_SUPPORTED = ("QuantLinear, Linear, QuantConv1d/2d, Conv1d/2d, BatchNorm1d/2d, MaxPool1d/2d, Hardtanh, ReLU, "
              "Flatten, Dropout, Identity")


@dataclass
class LayerReport:
    """One exported layer: where it runs and why."""

    name: str
    kind: str  # "binary", "binary weights, float input", "float"
    reason: str

    def __str__(self) -> str:
        return f"{self.name:24s} {self.kind:28s} {self.reason}"


@dataclass
class _Pending:
    """A weighted layer whose output stage is not known until the next consumer is seen."""

    op: str  # "dense" or "conv2d"
    name: str
    attrs: dict[str, Any]
    n: int
    k: int  # bits per output of a binary-input layer (range of y is [−k, k])
    in_bits: bool
    weight: np.ndarray  # float32, ±1 for binary weights; dense (n, k), conv (O, KH, KW, Cg)
    weight_bits: bool
    alpha: np.ndarray  # float64 (n,): z = alpha·y + beta
    beta: np.ndarray
    pool: dict[str, Any] | None = None  # max-pool of y, before BatchNorm
    bn: bool = False
    act: list[nn.Module] = field(default_factory=list)
    post_pool: dict[str, Any] | None = None  # max-pool after the activation
    flatten: str | None = None  # a Flatten that follows


def _layers(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    if isinstance(model, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            out += _layers(child, f"{prefix}{name}.")
        return out
    if prefix == "":
        raise ExportError(
            f"the exporter walks nn.Sequential models; {type(model).__name__} is not one "
            "(graphs with branches are not supported yet)"
        )
    return [(prefix[:-1], model)]


def _binary_weight(name: str, layer: nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    """(±1 weights, per-output scale α) if the layer's effective weight is binary, else None."""
    if not isinstance(layer, QuantLayer) or layer.weight_quantizer is None:
        return None
    if layer.weight_bits != 1:
        raise ExportError(
            f"layer {name!r}: {layer.weight_bits}-bit weights ({layer.weight_quantizer.name}) are not supported "
            "by the engine; it runs 1-bit or float weights"
        )
    wq = layer.quantized_weight().detach().double().numpy()
    rows = wq.reshape(wq.shape[0], -1)
    alpha = np.abs(rows).max(axis=1)
    signs = np.where(wq >= 0, 1.0, -1.0)
    if not np.allclose(rows, signs.reshape(rows.shape) * alpha[:, None], rtol=1e-6, atol=0) or (alpha <= 0).any():
        raise ExportError(f"layer {name!r}: weight quantizer {layer.weight_quantizer.name!r} does not give ±α per output")
    return signs.astype(np.float32), alpha


def _pool_attrs(name: str, m: nn.MaxPool1d | nn.MaxPool2d) -> dict[str, Any]:
    if isinstance(m, nn.MaxPool1d):  # as a 1 x k pool
        pair = lambda v: [1, v[0] if isinstance(v, tuple) else v]  # noqa: E731
        pad = lambda v: [0, v[0] if isinstance(v, tuple) else v]  # noqa: E731
    else:
        pair = pad = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    if m.ceil_mode or pad(m.dilation) not in ([1, 1], [0, 1]) or m.return_indices:
        raise ExportError(f"layer {name!r}: {type(m).__name__} with ceil_mode, dilation or return_indices is not supported")
    stride = m.stride if m.stride is not None else m.kernel_size
    return {"kernel": pair(m.kernel_size), "stride": pair(stride), "padding": pad(m.padding)}


class _Walk:
    """The state of the walk: the current value and the layer waiting for its output stage."""

    def __init__(self, in_shape: tuple[int, ...]):
        self.nodes: list[dict[str, Any]] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.report: list[LayerReport] = []
        self.value, self.bits, self.shape = "input", False, in_shape
        self.nchw = len(in_shape) in (2, 3)  # the user's layout (NCHW or NCL), until to_nhwc
        self.pending: _Pending | None = None
        self.flat_from: tuple[int, int, int] | None = None  # (H, W, C) of a flattened image
        self._count = 0

    def emit(self, op: str, name: str, attrs: dict[str, Any], arrays: dict[str, np.ndarray], bits: bool,
             shape: tuple[int, ...]) -> None:
        out = f"v{self._count}"
        self._count += 1
        refs = {}
        for key, array in arrays.items():
            refs[key] = f"{name}.{key}"
            self.tensors[refs[key]] = array
        node = {"op": op, "name": name, "input": self.value, "output": out, **attrs}
        if refs:
            node["tensors"] = refs
        self.nodes.append(node)
        self.value, self.bits, self.shape = out, bits, shape

    def flatten(self, name: str) -> None:
        if len(self.shape) == 1:
            return
        if self.nchw:
            self.emit("flatten", name, {}, {}, False, (int(np.prod(self.shape)),))
            return
        h, w, c = self.shape
        if self.bits and c % 64:
            raise ExportError(f"layer {name!r}: Flatten of binary activations needs a multiple of 64 channels, got {c}")
        self.flat_from = (h, w, c)
        self.emit("flatten", name, {}, {}, self.bits, (h * w * c,))

    def finish(self, next_is_binary: bool) -> None:
        d, self.pending = self.pending, None
        if d is None:
            return
        attrs = {**d.attrs, "weights": "bits" if d.weight_bits else "float"}
        arrays = {"weight": pack_bits(d.weight) if d.weight_bits else d.weight.astype(np.float32)}
        if d.pool is not None:
            attrs["pool"] = d.pool
        out_shape = (d.n,)
        if d.op == "conv2d":
            h, w = self.shape[0], self.shape[1]
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (attrs[k] for k in ("kernel", "stride", "padding", "dilation"))
            h, w = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            if d.pool is not None:
                (pkh, pkw), (psh, psw), (pph, ppw) = d.pool["kernel"], d.pool["stride"], d.pool["padding"]
                h, w = (h + 2 * pph - pkh) // psh + 1, (w + 2 * ppw - pkw) // psw + 1
            out_shape = (h, w, d.n)
        if next_is_binary:
            for a in d.act:
                if not isinstance(a, nn.Hardtanh) or not a.min_val < 0 <= a.max_val:
                    raise ExportError(
                        f"layer {d.name!r}: {type(a).__name__} before a sign changes the sign of its input; "
                        "the engine folds only sign-preserving activations (Hardtanh) into the threshold"
                    )
            attrs["out"] = "bits"
            if d.in_bits:
                arrays["threshold"], arrays["flip"] = thresholds(d.alpha, d.beta, d.k)
            else:
                arrays["scale"], arrays["bias"] = d.alpha.astype(np.float32), d.beta.astype(np.float32)
        else:
            attrs["out"], attrs["act"] = "float", _activation(d)
            arrays["scale"], arrays["bias"] = d.alpha.astype(np.float32), d.beta.astype(np.float32)
        self.emit(d.op, d.name, attrs, arrays, next_is_binary, out_shape)
        if d.post_pool is not None:
            self.emit("maxpool2d", f"{d.name}.pool", {"pool": d.post_pool}, {}, self.bits, _pooled(self.shape, d.post_pool))
        if d.flatten is not None:
            self.flatten(d.flatten)

    def begin(self, name: str, m: nn.Module) -> bool:
        """Common start of a weighted layer; returns whether its input is binary."""
        iq = m.input_quantizer if isinstance(m, QuantLayer) else None
        if iq is not None and iq.name not in SIGN_QUANTIZERS:
            raise ExportError(
                f"layer {name!r}: input quantizer {iq.name!r} is not supported by the engine; "
                f"supported: {', '.join(SIGN_QUANTIZERS)} or float (None)"
            )
        in_bits = iq is not None
        if self.pending is not None:
            self.finish(in_bits)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)) and self.nchw:
            if len(self.shape) != (2 if isinstance(m, nn.Conv1d) else 3):
                raise ExportError(f"layer {name!r}: {type(m).__name__} does not fit inputs of shape {self.shape}")
            c, h, w = self.shape if len(self.shape) == 3 else (self.shape[0], 1, self.shape[1])
            self.emit("to_nhwc", f"{name}.to_nhwc", {}, {}, False, (h, w, c))
            self.nchw = False
        if in_bits and not self.bits:
            self.emit("sign", f"{name}.sign", {}, {}, True, self.shape)
        return in_bits

    def scales(self, name: str, m: nn.Module, n: int) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
        """(binary weights?, weights as float32, alpha, beta) of a weighted layer."""
        binary = _binary_weight(name, m)
        weight, alpha = binary if binary is not None else (m.weight.detach().float().numpy(), np.ones(n))
        if isinstance(m, QuantLayer) and m.scale is not None:
            alpha = alpha * m.scale.detach().double().numpy()
        beta = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(n)
        return binary is not None, weight, alpha, beta

    def record(self, name: str, in_bits: bool, weight_bits: bool) -> None:
        if in_bits and weight_bits:
            self.report.append(LayerReport(name, "binary", "1-bit input and weights: XNOR-popcount"))
        elif weight_bits:
            self.report.append(LayerReport(name, "binary weights, float input",
                                           "float input (first layer): BLAS on ±1 weights stored at 1 bit"))
        else:
            self.report.append(LayerReport(name, "float", "float weights" + ("" if in_bits else " and float input")))


def _pooled(shape: tuple[int, ...], pool: dict[str, Any]) -> tuple[int, ...]:
    h, w, c = shape
    (kh, kw), (sh, sw), (ph, pw) = pool["kernel"], pool["stride"], pool["padding"]
    return ((h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1, c)


def capture(model: nn.Module, example: torch.Tensor) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[LayerReport]]:
    """Nodes, tensors and the per-layer report for ``model`` on inputs shaped like ``example``."""
    walk = _Walk(tuple(example.shape[1:]))
    for name, m in _layers(model):
        p = walk.pending
        if isinstance(m, _NO_OPS):
            continue
        if isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ExportError(f"layer {name!r}: only Flatten(start_dim=1, end_dim=-1) is supported")
            if p is not None:
                p.flatten = name
            else:
                walk.flatten(name)
            continue
        if isinstance(m, nn.Linear):
            in_bits = walk.begin(name, m)
            if walk.shape != (m.in_features,):
                raise ExportError(f"layer {name!r}: expects {m.in_features} features, its input has shape {walk.shape}")
            n, k = m.out_features, m.in_features
            weight_bits, weight, alpha, beta = walk.scales(name, m, n)
            if walk.flat_from is not None:  # columns from PyTorch's (C, H, W) order to the runtime's (H, W, C)
                h, w, c = walk.flat_from
                weight = weight.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, k)
                walk.flat_from = None
            walk.pending = _Pending("dense", name, {"k": k, "n": n}, n, k, in_bits, np.ascontiguousarray(weight),
                                    weight_bits, alpha, beta)
            walk.record(name, in_bits, weight_bits)
            continue
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            in_bits = walk.begin(name, m)
            pads = list(m._reversed_padding_repeated_twice)
            if isinstance(m, nn.Conv1d):  # a 1-D conv runs as a 1 x k 2-D conv on (1, L, C)
                pads += [0, 0]
            if m.padding_mode != "zeros" or pads[0] != pads[1] or pads[2] != pads[3]:
                raise ExportError(f"layer {name!r}: only symmetric zero-mode padding is supported, got {pads}")
            pad_value = float(getattr(m, "pad_value", 0.0)) if any(pads) else 0.0
            n = m.out_channels
            weight_bits, weight, alpha, beta = walk.scales(name, m, n)
            two_d = lambda v: [1, *v] if isinstance(m, nn.Conv1d) else list(v)  # noqa: E731
            attrs = {"cin": m.in_channels, "cout": n, "groups": m.groups, "kernel": two_d(m.kernel_size),
                     "stride": two_d(m.stride), "padding": [pads[2], pads[0]], "dilation": two_d(m.dilation),
                     "pad_value": int(pad_value)}
            k = m.in_channels // m.groups * int(np.prod(m.kernel_size))
            weight = weight.reshape(n, m.in_channels // m.groups, *attrs["kernel"])
            weight = np.ascontiguousarray(weight.transpose(0, 2, 3, 1))  # (O, KH, KW, Cg)
            walk.pending = _Pending("conv2d", name, attrs, n, k, in_bits, weight, weight_bits, alpha, beta)
            walk.record(name, in_bits, weight_bits)
            continue
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            pool = _pool_attrs(name, m)
            if p is not None and p.op == "conv2d" and p.pool is None and not p.bn and not p.act:
                p.pool = pool
            elif p is not None and p.op == "conv2d" and p.post_pool is None and p.flatten is None:
                p.post_pool = pool
            elif p is None and len(walk.shape) == 3 and not walk.nchw:
                walk.emit("maxpool2d", name, {"pool": pool}, {}, walk.bits, _pooled(walk.shape, pool))
            else:
                raise ExportError(f"layer {name!r}: MaxPool2d must follow a Conv2d (or its BatchNorm/activation)")
            continue
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if p is None or p.act or p.bn or p.post_pool or p.flatten:
                raise ExportError(f"layer {name!r}: {type(m).__name__} must directly follow a linear or conv layer")
            a, b = bn_affine(m)
            p.alpha, p.beta, p.bn = p.alpha * a, p.beta * a + b, True
            continue
        if isinstance(m, (nn.Hardtanh, nn.ReLU)):
            if p is None or p.post_pool or p.flatten:
                raise ExportError(f"layer {name!r}: {type(m).__name__} must follow a linear or conv layer (or its BatchNorm)")
            p.act.append(m)
            continue
        raise ExportError(f"layer {name!r} ({type(m).__name__}) is not supported by the exporter; supported: {_SUPPORTED}")
    if walk.pending is None:
        raise ExportError("the model does not end with a linear or conv layer (and its BatchNorm/activation)")
    walk.finish(False)
    if len(walk.shape) != 1:
        raise ExportError(f"the model's output has shape {walk.shape}; the engine returns (N, features): end with Flatten/Linear")
    return walk.nodes, walk.tensors, walk.report


def _activation(d: _Pending) -> str:
    if not d.act:
        return "none"
    if len(d.act) == 1 and isinstance(d.act[0], nn.ReLU):
        return "relu"
    if len(d.act) == 1 and isinstance(d.act[0], nn.Hardtanh) and (d.act[0].min_val, d.act[0].max_val) == (-1.0, 1.0):
        return "hardtanh"
    raise ExportError(f"layer {d.name!r}: activations {[type(a).__name__ for a in d.act]} are not supported on a float output")
