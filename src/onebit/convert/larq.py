"""Larq/Keras models into onebit: each Keras layer of the file becomes onebit's equivalent.

Layouts: Keras is NHWC, onebit NCHW; a conv kernel (kh, kw, cin/g, cout) becomes
(cout, cin/g, kh, kw), a depthwise kernel (kh, kw, C, M) becomes (C·M, 1, kh, kw) (output
channel c·M + m, as TensorFlow orders them), a dense kernel (in, out) its transpose, with
its rows reordered from Keras's (H, W, C) flatten order to PyTorch's (C, H, W) where a
Flatten of an image feeds it. BatchNormalization keeps its epsilon and its momentum
(PyTorch's momentum = 1 − Keras's). ``padding="same"`` is TensorFlow's for every stride
(:meth:`onebit.nn.QuantConv2d.same_padding`); Larq's ``pad_values`` is the layer's
``pad_value``, padding the quantized input as Larq does.

Quantizers (Larq → onebit): ``ste_sign``, ``approx_sign``, ``swish_sign``,
``magnitude_aware_sign`` (not on depthwise kernels: Larq takes one mean per depth
multiplier there), ``dorefa`` map one to one; ``ste_heaviside`` maps to
``SteHeaviside(strict=True)`` (Larq's step gives 0 at x = 0); ``ste_tern`` with a fixed
threshold Δ > 0 maps to onebit's exclusive threshold at the next float32 below Δ, which
is Larq's inclusive one (``sign(sign(x + Δ) + sign(x − Δ))`` gives ±1 at |x| = Δ); with
``ternary_weight_networks`` Δ is computed from the weights and only |w| = Δ exactly can
differ. Anything onebit cannot represent raises :class:`~onebit.errors.ModelFileError`
naming the layer.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from onebit.convert.keras_file import KerasFile, read_keras_h5
from onebit.errors import ModelFileError
from onebit.nn.layers import QuantConv2d, QuantLinear, same_pads
from onebit.nn.quantizers import (
    ApproxSign,
    DoReFa,
    MagnitudeAwareSign,
    Quantizer,
    SteHeaviside,
    SteSign,
    SteTern,
    SwishSign,
    XnorSign,
)

__all__ = ["KerasGraph", "build_graph", "convert_file", "from_larq", "load_converted"]

_LARQ_LAYERS = ("QuantConv2D", "QuantDepthwiseConv2D", "QuantSeparableConv2D", "QuantDense")
_QUANTIZER_NAMES = {
    "ste_sign": "SteSign", "stesign": "SteSign", "approx_sign": "ApproxSign", "approxsign": "ApproxSign",
    "swish_sign": "SwishSign", "swishsign": "SwishSign", "magnitude_aware_sign": "MagnitudeAwareSign",
    "magnitudeawaresign": "MagnitudeAwareSign", "ste_heaviside": "SteHeaviside", "steheaviside": "SteHeaviside",
    "ste_tern": "SteTern", "stetern": "SteTern", "dorefa": "DoReFa", "dorefa_quantizer": "DoReFa",
    "dorefaquantizer": "DoReFa", "noop": "NoOp", "no_op": "NoOp", "xnor_weight_scale": "XnorWeightScale",
}
_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "hard_tanh": nn.Hardtanh}
_SUPPORTED = ("InputLayer, QuantConv2D, QuantDepthwiseConv2D, QuantSeparableConv2D, QuantDense, Conv2D, "
              "DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, Activation, ReLU, PReLU, Softmax, "
              "MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, ZeroPadding2D, Flatten, Reshape, Dropout, "
              "Add, Multiply, Concatenate, TFOpLambda (add, multiply), Lambda (the identity lambda x: x)")
# CPython's bytecode of ``lambda x: x`` (LOAD_FAST 0, RETURN_VALUE; 3.11 and 3.12 start with RESUME 0).
_IDENTITY_CODE = (b"|\x00S\x00", b"\x97\x00|\x00S\x00")


def _is_identity_lambda(cfg: dict[str, Any]) -> bool:
    """Whether a Keras ``Lambda`` layer's function is ``lambda x: x`` (Larq zoo's Real-to-Binary Net names its
    block outputs with one), read from the marshalled code's header and bytecode without loading it."""
    fn = cfg.get("function")
    if cfg.get("function_type") != "lambda" or cfg.get("arguments") or not isinstance(fn, list | tuple) or not fn:
        return False
    try:
        raw = base64.b64decode(str(fn[0]), validate=False)
    except (binascii.Error, ValueError):
        return False
    if len(raw) < 5 or raw[0] & 0x7F != ord("c") or int.from_bytes(raw[1:5], "little") < 1:  # a code object, ≥ 1 arg
        return False
    for fields in (5, 6):  # int32 fields before co_code: 5 in CPython ≥ 3.11, 6 (with nlocals) in 3.8-3.10
        at = 1 + 4 * fields
        if len(raw) >= at + 5 and raw[at] & 0x7F == ord("s"):
            n = int.from_bytes(raw[at + 1:at + 5], "little")
            if raw[at + 5:at + 5 + n] in _IDENTITY_CODE:
                return True
    return False


class KerasGraph(nn.Module):
    """A converted Keras functional model: named onebit layers run in the file's order.

    ``steps`` lists ``(op, layer key, input positions)``; position 0 is the model input and
    step i writes position i + 1. ``op`` is ``"layer"`` (run ``layers[key]``), ``"add"``,
    ``"mul"`` or ``"concat"`` (channels). The forward is a plain loop, so ``torch.fx`` (and
    so ``onebit export``) sees every layer, residual add and concatenation.
    """

    def __init__(self, layers: dict[str, nn.Module], steps: list[tuple[str, str, tuple[int, ...]]], output: int,
                 name: str = "keras_model", in_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.steps = [(op, key, tuple(inputs)) for op, key, inputs in steps]
        self.output = output
        self.keras_name = name
        self.in_shape = tuple(in_shape)  # PyTorch's: (C, H, W) for images, (F,) for vectors

    def forward(self, x: Tensor) -> Tensor:
        values = [x]
        for op, key, inputs in self.steps:
            if op == "layer":
                y = self.layers[key](values[inputs[0]])
            elif op == "concat":
                y = torch.cat([values[i] for i in inputs], dim=1)
            else:
                y = values[inputs[0]]
                for i in inputs[1:]:
                    y = y + values[i] if op == "add" else y * values[i]
            values.append(y)
        return values[self.output]

    def extra_repr(self) -> str:
        return f"keras_name={self.keras_name!r}, steps={len(self.steps)}"


@dataclass
class _Value:
    """A Keras tensor while building: its position, Keras shape (no batch) and flatten origin."""

    index: int
    shape: tuple[int, ...]
    flat_from: tuple[int, int, int] | None = None  # (C, H, W) of a flattened image with H·W > 1


def _class(layer: dict[str, Any]) -> str:
    return str(layer["class_name"]).rsplit(">", 1)[-1]


def _quantizer(spec: Any, where: str, depthwise: bool = False) -> Quantizer | None:
    """The onebit quantizer of a serialized Larq quantizer (a name, a config dict, or None)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        name, cfg = spec, {}
    elif isinstance(spec, dict) and spec.get("class_name") == "function" and isinstance(spec.get("config"), str):
        name, cfg = spec["config"], {}  # a registered function, e.g. Larq-zoo's xnor_weight_scale
    elif isinstance(spec, dict) and "class_name" in spec:
        name, cfg = str(spec["class_name"]).rsplit(">", 1)[-1], dict(spec.get("config") or {})
    else:
        raise ModelFileError(f"{where}: cannot read quantizer {spec!r}")
    cls = _QUANTIZER_NAMES.get(name.lower(), name)
    if cls == "NoOp":
        return None
    if cls == "SteSign":
        return SteSign(cfg.get("clip_value", 1.0))
    if cls == "ApproxSign":
        return ApproxSign()
    if cls == "SwishSign":
        return SwishSign(cfg.get("beta", 5.0))
    if cls == "MagnitudeAwareSign":
        if depthwise:
            raise ModelFileError(f"{where}: magnitude_aware_sign on a depthwise kernel (Larq scales by one mean per "
                                 "depth multiplier across channels; onebit per output channel) is not supported")
        return MagnitudeAwareSign(cfg.get("clip_value", 1.0))
    if cls == "SteHeaviside":
        return SteHeaviside(cfg.get("clip_value", 1.0), strict=True)
    if cls == "SteTern":
        delta = float(cfg.get("threshold_value", 0.05))
        if delta > 0:  # onebit keeps |x| > Δ', Larq |x| ≥ Δ: the same set for float32 x when Δ' = prev(Δ)
            delta = float(np.nextafter(np.float32(delta), np.float32(0)))
        return SteTern(delta, bool(cfg.get("ternary_weight_networks", False)), cfg.get("clip_value", 1.0))
    if cls == "XnorWeightScale":  # Larq-zoo's XNOR-Net: α·sign(clip(w, −1, 1)), α = mean |clip(w)| per output
        return XnorSign(1.0)  # the same once the latent weights are clipped, which the converter does at load
    if cls == "DoReFa":
        return DoReFa(int(cfg.get("k_bit", 2)), str(cfg.get("mode", "activations")))
    raise ModelFileError(f"{where}: quantizer {name!r} has no onebit equivalent; supported: ste_sign, approx_sign, "
                         "swish_sign, magnitude_aware_sign, ste_heaviside, ste_tern, dorefa, NoOp, "
                         "xnor_weight_scale (Larq-zoo)")


def _activation(name: Any, where: str) -> nn.Module | None:
    """A Keras activation (by name) as a module; None for ``linear``. Larq quantizers are activations too."""
    if isinstance(name, dict):  # a registered function: {"class_name": "function", "config": NAME}
        name = name.get("config") if name.get("class_name") == "function" else name.get("class_name", name)
    name = str(name)
    if name in ("linear", "None"):
        return None
    if name in _ACTIVATIONS:
        return _ACTIVATIONS[name]()
    if name == "softmax":
        return nn.Softmax(dim=1)
    if name == "clip_by_value_activation":  # Larq-zoo's DoReFa-Net: clip(x, 0, 1)
        return nn.Hardtanh(0.0, 1.0)
    if name.lower() in _QUANTIZER_NAMES:
        return _quantizer(name, where)
    raise ModelFileError(f"{where}: activation {name!r} is not supported; supported: linear, relu, sigmoid, tanh, "
                         "hard_tanh, softmax, and the Larq quantizers")


def _with_activation(module: nn.Module, cfg: dict[str, Any], where: str) -> nn.Module:
    act = _activation(cfg.get("activation", "linear"), where)
    return module if act is None else nn.Sequential(module, act)


class _Builder:
    def __init__(self, keras: KerasFile) -> None:
        self.keras = keras
        self.layers: dict[str, nn.Module] = {}
        self.steps: list[tuple[str, str, tuple[int, ...]]] = []

    def weights(self, name: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        """The layer's Keras arrays by short name, checked against their expected Keras shapes.

        With no weights (``KerasFile.weights`` None: rebuilding a checkpoint's architecture)
        zeros, ones for BatchNorm's γ and variance."""
        if self.keras.weights is None:
            return {k: (np.ones if k in ("gamma", "moving_variance") else np.zeros)(shape, np.float32)
                    for k, shape in shapes.items()}
        arrays = dict(self.keras.weights.get(name, []))
        missing = [w for w in shapes if w not in arrays]
        if missing:
            raise ModelFileError(f"{self.keras.path}: layer {name!r} lacks weights {missing} (found {sorted(arrays)})")
        for k, shape in shapes.items():
            if k != "alpha" and tuple(arrays[k].shape) != tuple(shape):
                raise ModelFileError(f"{self.keras.path}: layer {name!r} weight {k!r} has shape "
                                     f"{tuple(arrays[k].shape)}, the architecture needs {tuple(shape)}")
        return arrays

    def key(self, name: str) -> str:
        key = name.replace(".", "_")
        while key in self.layers:
            key += "_"
        return key

    def add_layer(self, name: str, module: nn.Module, x: _Value, shape: tuple[int, ...],
                  flat_from: tuple[int, int, int] | None = None) -> _Value:
        key = self.key(name)
        self.layers[key] = module
        self.steps.append(("layer", key, (x.index,)))
        return _Value(len(self.steps), shape, flat_from)

    def merge(self, op: str, inputs: list[_Value], where: str) -> _Value:
        shapes = {v.shape for v in inputs}
        full = max(shapes, key=lambda sh: int(np.prod(sh)))
        # (1, 1, C) broadcasts over an image (H, W, C): a per-channel gate, as Real-to-Binary Net's
        if op != "concat" and any(sh != full and not (len(sh) == 3 and sh[:2] == (1, 1) and sh[2] == full[-1])
                                  for sh in shapes):
            raise ModelFileError(f"{where}: {op} of tensors with shapes {sorted(shapes)}")
        if any(v.flat_from for v in inputs):
            raise ModelFileError(f"{where}: {op} of flattened images is not supported")
        if op == "concat":
            if any(len(v.shape) != 3 or v.shape[:2] != inputs[0].shape[:2] for v in inputs):
                raise ModelFileError(f"{where}: only concatenation of images along channels is supported")
            shape = (*inputs[0].shape[:2], sum(v.shape[2] for v in inputs))
        else:
            shape = full
        self.steps.append((op, "", tuple(v.index for v in inputs)))
        return _Value(len(self.steps), shape)

    # ---- one Keras layer

    def layer(self, layer: dict[str, Any], inputs: list[_Value]) -> _Value:
        cls, cfg = _class(layer), layer.get("config", {})
        name = str(cfg.get("name", layer.get("name", cls)))
        where = f"layer {name!r} ({cls})"
        if cls in ("Add", "Multiply", "Concatenate"):
            if cls == "Concatenate" and cfg.get("axis", -1) not in (-1, 3):
                raise ModelFileError(f"{where}: only concatenation along channels (axis -1) is supported")
            return self.merge({"Add": "add", "Multiply": "mul", "Concatenate": "concat"}[cls], inputs, where)
        if cls == "TFOpLambda":
            fn = str(cfg.get("function", ""))
            if fn in ("__operators__.add", "math.add"):
                return self.merge("add", inputs, where)
            if fn == "math.multiply":
                return self.merge("mul", inputs, where)
            raise ModelFileError(f"{where}: TensorFlow op {fn!r} is not supported; supported: add, multiply")
        if len(inputs) != 1:
            raise ModelFileError(f"{where}: expected one input, got {len(inputs)}")
        x = inputs[0]
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise ModelFileError(f"{where}: only data_format='channels_last' is supported")
        if cls == "Lambda":
            if not _is_identity_lambda(cfg):
                raise ModelFileError(f"{where}: a Lambda layer's Python code is not supported (only the identity "
                                     "lambda x: x, as Larq zoo's Real-to-Binary Net uses)")
            return x
        if cls in ("QuantConv2D", "Conv2D", "QuantDepthwiseConv2D", "DepthwiseConv2D",
                   "QuantSeparableConv2D", "SeparableConv2D"):
            return self.conv(cls, name, cfg, x, where)
        if cls in ("QuantDense", "Dense"):
            return self.dense(name, cfg, x, where)
        if cls == "BatchNormalization":
            return self.batchnorm(name, cfg, x, where)
        if cls.lower() in _QUANTIZER_NAMES:  # a Larq quantizer used as a layer
            q = _quantizer({"class_name": cls, "config": cfg}, where)
            return x if q is None else self.add_layer(name, q, x, x.shape, x.flat_from)
        if cls == "Activation":
            act = _activation(cfg.get("activation"), where)
            return x if act is None else self.add_layer(name, act, x, x.shape, x.flat_from)
        if cls == "Softmax":
            if cfg.get("axis", -1) not in (-1, len(x.shape)):
                raise ModelFileError(f"{where}: only a softmax over the last axis is supported")
            return self.add_layer(name, nn.Softmax(dim=1), x, x.shape, x.flat_from)
        if cls == "ReLU":
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise ModelFileError(f"{where}: only a plain ReLU (no max_value, negative_slope or threshold)")
            return self.add_layer(name, nn.ReLU(), x, x.shape, x.flat_from)
        if cls == "PReLU":
            return self.prelu(name, cfg, x, where)
        if cls in ("Dropout", "SpatialDropout2D"):
            return self.add_layer(name, nn.Dropout(float(cfg.get("rate", 0.0))), x, x.shape, x.flat_from)
        if cls in ("MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D"):
            return self.pool(cls, name, cfg, x, where)
        if cls == "GlobalAveragePooling2D":
            self.image(x, where)
            if cfg.get("keepdims", False):
                return self.add_layer(name, nn.AdaptiveAvgPool2d(1), x, (1, 1, x.shape[2]))
            return self.add_layer(name, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), x, (x.shape[2],))
        if cls == "ZeroPadding2D":
            self.image(x, where)
            (t, b), (left, r) = cfg["padding"]
            h, w, c = x.shape
            return self.add_layer(name, nn.ZeroPad2d((left, r, t, b)), x, (h + t + b, w + left + r, c))
        if cls == "Flatten":
            if len(x.shape) == 1:
                return x
            self.image(x, where)
            h, w, c = x.shape
            return self.add_layer(name, nn.Flatten(), x, (h * w * c,), (c, h, w) if h * w > 1 else x.flat_from)
        if cls == "Reshape":
            target = tuple(int(d) for d in cfg["target_shape"])
            size = int(np.prod(x.shape))
            if len(target) == 3 and target[:2] == (1, 1) and target[2] == size:
                if len(x.shape) == 1:
                    return self.add_layer(name, nn.Unflatten(1, (size, 1, 1)), x, target, x.flat_from)
                if x.shape[:2] == (1, 1):
                    return x
                h, w, c = x.shape  # an image flattened in Keras's (H, W, C) order, as BinaryAlexNet's head does
                return self.add_layer(name, nn.Sequential(nn.Flatten(), nn.Unflatten(1, (size, 1, 1))), x, target,
                                      (c, h, w))
            if target == (size,) and (len(x.shape) == 1 or x.shape[:2] == (1, 1)):
                return self.add_layer(name, nn.Flatten(), x, target, x.flat_from)
            raise ModelFileError(f"{where}: only reshapes between (C,) and (1, 1, C) are supported, got "
                                 f"{x.shape} -> {target}")
        raise ModelFileError(f"{where} is not supported by onebit's Larq import; supported: {_SUPPORTED}")

    def image(self, x: _Value, where: str) -> tuple[int, int, int]:
        if len(x.shape) != 3:
            raise ModelFileError(f"{where}: needs an image input (H, W, C), got shape {x.shape}")
        return x.shape  # type: ignore[return-value]

    def conv(self, cls: str, name: str, cfg: dict[str, Any], x: _Value, where: str) -> _Value:
        h, w, c = self.image(x, where)
        kernel = tuple(cfg["kernel_size"])
        stride = tuple(cfg.get("strides", (1, 1)))
        dilation = tuple(cfg.get("dilation_rate", (1, 1)))
        padding = cfg.get("padding", "valid")
        if padding not in ("valid", "same"):
            raise ModelFileError(f"{where}: padding {padding!r} is not supported; supported: valid, same")
        pad_value = float(cfg.get("pad_values", 0.0))
        if pad_value not in (-1.0, 0.0, 1.0):
            raise ModelFileError(f"{where}: pad_values={pad_value} is not supported; supported: -1, 0, 1")
        if padding == "same":
            (t, b), (left, r) = (same_pads(n, k, s, d) for n, k, s, d in zip((h, w), kernel, stride, dilation))
        else:
            t = b = left = r = 0
        oh = (h + t + b - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
        ow = (w + left + r - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
        conv_padding: Any = "same" if padding == "same" else 0
        input_q = _quantizer(cfg.get("input_quantizer"), where)
        common = {"stride": stride, "padding": conv_padding, "dilation": dilation, "pad_value": pad_value,
                  "input_quantizer": input_q}
        use_bias = bool(cfg.get("use_bias", True))
        if cls in ("QuantConv2D", "Conv2D"):
            groups = int(cfg.get("groups", 1))
            filters = int(cfg["filters"])
            arrays = self.weights(name, {"kernel": (*kernel, c // groups, filters),
                                         **({"bias": (filters,)} if use_bias else {})})
            if x.flat_from is not None:  # a 1 x 1 conv as a dense layer on a Keras-order flattened image
                if kernel != (1, 1) or groups != 1:
                    raise ModelFileError(f"{where}: reads a flattened image; only a 1 x 1 conv can")
                fc, fh, fw = x.flat_from
                arrays["kernel"] = arrays["kernel"].reshape(1, 1, fh, fw, fc, filters).transpose(
                    0, 1, 4, 2, 3, 5).reshape(1, 1, c, filters)
            module = QuantConv2d(c, filters, kernel, groups=groups, bias=use_bias,
                                 weight_quantizer=_quantizer(cfg.get("kernel_quantizer"), where), **common)
            _load(module.weight, arrays["kernel"].transpose(3, 2, 0, 1), where, module.weight_quantizer)
        else:
            if x.flat_from is not None:
                raise ModelFileError(f"{where}: a depthwise conv on a flattened image is not supported")
            mult = int(cfg.get("depth_multiplier", 1))
            separable = "Separable" in cls
            out = int(cfg["filters"]) if separable else c * mult
            arrays = self.weights(name, {"depthwise_kernel": (*kernel, c, mult),
                                         **({"pointwise_kernel": (1, 1, c * mult, out)} if separable else {}),
                                         **({"bias": (out,)} if use_bias else {})})
            dk = arrays["depthwise_kernel"]
            depthwise = QuantConv2d(
                c, c * mult, kernel, groups=c, bias=use_bias and "Separable" not in cls,
                weight_quantizer=_quantizer(cfg.get("depthwise_quantizer"), where, depthwise=True), **common)
            _load(depthwise.weight, dk.transpose(2, 3, 0, 1).reshape(c * mult, 1, *kernel), where)
            module = depthwise
            filters = c * mult
            if "Separable" in cls:
                filters = int(cfg["filters"])
                pointwise = QuantConv2d(c * mult, filters, 1, bias=use_bias,
                                        weight_quantizer=_quantizer(cfg.get("pointwise_quantizer"), where))
                _load(pointwise.weight, arrays["pointwise_kernel"].transpose(3, 2, 0, 1), where)
                module = nn.Sequential(depthwise, pointwise)
        if use_bias:
            last = module[-1] if isinstance(module, nn.Sequential) else module
            _load(last.bias, arrays["bias"], where)
        return self.add_layer(name, _with_activation(module, cfg, where), x, (oh, ow, filters))

    def dense(self, name: str, cfg: dict[str, Any], x: _Value, where: str) -> _Value:
        if len(x.shape) != 1:
            raise ModelFileError(f"{where}: a Dense layer on a {len(x.shape) + 1}-D tensor is not supported "
                                 "(flatten first)")
        units, use_bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
        arrays = self.weights(name, {"kernel": (x.shape[0], units), **({"bias": (units,)} if use_bias else {})})
        kernel = arrays["kernel"]
        if x.flat_from is not None:  # rows from Keras's (H, W, C) flatten order to PyTorch's (C, H, W)
            c, h, w = x.flat_from
            kernel = kernel.reshape(h, w, c, units).transpose(2, 0, 1, 3).reshape(c * h * w, units)
        module = QuantLinear(x.shape[0], units, bias=use_bias,
                             input_quantizer=_quantizer(cfg.get("input_quantizer"), where),
                             weight_quantizer=_quantizer(cfg.get("kernel_quantizer"), where))
        _load(module.weight, kernel.T, where, module.weight_quantizer)
        if use_bias:
            _load(module.bias, arrays["bias"], where)
        return self.add_layer(name, _with_activation(module, cfg, where), x, (units,))

    def batchnorm(self, name: str, cfg: dict[str, Any], x: _Value, where: str) -> _Value:
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, len(x.shape)):
            raise ModelFileError(f"{where}: only BatchNormalization over the channel (last) axis is supported")
        if x.flat_from is not None:
            raise ModelFileError(f"{where}: BatchNormalization of a flattened image is not supported")
        center, scale = bool(cfg.get("center", True)), bool(cfg.get("scale", True))
        n = x.shape[-1]
        arrays = self.weights(name, {**({"gamma": (n,)} if scale else {}), **({"beta": (n,)} if center else {}),
                                     "moving_mean": (n,), "moving_variance": (n,)})
        cls = nn.BatchNorm2d if len(x.shape) == 3 else nn.BatchNorm1d
        bn = cls(n, eps=float(cfg.get("epsilon", 1e-3)), momentum=1.0 - float(cfg.get("momentum", 0.99)))
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(arrays["gamma"]) if scale else torch.ones(n))
            bn.bias.copy_(torch.from_numpy(arrays["beta"]) if center else torch.zeros(n))
        bn.weight.requires_grad_(scale)
        bn.bias.requires_grad_(center)
        _load(bn.running_mean, arrays["moving_mean"], where)
        _load(bn.running_var, arrays["moving_variance"], where)
        return self.add_layer(name, bn, x, x.shape)

    def prelu(self, name: str, cfg: dict[str, Any], x: _Value, where: str) -> _Value:
        c = x.shape[-1]
        alpha = self.weights(name, {"alpha": (1, 1, c)})["alpha"]
        if alpha.size != c or alpha.shape[-1] != c:
            raise ModelFileError(f"{where}: only a PReLU with one slope per channel (shared_axes=[1, 2]) is supported")
        module = nn.PReLU(c)
        _load(module.weight, alpha.reshape(c), where)
        return self.add_layer(name, module, x, x.shape, x.flat_from)

    def pool(self, cls: str, name: str, cfg: dict[str, Any], x: _Value, where: str) -> _Value:
        h, w, c = self.image(x, where)
        kernel = tuple(cfg.get("pool_size", (2, 2)))
        stride = tuple(cfg.get("strides") or kernel)
        padding = cfg.get("padding", "valid")
        if padding == "same":
            (t, b), (left, r) = (same_pads(n, k, s) for n, k, s in zip((h, w), kernel, stride))
        else:
            t = b = left = r = 0
        oh, ow = (h + t + b - kernel[0]) // stride[0] + 1, (w + left + r - kernel[1]) // stride[1] + 1
        is_max = cls.startswith("Max")
        if (t, left) == (b, r):
            if is_max:
                module: nn.Module = nn.MaxPool2d(kernel, stride, (t, left))
            else:  # TensorFlow's average excludes the padding from the count
                module = nn.AvgPool2d(kernel, stride, (t, left), count_include_pad=False)
        elif is_max:  # the odd pixel after: pad with −inf, which never wins
            module = nn.Sequential(nn.ConstantPad2d((left, r, t, b), -math.inf), nn.MaxPool2d(kernel, stride))
        else:
            raise ModelFileError(f"{where}: average pooling with asymmetric 'same' padding ({t}, {b}) x ({left}, {r}) "
                                 "is not supported")
        return self.add_layer(name, module, x, (oh, ow, c))


def _load(target: Tensor, array: np.ndarray, where: str, quantizer: Quantizer | None = None) -> None:
    if isinstance(quantizer, XnorSign):
        array = np.clip(array, -1.0, 1.0)
    if tuple(target.shape) != tuple(array.shape):
        raise ModelFileError(f"{where}: weight of shape {tuple(array.shape)} where {tuple(target.shape)} is expected")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))


def _inbound(layer: dict[str, Any], where: str) -> list[tuple[str, int, int]]:
    """The (layer, node, tensor) triples a functional layer reads (its one call)."""
    nodes = layer.get("inbound_nodes", [])
    if not nodes:
        return []
    if len(nodes) != 1:
        raise ModelFileError(f"{where}: a layer called {len(nodes)} times (shared weights) is not supported")
    node = nodes[0]
    if node and isinstance(node[0], str):  # TFOpLambda: one entry, not a list of them
        node = [node]
    refs: list[tuple[str, int, int]] = []
    if isinstance(node, dict):  # the newer format: {"args": [...], "kwargs": {...}}
        raise ModelFileError(f"{where}: this Keras file's graph format is not supported; save it with tf-keras 2")
    for entry in node:
        refs.append((str(entry[0]), int(entry[1]), int(entry[2])))
        extra = entry[3] if len(entry) > 3 else {}
        for value in (extra or {}).values():  # TFOpLambda: the other operand, e.g. {"y": ["layer", 0, 0]}
            if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
                refs.append((value[0], int(value[1]), int(value[2])))
    return refs


def _input_shape(cfg: dict[str, Any], where: str) -> tuple[int, ...]:
    shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
    if not shape or any(d is None for d in shape[1:]):
        raise ModelFileError(f"{where}: the model needs a fixed input shape, got {shape}; build it with "
                             "input_shape=(H, W, C)")
    return tuple(int(d) for d in shape[1:])


def build_graph(keras: KerasFile, logits: bool = True) -> KerasGraph:
    """The :class:`KerasGraph` of a read Keras file (see :func:`from_larq`)."""
    top = keras.config
    kind = str(top["class_name"]).rsplit(">", 1)[-1]
    cfg = top.get("config", {})
    layers = cfg.get("layers", [])
    if kind not in ("Functional", "Model", "Sequential") and "input_layers" not in cfg:
        raise ModelFileError(f"{keras.path}: model class {kind!r} is not supported; supported: Functional, Sequential")
    names = {_class(layer) for layer in layers}
    if not names & set(_LARQ_LAYERS) and "larq" not in str(top).lower() and not any(
            q in str(top) for q in ("SteSign", "ApproxSign", "SwishSign", "MagnitudeAwareSign", "SteHeaviside",
                                    "SteTern", "DoReFa", "ste_sign", "approx_sign")):
        raise ModelFileError(f"{keras.path} is a Keras model without any Larq layer or quantizer: not a Larq model")
    b = _Builder(keras)
    values: dict[tuple[str, int, int], _Value] = {}
    in_shape: tuple[int, ...] = ()
    if kind == "Sequential" and "input_layers" not in cfg:
        first = layers[0] if layers else {}
        x = _Value(0, _input_shape(first.get("config", {}), f"{keras.path}: first layer"))
        in_shape = x.shape
        for layer in layers:
            if _class(layer) == "InputLayer":
                continue
            x = b.layer(layer, [x])
        out = x
    else:
        for layer in layers:
            lname = str(layer.get("name", layer.get("config", {}).get("name")))
            where = f"layer {lname!r} ({_class(layer)})"
            if _class(layer) == "InputLayer":
                if values:
                    raise ModelFileError(f"{keras.path}: only models with one input are supported")
                values[(lname, 0, 0)] = _Value(0, _input_shape(layer.get("config", {}), where))
                in_shape = values[(lname, 0, 0)].shape
                continue
            if _class(layer) in ("Functional", "Model", "Sequential"):
                raise ModelFileError(f"{where}: nested models are not supported; flatten the model first")
            refs = _inbound(layer, where)
            try:
                inputs = [values[r] for r in refs]
            except KeyError as exc:
                raise ModelFileError(f"{where}: reads {exc.args[0]}, which is not defined before it") from None
            values[(lname, 0, 0)] = b.layer(layer, inputs)
        outs = cfg.get("output_layers", [])
        if len(outs) != 1 and not (len(outs) == 3 and isinstance(outs[0], str)):
            raise ModelFileError(f"{keras.path}: only models with one output are supported, got {len(outs)}")
        ref = outs if isinstance(outs[0], str) else outs[0]
        out = values[(str(ref[0]), int(ref[1]), int(ref[2]))]
    if out.flat_from is not None:
        raise ModelFileError(f"{keras.path}: the model's output is a flattened image, whose element order differs "
                             "between Keras and PyTorch")
    steps = list(b.steps)
    if logits and steps and out.index == len(steps) and steps[-1][0] == "layer":
        last = b.layers[steps[-1][1]]
        if isinstance(last, nn.Softmax):
            out = _Value(steps[-1][2][0], out.shape)
            del b.layers[steps.pop()[1]]
        elif isinstance(last, nn.Sequential) and isinstance(last[-1], nn.Softmax):  # Dense(activation="softmax")
            b.layers[steps[-1][1]] = last[0] if len(last) == 2 else last[:-1]
    torch_shape = (in_shape[-1], *in_shape[:-1]) if len(in_shape) == 3 else in_shape
    return KerasGraph(b.layers, steps, out.index, str(cfg.get("name", "keras_model")), torch_shape)


def from_larq(path: str | os.PathLike, logits: bool = True, zoo: bool = True) -> nn.Module:
    """A Larq/Keras HDF5 model file (``model.save("m.h5")``) as a PyTorch model of onebit layers.

    Reads the file with h5py alone (no TensorFlow), builds each layer's onebit equivalent
    and loads the weights; the model takes NCHW input (transpose Keras's NHWC arrays with
    ``x.permute(0, 3, 1, 2)``) and is in eval mode. ``logits``: drop a final softmax, so the
    model returns logits as onebit's models do (``False`` keeps it). Raises
    :class:`~onebit.errors.ModelFileError` naming the first layer or quantizer onebit cannot
    represent, and for files that are not Keras 2 HDF5 Larq models.

    ``zoo``: a Larq-zoo file becomes onebit's registered zoo model (what ``create_model``
    gives, with the file's weights, checked to compute the same; :mod:`onebit.convert.zoo`),
    any other file a :class:`KerasGraph`.
    """
    return _convert(read_keras_h5(path), logits, zoo)[0]


def _convert(keras: KerasFile, logits: bool, zoo: bool) -> tuple[nn.Module, KerasGraph]:
    """(the model from_larq returns, the graph built from the file)."""
    graph = build_graph(keras, logits=logits)
    if zoo and logits:
        from onebit.convert.zoo import to_zoo_model

        mapped = to_zoo_model(graph)
        if mapped is not None:
            return mapped, graph
    # What save_checkpoint records and load_converted rebuilds from (the architecture, no weights).
    graph.onebit_config = {"name": LARQ_GRAPH, "args": {"keras_config": keras.config, "logits": logits}}
    return graph.eval(), graph


LARQ_GRAPH = "larq_graph"


def load_converted(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """A checkpoint written by ``onebit convert`` (or ``save_checkpoint`` of a :func:`from_larq`
    model): the graph rebuilt from the Keras architecture it records, with its weights.

    Checkpoints of registered zoo models are :func:`onebit.checkpoint.load_checkpoint`'s.
    """
    from safetensors.torch import load_file

    from onebit.checkpoint import load_checkpoint, read_checkpoint_meta
    from onebit.errors import CheckpointError

    meta = read_checkpoint_meta(path)
    if meta["model"].get("name") != LARQ_GRAPH:
        return load_checkpoint(path)
    args = meta["model"].get("args", {})
    keras = KerasFile(Path(path), args.get("keras_config", {}), None, "")
    model = build_graph(keras, logits=bool(args.get("logits", True)))
    state = load_file(str(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: tensors do not match the recorded architecture: "
                              f"{str(exc).splitlines()[0]}") from None
    model.onebit_config = meta["model"]
    return model.eval(), meta


def convert_file(path: str | os.PathLike, checkpoint: str | os.PathLike,
                 onebit_path: str | os.PathLike | None = None, logits: bool = True) -> dict[str, Any]:
    """``onebit convert``: read ``path``, write the checkpoint and, with ``onebit_path``, the
    engine's ``.onebit`` file (checked against PyTorch on 8 fixed random inputs by
    :func:`onebit.export.export`). Returns what was done: layers, parameters, files."""
    from onebit.checkpoint import save_checkpoint

    model, graph = _convert(read_keras_h5(path), logits, zoo=True)
    written = save_checkpoint(checkpoint, model, source={"larq_file": Path(path).name})
    result: dict[str, Any] = {
        "input": str(path), "keras_name": graph.keras_name, "in_shape": list(graph.in_shape),
        "layers": len(graph.layers), "parameters": sum(p.numel() for p in model.parameters()),
        "zoo_model": model.onebit_config["name"] if model is not graph else None, "checkpoint": str(written),
    }
    if onebit_path is not None:
        from onebit.export import export

        from onebit.errors import ExportError

        example = torch.randn((8, *graph.in_shape), generator=torch.Generator().manual_seed(0))
        try:
            report = export(model, onebit_path, example)
        except ExportError as exc:
            raise ExportError(f"wrote {written}, but the engine cannot run this model: {exc}") from None
        result["onebit"] = str(onebit_path)
        result["export"] = str(report)
    return result
