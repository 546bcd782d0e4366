"""Loading and running a ``.onebit`` model: a list of nodes over named values.

A value is either a float32 array ``(N, ...)`` or packed bits ``(N, ceil(C/64))``
uint64 with its channel count ``C`` (bit 1 = −1, see the architecture notes). Nodes:

``flatten``  float ``(N, ...)`` → ``(N, prod(...))``.
``sign``     float ``(N, C)`` → bits: −1 where ``x < 0`` (sign(0) = +1).
``dense``    ``y = x · Wᵀ`` with ``W`` binary (packed, 1 bit per weight in the file) or
             float, ``x`` float or bits (then ``y = K − 2·popcount(x XOR w)``, exact
             integers), then the output stage:
             ``out="bits"`` after bits: ``+1 iff flip·(y − threshold) ≥ 0`` (BatchNorm and
             the next sign folded into integers; no float round trip);
             ``out="bits"`` after float: ``+1 iff y·scale + bias ≥ 0``;
             ``out="float"``: ``act(y·scale + bias)``, act in none/relu/hardtanh.
The graph is checked against the tensors at load time, so a bad file fails in
:func:`load`, never inside a kernel.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onebit import _core
from onebit.errors import ConfigError, InputError, ModelFileError
from onebit.runtime.container import MAX_FILE_BYTES, read_container

__all__ = ["FORMAT", "FORMAT_VERSION", "Layer", "Model", "load"]

FORMAT = "onebit-model"
FORMAT_VERSION = 1
META_KEY = "onebit"
ACTIVATIONS = ("none", "relu", "hardtanh")
_MAX_DIM = 2**31 - 1


@dataclass
class Layer:
    """One node as the runtime runs it: what it computes and on which operands."""

    name: str
    op: str
    kind: str  # "binary" (XNOR-popcount), "binary weights, float input", "float", "reshape"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    out_bits: bool
    seconds: float = 0.0  # accumulated when the model runs with profile=True
    calls: int = 0
    _run: Any = field(default=None, repr=False)

    def __str__(self) -> str:
        out = f"{self.out_shape} {'bits' if self.out_bits else 'float32'}"
        return f"{self.name:24s} {self.op:8s} {self.kind:28s} {self.in_shape} -> {out}"


class Model:
    """A loaded ``.onebit`` model. ``model(x)`` runs a float32 batch in the PyTorch layout."""

    def __init__(self, graph: dict[str, Any], tensors: dict[str, np.ndarray], num_threads: int, where: str):
        self.graph = graph
        self.num_threads = num_threads
        self.in_shape = tuple(graph["input"]["shape"])
        self.layers: list[Layer] = []
        self._output = graph["output"]
        self.profile = False
        _build(self, graph, tensors, where)

    def __repr__(self) -> str:
        return f"onebit.runtime.Model({len(self.layers)} layers, input {self.in_shape}, {self.num_threads} threads)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (or the graph's output) for ``x`` of shape ``(N, *in_shape)``, float32."""
        x = self._check_input(x)
        values: dict[str, Any] = {"input": x}
        for layer in self.layers:
            if self.profile:
                start = time.perf_counter()
                layer._run(values)
                layer.seconds += time.perf_counter() - start
                layer.calls += 1
            else:
                layer._run(values)
        return values[self._output]

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """The argmax class of each row of ``x``, run in batches of ``batch_size``."""
        x = self._check_input(x)
        if len(x) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    def _check_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise InputError(f"input must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise InputError(f"input must be float32, got {x.dtype} (use x.astype(numpy.float32))")
        if x.shape[1:] != self.in_shape or x.ndim != len(self.in_shape) + 1:
            raise InputError(f"input must have shape (N, {', '.join(map(str, self.in_shape))}), got {x.shape}")
        if not np.isfinite(x).all():
            raise InputError("input holds NaN or infinite values")
        return np.ascontiguousarray(x)

    def reset_timings(self) -> None:
        for layer in self.layers:
            layer.seconds, layer.calls = 0.0, 0

    def timings(self) -> list[tuple[str, str, float]]:
        """(layer name, kind, mean seconds per call) of the calls made with ``profile = True``."""
        return [(l.name, l.kind, l.seconds / l.calls if l.calls else 0.0) for l in self.layers]


def load(path: str | os.PathLike, num_threads: int | None = None, *, max_file_bytes: int = MAX_FILE_BYTES) -> Model:
    """Load a ``.onebit`` file. ``num_threads``: kernel threads (default ``ONEBIT_NUM_THREADS``
    or the physical cores). Every check happens here; a bad file raises :class:`ModelFileError`."""
    num_threads = _resolve_threads(num_threads)
    tensors, metadata = read_container(path, max_file_bytes=max_file_bytes)
    where = str(path)
    raw = metadata.get(META_KEY)
    if raw is None:
        raise ModelFileError(f"{where}: not a .onebit model (no '{META_KEY}' metadata)")
    try:
        graph = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{where}: graph is not valid JSON ({exc})") from None
    if not isinstance(graph, dict) or graph.get("format") != FORMAT:
        raise ModelFileError(f"{where}: metadata does not describe a {FORMAT}")
    if graph.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{where}: format version {graph.get('version')!r} is not supported (this onebit reads {FORMAT_VERSION})"
        )
    return Model(graph, tensors, num_threads, where)


def _resolve_threads(num_threads: int | None) -> int:
    if num_threads is None:
        env = os.environ.get("ONEBIT_NUM_THREADS", "").strip()
        if not env:
            return int(_core.default_num_threads())
        try:
            num_threads = int(env)
        except ValueError:
            raise ConfigError(f"ONEBIT_NUM_THREADS must be a positive integer, got {env!r}") from None
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or not 1 <= num_threads <= 256:
        raise ConfigError(f"num_threads must be an integer in [1, 256], got {num_threads!r}")
    return num_threads


# ---------------------------------------------------------------- graph building


class _Reader:
    """Typed access to a node's fields and tensors with errors that name the node."""

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

    def int(self, key: str, low: int = 1, high: int = _MAX_DIM) -> int:
        value = self.node.get(key)
        if type(value) is not int or not low <= value <= high:
            raise self.error(f"{key} must be an integer in [{low}, {high}], got {value!r}")
        return value

    def tensor(self, key: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        names = self.node.get("tensors")
        if not isinstance(names, dict) or not isinstance(names.get(key), str):
            raise self.error(f"tensors.{key} must name a tensor")
        array = self.tensors.get(names[key])
        if array is None:
            raise self.error(f"tensor {names[key]!r} ({key}) is not in the file")
        if array.dtype != np.dtype(dtype) or array.shape != shape:
            raise self.error(f"tensor {names[key]!r} ({key}) must be {dtype} {shape}, got {array.dtype} {array.shape}")
        return array

    def finite(self, array: np.ndarray, key: str) -> np.ndarray:
        if not np.isfinite(array).all():
            raise self.error(f"tensor {key} holds NaN or infinite values")
        return array


def _build(model: Model, graph: dict[str, Any], tensors: dict[str, np.ndarray], where: str) -> None:
    spec = graph.get("input")
    if not (isinstance(spec, dict) and isinstance(spec.get("shape"), list) and spec["shape"]
            and all(type(d) is int and 1 <= d <= 2**24 for d in spec["shape"])):
        raise ModelFileError(f"{where}: graph input must give a shape of positive integers")
    nodes = graph.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ModelFileError(f"{where}: graph has no nodes")
    # name -> (shape without batch, bits?)
    known: dict[str, tuple[tuple[int, ...], bool]] = {"input": (tuple(spec["shape"]), False)}
    for i, node in enumerate(nodes):
        r = _Reader(node, i, tensors, where)
        op = r.str("op", ("flatten", "sign", "dense"))
        name = r.str("name")
        src = r.str("input")
        out = r.str("output")
        if src not in known:
            raise r.error(f"input {src!r} is not produced by an earlier node")
        if out in known:
            raise r.error(f"output {out!r} is already defined")
        in_shape, in_bits = known[src]
        layer = _BUILDERS[op](r, model, src, out, in_shape, in_bits)
        layer.name = name
        known[out] = (layer.out_shape, layer.out_bits)
        model.layers.append(layer)
    output = graph.get("output")
    if output not in known:
        raise ModelFileError(f"{where}: graph output {output!r} is not produced by any node")
    if known[output][1]:
        raise ModelFileError(f"{where}: graph output {output!r} is packed bits; the output must be float")


def _flatten(r: _Reader, model: Model, src: str, out: str, in_shape: tuple[int, ...], in_bits: bool) -> Layer:
    if in_bits:
        raise r.error("flatten of packed bits is not supported")
    flat = (math.prod(in_shape),)

    def run(values: dict[str, Any]) -> None:
        x = values[src]
        values[out] = x.reshape(len(x), flat[0])

    return Layer("", "flatten", "reshape", in_shape, flat, False, _run=run)


def _sign(r: _Reader, model: Model, src: str, out: str, in_shape: tuple[int, ...], in_bits: bool) -> Layer:
    if in_bits or len(in_shape) != 1:
        raise r.error(f"sign needs a float (N, C) input, got {'bits' if in_bits else 'float'} {in_shape}")

    def run(values: dict[str, Any]) -> None:
        values[out] = _core.pack_rows(values[src], model.num_threads)

    return Layer("", "sign", "pack", in_shape, in_shape, True, _run=run)


def _dense(r: _Reader, model: Model, src: str, out: str, in_shape: tuple[int, ...], in_bits: bool) -> Layer:
    k, n = r.int("k"), r.int("n")
    if in_shape != (k,):
        raise r.error(f"k={k} does not match its input of shape {in_shape}")
    weights = r.str("weights", ("bits", "float"))
    out_kind = r.str("out", ("bits", "float"))
    act = r.str("act", ACTIVATIONS) if out_kind == "float" else "none"
    if in_bits and weights != "bits":
        raise r.error("a packed-bit input needs binary weights")
    words = (k + 63) // 64
    if weights == "bits":
        w = r.tensor("weight", "uint64", (n, words))
        if _tail_bits(w, k):
            raise r.error(f"weight has bits set beyond k={k}")
    else:
        w = r.finite(r.tensor("weight", "float32", (n, k)), "weight")

    if in_bits:
        packed = _core.PackedWeights(np.ascontiguousarray(w), k)
        kind = "binary"
        if out_kind == "bits":
            thresholds = r.tensor("threshold", "int32", (n,))
            flips = r.tensor("flip", "int8", (n,))
            if not np.isin(flips, (-1, 1)).all():
                raise r.error("flip must hold only +1 and -1")
            thresholds, flips = np.ascontiguousarray(thresholds), np.ascontiguousarray(flips)

            def run(values: dict[str, Any]) -> None:
                values[out] = _core.bgemm_threshold(values[src], packed, thresholds, flips, model.num_threads)
        else:
            scale, bias = _affine(r, n)

            def run(values: dict[str, Any]) -> None:
                y = _core.bgemm(values[src], packed, model.num_threads).astype(np.float32)
                values[out] = _activate(y * scale + bias, act)
    else:
        # Float input: BLAS on the weights as float32. Binary weights are stored at one bit
        # and expanded to ±1 once here: a float GEMM with ±1 operands is exact to the same
        # rounding as PyTorch's and faster than any bit trick for a float input.
        wt = np.ascontiguousarray(
            (_core.unpack_rows(np.ascontiguousarray(w), k) if weights == "bits" else np.asarray(w, np.float32)).T
        )
        kind = "binary weights, float input" if weights == "bits" else "float"
        scale, bias = _affine(r, n)

        def run(values: dict[str, Any]) -> None:
            z = values[src] @ wt
            z *= scale
            z += bias
            if out_kind == "bits":
                values[out] = _core.pack_rows(z, model.num_threads)
            else:
                values[out] = _activate(z, act)

    return Layer("", "dense", kind, (k,), (n,), out_kind == "bits", _run=run)


def _tail_bits(w: np.ndarray, k: int) -> bool:
    if k % 64 == 0:
        return False
    return bool((w[:, -1] >> np.uint64(k % 64)).any())


def _affine(r: _Reader, n: int) -> tuple[np.ndarray, np.ndarray]:
    scale = r.finite(r.tensor("scale", "float32", (n,)), "scale")
    bias = r.finite(r.tensor("bias", "float32", (n,)), "bias")
    return np.ascontiguousarray(scale), np.ascontiguousarray(bias)


def _activate(z: np.ndarray, act: str) -> np.ndarray:
    if act == "relu":
        np.maximum(z, 0.0, out=z)
    elif act == "hardtanh":
        np.clip(z, -1.0, 1.0, out=z)
    return z


_BUILDERS = {"flatten": _flatten, "sign": _sign, "dense": _dense}
