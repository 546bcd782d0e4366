"""QONNX export for the FINN / FPGA flow: ``to_qonnx(model_or_checkpoint, path)``.

QONNX (Pappalardo et al. 2022, "QONNX: Representing Arbitrary-Precision Quantized Neural
Networks") is ONNX plus a few quantization operators in the domain
``qonnx.custom_op.general``. FINN (Umuroglu et al. 2017) reads it, streamlines it (BatchNorm
and sign into integer thresholds, ``MultiThreshold``) and builds the dataflow accelerator.

What is written, per layer of the PyTorch model:

- a ±1 quantizer (``ste_sign``, ``approx_sign``, ``swish_sign``) → ``BipolarQuant(x, 1)``,
  ``y = sign(x)`` with sign(0) = +1, onebit's convention and QONNX's (``x >= 0 → +1``);
  ``magnitude_aware_sign`` / ``xnor_sign`` weights → ``BipolarQuant(W, α)`` with α_c = mean |W_c|
  per output channel; ReActNet's ``RSign`` → ``Sub(x, β)`` then ``BipolarQuant``;
- a threshold quantizer (``ste_heaviside``: 1[x ≥ 0], or 1[x > 0] when strict; ``ste_tern`` with a fixed Δ:
  sign(x)·1[|x| > Δ]) → ``MultiThreshold`` (y = out_scale · #{t ≤ x} + out_bias);
  DoReFa activations (round(clip(x, 0, 1)·n)/n, n = 2^k − 1) → ``Quant`` (scale 1/n, k bits, unsigned);
- the float layers as standard ONNX: ``MatMul`` (weights stored as W^T, FINN's layout), ``Conv``,
  ``BatchNormalization``, ``Clip`` (Hardtanh), ``Relu``/``PRelu``, ``MaxPool``/``AveragePool``,
  ``Flatten``, ``Add`` for residuals, ``Pad`` for a ±1 pad value.

A Hardtanh whose output goes (through dropout, flatten or max-pool only) into a layer with a
±1 input quantizer is written as that ``BipolarQuant`` itself: sign(clip(x, −1, 1)) = sign(x),
and max-pool commutes with the monotone sign, so this is the same function and the
BatchNorm → BipolarQuant → (MaxPool) pattern that Brevitas exports and FINN's streamlining
expects.

Why from the PyTorch model and not from the ``.onebit`` graph: FINN's flow starts from the
unfolded, Brevitas-like graph of the trained network (quantized weights beside their float
originals, BatchNorm as BatchNormalization) and does its own folding into thresholds for its
hardware; the ``.onebit`` graph has already folded BatchNorm into the runtime's integer
thresholds and packed the weights into words, a form FINN does not read back. The exported
file is checked against the PyTorch forward it came from (:func:`check_qonnx`).

Needs the optional extra ``onnx`` (``pip install 'onebit[onnx]'``: onnx, qonnx, onnxruntime).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from onebit.errors import ConfigError, ExportError
from onebit.nn.blocks import BiRealBlock, Residual, RPReLU, RSign
from onebit.nn.layers import QuantConv1d, QuantConv2d, QuantLinear
from onebit.nn.modes import eval_mode
from onebit.nn.quantizers import (
    ApproxSign,
    DoReFa,
    MagnitudeAwareSign,
    SteHeaviside,
    SteSign,
    SteTern,
    SwishSign,
    XnorSign,
)

__all__ = ["ONNX_OPSET", "QONNX_DOMAIN", "build_qonnx", "check_qonnx", "expand_quantizers", "to_qonnx"]

QONNX_DOMAIN = "qonnx.custom_op.general"
ONNX_OPSET = 13
INSTALL_HINT = "QONNX export needs the optional extra 'onnx': pip install 'onebit[onnx]'"

_SIGNS = (SteSign, ApproxSign, SwishSign)
_PASS_THROUGH = (nn.Dropout, nn.Identity)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _is_layer(m: nn.Module) -> bool:
    """A (quantized or float) linear or convolution layer."""
    return isinstance(m, (QuantLinear, QuantConv1d, QuantConv2d)) or type(m) in (nn.Linear, nn.Conv1d, nn.Conv2d)


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return onnx


class _Builder:
    """Collects nodes and initializers; every tensor name is unique."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self.fold_thresholds = False

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(value, dtype=dtype), name))  # scalars stay 0-d
        return name

    def node(self, op: str, inputs: list[str], hint: str, domain: str = "", **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=f"{op}_{self._count}", domain=domain,
                                                     **attrs))
        return out


def _channel_shape(rank: int, axis: int = 1) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector over ``axis`` of a rank-``rank`` tensor."""
    return tuple(-1 if i == axis else 1 for i in range(rank))


def _is_sign(q: Any) -> bool:
    return isinstance(q, _SIGNS)


def _quantize(b: _Builder, q: Any, x: str, sample: torch.Tensor, where: str, *, weight: bool = False,
              out_axis: int = 0) -> str:
    """Write quantizer ``q`` applied to tensor ``x`` (``sample`` is its value, for shapes and weight scales)."""
    rank = sample.dim()
    if _is_sign(q):
        return b.node("BipolarQuant", [x, b.const("scale", 1.0)], "bipolar", QONNX_DOMAIN)
    if isinstance(q, (MagnitudeAwareSign, XnorSign)):
        if not weight:
            raise ExportError(f"{where}: {type(q).__name__} scales weights per output channel, not activations")
        # α_c = mean |W_c| reduced in the layer's own [out, ...] layout, as the quantizer does (the same float sums)
        w = sample.movedim(out_axis, 0).contiguous()
        alpha = w.abs().mean(dim=tuple(range(1, rank))).reshape(_channel_shape(rank, out_axis))
        return b.node("BipolarQuant", [x, b.const("scale", alpha.numpy())], "bipolar", QONNX_DOMAIN)
    if isinstance(q, RSign):
        shift = q.shift.detach().reshape(_channel_shape(rank)).numpy()
        return b.node("BipolarQuant", [b.node("Sub", [x, b.const("rsign_shift", shift)], "shifted"),
                                       b.const("scale", 1.0)], "bipolar", QONNX_DOMAIN)
    layout = {2: "NC", 3: "NCW", 4: "NCHW"}.get(rank, "")
    if isinstance(q, SteHeaviside):
        # 1[x ≥ 0], or with strict 1[x > 0] = 1[x ≥ smallest positive float32]
        t = np.nextafter(np.float32(0), np.float32(1)) if getattr(q, "strict", False) else np.float32(0)
        return b.node("MultiThreshold", [x, b.const("thresholds", [[t]])], "binary", QONNX_DOMAIN,
                      out_dtype="BINARY", data_layout=layout)
    if isinstance(q, SteTern) and not q.ternary_weight_networks:
        delta = np.float32(q.threshold_value)
        # −1 below −Δ, 0 on [−Δ, Δ], +1 above Δ: #{t ≤ x} − 1 with t = (−Δ, next float after Δ).
        thresholds = [[-delta, np.nextafter(delta, np.float32(np.inf))]]
        return b.node("MultiThreshold", [x, b.const("thresholds", thresholds)], "ternary", QONNX_DOMAIN,
                      out_dtype="TERNARY", out_bias=-1.0, data_layout=layout)
    if isinstance(q, DoReFa) and q.mode == "activations":
        levels = 2**q.k_bit - 1
        return b.node("Quant", [x, b.const("scale", 1.0 / levels), b.const("zeropt", 0.0),
                                b.const("bitwidth", float(q.k_bit))], "quant", QONNX_DOMAIN,
                      signed=0, narrow=0, rounding_mode="ROUND")
    raise ExportError(
        f"{where}: quantizer {type(q).__name__} has no QONNX form here; supported: ste_sign, approx_sign, swish_sign, "
        "rsign, magnitude_aware_sign and xnor_sign (weights), ste_heaviside, ste_tern (fixed threshold), "
        "dorefa (activations)"
    )


def _onnx_pads(torch_pads: Iterable[int], spatial: int) -> list[int]:
    """PyTorch's (last-dim left, right, next-to-last left, right, …) as ONNX begins then ends over N, C, spatial."""
    p = list(torch_pads)
    begins = [p[2 * (spatial - 1 - i)] for i in range(spatial)]
    ends = [p[2 * (spatial - 1 - i) + 1] for i in range(spatial)]
    return [0, 0, *begins, 0, 0, *ends]


def _layer(b: _Builder, m: nn.Module, x: str, sample: torch.Tensor, where: str, input_done: bool,
           out_sign: np.ndarray | None = None) -> str:
    """A (quantized or float) linear or convolution layer; a float one is a layer without quantizers.

    ``out_sign`` (±1 per output channel) negates those channels' weights and bias: the layer then
    computes s_c · y_c exactly (a sign flip), for a threshold folded from a BatchNorm with γ_c < 0.
    """
    flip = out_sign is not None and bool((out_sign < 0).any())
    in_q = getattr(m, "input_quantizer", None)
    if in_q is not None and not input_done:
        x = _quantize(b, in_q, x, sample, f"{where}.input_quantizer")
    w_q = getattr(m, "weight_quantizer", None)
    w = m.weight.detach().float()
    if isinstance(m, QuantLinear) or type(m) is nn.Linear:
        wt = w.t().contiguous()  # MatMul takes [in, out]
        wq = b.const("weight", wt.numpy())
        if w_q is not None:
            wq = _quantize(b, w_q, wq, wt, f"{where}.weight_quantizer", weight=True, out_axis=1)
        if flip:
            wq = b.node("Mul", [wq, b.const("flip", out_sign.reshape(1, -1))], "flipped")
        y = b.node("MatMul", [x, wq], "matmul")
        channel_axis = sample.dim() - 1
    else:
        spatial = w.dim() - 2
        wq = b.const("weight", w.numpy())
        if w_q is not None:
            wq = _quantize(b, w_q, wq, w, f"{where}.weight_quantizer", weight=True, out_axis=0)
        if flip:
            wq = b.node("Mul", [wq, b.const("flip", out_sign.reshape(_channel_shape(w.dim(), 0)))], "flipped")
        pads = [0] * (2 * spatial)
        torch_pads = m._reversed_padding_repeated_twice
        if getattr(m, "same_strided", False):  # padding="same" with stride > 1: TensorFlow's pads, input-dependent
            torch_pads = m.same_padding(*sample.shape[-2:])
        if any(torch_pads):
            mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}.get(m.padding_mode)
            pad_value = getattr(m, "pad_value", 0.0)
            if mode == "constant" and pad_value == 0.0:
                full = _onnx_pads(torch_pads, spatial)  # Conv's own pads: spatial begins, then spatial ends
                pads = full[2:2 + spatial] + full[4 + spatial:]
            elif mode is None:
                raise ExportError(f"{where}: padding_mode {m.padding_mode!r} has no ONNX Pad mode")
            else:
                inputs = [x, b.const("pads", _onnx_pads(torch_pads, spatial), np.int64)]
                if mode == "constant":
                    inputs.append(b.const("pad_value", pad_value))
                x = b.node("Pad", inputs, "padded", mode=mode)
        y = b.node("Conv", [x, wq], "conv", kernel_shape=list(w.shape[2:]), strides=list(m.stride),
                   dilations=list(m.dilation), group=m.groups, pads=pads)
        channel_axis = 1
    rank = sample.dim()
    scale = getattr(m, "scale", None)
    if scale is not None:
        y = b.node("Mul", [y, b.const("scale", scale.detach().reshape(_channel_shape(rank, channel_axis)).numpy())],
                   "scaled")
    if m.bias is not None:
        bias = m.bias.detach().numpy() * (out_sign if flip else 1.0)
        y = b.node("Add", [y, b.const("bias", bias.reshape(_channel_shape(rank, channel_axis)))], "biased")
    return y


def _bn_sign_thresholds(bn: nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) with sign(BN(y)) = +1 ⟺ s_c·y_c ≥ t_c (sign(0) = +1), per channel c.

    BN(y) = γ(y − μ)/√(σ² + ε) + β ≥ 0 ⟺ y ≥ τ = μ − β√(σ² + ε)/γ for γ > 0, y ≤ τ for γ < 0:
    s = sign(γ), t = s·τ; γ = 0 gives the constant sign(β) (t = ∓ the largest float32).
    """
    c = bn.num_features
    gamma = (bn.weight.detach() if bn.weight is not None else torch.ones(c)).double().numpy()
    beta = (bn.bias.detach() if bn.bias is not None else torch.zeros(c)).double().numpy()
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    s = np.where(gamma < 0, -1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = mean - beta * np.sqrt(var + bn.eps) / gamma
    big = float(np.finfo(np.float32).max)
    t = np.where(gamma == 0, np.where(beta >= 0, -big, big), s * tau)
    return s.astype(np.float32), t.astype(np.float32)


def _sign_consumer(mods: list[nn.Module], j: int) -> tuple[nn.Module | None, list[int]]:
    """The layer after ``mods[j]`` whose ±1 input quantizer takes ``mods[j]``'s output (through dropout,
    flatten, max-pool and ±1 Hardtanh only), and the indices of those Hardtanh, which the sign makes redundant."""
    hardtanh = []
    for k in range(j + 1, len(mods)):
        m = mods[k]
        if isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (-1.0, 1.0):
            hardtanh.append(k)
        elif isinstance(m, _PASS_THROUGH + (nn.Flatten, nn.MaxPool1d, nn.MaxPool2d)):
            continue
        elif isinstance(m, (QuantLinear, QuantConv1d, QuantConv2d)) and _is_sign(m.input_quantizer):
            return m, hardtanh
        else:
            break
    return None, []


def _batchnorm(b: _Builder, m: nn.modules.batchnorm._BatchNorm, x: str, where: str) -> str:
    if m.running_mean is None or m.running_var is None:
        raise ExportError(f"{where}: BatchNorm without running statistics (track_running_stats=False) cannot be "
                          "exported; it normalizes with the batch's own statistics")
    c = m.num_features
    gamma = m.weight.detach() if m.weight is not None else torch.ones(c)
    beta = m.bias.detach() if m.bias is not None else torch.zeros(c)
    return b.node("BatchNormalization", [x, b.const("bn_gamma", gamma.numpy()), b.const("bn_beta", beta.numpy()),
                                         b.const("bn_mean", m.running_mean.numpy()),
                                         b.const("bn_var", m.running_var.numpy())],
                  "batchnorm", epsilon=float(m.eps))


def _absorbed_by_next_sign(mods: list[nn.Module], i: int) -> nn.Module | None:
    """The layer after ``mods[i]`` (a Hardtanh) whose ±1 input quantizer makes the Hardtanh redundant, if any."""
    for m in mods[i + 1:]:
        if isinstance(m, _PASS_THROUGH + (nn.MaxPool1d, nn.MaxPool2d)):
            continue
        if isinstance(m, nn.Flatten):
            continue
        if isinstance(m, (QuantLinear, QuantConv1d, QuantConv2d)) and _is_sign(m.input_quantizer):
            return m
        return None
    return None


def _emit(b: _Builder, m: nn.Module, x: str, sample: torch.Tensor, where: str,
          input_done: bool = False) -> tuple[str, torch.Tensor]:
    """Write module ``m`` applied to tensor ``x``; returns the output name and the output sample."""
    out = m(sample)
    if isinstance(m, nn.Sequential):
        mods = list(m)
        absorbed: set[int] = set()
        skip: set[int] = set()
        for i, child in enumerate(mods):
            path = f"{where}.{i}" if where else str(i)
            if i in skip:
                sample = child(sample)
                continue
            if b.fold_thresholds and _is_layer(child) and i + 1 < len(mods) and isinstance(mods[i + 1], _BATCHNORMS):
                consumer, hardtanh = _sign_consumer(mods, i + 1)
                if consumer is not None and mods[i + 1].running_var is not None:
                    # layer → BatchNorm → sign as layer → MultiThreshold (FINN's streamlined form)
                    s, t = _bn_sign_thresholds(mods[i + 1])
                    y = _layer(b, child, x, sample, path, id(child) in absorbed, out_sign=s)
                    sample = mods[i + 1](child(sample))
                    layout = {2: "NC", 3: "NCW", 4: "NCHW"}.get(sample.dim(), "")
                    x = b.node("MultiThreshold", [y, b.const("thresholds", t.reshape(-1, 1))], "thresholded",
                               QONNX_DOMAIN, out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0, data_layout=layout)
                    skip.update([i + 1, *hardtanh])
                    absorbed.add(id(consumer))
                    continue
            if isinstance(child, nn.Hardtanh) and (child.min_val, child.max_val) == (-1.0, 1.0):
                nxt = _absorbed_by_next_sign(mods, i)
                if nxt is not None:
                    x = _quantize(b, nxt.input_quantizer, x, sample, f"{path} (with the next layer's sign)")
                    sample = child(sample)
                    absorbed.add(id(nxt))
                    continue
            x, sample = _emit(b, child, x, sample, path, input_done=id(child) in absorbed)
        return x, out
    if _is_layer(m):
        return _layer(b, m, x, sample, where, input_done), out
    if isinstance(m, _BATCHNORMS):
        return _batchnorm(b, m, x, where), out
    if isinstance(m, _PASS_THROUGH):
        return x, out
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ExportError(f"{where}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported; "
                              "only Flatten(1, -1)")
        return b.node("Flatten", [x], "flat", axis=1), out
    if isinstance(m, nn.Hardtanh):
        return b.node("Clip", [x, b.const("min", m.min_val), b.const("max", m.max_val)], "clip"), out
    if isinstance(m, nn.ReLU):
        return b.node("Relu", [x], "relu"), out
    if isinstance(m, nn.PReLU):
        slope = m.weight.detach().reshape(_channel_shape(sample.dim()) if m.num_parameters > 1 else (1,))
        return b.node("PRelu", [x, b.const("slope", slope.numpy())], "prelu"), out
    if isinstance(m, RPReLU):
        shape = _channel_shape(sample.dim())
        z = b.node("Sub", [x, b.const("shift_in", m.shift_in.detach().reshape(shape).numpy())], "rprelu_in")
        z = b.node("PRelu", [z, b.const("slope", m.slope.detach().reshape(shape).numpy())], "rprelu")
        return b.node("Add", [z, b.const("shift_out", m.shift_out.detach().reshape(shape).numpy())], "rprelu_out"), out
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
        return _pool(b, m, x, sample, where, "MaxPool"), out
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
        return _pool(b, m, x, sample, where, "AveragePool"), out
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,)
        if any(s != 1 for s in size):
            raise ExportError(f"{where}: AdaptiveAvgPool with output size {m.output_size} is not supported; only 1")
        return b.node("GlobalAveragePool", [x], "gap"), out
    if isinstance(m, Residual):
        body, _ = _emit(b, m.body, x, sample, f"{where}.body")
        short, _ = _emit(b, m.shortcut, x, sample, f"{where}.shortcut")
        return b.node("Add", [body, short], "residual"), out
    if isinstance(m, BiRealBlock):
        y, s = _emit(b, m.conv, x, sample, f"{where}.conv")
        y, _ = _emit(b, m.bn, y, s, f"{where}.bn")
        short, _ = _emit(b, m.shortcut, x, sample, f"{where}.shortcut")
        return b.node("Add", [y, short], "residual"), out
    raise ExportError(
        f"{where or 'model'}: {type(m).__name__} has no QONNX form here; supported: Sequential, QuantLinear, "
        "QuantConv1d/2d, Linear, Conv1d/2d, BatchNorm1d/2d, Hardtanh, ReLU, PReLU, RPReLU, MaxPool, AvgPool, "
        "AdaptiveAvgPool(1), Flatten, Dropout, Identity, Residual, BiRealBlock"
    )


def _pool(b: _Builder, m: nn.Module, x: str, sample: torch.Tensor, where: str, op: str) -> str:
    spatial = sample.dim() - 2

    def tup(v: Any) -> list[int]:
        return list(v) if isinstance(v, (tuple, list)) else [int(v)] * spatial

    attrs: dict[str, Any] = {"kernel_shape": tup(m.kernel_size), "strides": tup(m.stride or m.kernel_size),
                             "pads": tup(m.padding) * 2, "ceil_mode": int(m.ceil_mode)}
    if op == "MaxPool":
        if any(d != 1 for d in tup(m.dilation)):
            attrs["dilations"] = tup(m.dilation)
        # padded positions never win, in PyTorch (−inf) as in ONNX
    else:
        attrs["count_include_pad"] = int(m.count_include_pad)
        if getattr(m, "divisor_override", None) is not None:
            raise ExportError(f"{where}: AvgPool with divisor_override has no ONNX form")
    return b.node(op, [x], op.lower(), **attrs)


def build_qonnx(model: nn.Module, in_shape: tuple[int, ...], *, batch_size: int = 1, name: str = "onebit",
                fold_thresholds: bool = False) -> Any:
    """The QONNX ``onnx.ModelProto`` of ``model`` (eval mode) for inputs of shape ``(batch_size, *in_shape)``;
    ``fold_thresholds`` as in :func:`to_qonnx`."""
    onnx = _require_onnx()
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    in_shape = tuple(int(s) for s in in_shape)
    if not in_shape or any(s < 1 for s in in_shape):
        raise ConfigError(f"in_shape must be positive sizes without the batch axis, e.g. (1, 28, 28); got {in_shape}")
    b = _Builder(onnx)
    b.fold_thresholds = bool(fold_thresholds)
    with eval_mode(model), torch.no_grad():
        sample = torch.zeros((1, *in_shape))
        last, out = _emit(b, model, "global_in", sample, "")
    # FINN's names for the graph's input and output
    if last == "global_in":
        b.nodes.append(onnx.helper.make_node("Identity", [last], ["global_out"], name="Identity_out"))
    for n in b.nodes:
        for i, output in enumerate(n.output):
            if output == last:
                n.output[i] = "global_out"
    tensor = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        b.nodes, name,
        [onnx.helper.make_tensor_value_info("global_in", tensor, [batch_size, *in_shape])],
        [onnx.helper.make_tensor_value_info("global_out", tensor, [batch_size, *out.shape[1:]])],
        b.initializers,
    )
    proto = onnx.helper.make_model(
        graph, producer_name="onebit",
        opset_imports=[onnx.helper.make_opsetid("", ONNX_OPSET), onnx.helper.make_opsetid(QONNX_DOMAIN, 1)],
    )
    proto.ir_version = 8  # opset 13 with a custom domain: readable by the onnx versions FINN pins
    return proto


def to_qonnx(
    model_or_checkpoint: nn.Module | str | os.PathLike,
    path: str | os.PathLike,
    *,
    in_shape: tuple[int, ...] | None = None,
    batch_size: int = 1,
    fold_thresholds: bool = False,
) -> Path:
    """Write ``model_or_checkpoint`` (an ``nn.Module`` or a checkpoint written by ``onebit train``) to
    ``path`` as QONNX; returns the path.

    ``in_shape`` (without the batch axis) is read from a checkpoint and required for a module.
    ``batch_size`` is the graph's fixed batch axis (1, as FINN expects; QONNX's ``cleanup`` with
    ``override_inpsize`` changes it). The file passes ``onnx.checker``; run :func:`check_qonnx`
    to compare it with the PyTorch forward.

    ``fold_thresholds=False`` (default) writes the unfolded graph FINN's ``ConvertQONNXtoFINN``
    takes (BatchNormalization → BipolarQuant). ``True`` writes each layer → BatchNorm → sign as
    layer → ``MultiThreshold`` (FINN's streamlined form): sign(BN(y_c)) = +1 ⟺ s_c·y_c ≥ t_c with
    s = sign(γ), t = s·(μ − β√(σ² + ε)/γ); channels with γ_c < 0 get their weights (and bias) negated,
    which flips y_c exactly. BatchNorms not followed by a sign stay BatchNormalization.
    """
    onnx = _require_onnx()
    name = "onebit"
    if isinstance(model_or_checkpoint, nn.Module):
        model = model_or_checkpoint
        if in_shape is None:
            raise ConfigError("to_qonnx needs in_shape (the input shape without the batch axis) for a module")
    else:
        from onebit.checkpoint import load_checkpoint

        model, meta = load_checkpoint(model_or_checkpoint)
        name = str(meta["model"]["name"])
        recorded = meta["model"]["args"].get("in_shape")
        if in_shape is None:
            if recorded is None:
                raise ConfigError(f"{model_or_checkpoint} records no in_shape; pass in_shape")
            in_shape = tuple(recorded)
    proto = build_qonnx(model, tuple(in_shape), batch_size=batch_size, name=name, fold_thresholds=fold_thresholds)
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def expand_quantizers(proto: Any) -> Any:
    """A copy of a QONNX model with ``BipolarQuant``, ``MultiThreshold`` and ``Quant`` written as standard
    ONNX ops (opset 13), for runtimes without QONNX (onnxruntime):

    - BipolarQuant(x, s) = Where(x ≥ 0, s, −s);
    - MultiThreshold(x, T) = out_scale · Σ_j 1[x ≥ T_cj] + out_bias (thresholds broadcast on the channel axis 1);
    - Quant(x, s, z, k) = (clip(round(x/s + z), lo, hi) − z) · s, lo/hi of the signed/unsigned, narrow k-bit range
      (rounding mode ROUND only).
    """
    onnx = _require_onnx()
    from onnx import numpy_helper

    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    out = ModelWrapper(proto).transform(InferShapes()).model  # a copy, every tensor's shape known
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
             for vi in [*out.graph.value_info, *out.graph.input, *out.graph.output]}
    graph = out.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = list(graph.node)
    del graph.node[:]
    count = [0]

    def const(value: Any, dtype: Any = np.float32) -> str:
        count[0] += 1
        name = f"expand_const_{count[0]}"
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        count[0] += 1
        output = output or f"expand_{count[0]}"
        graph.node.append(onnx.helper.make_node(op, inputs, [output], name=f"expand_{op}_{count[0]}", **attrs))
        return output

    for n in nodes:
        if n.domain != QONNX_DOMAIN:
            graph.node.append(n)
            continue
        x, y = n.input[0], n.output[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "BipolarQuant":
            s = n.input[1]
            node("Where", [node("GreaterOrEqual", [x, const(0.0)]), s, node("Neg", [s])], y)
        elif n.op_type == "MultiThreshold":
            thresholds = inits[n.input[1]]  # (C or 1, T)
            layout = attrs.get("data_layout", b"")
            layout = layout.decode() if isinstance(layout, bytes) else layout
            if layout not in ("", "NC", "NCW", "NCHW"):
                raise ExportError(f"{n.name}: MultiThreshold data_layout {layout!r} is not channels-first")
            channels, steps = thresholds.shape
            # x[..., None] >= T reshaped to (C, 1, ..., 1, T) over the axes after the channel.
            rank = ranks[x] if x in ranks else inits[x].ndim
            t = thresholds.reshape((channels,) + (1,) * (rank - 2) + (steps,))
            hit = node("Cast", [node("GreaterOrEqual", [node("Unsqueeze", [x, const([-1], np.int64)]), const(t)])],
                       to=onnx.TensorProto.FLOAT)
            total = node("ReduceSum", [hit, const([-1], np.int64)], keepdims=0)
            scaled = node("Mul", [total, const(attrs.get("out_scale", 1.0))])
            node("Add", [scaled, const(attrs.get("out_bias", 0.0))], y)
        elif n.op_type == "Quant":
            rounding = attrs.get("rounding_mode", b"ROUND")
            rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
            if rounding != "ROUND":
                raise ExportError(f"{n.name}: Quant rounding_mode {rounding!r} is not expanded; only ROUND")
            s, z, bits = n.input[1], n.input[2], float(inits[n.input[3]])
            signed, narrow = int(attrs.get("signed", 1)), int(attrs.get("narrow", 0))
            lo = -(2 ** (bits - 1)) + narrow if signed else 0.0
            hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1 - narrow
            q = node("Clip", [node("Round", [node("Add", [node("Div", [x, s]), z])]), const(lo), const(hi)])
            node("Mul", [node("Sub", [q, z]), s], y)
        else:
            raise ExportError(f"{n.name}: QONNX op {n.op_type} is not expanded; supported: BipolarQuant, "
                              "MultiThreshold, Quant")
    keep = [o for o in out.opset_import if o.domain != QONNX_DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    return out


def check_qonnx(
    path: str | os.PathLike,
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    rtol: float = 1e-4,
) -> dict[str, Any]:
    """Run the QONNX file ``path`` with QONNX's executor on inputs ``x`` (one batched call, via QONNX's
    ``cleanup_model`` with ``override_inpsize``) and compare with ``model``'s PyTorch forward.

    Returns ``{"samples", "same_prediction", "max_rel_err", "qonnx_logits", "torch_logits"}``;
    ``max_rel_err`` = max |a − b| / max(|b|, 1) over all logits (relative, floored at 1 so logits near 0
    are compared absolutely). Raises :class:`ExportError` when predictions differ or the error
    exceeds ``rtol``.
    """
    _require_onnx()
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.util.cleanup import cleanup_model
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    xs = torch.as_tensor(np.asarray(x, dtype=np.float32))
    wrapper = cleanup_model(ModelWrapper(str(path)), override_inpsize=int(xs.shape[0]))
    got = execute_onnx(wrapper, {wrapper.graph.input[0].name: xs.numpy()})[wrapper.graph.output[0].name]
    with eval_mode(model), torch.no_grad():
        want = model(xs).numpy()
    rel = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0))) if want.size else 0.0
    same = float(np.mean(got.argmax(-1) == want.argmax(-1))) if want.ndim > 1 else 1.0
    result = {"samples": int(xs.shape[0]), "same_prediction": same, "max_rel_err": rel,
              "qonnx_logits": got, "torch_logits": want}
    if same < 1.0 or not rel <= rtol or not math.isfinite(rel):
        raise ExportError(f"{path}: QONNX execution differs from PyTorch: same prediction on {same:.2%} of "
                          f"{xs.shape[0]} inputs, max relative logit error {rel:.3g} (tolerance {rtol:g})")
    return result
