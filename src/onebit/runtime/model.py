"""Loading and running a ``.onebit`` model: a list of nodes over named values.

:func:`load` reads the container, checks the graph (format version, node kinds, value
references, every tensor's dtype and shape, attribute ranges) and builds each node's
closure (:mod:`onebit.runtime.ops`), so a bad file fails in ``load``, never inside a
kernel. :class:`Model` runs float32 batches in the PyTorch layout (NCHW).

A model usually outputs float32 logits. A *feature extractor* (a network cut at a layer
and ended by a sign, :mod:`onebit.transfer`) outputs its ±1 features as packed bits:
``model(x)`` returns ``uint64`` words ``(N, ceil(F/64))`` (bit 1 = −1), and
``model(x, unpack=True)`` the ±1 values as float32 ``(N, F)`` in PyTorch's order of the
features (the graph's ``output_bits`` record: ``{"features": F, "chw": [C, H, W] or
null}``; the engine keeps image features channels-last, so they are reordered).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from onebit import _core
from onebit.errors import ConfigError, InputError, ModelFileError
from onebit.runtime import malloc
from onebit.runtime.bitpack import unpack_bits
from onebit.runtime.container import MAX_FILE_BYTES, read_container
from onebit.runtime.executor import Segment, plan_runs, time_layer
from onebit.runtime.fusion import (fuse_gate_inputs, fuse_layers, fuse_transitions, pool_stems, share_signs,
                                   unfold_concats)
from onebit.runtime.ops import BUILDERS, MULTI_INPUT, Layer, NodeReader

__all__ = ["EXECUTORS", "FORMAT", "FORMAT_VERSION", "Layer", "Model", "load"]

EXECUTORS = ("native", "python")  # the C++ graph executor (runtime/executor.py), or node by node in Python

FORMAT = "onebit-model"
FORMAT_VERSION = 4  # written by export; 2 added post_scale/post_bias (an affine after the activation),
# 3 the conv nodes' padding_end (asymmetric padding: a runtime that ignored it would compute wrong sizes),
# 4 the pool objects' padding_end (TensorFlow's "same" max-pool, the same reason)
READ_VERSIONS = (1, 2, 3, 4)  # each version reads as the next one without its additions
# New node kinds (sigmoid, channel_mul) need no new version: a reader refuses an op it does not know, naming it.
META_KEY = "onebit"


class Model:
    """A loaded ``.onebit`` model. ``model(x)`` runs a float32 batch in the PyTorch layout."""

    def __init__(self, graph: dict[str, Any], tensors: dict[str, np.ndarray], num_threads: int, where: str,
                 fuse: bool = True, executor: str = "native"):
        self.graph = graph
        self.num_threads = num_threads
        self.layers: list[Layer] = []
        self.profile = False
        _build(self, graph, tensors, where)  # validates everything read below
        if fuse:
            output = graph["output"]
            layers = fuse_gate_inputs(fuse_layers(pool_stems(self.layers, output), output), output)
            layers = unfold_concats(layers, output)
            self.layers = share_signs(fuse_transitions(layers, output), output)
        self.in_shape = tuple(graph["input"]["shape"])
        self._output = graph["output"]
        self.executor = executor
        self._runs = (plan_runs(self.layers, self._output, self.in_shape) if executor == "native"
                      else list(self.layers))
        last = next(l for l in self.layers if l.output == self._output)
        self.out_shape, self.out_bits = last.out_shape, last.out_bits
        self._chw = _output_layout(graph, self.out_shape, where) if self.out_bits else None

    def __repr__(self) -> str:
        return (f"onebit.runtime.Model({len(self.layers)} layers, input {self.in_shape}, {self.num_threads} threads, "
                f"{self.executor} executor)")

    def __call__(self, x: np.ndarray, *, unpack: bool = False) -> np.ndarray:
        """The graph's output for ``x`` of shape ``(N, *in_shape)``, float32: logits, or for a
        model with a packed-bit output its uint64 words (``unpack=True``: ±1 float32 features)."""
        x = self._check_input(x)
        if unpack and not self.out_bits:
            raise ConfigError("unpack=True is for a model whose output is packed bits (a feature extractor); "
                              "this one outputs float32")
        if len(x) == 0:
            empty = np.zeros((0, *self.out_shape), np.float32)
            return empty if not self.out_bits or unpack else np.zeros((0, (self.out_shape[0] + 63) // 64), np.uint64)
        values: dict[str, Any] = {"input": x}
        self._run(values)
        out = values[self._output]
        return self.unpack(out) if unpack else out

    def unpack(self, bits: np.ndarray) -> np.ndarray:
        """Packed features ``(N, ceil(F/64))`` → ±1 float32 ``(N, F)``, in PyTorch's feature order."""
        if not self.out_bits:
            raise ConfigError("unpack is for a model whose output is packed bits; this one outputs float32")
        features = unpack_bits(np.asarray(bits), self.out_shape[0])
        if self._chw is None:
            return features
        c, h, w = self._chw  # the engine's (H, W, C) order back to PyTorch's (C, H, W)
        return np.ascontiguousarray(features.reshape(len(features), h, w, c).transpose(0, 3, 1, 2)).reshape(
            len(features), -1)

    def _run(self, values: dict[str, Any]) -> None:
        if not self.profile:
            for run in self._runs:
                run.run(values, self.num_threads)
            return
        for run in self._runs:  # each layer's time: its steps' in a segment, its call's otherwise
            if isinstance(run, Segment):
                run.run_profiled(values, self.num_threads)
            else:
                time_layer(run, values, self.num_threads)

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """The argmax class of each row of ``x``, run in batches of ``batch_size``."""
        if self.out_bits:
            raise ConfigError("predict needs logits; this model outputs packed features (call it, or unpack=True)")
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
        x = np.ascontiguousarray(x)
        if not _core.all_finite(x):
            raise InputError("input holds NaN or infinite values")
        return x

    def reset_timings(self) -> None:
        for layer in self.layers:
            layer.seconds, layer.calls = 0.0, 0

    def timings(self) -> list[tuple[str, str, float]]:
        """(layer name, kind, mean seconds per call) of the calls made with ``profile = True``."""
        return [(l.name, l.kind, l.seconds / l.calls if l.calls else 0.0) for l in self.layers]


def load(path: str | os.PathLike, num_threads: int | None = None, *, max_file_bytes: int = MAX_FILE_BYTES,
         fuse: bool = True, executor: str = "native") -> Model:
    """Load a ``.onebit`` file. ``num_threads``: kernel threads (default ``ONEBIT_NUM_THREADS``
    or the physical cores). ``fuse``: run a binary conv's residual add, RPReLU and sign in its
    kernel (:mod:`onebit.runtime.fusion`; the same results). ``executor``: ``"native"`` runs
    the graph in C++ (:mod:`onebit.runtime.executor`), ``"python"`` node by node (the
    reference; the same bits). Every check happens here; a bad file raises
    :class:`ModelFileError`."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    num_threads = _resolve_threads(num_threads)
    malloc.keep_freed_memory()
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
    if graph.get("version") not in READ_VERSIONS:
        raise ModelFileError(
            f"{where}: format version {graph.get('version')!r} is not supported (this onebit reads "
            f"{', '.join(map(str, READ_VERSIONS))})"
        )
    return Model(graph, tensors, num_threads, where, fuse, executor)


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


def _build(model: Model, graph: dict[str, Any], tensors: dict[str, np.ndarray], where: str) -> None:
    spec = graph.get("input")
    if not (isinstance(spec, dict) and isinstance(spec.get("shape"), list) and spec["shape"]
            and all(type(d) is int and 1 <= d <= 2**24 for d in spec["shape"])):
        raise ModelFileError(f"{where}: graph input must give a shape of positive integers")
    nodes = graph.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ModelFileError(f"{where}: graph has no nodes")
    # value name -> (shape without batch, packed bits?)
    known: dict[str, tuple[tuple[int, ...], bool]] = {"input": (tuple(spec["shape"]), False)}
    for i, node in enumerate(nodes):
        r = NodeReader(node, i, tensors, where)
        if isinstance(node.get("op"), str) and node["op"] not in BUILDERS:
            raise r.error(f"op must be one this onebit runs ({', '.join(BUILDERS)}), got the unknown op "
                          f"{node['op']!r} (a newer onebit may have written it)")
        op = r.str("op", tuple(BUILDERS))
        name, out = r.str("name"), r.str("output")
        inputs = node.get("inputs")
        arity = 2 if op in ("add", "channel_mul") else (None if op == "concat" else 1)
        if not (isinstance(inputs, list) and inputs and all(isinstance(v, str) for v in inputs)
                and (arity is None or len(inputs) == arity) and len(inputs) <= 1024):
            raise r.error(f"inputs must be a list of {arity or 'one or more'} value names, got {inputs!r}")
        for src in inputs:
            if src not in known:
                raise r.error(f"input {src!r} is not produced by an earlier node")
        if out in known:
            raise r.error(f"output {out!r} is already defined")
        if op in MULTI_INPUT:
            layer = BUILDERS[op](r, inputs, out, [known[v] for v in inputs])
        else:
            layer = BUILDERS[op](r, inputs[0], out, *known[inputs[0]])
        layer.name, layer.output, layer.inputs = name, out, tuple(inputs)
        known[out] = (layer.out_shape, layer.out_bits)
        model.layers.append(layer)
    output = graph.get("output")
    if not isinstance(output, str) or output not in known:
        raise ModelFileError(f"{where}: graph output {output!r} is not produced by any node")
    if known[output][1] and len(known[output][0]) != 1:
        raise ModelFileError(f"{where}: graph output {output!r} is packed bits of shape {known[output][0]}; "
                             f"packed outputs must be flat features")


def _output_layout(graph: dict[str, Any], shape: tuple[int, ...], where: str) -> tuple[int, int, int] | None:
    """The (C, H, W) whose flattening gave a packed output's features, or None for features already flat."""
    spec = graph.get("output_bits")
    if not isinstance(spec, dict) or spec.get("features") != shape[0]:
        raise ModelFileError(f"{where}: the graph output is packed bits, which needs an output_bits record with its "
                             f"{shape[0]} features")
    chw = spec.get("chw")
    if chw is None:
        return None
    if not (isinstance(chw, list) and len(chw) == 3 and all(type(d) is int and d >= 1 for d in chw)
            and chw[0] * chw[1] * chw[2] == shape[0]):
        raise ModelFileError(f"{where}: output_bits chw must be three positive integers with product {shape[0]}, "
                             f"got {chw!r}")
    return chw[0], chw[1], chw[2]
