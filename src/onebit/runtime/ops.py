"""The runtime's operations: each builder checks one graph node against the file and
returns the closure that runs it.

Values are float32 arrays ``(N, *shape)`` or packed bits ``(N, *shape[:-1], ceil(C/64))``
uint64 with ``C = shape[-1]`` (bit 1 = −1, tail bits 0). Image tensors are NHWC inside
the runtime (channels last, so bits pack along channels); the graph's ``to_nhwc`` node
converts the user's NCHW input once.

``to_nhwc``   float ``(C, H, W)`` → ``(H, W, C)``.
``flatten``   float or bits → one axis (bits: ``C`` a multiple of 64 unless already flat).
``sign``      float → bits: −1 where ``x < shift`` (per channel, default 0; sign(0) = +1).
``dense``     ``y = x · Wᵀ``, ``conv2d``: ``y = x ⋆ W``, with ``W`` binary (1 bit per weight in
              the file) or float, ``x`` float or bits (then ``y`` is the exact integer
              ``K − 2·popcount(x XOR w)``), an optional max-pool of ``y``, then the output stage:
              ``out="bits"`` after bits: ``+1 iff flip·(y − threshold) ≥ 0`` (BatchNorm and the
              next sign folded into integers; a pool then runs on the packed bits: AND where
              flip = +1, OR where flip = −1, which equals pooling ``y`` first);
              ``out="bits"`` after float: ``+1 iff y·scale + bias ≥ 0``;
              ``out="float"``: ``act(y·scale + bias)``, act ∈ none/relu/hardtanh.
``maxpool2d`` on float NHWC or bits (max of ±1 = AND of the bits); padded positions never win
              (−inf), the pool's ``padding_end`` (bottom, right) may differ from its
              ``padding`` (top, left): TensorFlow's "same". ``avgpool2d`` on floats.
``affine``    per-channel ``x·scale + bias`` (a BatchNorm on its own); ``act``: relu, hardtanh,
              prelu (``PReLU(x − shift_in) + shift_out``, ReActNet's RPReLU).
``add``       the sum of two float values (residual shortcuts); ``concat``: float values joined
              along channels (DenseNet).
``embedding`` float token ids ``(L,)`` → table rows ``(1, L, D)``, float or packed signs
              (:mod:`onebit.runtime.embedding`: a text CNN's first node).
``sigmoid``   ``1/(1 + exp(−x))`` elementwise on floats; ``channel_mul``: a float (H, W, C) value
              times a per-sample float (C,) vector, per channel (Real-to-Binary Net's gate:
              global ``avgpool2d`` → ``flatten`` → float ``dense`` + relu → ``dense`` → ``sigmoid``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onebit import _core
from onebit.errors import ModelFileError
from onebit.runtime import blas

ACTIVATIONS = ("none", "relu", "hardtanh")
MAX_DIM = 2**31 - 1
Values = dict[str, Any]


@dataclass
class Layer:
    """One node as the runtime runs it: what it computes and on which operands."""

    name: str
    op: str
    kind: str  # "binary" (XNOR-popcount), "binary weights, float input", "float", "reshape", ...
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    out_bits: bool
    output: str = ""  # the value it writes
    inputs: tuple[str, ...] = ()  # the values it reads
    also_writes: tuple[str, ...] = ()  # further values it writes (a fused sign's bits)
    # their (shape, bits) where they are not (out_shape, True); empty: all are
    also_shapes: tuple[tuple[tuple[int, ...], bool], ...] = ()
    seconds: float = 0.0  # accumulated while the model runs with profile = True
    calls: int = 0
    run: Callable[[Values, int], None] | None = field(default=None, repr=False)
    # What load-time fusion (runtime/fusion.py) needs to know of the node: "fuse" (a binary
    # conv with float output: a factory of its run with the steps after it fused), "prelu"
    # (an RPReLU's tensors), "sign" (a sign's shift or None).
    fusion: dict[str, Any] = field(default_factory=dict, repr=False)
    # The node as steps of the C++ executor (runtime/executor.py): native(plan, ids, shapes)
    # adds them to a ``_core.Plan`` (ids: value name -> plan value; shapes: value name ->
    # (shape, bits)); None where only the Python run exists. ``native_max_batch``: the
    # largest batch for which those steps are this run's (a product that switches to BLAS
    # beyond it), None for any.
    native: Callable[[Any, dict[str, int], dict[str, tuple[tuple[int, ...], bool]]], None] | None = field(
        default=None, repr=False)
    native_max_batch: int | None = None
    # Checks of the values a node reads that the executor's steps do not make (an embedding's
    # token ids): run before its segment, raising the Python run's error.
    check: Callable[[Values], None] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        out = f"{self.out_shape} {'bits' if self.out_bits else 'float32'}"
        return f"{self.name:24s} {self.op:9s} {self.kind:28s} {self.in_shape} -> {out}"


class NodeReader:
    """Typed access to a node's fields and tensors; every error names the node."""

    def __init__(self, node: Any, index: int, tensors: dict[str, np.ndarray], where: str):
        if not isinstance(node, dict):
            raise ModelFileError(f"{where}: node {index} must be a JSON object")
        self.node, self.tensors = node, tensors
        self.label = f"{where}: node {index} ({node.get('name', '?')!r})"

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.label}: {message}")

    def str(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.node.get(key)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            valid = f" (valid: {', '.join(choices)})" if choices else ""
            raise self.error(f"{key} must be a string{valid}, got {value!r}")
        return value

    def int(self, key: str, low: int = 1, high: int = MAX_DIM) -> int:
        value = self.node.get(key)
        if type(value) is not int or not low <= value <= high:
            raise self.error(f"{key} must be an integer in [{low}, {high}], got {value!r}")
        return value

    def pair(self, key: str, low: int, high: int = 4096, node: dict | None = None) -> tuple[int, int]:
        value = (node or self.node).get(key)
        if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int and low <= v <= high for v in value)):
            raise self.error(f"{key} must be two integers in [{low}, {high}], got {value!r}")
        return value[0], value[1]

    def has_tensor(self, key: str) -> bool:
        """Whether the node names an (optional) tensor ``key``; its ``tensors`` must be an object."""
        names = self.node.get("tensors", {})
        if not isinstance(names, dict):
            raise self.error(f"tensors must be an object of tensor names, got {names!r}")
        return key in names

    def tensor(self, key: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        names = self.node.get("tensors")
        if not isinstance(names, dict) or not isinstance(names.get(key), str):
            raise self.error(f"tensors.{key} must name a tensor")
        array = self.tensors.get(names[key])
        if array is None:
            raise self.error(f"tensor {names[key]!r} ({key}) is not in the file")
        if array.dtype != np.dtype(dtype) or array.shape != shape:
            raise self.error(f"tensor {names[key]!r} ({key}) must be {dtype} {shape}, got {array.dtype} {array.shape}")
        return np.ascontiguousarray(array)

    def finite(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        array = self.tensor(key, "float32", shape)
        if not np.isfinite(array).all():
            raise self.error(f"tensor {key} holds NaN or infinite values")
        return array


def words(channels: int) -> int:
    return (channels + 63) // 64


def _tail_bits(w: np.ndarray, k: int) -> bool:
    return k % 64 != 0 and bool((w[..., -1] >> np.uint64(k % 64)).any())


def _activate(z: np.ndarray, act: str) -> np.ndarray:
    if act == "relu":
        np.maximum(z, 0.0, out=z)
    elif act == "hardtanh":
        np.clip(z, -1.0, 1.0, out=z)
    return z


def _pack_last(z: np.ndarray, threads: int) -> np.ndarray:
    c = z.shape[-1]
    packed = _core.pack_rows(np.ascontiguousarray(z.reshape(-1, c)), threads)
    return packed.reshape(*z.shape[:-1], words(c))


# ------------------------------------------------------------------ reshaping ops


def to_nhwc(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """(C, H, W) → (H, W, C); a 1-D signal (C, L) becomes the image (1, L, C)."""
    if bits or len(shape) not in (2, 3):
        raise r.error(f"to_nhwc needs a float (C, H, W) or (C, L) input, got {shape}")
    c, h, w = shape if len(shape) == 3 else (shape[0], 1, shape[1])

    def run(values: Values, threads: int) -> None:
        values[out] = _core.nchw_to_nhwc(values[src].reshape(-1, c, h, w), threads)

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.to_nhwc(ids[src], ids[out], c, h, w)

    return Layer("", "to_nhwc", "reshape", shape, (h, w, c), False, run=run, native=native)


def flatten(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    if bits and len(shape) > 1 and shape[-1] % 64:
        raise r.error(f"flatten of packed bits needs a channel count that is a multiple of 64, got {shape}")
    flat = math.prod(shape)
    row = words(flat) if bits and len(shape) == 1 else (flat // 64 if bits else flat)

    def run(values: Values, threads: int) -> None:
        x = values[src]
        values[out] = x.reshape(len(x), row)

    return Layer("", "flatten", "reshape", shape, (flat,), bits, run=run)


def sign(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """−1 where ``x < shift`` (per channel, default 0), packed along the last axis."""
    if bits:
        raise r.error("sign needs a float input")
    shift = r.finite("shift", (shape[-1],)) if r.has_tensor("shift") else None

    def run(values: Values, threads: int) -> None:
        x = np.ascontiguousarray(values[src])
        values[out] = _core.pack_shifted(x, shift, threads) if shift is not None else _pack_last(x, threads)

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.pack(ids[src], ids[out], shape[-1], shift)

    return Layer("", "sign", "pack", shape, shape, True, run=run, fusion={"sign": shift}, native=native)


def affine(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """``x·scale + bias`` per channel (the last axis): a BatchNorm that follows no layer."""
    if bits:
        raise r.error("affine needs a float input")
    scale, bias = r.finite("scale", (shape[-1],)), r.finite("bias", (shape[-1],))

    def run(values: Values, threads: int) -> None:
        values[out] = _core.channel_affine(np.ascontiguousarray(values[src]), scale, bias, threads)

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.affine(ids[src], ids[out], shape[-1], scale, bias)

    return Layer("", "affine", "float", shape, shape, False, run=run, fusion={"affine": (scale, bias)},
                 native=native)


def act(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """relu; hardtanh(low, high); prelu: ``PReLU_slope(x − shift_in) + shift_out`` per channel (RPReLU)."""
    if bits:
        raise r.error("act needs a float input")
    kind = r.str("act", ("relu", "hardtanh", "prelu"))
    fusion: dict[str, Any] = {}
    if kind == "relu":
        fusion["prelu"] = "relu"  # a binary conv's float stage can take it (runtime/fusion.py)

        def run(values: Values, threads: int) -> None:
            values[out] = np.maximum(values[src], np.float32(0.0))

        def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
            plan.clip(ids[src], ids[out], 0.0, 0.0, True)
    elif kind == "hardtanh":
        low, high = r.node.get("low"), r.node.get("high")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)) or low > high:
            raise r.error(f"hardtanh needs finite low <= high, got {low!r}, {high!r}")
        low, high = np.float32(low), np.float32(high)

        def run(values: Values, threads: int) -> None:
            values[out] = np.clip(values[src], low, high)

        def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
            plan.clip(ids[src], ids[out], float(low), float(high), False)
    else:
        c = shape[-1]
        shift_in, slope, shift_out = (r.finite(k, (c,)) for k in ("shift_in", "slope", "shift_out"))

        def run(values: Values, threads: int) -> None:
            # where(z ≥ 0, z, slope·z) as max(z, 0) + slope·min(z, 0), exactly (one term is ±0)
            values[out] = _core.channel_prelu(np.ascontiguousarray(values[src]), shift_in, slope, shift_out, threads)

        def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
            plan.prelu(ids[src], ids[out], c, shift_in, slope, shift_out)

        return Layer("", "act", "float", shape, shape, False, run=run,
                     fusion={"prelu": (shift_in, slope, shift_out)}, native=native)

    return Layer("", "act", "float", shape, shape, False, run=run, fusion=fusion, native=native)


def add(r: NodeReader, srcs: list[str], out: str, known: list[tuple[tuple[int, ...], bool]]) -> Layer:
    """The residual sum of two float values of one shape (Bi-Real Net's shortcut)."""
    (sa, ba), (sb, bb) = known
    if ba or bb or sa != sb:
        raise r.error(f"add needs two float values of one shape, got {sa} and {sb}")
    a, b = srcs

    def run(values: Values, threads: int) -> None:
        values[out] = _core.add(np.ascontiguousarray(values[a]), np.ascontiguousarray(values[b]), threads)

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.add(ids[a], ids[b], ids[out])

    return Layer("", "add", "float", sa, sa, False, run=run, native=native)


def concat(r: NodeReader, srcs: list[str], out: str, known: list[tuple[tuple[int, ...], bool]]) -> Layer:
    """Float (H, W, C_i) values joined along channels (DenseNet)."""
    shapes = [s for s, _ in known]
    if any(b for _, b in known) or any(len(s) != 3 or s[:2] != shapes[0][:2] for s in shapes):
        raise r.error(f"concat needs float (H, W, C) values of one H and W, got {shapes}")
    shape = (*shapes[0][:2], sum(s[2] for s in shapes))

    return Layer("", "concat", "float", shapes[0], shape, False, run=concat_run(srcs, out),
                 native=concat_native(srcs, out))


def concat_run(srcs: list[str], out: str) -> Callable[[Values, int], None]:
    def run(values: Values, threads: int) -> None:
        values[out] = np.concatenate([values[v] for v in srcs], axis=-1)

    return run


def concat_native(srcs: list[str], out: str) -> Callable[[Any, dict[str, int], Any], None]:
    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.concat([ids[v] for v in srcs], [shapes[v][0][-1] for v in srcs], ids[out])

    return native


def sigmoid(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """``1 / (1 + exp(−x))`` elementwise, computed in float64 (C's ``exp``) and rounded once to
    float32 (a gate's squashing; ``_core.sigmoid``, the executor's kernel too)."""
    if bits:
        raise r.error("sigmoid needs a float input")

    def run(values: Values, threads: int) -> None:
        values[out] = _core.sigmoid(np.ascontiguousarray(values[src]), threads)

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.sigmoid(ids[src], ids[out])

    return Layer("", "sigmoid", "float", shape, shape, False, run=run, native=native)


def channel_mul(r: NodeReader, srcs: list[str], out: str, known: list[tuple[tuple[int, ...], bool]]) -> Layer:
    """A float (H, W, C) value times a per-sample float vector (C,): ``x[n, h, w, c]·g[n, c]``, the
    data-dependent channel gate of Real-to-Binary Net (squeeze-and-excitation's product)."""
    (sx, bx), (sg, bg) = known
    if bx or bg or len(sx) != 3 or sg != (sx[2],):
        raise r.error(f"channel_mul needs a float (H, W, C) value and a float (C,) vector, got {sx} and {sg}")
    x, g = srcs

    def run(values: Values, threads: int) -> None:
        values[out] = values[x] * values[g][:, None, None, :]

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.channel_mul(ids[x], ids[g], ids[out], sx[2])

    return Layer("", "channel_mul", "float", sx, sx, False, run=run, native=native)


def affine_of_parts_run(parts: list[str], scale: np.ndarray, bias: np.ndarray,
                        out: str) -> Callable[[Values, int], None]:
    """``affine(concat(parts))``: a DenseNet transition's BatchNorm of the block's features, the
    concat formed here as numpy does it (the executor's step joins and scales in one pass)."""

    def run(values: Values, threads: int) -> None:
        joined = np.concatenate([values[v] for v in parts], axis=-1)
        values[out] = _core.channel_affine(joined, scale, bias, threads)

    return run


def affine_of_parts_native(parts: list[str], scale: np.ndarray, bias: np.ndarray,
                           out: str) -> Callable[[Any, dict[str, int], Any], None]:
    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.concat([ids[v] for v in parts], [shapes[v][0][-1] for v in parts], ids[out], scale, bias)

    return native


def sign_of_parts_run(parts: list[str], shift: np.ndarray | None, affine: tuple[np.ndarray, np.ndarray] | None,
                      out: str) -> Callable[[Values, int], None]:
    """The packed sign of the channel concatenation of ``parts`` (through a BatchNorm
    ``affine`` first, if given) without forming it: each row joined in a small buffer and
    packed (``_core.pack_shifted_parts``), the sign of a DenseNet concat without the concat."""
    scale, bias = (None, None) if affine is None else affine

    def run(values: Values, threads: int) -> None:
        values[out] = _core.pack_shifted_parts([np.ascontiguousarray(values[v]) for v in parts], shift, threads,
                                               scale=scale, bias=bias)

    return run


Native = Callable[[Any, dict[str, int], Any], None]  # Layer.native: (plan, ids, shapes) -> None


Plane = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]  # (shift, scale, bias) of one reader


def sign_planes_run(src: str, planes: list[Plane], out: str) -> Callable[[Values, int], None]:
    """A feature packed once per later layer that reads it, side by side along the last axis:
    plane d is the sign of ``src`` under reader d's BatchNorm and shift, each
    ``_core.pack_shifted_parts`` of the one part (the executor's step: ``Plan.pack_planes``)."""

    def run(values: Values, threads: int) -> None:
        x = np.ascontiguousarray(values[src])
        values[out] = np.concatenate([_core.pack_shifted_parts([x], shift, threads, scale=scale, bias=bias)
                                      for shift, scale, bias in planes], axis=-1)

    return run


def sign_planes_native(src: str, channels: int, planes: list[Plane], out: str) -> Native:
    """:func:`sign_planes_run` as an executor step."""

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.pack_planes(ids[src], ids[out], channels, planes)

    return native


def concat_planes_run(planes: list[str], offsets: list[int], channels: list[int], out: str) -> Callable[[Values, int], None]:
    """A layer's packed input joined from its parts' planes: part i's ``channels[i]`` bits from
    word ``offsets[i]`` of each row of ``planes[i]`` (``_core.concat_bits``)."""

    def run(values: Values, threads: int) -> None:
        values[out] = _core.concat_bits([values[v] for v in planes], offsets, channels, threads)

    return run


def concat_planes_native(planes: list[str], offsets: list[int], channels: list[int], strides: list[int],
                         out: str) -> Native:
    """:func:`concat_planes_run` as an executor step (strides: each planes value's words per row)."""

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.concat_bits([ids[v] for v in planes], strides, offsets, channels, ids[out])

    return native


def sign_of_parts_native(parts: list[str], shift: np.ndarray | None, affine: tuple[np.ndarray, np.ndarray] | None,
                         out: str) -> Native:
    """:func:`sign_of_parts_run` as an executor step."""
    scale, bias = (None, None) if affine is None else affine

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.pack_parts([ids[v] for v in parts], [shapes[v][0][-1] for v in parts], ids[out], shift, scale, bias)

    return native


# ------------------------------------------------------------------ output stage


def _output_stage(r: NodeReader, n: int, in_bits: bool) -> tuple[str, Callable[[np.ndarray, int], np.ndarray] | None, Any]:
    """Reads out/act and the stage's tensors; returns (out kind, float stage or None, (thresholds, flips))."""
    out_kind = r.str("out", ("bits", "float"))
    if out_kind == "bits" and in_bits:
        thresholds = r.tensor("threshold", "int32", (n,))
        flips = r.tensor("flip", "int8", (n,))
        if not np.isin(flips, (-1, 1)).all():
            raise r.error("flip must hold only +1 and -1")
        return out_kind, None, (thresholds, flips)
    act = r.str("act", ACTIVATIONS) if out_kind == "float" else "none"
    scale, bias = r.finite("scale", (n,)), r.finite("bias", (n,))
    post = _post_affine(r, n, out_kind)
    unit_scale, zero_bias = bool((scale == 1).all()), bool((bias == 0).all())  # QuickNet: conv → ReLU → BN

    def stage(y: np.ndarray, threads: int) -> np.ndarray:
        z = y.astype(np.float32, copy=False)  # in place on y: the executor's dense_stage does the same
        if not unit_scale:
            z *= scale
        if not zero_bias:
            z += bias
        if out_kind == "bits":
            return _pack_last(z, threads)
        z = _activate(z, act)
        if post is not None:  # a BatchNorm after the activation (QuickNet: conv → ReLU → BN)
            z *= post[0]
            z += post[1]
        return z

    # The same stage as the executor's Plan.dense_stage arguments (scale, bias, act, post_scale, post_bias, bits).
    stage.params = (None if unit_scale else scale, None if zero_bias else bias, act,
                    *(post if post is not None else (None, None)), out_kind == "bits")
    return out_kind, stage, None


def _post_affine(r: NodeReader, n: int, out_kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The optional ``post_scale``/``post_bias`` of a float output: ``act(y·scale + bias)·post_scale + post_bias``."""
    if not r.has_tensor("post_scale") and not r.has_tensor("post_bias"):
        return None
    if out_kind != "float":
        raise r.error("post_scale/post_bias need a float output (out='float')")
    return r.finite("post_scale", (n,)), r.finite("post_bias", (n,))


def _stage_tensors(r: NodeReader, n: int, out_kind: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(scale, bias, act) of a float-input conv's output stage (checked by :func:`_output_stage`); its
    kernel fuses that stage and has no affine after the activation."""
    if _post_affine(r, n, out_kind) is not None:
        raise r.error("post_scale/post_bias are not supported on a float-input convolution")
    act = r.str("act", ACTIVATIONS) if out_kind == "float" else "none"
    return r.finite("scale", (n,)), r.finite("bias", (n,)), act


# ------------------------------------------------------------------ dense


def dense(r: NodeReader, src: str, out: str, shape: tuple[int, ...], in_bits: bool) -> Layer:
    k, n = r.int("k"), r.int("n")
    if shape != (k,):
        raise r.error(f"k={k} does not match its input of shape {shape}")
    weights = r.str("weights", ("bits", "float"))
    if in_bits and weights != "bits":
        raise r.error("a packed-bit input needs binary weights")
    if weights == "bits":
        w = r.tensor("weight", "uint64", (n, words(k)))
        if _tail_bits(w, k):
            raise r.error(f"weight has bits set beyond k={k}")
    else:
        w = r.finite("weight", (n, k))
    out_kind, stage, folded = _output_stage(r, n, in_bits)

    if in_bits:
        packed = _core.PackedWeights(w, k)
        if folded is not None:
            t, f = folded

            def run(values: Values, threads: int) -> None:
                values[out] = _core.bgemm_threshold(values[src], packed, t, f, threads)
        else:  # float output: the stage runs inside the kernel, per task
            scale, bias = r.finite("scale", (n,)), r.finite("bias", (n,))
            act_name, post = r.str("act", ACTIVATIONS), _post_affine(r, n, out_kind)
            post_scale, post_bias = (None, None) if post is None else post

            def run(values: Values, threads: int) -> None:
                values[out] = _core.bgemm_float(values[src], packed, scale, bias, act_name, post_scale, post_bias,
                                                threads)

        def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
            if folded is not None:
                plan.bgemm_threshold(ids[src], ids[out], packed, *folded)
            else:
                plan.bgemm_float(ids[src], ids[out], packed, scale, bias, act_name, post_scale, post_bias)

        return Layer("", "dense", "binary", (k,), (n,), out_kind == "bits", run=run, native=native)
    mm = _float_input_product(_core.unpack_rows(w, k) if weights == "bits" else w, weights == "bits")

    def run(values: Values, threads: int) -> None:
        values[out] = stage(mm(values[src], threads), threads)

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        product = plan.value(n, False)
        mm.native(plan, ids[src], product)
        plan.dense_stage(product, ids[out], n, *stage.params)

    kind = "binary weights, float input" if weights == "bits" else "float"
    return Layer("", "dense", kind, (k,), (n,), out_kind == "bits", run=run,
                 native=native if mm.native is not None else None, native_max_batch=mm.max_rows)


# Float-weight products of at most this many rows run in FloatConv2d (as a 1x1 conv over a
# row of pixels, one thread) instead of numpy's BLAS: at batch 1 a classifier's GEMV is
# ~15 µs either way, but OpenBLAS's own threads spin against the engine's pool, and on a
# busy machine its 2-thread GEMV of Bi-Real's 512×1000 classifier took 20 ms instead of 70 µs.
SMALL_FLOAT_PRODUCT_ROWS = 16


def _float_input_product(w: np.ndarray, binary: bool) -> _Product:
    """``x ↦ x · wᵀ`` for float32 rows ``x`` and weights ``w`` (n, k) (±1 where ``binary``).

    Binary weights run in onebit's float-input kernel on the 1-bit weights (table lookups
    over 4 inputs) where it measured faster than numpy's BLAS on ±1 floats: on AVX-512 for
    any rows when k ≥ 64 (784×4096 at batch 1: 15 µs vs 125 µs) and up to 4,096 rows for a
    small k, on AVX2 up to 64 rows; elsewhere numpy's BLAS (convs use FloatConv2d). Float
    weights: FloatConv2d up to SMALL_FLOAT_PRODUCT_ROWS rows, numpy's BLAS beyond. All
    round differently from PyTorch only in the last bits.
    """
    n, k = w.shape
    wt = np.ascontiguousarray(w.T, np.float32)
    isa = _core.selected_isa()
    if not binary:
        conv = _core.FloatConv2d(np.ascontiguousarray(w, np.float32).reshape(n, 1, 1, k), k)

        def product(x: np.ndarray, threads: int) -> np.ndarray:
            m = len(x)
            if m > SMALL_FLOAT_PRODUCT_ROWS:
                return _blas_product(x, wt, threads)
            return conv.run(np.ascontiguousarray(x).reshape(1, 1, m, k), num_threads=1).reshape(m, n)

        return _Product(product, lambda plan, src, dst: plan.fconv(src, dst, conv, 1, 1, None, None, "none", False,
                                                                   None, True), SMALL_FLOAT_PRODUCT_ROWS)
    if isa not in ("avx512", "avx2"):
        return _Product(lambda x, threads: _blas_product(x, wt, threads), None, None)
    packed = _core.BinaryWeightsF32(_core.pack_rows(np.ascontiguousarray(w, np.float32), 1), w.shape[1])
    rows = (1 << 62 if w.shape[1] >= 64 else 4096) if isa == "avx512" else 64
    return _Product(lambda x, threads: (packed.run(np.ascontiguousarray(x), threads) if len(x) <= rows
                                        else _blas_product(x, wt, threads)),
                    lambda plan, src, dst: plan.fgemm_bw(src, dst, packed), rows)


@dataclass
class _Product:
    """A float-input product ``x ↦ x · wᵀ``; ``native(plan, src, dst)`` adds its executor step,
    the same kernel as ``run`` for batches of at most ``max_rows`` (None: no such step)."""

    run: Callable[[np.ndarray, int], np.ndarray]
    native: Callable[[Any, int, int], None] | None
    max_rows: int | None

    def __call__(self, x: np.ndarray, threads: int) -> np.ndarray:
        return self.run(x, threads)


def _blas_product(x: np.ndarray, wt: np.ndarray, threads: int) -> np.ndarray:
    """``x @ wt`` in numpy's BLAS, held to the model's thread count (:mod:`onebit.runtime.blas`)."""
    with blas.limit(threads):
        return x @ wt


# ------------------------------------------------------------------ conv2d and pooling


def _out_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _float_pool(y: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
                threads: int, mean: bool = False, pad_end: tuple[int, int] | None = None) -> np.ndarray:
    """Max- (or average-) pool of NHWC floats in onebit's kernel, threaded over output rows.
    Max: padded positions never win (PyTorch pads with −inf); average: padded zeros count
    (count_include_pad), the window summed in order, then times the float32 1/(kh·kw).
    ``pad`` is (top, left), ``pad_end`` (bottom, right), None for the same as ``pad``."""
    return _core.fpool2d(np.ascontiguousarray(y, dtype=np.float32), kernel, stride, pad, mean, threads,
                         padding_end=pad_end)


PoolSpec = tuple[tuple[int, int], tuple[int, int], tuple[int, int], int, int, tuple[int, int]]


def _pool_spec(r: NodeReader, h: int, w: int) -> PoolSpec | None:
    """(kernel, stride, padding, PH, PW, padding_end) of the node's pool object, or None.

    ``padding`` is (top, left); ``padding_end`` (bottom, right, format 4), where present,
    differs from it: TensorFlow's "same" max-pool puts the odd padded pixel after. Padded
    positions never win the max (−inf), each side at most half the kernel."""
    pool = r.node.get("pool")
    if pool is None:
        return None
    if not isinstance(pool, dict):
        raise r.error("pool must be an object with kernel, stride and padding")
    kernel, stride = r.pair("kernel", 1, node=pool), r.pair("stride", 1, node=pool)
    pad = r.pair("padding", 0, node=pool)
    pad_end = r.pair("padding_end", 0, node=pool) if "padding_end" in pool else pad
    for name, p in (("padding", pad), ("padding_end", pad_end)):
        if p[0] * 2 > kernel[0] or p[1] * 2 > kernel[1]:
            raise r.error(f"pool {name} {p} must be at most half the kernel {kernel}")
    ph, pw = ((s + p + pe - k) // st + 1 for s, k, st, p, pe in zip((h, w), kernel, stride, pad, pad_end))
    if ph < 1 or pw < 1:
        raise r.error(f"pool {kernel} does not fit its {h}x{w} input")
    return kernel, stride, pad, ph, pw, pad_end


def _required_pool(r: NodeReader, shape: tuple[int, ...]) -> PoolSpec:
    """The pool of a standalone pooling node on an (H, W, C) value."""
    if len(shape) != 3:
        raise r.error(f"{r.node.get('op')} needs an (H, W, C) input, got {shape}")
    spec = _pool_spec(r, shape[0], shape[1])
    if spec is None:
        raise r.error(f"{r.node.get('op')} needs a pool object")
    return spec


def maxpool2d(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    kernel, stride, pad, ph, pw, pad_end = _required_pool(r, shape)
    c = shape[2]
    if bits:
        mask = _core.pack_rows(np.full((1, c), -1.0, np.float32), 1)[0]  # AND on every channel, tail bits 0

        def run(values: Values, threads: int) -> None:  # padded positions are skipped: never the max
            values[out] = _core.bmaxpool2d(values[src], c, kernel, stride, pad, mask, threads, padding_end=pad_end)

        def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
            plan.bmaxpool(ids[src], ids[out], shape[0], shape[1], c, (kernel, stride, pad, pad_end), mask)
    else:

        def run(values: Values, threads: int) -> None:
            values[out] = _float_pool(values[src], kernel, stride, pad, threads, pad_end=pad_end)

        def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
            plan.fpool(ids[src], ids[out], shape[0], shape[1], c, (kernel, stride, pad, pad_end), False)

    return Layer("", "maxpool2d", "binary" if bits else "float", shape, (ph, pw, c), bits, run=run, native=native,
                 fusion={} if bits else {"maxpool": (kernel, stride, pad, pad_end)})


def avgpool2d(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """Average pool of float NHWC values; padded zeros count in the divisor (PyTorch's default)."""
    if bits:
        raise r.error("avgpool2d needs a float input")
    kernel, stride, pad, ph, pw, pad_end = _required_pool(r, shape)
    if pad_end != pad:
        raise r.error(f"avgpool2d takes no padding_end (only max-pools pad asymmetrically), got {pad_end}")

    def run(values: Values, threads: int) -> None:
        values[out] = _float_pool(values[src], kernel, stride, pad, threads, mean=True)

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.fpool(ids[src], ids[out], shape[0], shape[1], shape[2], (kernel, stride, pad, None), True)

    return Layer("", "avgpool2d", "float", shape, (ph, pw, shape[2]), False, run=run, native=native,
                 fusion={"avgpool": (kernel, stride, pad)})


def _narrow_group_conv(src: str, out: str, wbits: np.ndarray, cin: int, groups: int, kernel: tuple[int, int],
                       stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int], pad_value: int,
                       padding_end: tuple[int, int], spec: PoolSpec | None,
                       stage: Callable[[np.ndarray, int], np.ndarray] | None,
                       folded: tuple[np.ndarray, np.ndarray] | None) -> Callable[[Values, int], None]:
    """The run of a binary-input conv whose groups are narrower than a word (a depthwise conv: one
    channel a group), which BinaryConv2d does not pack: the ±1 input unpacked to float32 and convolved
    by the float kernel with the ±1 weights. Exact: y sums at most K products of ±1 (and of the pad
    value), integers that float32 holds exactly for K < 2²⁴. Then the node's pool of y and its stage:
    thresholds (+1 iff flip·(y − threshold) ≥ 0) or scale, bias and act."""
    cout, cg = wbits.shape[0], cin // groups
    if cg * kernel[0] * kernel[1] >= 1 << 24:
        raise ValueError(f"a binary conv of {cg} channels per group and kernel {kernel} needs groups of whole "
                         "64-bit words (its sums are not exact in float32)")
    wmat = _core.unpack_rows(np.ascontiguousarray(wbits.reshape(-1, words(cg))), cg).reshape(cout, *kernel, cg)
    conv = _core.FloatConv2d(np.ascontiguousarray(wmat), cin, groups, stride, padding, dilation, float(pad_value),
                             padding_end=padding_end)
    pool = None if spec is None else (*spec[:3], spec[5])
    t, f = (None, None) if folded is None else (folded[0].astype(np.float32), folded[1].astype(np.float32))

    def run(values: Values, threads: int) -> None:
        x = values[src]
        signs = _core.unpack_rows(np.ascontiguousarray(x.reshape(-1, x.shape[-1])), cin, threads)
        y = conv.run(signs.reshape(*x.shape[:-1], cin), pool=pool, num_threads=threads)
        values[out] = _pack_last(f * (y - t), threads) if folded is not None else stage(y, threads)

    return run


def conv2d(r: NodeReader, src: str, out: str, shape: tuple[int, ...], in_bits: bool) -> Layer:
    if len(shape) != 3:
        raise r.error(f"conv2d needs an (H, W, C) input, got {shape}")
    h, w, c = shape
    cin, cout, groups = r.int("cin"), r.int("cout"), r.int("groups")
    if cin != c:
        raise r.error(f"cin={cin} does not match its input of shape {shape}")
    if cin % groups or cout % groups:
        raise r.error(f"groups={groups} must divide cin={cin} and cout={cout}")
    kernel, stride = r.pair("kernel", 1, 64), r.pair("stride", 1, 64)
    padding, dilation = r.pair("padding", 0, 64), r.pair("dilation", 1, 64)
    # "padding" is (top, left); "padding_end" (bottom, right), where present, differs from it
    # (TensorFlow's "same" of a strided conv puts the odd pixel after).
    padding_end = r.pair("padding_end", 0, 64) if "padding_end" in r.node else padding
    pad_value = r.node.get("pad_value")
    if pad_value not in (-1, 0, 1):
        raise r.error(f"pad_value must be -1, 0 or 1, got {pad_value!r}")
    oh, ow = ((s + p + pe - d * (k - 1) - 1) // st + 1
              for s, k, st, p, pe, d in zip((h, w), kernel, stride, padding, padding_end, dilation))
    if oh < 1 or ow < 1:
        raise r.error(f"kernel {kernel} does not fit its {h}x{w} input with padding {padding}")
    weights = r.str("weights", ("bits", "float"))
    if in_bits and weights != "bits":
        raise r.error("a packed-bit input needs binary weights")
    cg = cin // groups
    if weights == "bits":
        wbits = r.tensor("weight", "uint64", (cout, *kernel, words(cg)))
        if _tail_bits(wbits, cg):
            raise r.error(f"weight has bits set beyond the {cg} channels of a group")
    else:
        wfloat = r.finite("weight", (cout, *kernel, cg))
    spec = _pool_spec(r, oh, ow)
    out_hw = (oh, ow) if spec is None else spec[3:5]
    out_kind, stage, folded = _output_stage(r, cout, in_bits)
    fusion: dict[str, Any] = {}

    if in_bits and groups > 1 and cg % 64:
        try:
            run = _narrow_group_conv(src, out, wbits, cin, groups, kernel, stride, padding, dilation, pad_value,
                                     padding_end, spec, stage, folded)
        except ValueError as exc:
            raise r.error(str(exc)) from None
        return Layer("", "conv2d", "binary, unpacked (groups narrower than 64 channels)", shape, (*out_hw, cout),
                     out_kind == "bits", run=run)
    if in_bits:
        try:
            conv = _core.BinaryConv2d(wbits, cin, groups, stride, padding, dilation, int(pad_value),
                                      padding_end=padding_end)
        except ValueError as exc:
            raise r.error(str(exc)) from None
        if folded is not None:
            t, f = folded
            # and_mask bit c set ⇔ flip[c] = +1 ⇔ AND-pool (pack_rows sets the bits of negative values).
            and_mask = _core.pack_rows(np.where(f > 0, -1.0, 1.0).astype(np.float32)[None], 1)[0]
            pool, and_mask = (None, None) if spec is None else ((*spec[:3], spec[5]), and_mask)

            def run(values: Values, threads: int) -> None:
                # A max-pool after the thresholds is pooled per task, in cache (bconv.h).
                values[out] = conv.run_threshold(values[src], t, f, threads, pool=pool, and_mask=and_mask)

            def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
                plan.bconv_threshold(ids[src], ids[out], conv, h, w, t, f, pool, and_mask)
        elif spec is None:  # float output: the stage runs inside the kernel, per tile
            scale, bias = r.finite("scale", (cout,)), r.finite("bias", (cout,))
            act_name, post = r.str("act", ACTIVATIONS), _post_affine(r, cout, out_kind)
            post_scale, post_bias = (None, None) if post is None else post

            def run(values: Values, threads: int) -> None:
                values[out] = conv.run_float(values[src], scale, bias, act_name, post_scale, post_bias, threads)

            def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
                plan.bconv_float(ids[src], ids[out], conv, h, w, scale, bias, act_name, post_scale, post_bias, -1,
                                 None, -1, None)

            def fuse(residual: str | None, prelu: tuple | None, sign: bool, sign_shift: np.ndarray | None,
                     float_out: str, bits_out: str | None, gate: str | None = None,
                     residual_last: bool = False) -> Callable[[Values, int], None]:
                """The run of this conv with the steps after it in its kernel (runtime/fusion.py)."""

                def fused(values: Values, threads: int) -> None:
                    r = None if residual is None else np.ascontiguousarray(values[residual])
                    g = None if gate is None else np.ascontiguousarray(values[gate])
                    y = conv.run_float(values[src], scale, bias, act_name, post_scale, post_bias, threads,
                                       residual=r, prelu=prelu, signs=sign, sign_shift=sign_shift, gate=g,
                                       residual_last=residual_last)
                    if sign:
                        values[float_out], values[bits_out] = y
                    else:
                        values[float_out] = y

                return fused

            def fuse_native(residual: str | None, prelu: tuple | None, sign: bool, sign_shift: np.ndarray | None,
                            float_out: str, bits_out: str | None, gate: str | None = None,
                            residual_last: bool = False) -> Callable[[Any, dict[str, int], Any], None]:
                """``fuse``'s run as an executor step."""

                def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
                    plan.bconv_float(ids[src], ids[float_out], conv, h, w, scale, bias, act_name, post_scale,
                                     post_bias, -1 if residual is None else ids[residual], prelu,
                                     ids[bits_out] if sign else -1, sign_shift,
                                     gate=-1 if gate is None else ids[gate], residual_last=residual_last)

                return native

            fusion["fuse"], fusion["fuse_native"] = fuse, fuse_native
        else:
            def run(values: Values, threads: int) -> None:
                y = conv.run(values[src], threads).astype(np.float32)
                y = _float_pool(y, *spec[:3], threads, pad_end=spec[5])
                values[out] = stage(y, threads)

            def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
                plan.bconv_pooled(ids[src], ids[out], conv, h, w, (*spec[:3], spec[5]), *stage.params)

        kind = "binary"
    else:
        # ±1 weights expanded to float32 once at load (the file keeps 1 bit per weight): a
        # first layer's weights are small (128×27 floats for VGG-small) and the float kernel
        # then runs FMAs on them directly, threaded over output rows with no table step.
        wmat = (_core.unpack_rows(wbits.reshape(-1, words(cg)), cg) if weights == "bits" else wfloat)
        try:
            conv = _core.FloatConv2d(np.ascontiguousarray(wmat.reshape(cout, *kernel, cg), np.float32), cin, groups,
                                     stride, padding, dilation, float(pad_value), padding_end=padding_end)
        except ValueError as exc:
            raise r.error(str(exc)) from None
        scale, bias, act_name = _stage_tensors(r, cout, out_kind)
        pool, bits_out = (None if spec is None else (*spec[:3], spec[5])), out_kind == "bits"

        def run(values: Values, threads: int) -> None:
            # Padding, the max-pool and the output stage run inside the kernel (fconv.h).
            values[out] = conv.run(np.ascontiguousarray(values[src]), scale, bias, act_name, bits_out, pool, threads)

        def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
            plan.fconv(ids[src], ids[out], conv, h, w, scale, bias, act_name, bits_out, pool, False)

        # runtime/fusion.py (pool_stems): an unpooled float conv with a plain stage takes a max-pool
        # that follows its PReLU
        if pool is None and not bits_out and act_name == "none":
            fusion["fconv"] = (conv, h, w, scale, bias)
        kind = "binary weights, float input" if weights == "bits" else "float"
    return Layer("", "conv2d", kind, shape, (*out_hw, cout), out_kind == "bits", run=run, fusion=fusion,
                 native=native)


BUILDERS: dict[str, Callable[..., Layer]] = {
    "to_nhwc": to_nhwc, "flatten": flatten, "sign": sign, "dense": dense, "conv2d": conv2d, "maxpool2d": maxpool2d,
    "avgpool2d": avgpool2d, "affine": affine, "act": act, "add": add, "concat": concat,
    "sigmoid": sigmoid, "channel_mul": channel_mul,
}
MULTI_INPUT = ("add", "concat", "channel_mul")


def _embedding(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """Token ids → table rows (onebit.runtime.embedding; imported here so either module may load first)."""
    from onebit.runtime.embedding import embedding

    return embedding(r, src, out, shape, bits)


BUILDERS["embedding"] = _embedding
