"""A binarized BiMoNN on onebit's packed engine: existing ``conv2d`` nodes, integer thresholds.

A dilation by ``S`` is ``count_S(x) ≥ 1`` and an erosion ``count_S(x) ≥ |S|``, where
``count_S`` counts the set pixels under ``S``. The engine's binary convolution computes
``y = Σ w·x`` over the *whole* ``k × k`` window with ``x, w ∈ {±1}`` (pixel 1 ↦ +1), so
a weight cannot be "absent". Each image channel is therefore carried twice, ``(a, b)``
with ``a = b = x``: weight +1 on ``a`` everywhere and ``2·[p ∈ S] − 1`` on ``b`` give

    y = Σ_p x_p·(1 + w_p) = 2·Σ_{p∈S} x_p = 4·count_S − 2|S|,

so the dilation is the threshold ``y ≥ 4 − 2|S|`` and the erosion ``y ≥ 2|S|``: a
``conv2d`` node with packed weights and int32 thresholds. Another input channel's pair
(and the padding of it) gets weights ``(+1, −1)`` and adds 0 (the engine's grouped
convolutions need whole 64-channel words per group, so the conv is dense),
which is how the LUI (a 1 × 1 conv over the BiSE outputs) counts only its set ``C``:
union ``y ≥ 4 − 2|C|``, intersection ``y ≥ 2|C|``. Every layer but the last writes each
output twice (packed bits, the next layer's pairs); the last writes floats ``0``/``1``
(``hardtanh(y/2 + 1 − t/2)·½ + ½``, exact). A complemented BiSE (``P < 0``) uses the
threshold's ``flip = −1``. The input is duplicated (a ``concat`` of itself) and packed by a
``sign`` node with shift ½.

**Border rule** (:class:`~onebit.nn.morphological.MorphologicalLayer`'s): each layer's input
channel is padded with its value far from the image (:meth:`MorphologicalNet.outside`):
background (0) for the input, ``scipy.ndimage``'s ``border_value=0``, and 1 after a
complemented BiSE, so that a closing learned as ``¬δ_S → ¬δ_S`` equals ``scipy.ndimage``'s
``ε_S(δ_S(x))`` on the whole image. The convolutions pad with ``pad_value = −1`` (0); a channel
whose outside value is 1 is stored complemented by the layer that writes it (its threshold's
``flip``) and read with negated weights, so it is, in effect, padded with 1. (The BiSE trains
with replicate padding, the reference's choice; on the interior — ``k//2`` from the edge per
layer — the two agree.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import ConfigError
from onebit.nn.morphological import MorphologicalLayer, MorphologicalNet, check_binary
from onebit.runtime.bitpack import pack_bits
from onebit.runtime.container import write_container
from onebit.runtime.model import FORMAT, FORMAT_VERSION, META_KEY, load

__all__ = ["MorphologyEngine", "export_morphology", "morphology_graph"]


def _stage(t: np.ndarray, flip: np.ndarray, last: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The output stage of ``[y ≥ t]`` (``flip = −1``: its complement ``[y < t]``), where ``y − t``
    is a multiple of 4: packed bits (threshold ``t``, or ``t − 1`` with flip −1), or for the
    last layer floats 0/1: ``hardtanh(±(y − t)/2 ± 1)·½ + ½``."""
    n = len(t)
    if not last:
        return {"out": "bits"}, {"threshold": np.where(flip > 0, t, t - 1).astype(np.int32),
                                 "flip": flip.astype(np.int8)}
    scale = (0.5 * flip).astype(np.float32)
    return {"out": "float", "act": "hardtanh"}, {
        "scale": scale, "bias": (flip * (1.0 - t / 2.0)).astype(np.float32),
        "post_scale": np.full(n, 0.5, np.float32), "post_bias": np.full(n, 0.5, np.float32)}


def morphology_graph(net: MorphologicalNet, height: int, width: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``.onebit`` graph and tensors of ``net`` for ``(C, height, width)`` inputs."""
    if not isinstance(net, MorphologicalNet):
        raise ConfigError(f"export_morphology takes a MorphologicalNet (BiMoNN.binarized()), got {type(net).__name__}")
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    c0 = net.in_channels
    nodes: list[dict[str, Any]] = []
    tensors: dict[str, np.ndarray] = {}

    def node(op: str, name: str, srcs: list[str], attrs: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        out = f"v{len(nodes)}"
        refs = {}
        for key, a in arrays.items():
            refs[key] = f"{name}.{key}"
            tensors[refs[key]] = a
        nodes.append({"op": op, "name": name, "inputs": srcs, "output": out, **attrs,
                      **({"tensors": refs} if refs else {})})
        return out

    # the input twice along channels (copy a of channel c at c, copy b at C + c), packed: +1 iff x ≥ ½
    v = node("to_nhwc", "to_nhwc", ["input"], {}, {})
    v = node("concat", "pair", [v, v], {}, {})
    v = node("sign", "pack", [v], {}, {"shift": np.full(2 * c0, 0.5, np.float32)})
    outside = net.outside() + [None]
    for i, layer in enumerate(net.layers):
        v = _layer_nodes(layer, f"layer{i}", v, outside[i], outside[i + 1], node)
    graph = {"format": FORMAT, "version": FORMAT_VERSION,
             "input": {"name": "input", "shape": [c0, height, width], "dtype": "float32"},
             "output": v, "nodes": nodes,
             "source": {"model": {"kind": "binarized BiMoNN (Aouad & Talbot 2022)", "layers": net.describe()},
                        "border": "each layer's input is padded with its value far from the image: "
                                  "background (0) for the input image"}}
    return graph, tensors


def _conv(name: str, cin: int, cout: int, k: int) -> dict[str, Any]:
    return {"cin": cin, "cout": cout, "groups": 1, "kernel": [k, k], "stride": [1, 1], "padding": [k // 2, k // 2],
            "dilation": [1, 1], "pad_value": -1, "weights": "bits"}


def _layer_nodes(layer: MorphologicalLayer, name: str, v: str, outside_in: np.ndarray,
                 outside_out: np.ndarray | None, node: Any) -> str:
    """A layer on paired input channels (a at c, b at C_in + c); writes its values paired the same way.

    Input channel ``c`` is stored complemented where ``outside_in[c]`` (read with negated
    weights); output ``o`` is written complemented where ``outside_out[o]`` (``None``: the last
    layer, which writes the values themselves)."""
    c_in, c_out, k = layer.in_channels, layer.out_channels, layer.kernel_size
    last = outside_out is None
    lui = c_in > 1  # one input channel: the LUI's only set is {0}, the identity
    n_val = c_in * c_out  # BiSE value (c, o) at c·C_out + o
    copies = 1 if (last and not lui) else 2
    weight = np.empty((copies * n_val, k, k, 2 * c_in), np.float32)
    weight[..., :c_in], weight[..., c_in:] = 1.0, -1.0  # the other channels' pairs add 0
    t, flip = np.empty(copies * n_val, np.int64), np.empty(copies * n_val, np.int64)
    for c in range(c_in):
        for o in range(c_out):
            S = layer.selems[o, c]
            sign = -1.0 if outside_in[c] else 1.0
            complement = bool(layer.complements[o, c]) ^ bool(not lui and not last and outside_out[o])
            for j in range(copies):
                row = j * n_val + c * c_out + o
                weight[row, :, :, c] = sign
                weight[row, :, :, c_in + c] = sign * np.where(S, 1.0, -1.0)
                t[row] = 4 - 2 * int(S.sum()) if layer.operations[o][c] == "dilation" else 2 * int(S.sum())
                flip[row] = -1 if complement else 1
    attrs, arrays = _stage(t, flip, last and not lui)
    v = node("conv2d", f"{name}.bise", [v], {**_conv(name, 2 * c_in, len(t), k), **attrs},
             {"weight": pack_bits(weight), **arrays})
    if not lui:
        return v
    # LUI: a 1 × 1 conv over the paired BiSE values
    copies = 1 if last else 2
    weight = np.empty((copies * c_out, 1, 1, 2 * n_val), np.float32)
    weight[..., :n_val], weight[..., n_val:] = 1.0, -1.0
    t = np.empty(copies * c_out, np.int64)
    for o in range(c_out):
        C = layer.channel_sets[o]
        for j in range(copies):
            for c in np.flatnonzero(C):
                weight[j * c_out + o, 0, 0, n_val + c * c_out + o] = 1.0
            t[j * c_out + o] = 4 - 2 * int(C.sum()) if layer.combiners[o] == "union" else 2 * int(C.sum())
    flip = np.ones(len(t), np.int64) if last else np.tile(np.where(outside_out, -1, 1), copies)
    attrs, arrays = _stage(t, flip, last)
    return node("conv2d", f"{name}.lui", [v], {**_conv(name, 2 * n_val, len(t), 1), **attrs},
                {"weight": pack_bits(weight), **arrays})


def export_morphology(net: MorphologicalNet, path: str | os.PathLike, height: int, width: int) -> Path:
    """Write ``net`` (a binarized BiMoNN) to ``path`` as a ``.onebit`` model for images of
    ``height × width``; returns the path."""
    graph, tensors = morphology_graph(net, height, width)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_container(path, tensors, {META_KEY: json.dumps(graph)})
    return path


class MorphologyEngine:
    """A morphological ``.onebit`` model on the packed kernels: binary images
    ``(N, C, H, W)`` (or ``(N, H, W)`` for one channel) in, uint8 0/1 ``(N, C_out, H, W)`` out."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.model = load(path, num_threads=num_threads)
        self.in_shape = self.model.in_shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = given = np.asarray(x)
        if x.ndim == 3 and self.in_shape[0] == 1:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1:] != self.in_shape:
            raise ConfigError(f"this model takes binary images (N, {', '.join(map(str, self.in_shape))}), "
                              f"got shape {given.shape}")
        check_binary(x)
        y = self.model(np.ascontiguousarray(x, dtype=np.float32))  # (N, H, W, C) of 0/1
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).astype(np.uint8)
