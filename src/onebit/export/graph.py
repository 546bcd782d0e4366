"""From a PyTorch model to the runtime's node list, by tracing it with ``torch.fx``.

onebit's quantized layers and quantizers are leaves of the trace; everything else is
traced through, so residual adds (Bi-Real Net) and channel concatenations (DenseNet)
appear as graph nodes. The walk maps each traced node to a runtime value:

- a weighted layer (``QuantLinear``/``QuantConv1d/2d``/``nn.Linear``/``nn.Conv1d/2d``)
  starts a *pending* value: BatchNorm, max-pool, Hardtanh/ReLU, Flatten (and Dropout,
  Identity) that follow it with no other user fold into its output stage. The stage is
  decided when the value is used: if every user binarizes it, BatchNorm + sign become
  integer thresholds and the layer writes packed bits; otherwise it writes floats (and a
  ``sign`` node packs them for the binary users). XNOR-Net's ReLU → (max-pool) → BatchNorm
  → sign folds into thresholds too (:func:`onebit.export.fold.relu_bn_sign`); a max-pool
  runs on the raw product (before the stage) wherever the folded map rises with it;
- a BatchNorm on a float value whose users all binarize it becomes one ``sign`` node with
  a per-channel shift when its scale is positive (``a·x + b ≥ 0 ⇔ x ≥ −b/a``);
- on float values: ``add``, ``concat`` (channels), ``affine`` (a BatchNorm alone),
  ``act`` (ReLU, Hardtanh, PReLU/RPReLU), ``avgpool2d``, ``maxpool2d``, ``flatten``;
- a ``ConstantPad2d`` whose value never wins a max (−∞: TensorFlow's "same" max-pool as
  :mod:`onebit.convert` writes it; ≤ −1 on bits, ≤ 0 after a ReLU) folds into the
  ``maxpool2d`` node after it: its pool's ``padding`` (top, left) and ``padding_end``
  (bottom, right);
- a data-dependent channel gate (Real-to-Binary Net, squeeze-and-excitation):
  ``x.mean((2, 3))`` becomes a global ``avgpool2d`` + ``flatten``, the Linear layers and
  ``torch.relu`` after it ordinary float ``dense`` nodes, ``torch.sigmoid`` a ``sigmoid``
  node, and ``y * g[:, :, None, None]`` a ``channel_mul`` node (y an image, g (N, C); or g
  through ``nn.Unflatten(1, (C, 1, 1))``, a converted Keras gate's Reshape).

Image values are NHWC in the runtime (a 1-D signal (C, L) is the image (1, L, C), its
convolutions and pools 1 × k): the first convolution is preceded by a ``to_nhwc`` node,
and a dense layer after a flatten of an image gets its weight columns permuted from
PyTorch's (C, H, W) order to (H, W, C), so no transpose runs. Anything else fails with an
:class:`ExportError` naming the layer. Each weighted layer is recorded with the reason it
runs binary or stays float.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from onebit.errors import ExportError
from onebit.export.fold import bn_affine, relu_bn_sign, thresholds
from onebit.nn.blocks import RPReLU, RSign
from onebit.nn.embedding import TokenEmbedding
from onebit.nn.layers import QuantConv2d, QuantLayer
from onebit.nn.quantizers import Quantizer
from onebit.runtime.bitpack import pack_bits

# Input quantizers whose forward is sign(x) with sign(0) = +1 (RSign: sign(x − β_c)).
SIGN_QUANTIZERS = ("ste_sign", "approx_sign", "swish_sign", "rsign")
_NO_OPS = (nn.Dropout, nn.Identity)
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
_SUPPORTED = ("TokenEmbedding, QuantLinear, Linear, QuantConv1d/2d, Conv1d/2d, BatchNorm1d/2d, MaxPool1d/2d, AvgPool2d, "
              "AdaptiveAvgPool2d(1), ZeroPad2d before a float conv, Hardtanh, ReLU, PReLU, RPReLU, Flatten, Dropout, Identity, +, torch.cat, "
              "x.mean((2, 3)), torch.relu, torch.sigmoid/Sigmoid, image * gate[:, :, None, None] (or Unflatten(1, (C, 1, 1)))")


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
    """A weighted layer whose output stage is decided by the users of its last folded node."""

    op: str  # "dense" or "conv2d"
    name: str
    source: "_Value"
    attrs: dict[str, Any]
    n: int
    k: int  # bits per output of a binary-input layer (y ∈ [−k, k])
    in_bits: bool
    weight: np.ndarray  # float32, ±1 for binary weights; dense (n, k), conv (O, KH, KW, Cg)
    weight_bits: bool
    alpha: np.ndarray  # float64 (n,): z = alpha·y + beta
    beta: np.ndarray
    pool: dict[str, Any] | None = None  # max-pool of y, before BatchNorm
    bn: bool = False
    act: list[nn.Module] = field(default_factory=list)
    post_bn: tuple[np.ndarray, np.ndarray] | None = None  # (a, b) of a BatchNorm after a ReLU
    post_pool: dict[str, Any] | None = None  # max-pool after the activation
    flatten: bool = False
    tail: fx.Node | None = None  # the last traced node folded in


@dataclass
class _Value:
    """A runtime value (``name``), or a pending layer output that is not emitted yet."""

    name: str | None
    bits: bool
    shape: tuple[int, ...]  # runtime shape, batch excluded
    nchw: bool = False  # still in the user's layout (before to_nhwc)
    flat_from: tuple[int, int, int] | None = None  # (H, W, C) of a flattened image
    pending: _Pending | None = None
    realized: dict[bool, "_Value"] = field(default_factory=dict)  # by bits: emitted forms of a pending value
    zero_pad: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) a ZeroPad2d left to its conv
    max_pad: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) a −∞ pad left to its max-pool
    per_channel: bool = False  # a (C,) vector indexed v[:, :, None, None]: it multiplies an image per channel


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return isinstance(m, (QuantLayer, Quantizer, RPReLU, TokenEmbedding)) or super().is_leaf_module(m, qualified_name)


def _pair(v: Any) -> list[int]:
    return list(v) if isinstance(v, tuple) else [v, v]


def _pool_attrs(name: str, m: nn.Module) -> dict[str, Any]:
    one_d = isinstance(m, (nn.MaxPool1d, nn.AvgPool1d))
    pair = (lambda v: [1, v[0] if isinstance(v, tuple) else v]) if one_d else _pair
    pad = (lambda v: [0, v[0] if isinstance(v, tuple) else v]) if one_d else _pair
    if getattr(m, "ceil_mode", False) or getattr(m, "return_indices", False) or pad(getattr(m, "dilation", 1))[1] != 1:
        raise ExportError(f"layer {name!r}: {type(m).__name__} with ceil_mode, dilation or return_indices is not supported")
    stride = m.stride if m.stride is not None else m.kernel_size
    return {"kernel": pair(m.kernel_size), "stride": pair(stride), "padding": pad(m.padding)}


def _pooled(shape: tuple[int, ...], pool: dict[str, Any]) -> tuple[int, ...]:
    h, w, c = shape
    (kh, kw), (sh, sw), (ph, pw) = pool["kernel"], pool["stride"], pool["padding"]
    pb, pr = pool.get("padding_end", (ph, pw))
    return ((h + ph + pb - kh) // sh + 1, (w + pw + pr - kw) // sw + 1, c)


def _with_max_pad(name: str, pool: dict[str, Any], pad: tuple[int, int, int, int]) -> dict[str, Any]:
    """``pool`` with a pad that never wins the max (``ConstantPad2d(−∞)`` before it, TensorFlow's
    "same") added to its own padding; ``padding_end`` (bottom, right) where the sides differ."""
    top, bottom, left, right = pad
    (ph, pw), (kh, kw) = pool["padding"], pool["kernel"]
    begin, end = [ph + top, pw + left], [ph + bottom, pw + right]
    if max(begin[0], end[0]) * 2 > kh or max(begin[1], end[1]) * 2 > kw:
        raise ExportError(f"layer {name!r}: max-pool padding {begin} before, {end} after is more than half "
                          f"its kernel {[kh, kw]}; a window would hold only padding")
    out = {**pool, "padding": begin}
    if end != begin:
        out["padding_end"] = end
    return out


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


class _Walk:
    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.nodes: list[dict[str, Any]] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.report: list[LayerReport] = []
        self._count = 0

    # ---- emitting

    def emit(self, op: str, name: str, inputs: list[_Value], attrs: dict[str, Any], arrays: dict[str, np.ndarray],
             bits: bool, shape: tuple[int, ...], **extra: Any) -> _Value:
        out = f"v{self._count}"
        self._count += 1
        refs = {}
        for key, array in arrays.items():
            refs[key] = f"{name}.{key}"
            if refs[key] in self.tensors:
                raise ExportError(f"layer {name!r} is used twice; the exporter needs each weighted module once")
            self.tensors[refs[key]] = array
        node = {"op": op, "name": name, "inputs": [v.name for v in inputs], "output": out, **attrs}
        if refs:
            node["tensors"] = refs
        self.nodes.append(node)
        return _Value(out, bits, shape, **extra)

    def _binarizes(self, user: fx.Node) -> bool:
        if user.op != "call_module":
            return False
        m = self.modules[user.target]
        iq = m.input_quantizer if isinstance(m, QuantLayer) else m if _is_sign(m) else None
        return iq is not None and iq.name in SIGN_QUANTIZERS and not isinstance(iq, RSign)

    def realize(self, v: _Value, bits: bool | None = None) -> _Value:
        """The emitted form of ``v``: a pending layer gets its output stage; ``bits`` asks for packed bits."""
        if v.pending is not None:
            p = v.pending
            if not v.realized:
                binary = bool(p.tail.users) and all(self._binarizes(u) for u in p.tail.users)
                # Packed bits flatten in whole words: a conv of other widths flattens floats, signed after.
                binary = binary and not (p.flatten and p.op == "conv2d" and p.n % 64)
                v.realized[binary] = self._finish(p, binary)
            if bits is None:
                return next(iter(v.realized.values()))
            if bits not in v.realized:
                if not bits:
                    raise ExportError(f"layer {p.name!r}: its binary output is also used as a float value")
                v.realized[True] = self.sign(p.name, v.realized[False])
            return v.realized[bits]
        if bits and not v.bits:
            return self.sign(v.name or "input", v)
        if bits is False and v.bits:
            raise ExportError("a packed binary value is used where a float value is needed")
        return v

    def sign(self, name: str, v: _Value, shift: np.ndarray | None = None) -> _Value:
        arrays = {} if shift is None else {"shift": shift.astype(np.float32)}
        return self.emit("sign", f"{name}.sign", [v], {}, arrays, True, v.shape, flat_from=v.flat_from)

    def to_nhwc(self, name: str, v: _Value, conv1d: bool) -> _Value:
        if not v.nchw:
            return v
        if len(v.shape) != (2 if conv1d else 3):
            raise ExportError(f"layer {name!r}: does not fit inputs of shape {v.shape}")
        c, h, w = v.shape if len(v.shape) == 3 else (v.shape[0], 1, v.shape[1])
        return self.emit("to_nhwc", f"{name}.to_nhwc", [v], {}, {}, False, (h, w, c))

    def flatten(self, name: str, v: _Value) -> _Value:
        if len(v.shape) == 1:
            return v
        if v.nchw:
            return self.emit("flatten", name, [v], {}, {}, False, (int(np.prod(v.shape)),))
        h, w, c = v.shape
        if v.bits and c % 64:
            raise ExportError(f"layer {name!r}: flatten of binary activations needs a multiple of 64 channels, got {c}")
        return self.emit("flatten", name, [v], {}, {}, v.bits, (h * w * c,), flat_from=(h, w, c))

    def _finish(self, d: _Pending, binary: bool) -> _Value:
        attrs = {**d.attrs, "weights": "bits" if d.weight_bits else "float"}
        arrays = {"weight": pack_bits(d.weight) if d.weight_bits else d.weight.astype(np.float32)}
        if d.pool is not None:
            attrs["pool"] = d.pool
        out_shape: tuple[int, ...] = (d.n,)
        if d.op == "conv2d":
            h, w = d.source.shape[0], d.source.shape[1]
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (attrs[k] for k in ("kernel", "stride", "padding", "dilation"))
            pb, pr = attrs.get("padding_end", (ph, pw))
            h, w = (h + ph + pb - dh * (kh - 1) - 1) // sh + 1, (w + pw + pr - dw * (kw - 1) - 1) // sw + 1
            out_shape = (h, w, d.n) if d.pool is None else _pooled((h, w, d.n), d.pool)
        if binary:
            alpha, beta = d.alpha, d.beta
            if d.post_bn is not None:  # ReLU → BatchNorm → sign (the fold checked that the ReLU is alone)
                alpha, beta = relu_bn_sign(alpha, beta, *d.post_bn)
            else:
                for a in d.act:
                    if not isinstance(a, nn.Hardtanh) or not a.min_val < 0 <= a.max_val:
                        raise ExportError(
                            f"layer {d.name!r}: {type(a).__name__} before a sign changes the sign of its input; "
                            "the engine folds only sign-preserving activations (Hardtanh, or ReLU followed by "
                            "BatchNorm) into the threshold"
                        )
            attrs["out"] = "bits"
            if d.in_bits:
                arrays["threshold"], arrays["flip"] = thresholds(alpha, beta, d.k)
            else:
                arrays["scale"], arrays["bias"] = alpha.astype(np.float32), beta.astype(np.float32)
        else:
            attrs["out"], attrs["act"] = "float", _activation(d)
            arrays["scale"], arrays["bias"] = d.alpha.astype(np.float32), d.beta.astype(np.float32)
            if d.post_bn is not None and d.in_bits:  # the binary layers' float stage ends with the affine
                arrays["post_scale"], arrays["post_bias"] = (t.astype(np.float32) for t in d.post_bn)
        v = self.emit(d.op, d.name, [d.source], attrs, arrays, binary, out_shape)
        if d.post_bn is not None and not binary and not d.in_bits:  # float-input kernels: a separate affine
            a, b = (t.astype(np.float32) for t in d.post_bn)
            v = self.emit("affine", f"{d.name}.bn", [v], {}, {"scale": a, "bias": b}, False, v.shape)
        if d.post_pool is not None:
            v = self.emit("maxpool2d", f"{d.name}.pool", [v], {"pool": d.post_pool}, {}, v.bits, _pooled(v.shape, d.post_pool))
        if d.flatten:
            v = self.flatten(f"{d.name}.flatten", v)
        return v

    # ---- layers

    def weighted(self, node: fx.Node, name: str, m: nn.Module, x: _Value) -> _Value:
        iq = m.input_quantizer if isinstance(m, QuantLayer) else None
        if iq is not None and iq.name not in SIGN_QUANTIZERS:
            raise ExportError(
                f"layer {name!r}: input quantizer {iq.name!r} is not supported by the engine; "
                f"supported: {', '.join(SIGN_QUANTIZERS)} or float (None)"
            )
        in_bits = iq is not None
        is_conv = isinstance(m, (nn.Conv1d, nn.Conv2d))
        extra_pad = x.zero_pad
        if extra_pad is not None:
            x = dataclasses.replace(x, zero_pad=None)
        if is_conv:
            x = self.to_nhwc(name, self.realize(x, None if in_bits else False), isinstance(m, nn.Conv1d))
        if isinstance(iq, RSign):  # sign(x − β_c): pack the float input against the shift
            x = self.sign(name, self.realize(x, False), iq.shift.detach().numpy())
        else:
            x = self.realize(x, True if in_bits else False)
        weight_bits, weight, alpha, beta = self._scales(name, m)
        n = alpha.shape[0]
        self.report.append(_report(name, in_bits, weight_bits))
        if not is_conv:
            k = m.in_features
            if x.shape != (k,):
                raise ExportError(f"layer {name!r}: expects {k} features, its input has shape {x.shape}")
            if x.flat_from is not None:  # columns from PyTorch's (C, H, W) order to the runtime's (H, W, C)
                h, w, c = x.flat_from
                weight = weight.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, k)
            p = _Pending("dense", name, x, {"k": k, "n": n}, n, k, in_bits, np.ascontiguousarray(weight),
                         weight_bits, alpha, beta)
        else:
            if len(x.shape) != 3 or x.shape[2] != m.in_channels:
                raise ExportError(f"layer {name!r}: expects {m.in_channels} channels, its input has shape {x.shape}")
            # [left, right, top, bottom]; QuantConv2d's "same" (TensorFlow's) depends on the input size
            pads = (m.same_padding(x.shape[0], x.shape[1]) if isinstance(m, QuantConv2d)
                    else list(m._reversed_padding_repeated_twice))
            if isinstance(m, nn.Conv1d):  # a 1-D conv runs as a 1 x k 2-D conv on (1, L, C)
                pads += [0, 0]
            if m.padding_mode != "zeros":
                raise ExportError(f"layer {name!r}: only zero-mode padding is supported, got {m.padding_mode!r}")
            pad_value = float(getattr(m, "pad_value", 0.0)) if any(pads) else 0.0
            two_d = (lambda v: [1, *v]) if isinstance(m, nn.Conv1d) else list
            attrs = {"cin": m.in_channels, "cout": n, "groups": m.groups, "kernel": two_d(m.kernel_size),
                     "stride": two_d(m.stride), "padding": [pads[2], pads[0]], "dilation": two_d(m.dilation),
                     "pad_value": int(pad_value)}
            if (pads[3], pads[1]) != (pads[2], pads[0]):  # asymmetric: the bottom/right padding differs
                attrs["padding_end"] = [pads[3], pads[1]]
                if extra_pad is not None:
                    raise ExportError(f"layer {name!r}: a ZeroPad2d before a conv with asymmetric padding")
            weight = weight.reshape(n, m.in_channels // m.groups, *attrs["kernel"]).transpose(0, 2, 3, 1)
            if extra_pad is not None:
                weight = _absorb_zero_pad(name, attrs, weight, extra_pad, in_bits or weight_bits)
            k = m.in_channels // m.groups * int(np.prod(m.kernel_size))
            p = _Pending("conv2d", name, x, attrs, n, k, in_bits, np.ascontiguousarray(weight), weight_bits, alpha, beta)
        p.tail = node
        return _Value(None, False, (), pending=p)

    def _scales(self, name: str, m: nn.Module) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
        """(binary weights?, weights as float32, alpha, beta) of a weighted layer."""
        binary = _binary_weight(name, m)
        n = m.weight.shape[0]
        weight, alpha = binary if binary is not None else (m.weight.detach().float().numpy(), np.ones(n))
        if isinstance(m, QuantLayer) and m.scale is not None:
            alpha = alpha * m.scale.detach().double().numpy()
        beta = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(n)
        return binary is not None, weight, alpha, beta

    def fold(self, node: fx.Node, name: str, m: nn.Module, x: _Value) -> _Value | None:
        """Fold ``m`` into a pending layer output when it is that output's only user; None if it cannot."""
        p = x.pending
        if p is None or x.realized or len(p.tail.users) != 1:
            return None
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and not (p.act or p.post_pool or p.flatten or p.bn):
            a, b = bn_affine(m)
            p.alpha, p.beta, p.bn = p.alpha * a, p.beta * a + b, True
        elif (isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and len(p.act) == 1 and isinstance(p.act[0], nn.ReLU)
              and not (p.post_bn or p.post_pool or p.flatten)):
            p.post_bn = bn_affine(m)
        elif isinstance(m, (nn.Hardtanh, nn.ReLU)) and not (p.post_pool or p.flatten or p.post_bn):
            p.act.append(m)
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) and p.op == "conv2d" and not p.flatten:
            # Pooling the raw product y first is exact when the stage so far rises with y in every channel.
            if p.pool is None and p.post_bn is None and (p.alpha > 0).all() and all(
                    isinstance(a, (nn.ReLU, nn.Hardtanh)) for a in p.act):
                p.pool = _pool_attrs(name, m)
            elif p.post_pool is None:
                p.post_pool = _pool_attrs(name, m)
            else:
                return None
        elif isinstance(m, nn.Flatten) and not p.flatten and (m.start_dim, m.end_dim) == (1, -1):
            p.flatten = True
        else:
            return None
        p.tail = node
        return x

    def module(self, node: fx.Node, name: str, m: nn.Module, x: _Value) -> _Value:
        if isinstance(m, _NO_OPS):  # eval-mode identities: a pending output looks through them to their users
            p = x.pending
            if p is not None and not x.realized and len(p.tail.users) == 1:
                p.tail = node
            return x
        if isinstance(m, _WEIGHTED):
            return self.weighted(node, name, m, x)
        if isinstance(m, TokenEmbedding):
            return self.embedding(node, name, m, x)
        if isinstance(m, (nn.ZeroPad2d, nn.ConstantPad2d)):
            return self.zero_pad(node, name, m, x)
        if _is_sign(m):  # a sign on its own: the value becomes packed bits (a feature extractor's output)
            return self.realize(x, True)
        folded = self.fold(node, name, m, x)
        if folded is not None:
            return folded
        if isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ExportError(f"layer {name!r}: only Flatten(start_dim=1, end_dim=-1) is supported")
            return self.flatten(name, self.realize(x))
        x = self.realize(x, False) if not isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) else self.realize(x)
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            if len(x.shape) != 3 or x.nchw:
                raise ExportError(f"layer {name!r}: max-pool needs the output of a convolution")
            pool = _pool_attrs(name, m)
            if x.max_pad is not None:
                pool = _with_max_pad(name, pool, x.max_pad)
            return self.emit("maxpool2d", name, [x], {"pool": pool}, {}, x.bits, _pooled(x.shape, pool))
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self.avgpool(name, m, x)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self.batchnorm(node, name, m, x)
        if isinstance(m, (nn.ReLU, nn.Hardtanh, nn.PReLU, RPReLU)):
            return self.activation(name, m, x)
        if isinstance(m, nn.Sigmoid):
            return self.emit("sigmoid", name, [x], {}, {}, False, x.shape, nchw=x.nchw, flat_from=x.flat_from)
        if isinstance(m, nn.Unflatten) and m.dim == 1 and tuple(m.unflattened_size)[1:] == (1, 1):  # Keras's Reshape
            return self.per_channel(name, x, f"Unflatten(1, {tuple(m.unflattened_size)})",
                                    x.shape == tuple(m.unflattened_size)[:1])
        raise ExportError(f"layer {name!r} ({type(m).__name__}) is not supported by the exporter; supported: {_SUPPORTED}")

    def embedding(self, node: fx.Node, name: str, m: TokenEmbedding, x: _Value) -> _Value:
        """Token ids (L,) → rows (1, L, D) (onebit.runtime.embedding): a table of packed signs when every
        user binarizes the rows (``sign(E)[id] = sign(E[id])``, exact), else the float table."""
        if x.name != "input" or x.bits or len(x.shape) != 1:
            raise ExportError(f"layer {name!r}: an embedding must read the model's input, token ids of shape (L,); "
                              f"its input has shape {x.shape}")
        table = np.ascontiguousarray(m.table().detach().float().numpy())
        bits = bool(node.users) and all(self._binarizes(u) for u in node.users)
        self.report.append(LayerReport(name, "lookup", "table of packed signs (its users binarize it)" if bits
                                       else "float table"))
        attrs = {"vocab": m.num_embeddings, "dim": m.dim, "table": "bits" if bits else "float"}
        return self.emit("embedding", name, [x], attrs, {"table": pack_bits(table) if bits else table}, bits,
                         (1, x.shape[0], m.dim))

    def batchnorm(self, node: fx.Node, name: str, m: nn.Module, x: _Value) -> _Value:
        """A BatchNorm on a float value: ``affine``, or a shifted ``sign`` when all its users binarize it."""
        a, b = bn_affine(m)
        if x.flat_from is not None and a.shape[0] == x.shape[0]:  # per feature of a flattened image: (C, H, W) order
            h, w, c = x.flat_from
            a, b = (t.reshape(c, h, w).transpose(1, 2, 0).reshape(-1) for t in (a, b))
        if not x.nchw and node.users and all(self._binarizes(u) for u in node.users) and (a > 0).all():
            shift = -b / a
            if np.isfinite(shift.astype(np.float32)).all():
                return self.sign(name, x, shift)
        return self.emit("affine", name, [x], {}, {"scale": a.astype(np.float32), "bias": b.astype(np.float32)},
                         False, x.shape, flat_from=x.flat_from)

    def _never_wins(self, node: fx.Node, value: float, x: _Value) -> bool:
        """Whether a pad of ``value`` can never be the max of a window holding a pixel of the padded
        value: −∞, or at most the value's lower bound (−1 for packed bits, the floor of a ReLU or
        Hardtanh that computes it)."""
        if value == -float("inf") or (x.bits and value <= -1):
            return True
        src = node.args[0] if node.args else None
        m = self.modules.get(src.target) if isinstance(src, fx.Node) and src.op == "call_module" else None
        if isinstance(m, nn.ReLU):
            return value <= 0
        if isinstance(m, nn.Hardtanh):
            return value <= m.min_val
        return _is_sign(m) and value <= -1

    def zero_pad(self, node: fx.Node, name: str, m: nn.Module, x: _Value) -> _Value:
        """A ZeroPad2d left for the float convolution(s) it feeds to absorb (see ``_absorb_zero_pad``),
        or a pad that never wins the max left for the max-pool(s) it feeds (``max_pad``)."""
        users = [self.modules.get(u.target) if u.op == "call_module" else None for u in node.users]
        if users and all(isinstance(u, nn.MaxPool2d) for u in users) and self._never_wins(node, float(m.value), x):
            x = self.realize(x)
            left, right, top, bottom = (int(v) for v in m.padding)
            if min(left, right, top, bottom) < 0 or len(x.shape) != 3 or x.nchw:
                raise ExportError(f"layer {name!r}: needs non-negative padding of a convolution's output, "
                                  f"got {tuple(m.padding)}")
            return dataclasses.replace(x, max_pad=(top, bottom, left, right), realized={})
        if float(m.value) != 0.0 or not users or not all(isinstance(u, nn.Conv2d) for u in users):
            raise ExportError(f"layer {name!r}: {type(m).__name__} is supported only with value 0 and directly "
                              "before float Conv2d layers, into whose padding it folds, or with a value that never "
                              "wins the max (-inf) directly before MaxPool2d layers")
        x = self.realize(x, False)
        left, right, top, bottom = (int(v) for v in m.padding)
        if min(left, right, top, bottom) < 0 or len(x.shape) != 3:
            raise ExportError(f"layer {name!r}: needs non-negative padding of an image, got {tuple(m.padding)}")
        return _Value(x.name, False, x.shape, x.nchw, zero_pad=(top, bottom, left, right))

    def avgpool(self, name: str, m: nn.Module, x: _Value) -> _Value:
        if len(x.shape) != 3 or x.nchw:
            raise ExportError(f"layer {name!r}: average pooling needs the output of a convolution")
        h, w, c = x.shape
        if isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != [1, 1]:
                raise ExportError(f"layer {name!r}: only AdaptiveAvgPool2d(1) (global average) is supported")
            pool = {"kernel": [h, w], "stride": [h, w], "padding": [0, 0]}
        else:
            if m.ceil_mode or m.divisor_override is not None or (any(_pair(m.padding)) and not m.count_include_pad):
                raise ExportError(f"layer {name!r}: AvgPool2d with ceil_mode, divisor_override or "
                                  "count_include_pad=False and padding is not supported")
            pool = _pool_attrs(name, m)
        return self.emit("avgpool2d", name, [x], {"pool": pool}, {}, False, _pooled(x.shape, pool))

    def activation(self, name: str, m: nn.Module, x: _Value) -> _Value:
        c = x.shape[-1]
        if isinstance(m, nn.ReLU):
            return self.emit("act", name, [x], {"act": "relu"}, {}, False, x.shape, flat_from=x.flat_from)
        if isinstance(m, nn.Hardtanh):
            return self.emit("act", name, [x], {"act": "hardtanh", "low": float(m.min_val), "high": float(m.max_val)},
                             {}, False, x.shape, flat_from=x.flat_from)
        if isinstance(m, nn.PReLU):
            slope = m.weight.detach().float().numpy()
            zeros = np.zeros(c, np.float32)
            arrays = {"shift_in": zeros, "slope": np.broadcast_to(slope, (c,)).copy(), "shift_out": zeros}
        else:
            arrays = {k: getattr(m, k).detach().float().numpy() for k in ("shift_in", "slope", "shift_out")}
        return self.emit("act", name, [x], {"act": "prelu"}, arrays, False, x.shape, flat_from=x.flat_from)

    # ---- channel gates (Real-to-Binary Net): x.mean((2, 3)) → Linear → ReLU → Linear → sigmoid → x' * g[:, :, None, None]

    def mean(self, node: fx.Node, args: list[Any]) -> _Value:
        """``x.mean((2, 3))`` of an image: a global ``avgpool2d`` and (without keepdim) a ``flatten`` to (C,)."""
        dim = node.kwargs.get("dim", args[1] if len(args) > 1 else None)
        keepdim = node.kwargs.get("keepdim", args[2] if len(args) > 2 else False)
        x = self.realize(args[0], False)
        dims = sorted(d % 4 for d in dim) if isinstance(dim, (tuple, list)) and all(type(d) is int for d in dim) else dim
        if len(x.shape) != 3 or x.nchw or dims != [2, 3]:
            raise ExportError(f"{node.name}: only the mean of a convolution's output over height and width "
                              f"(x.mean((2, 3))) is supported, got dim={dim!r} of a value of shape {x.shape}")
        v = self.avgpool(node.name, nn.AdaptiveAvgPool2d(1), x)
        return v if keepdim else self.flatten(f"{node.name}.flatten", v)

    def per_channel(self, name: str, v: _Value, what: str, ok: bool) -> _Value:
        """``g[:, :, None, None]`` (or ``Unflatten(1, (C, 1, 1))``) of a (C,) vector: marked to multiply an
        image per channel. ``ok``: the index or sizes fit."""
        v = self.realize(v, False)
        if not ok or len(v.shape) != 1 or v.nchw or (v.flat_from is not None and v.flat_from[:2] != (1, 1)):
            raise ExportError(f"{name}: {what} is supported only as g[:, :, None, None] or Unflatten(1, (C, 1, 1)) "
                              f"of an (N, C) vector (a channel gate), got a value of shape {v.shape}"
                              + (" (a flattened image)" if v.flat_from is not None else ""))
        return _Value(v.name, False, v.shape, per_channel=True)

    def channel_mul(self, node: fx.Node, args: list[Any]) -> _Value:
        """``x * g[:, :, None, None]`` (either order): a ``channel_mul`` node of an image and a (C,) vector."""
        a, b = args[:2]
        if isinstance(a, _Value) and a.per_channel:
            a, b = b, a
        if not (isinstance(a, _Value) and isinstance(b, _Value) and b.per_channel and not a.per_channel):
            raise ExportError(f"{node.name}: a product is supported only as image * g[:, :, None, None], a per-channel "
                              "gate (N, C) on a convolution's output")
        x = self.realize(a, False)
        if len(x.shape) != 3 or x.nchw or x.shape[2] != b.shape[0]:
            raise ExportError(f"{node.name}: a gate of {b.shape[0]} channels multiplies a value of shape {x.shape}; "
                              "it needs a convolution's output with as many channels")
        return self.emit("channel_mul", node.name, [x, b], {}, {}, False, x.shape)

    def function(self, node: fx.Node, args: list[Any]) -> _Value:
        target = node.target
        method = target if node.op == "call_method" else None
        if target in (torch.relu, nn.functional.relu) or method == "relu":
            return self.module(node, node.name, nn.ReLU(), args[0])
        if target is torch.sigmoid or method == "sigmoid":
            return self.module(node, node.name, nn.Sigmoid(), args[0])
        if target is torch.mean or method == "mean":
            return self.mean(node, args)
        if target is operator.getitem and isinstance(args[0], _Value):
            return self.per_channel(node.name, args[0], f"indexing [{args[1]!r}]",
                                    args[1] in ((slice(None), slice(None), None, None), (Ellipsis, None, None)))
        if target in (operator.mul, torch.mul) or method == "mul":
            return self.channel_mul(node, args)
        if target in (operator.add, torch.add) or (node.op == "call_method" and target == "add"):
            a, b = (self.realize(v, False) for v in args[:2])
            if a.shape != b.shape or a.nchw != b.nchw:
                raise ExportError(f"{node.name}: adding values of shapes {a.shape} and {b.shape}")
            return self.emit("add", node.name, [a, b], {}, {}, False, a.shape, nchw=a.nchw)
        if target is torch.cat:
            parts, dim = args[0], node.kwargs.get("dim", args[1] if len(args) > 1 else 0)
            parts = [self.realize(v, False) for v in parts]
            if dim != 1 or any(len(p.shape) != 3 or p.nchw or p.shape[:2] != parts[0].shape[:2] for p in parts):
                raise ExportError(f"{node.name}: only torch.cat of convolution outputs along channels (dim=1) is supported")
            shape = (*parts[0].shape[:2], sum(p.shape[2] for p in parts))
            return self.emit("concat", node.name, parts, {}, {}, False, shape)
        if target is torch.flatten or (node.op == "call_method" and target == "flatten"):
            start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0 if target is torch.flatten else 0)
            if start != 1:
                raise ExportError(f"{node.name}: only flatten(x, 1) is supported")
            return self.flatten(node.name, self.realize(args[0]))
        raise ExportError(f"{node.name}: {getattr(target, '__name__', target)!s} is not supported by the exporter; "
                          f"supported: {_SUPPORTED}")


def _absorb_zero_pad(name: str, attrs: dict[str, Any], weight: np.ndarray, extra: tuple[int, int, int, int],
                     quantized: bool) -> np.ndarray:
    """Fold a ZeroPad2d (top, bottom, left, right) into the float conv after it, whose own padding is p.

    Per axis the conv then pads (p + before, p + after). With P = max of the two, padding
    P on both sides and |before − after| zero taps added to the kernel, at its start where
    ``after`` is larger and at its end where ``before`` is, reads the same input pixels for
    every output and gives the same output count: ``o·s − P + j'`` with ``j' = j + P −
    (p + before)``. Keras's "same" padding of a strided conv (the odd pixel after) exports
    this way. Needs float weights (a zero tap is not ±1) and dilation 1.
    """
    if quantized or attrs["dilation"] != [1, 1]:
        raise ExportError(f"layer {name!r}: a ZeroPad2d before it folds only into a float convolution with "
                          "dilation 1 (float input and float weights)")
    top, bottom, left, right = extra
    widths = [(0, 0)]
    for axis, (before, after) in enumerate(((top, bottom), (left, right))):
        p = attrs["padding"][axis]
        lo, hi = p + before, p + after
        attrs["padding"][axis] = max(lo, hi)
        attrs["kernel"][axis] += abs(lo - hi)
        widths.append((max(hi - lo, 0), max(lo - hi, 0)))
    return np.pad(weight, widths + [(0, 0)])


def _is_sign(m: nn.Module) -> bool:
    """A standalone quantizer module that computes sign(x) with sign(0) = +1."""
    return isinstance(m, Quantizer) and m.name in SIGN_QUANTIZERS and not isinstance(m, RSign)


def _report(name: str, in_bits: bool, weight_bits: bool) -> LayerReport:
    if in_bits and weight_bits:
        return LayerReport(name, "binary", "1-bit input and weights: XNOR-popcount")
    if weight_bits:
        return LayerReport(name, "binary weights, float input", "float input (first layer): BLAS on ±1 weights stored at 1 bit")
    return LayerReport(name, "float", "float weights" + ("" if in_bits else " and float input"))


def _activation(d: _Pending) -> str:
    if not d.act:
        return "none"
    if len(d.act) == 1 and isinstance(d.act[0], nn.ReLU):
        return "relu"
    if len(d.act) == 1 and isinstance(d.act[0], nn.Hardtanh) and (d.act[0].min_val, d.act[0].max_val) == (-1.0, 1.0):
        return "hardtanh"
    raise ExportError(f"layer {d.name!r}: activations {[type(a).__name__ for a in d.act]} are not supported on a float output")


def capture(
    model: nn.Module, example: torch.Tensor
) -> tuple[list[dict[str, Any]], str, dict[str, np.ndarray], list[LayerReport], dict[str, Any] | None]:
    """Nodes, the output value's name, tensors, the per-layer report for ``model``, and for a model
    that ends with a sign (a feature extractor) the packed output's record ``{"features": F,
    "chw": [C, H, W] or None}`` (None for a float output)."""
    tracer = _Tracer()
    if tracer.is_leaf_module(model, "") or isinstance(model, _WEIGHTED):
        model = nn.Sequential(model)  # a lone layer: trace it as a call, not through its forward
    try:
        gm = fx.GraphModule(model, tracer.trace(model))
    except Exception as exc:  # tracing runs the model's Python forward symbolically
        raise ExportError(f"cannot trace {type(model).__name__} with torch.fx: {exc}") from None
    walk = _Walk(gm)
    in_shape = tuple(example.shape[1:])
    env: dict[fx.Node, Any] = {}
    result: _Value | None = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if env:
                raise ExportError("the exporter handles models with one input")
            env[node] = _Value("input", False, in_shape, nchw=len(in_shape) in (2, 3))
            continue
        args = fx.node.map_arg(node.args, lambda a: env[a])
        if node.op == "call_module":
            env[node] = walk.module(node, str(node.target), walk.modules[node.target], args[0])
        elif node.op in ("call_function", "call_method"):
            env[node] = walk.function(node, list(args))
        elif node.op == "output":
            result = args[0]
        else:
            raise ExportError(f"{node.name}: {node.op} nodes are not supported by the exporter")
    if not isinstance(result, _Value):
        raise ExportError("the model must return one tensor")
    out = walk.realize(result, True if result.bits else False)
    if len(out.shape) != 1:
        raise ExportError(f"the model's output has shape {out.shape}; the engine returns (N, features): end with Flatten/Linear")
    bits = None
    if out.bits:
        chw = None if out.flat_from is None else [out.flat_from[2], out.flat_from[0], out.flat_from[1]]
        bits = {"features": out.shape[0], "chw": chw}
    return walk.nodes, out.name, walk.tensors, walk.report, bits
