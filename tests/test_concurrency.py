"""One loaded model called from 8 Python threads at once gives the sequential results.

The kernels release the GIL and share one thread pool; a caller that finds the pool busy
runs its tasks on its own thread. Torch-free (the models are written with the runtime's
own container writer, random weights), so .ci/tsan runs this file once more against a
ThreadSanitizer build of onebit._core. The kernels alone, from several C++ threads, are
hammered by tests/native/tsan_driver.cpp (also .ci/tsan).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import onebit.runtime as rt
from onebit.runtime.container import write_container

ROUNDS = 5


def _bits(rng: np.random.Generator, rows: int, k: int, *inner: int) -> np.ndarray:
    """Random packed ±1 weights: (rows, *inner, ceil(k / 64)) uint64, bits beyond k zero."""
    words = (k + 63) // 64
    w = rng.integers(0, 2**64, (rows, *inner, words), dtype=np.uint64)
    if k % 64:
        w[..., -1] &= np.uint64((1 << (k % 64)) - 1)
    return w


def _stage(rng: np.random.Generator, name: str, n: int, tensors: dict, out: str, k: int = 0, act: str = "none") -> dict:
    """The output stage's fields: float (scale, bias) or, after bits, thresholds and flips."""
    if out == "threshold":
        tensors[f"{name}.threshold"] = rng.integers(-k // 8, k // 8 + 1, n).astype(np.int32)
        tensors[f"{name}.flip"] = rng.choice(np.array([-1, 1], np.int8), n)
        return {"out": "bits", "tensors": {"threshold": f"{name}.threshold", "flip": f"{name}.flip"}}
    tensors[f"{name}.scale"] = rng.uniform(0.5, 1.5, n).astype(np.float32) * rng.choice([-1, 1], n).astype(np.float32)
    tensors[f"{name}.bias"] = rng.standard_normal(n).astype(np.float32)
    fields = {"out": out, "tensors": {"scale": f"{name}.scale", "bias": f"{name}.bias"}}
    if out == "float":
        fields["act"] = act
    return fields


def _conv(name, src, dst, cin, cout, weights, stage, pad_value=0, pool=None) -> dict:
    node = {"op": "conv2d", "name": name, "inputs": [src], "output": dst, "cin": cin, "cout": cout, "groups": 1,
            "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "pad_value": pad_value,
            "weights": weights, **stage}
    node["tensors"] = {"weight": f"{name}.weight", **stage["tensors"]}
    if pool:
        node["pool"] = {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]}
    return node


def _cnn(rng: np.random.Generator) -> tuple[list[dict], dict, list[int]]:
    """Float 3x3 conv (3 -> 64), a binary conv (ReLU) with a residual add, a float average
    pool, a binary conv thresholded to bits and max-pooled on them, a binary max-pool node,
    two binary dense layers."""
    t: dict[str, np.ndarray] = {"c0.weight": rng.standard_normal((64, 3, 3, 3)).astype(np.float32)}
    t["c1.weight"], t["c2.weight"] = _bits(rng, 64, 64, 3, 3), _bits(rng, 128, 64, 3, 3)
    t["d0.weight"], t["d1.weight"] = _bits(rng, 256, 512), _bits(rng, 10, 256)
    nodes = [
        {"op": "to_nhwc", "name": "nhwc", "inputs": ["input"], "output": "v0"},
        _conv("c0", "v0", "v1", 3, 64, "float", _stage(rng, "c0", 64, t, "float")),
        {"op": "sign", "name": "s1", "inputs": ["v1"], "output": "v2"},
        _conv("c1", "v2", "v3", 64, 64, "bits", _stage(rng, "c1", 64, t, "float", act="relu")),
        {"op": "add", "name": "add", "inputs": ["v3", "v1"], "output": "v4"},
        {"op": "avgpool2d", "name": "a", "inputs": ["v4"], "output": "v4a",
         "pool": {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]}},
        {"op": "sign", "name": "s4", "inputs": ["v4a"], "output": "v5"},
        _conv("c2", "v5", "v6", 64, 128, "bits", _stage(rng, "c2", 128, t, "threshold", 576), pad_value=-1, pool=True),
        {"op": "maxpool2d", "name": "p", "inputs": ["v6"], "output": "v7",
         "pool": {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]}},
        {"op": "flatten", "name": "f", "inputs": ["v7"], "output": "v8"},
        {"op": "dense", "name": "d0", "inputs": ["v8"], "output": "v9", "k": 512, "n": 256, "weights": "bits",
         **_stage(rng, "d0", 256, t, "threshold", 512)},
        {"op": "dense", "name": "d1", "inputs": ["v9"], "output": "v10", "k": 256, "n": 10, "weights": "bits",
         **_stage(rng, "d1", 10, t, "float")},
    ]
    for node in nodes[-2:]:
        node["tensors"] = {"weight": f"{node['name']}.weight", **node["tensors"]}
    return nodes, t, [3, 16, 16]


def _mlp(rng: np.random.Generator) -> tuple[list[dict], dict, list[int]]:
    """Binary weights on the float input (onebit's float-input kernel), then binary layers."""
    t = {"d0.weight": _bits(rng, 512, 256), "d1.weight": _bits(rng, 512, 512), "d2.weight": _bits(rng, 10, 512)}
    nodes = [
        {"op": "flatten", "name": "f", "inputs": ["input"], "output": "v0"},
        {"op": "dense", "name": "d0", "inputs": ["v0"], "output": "v1", "k": 256, "n": 512, "weights": "bits",
         **_stage(rng, "d0", 512, t, "bits")},
        {"op": "dense", "name": "d1", "inputs": ["v1"], "output": "v2", "k": 512, "n": 512, "weights": "bits",
         **_stage(rng, "d1", 512, t, "threshold", 512)},
        {"op": "dense", "name": "d2", "inputs": ["v2"], "output": "v3", "k": 512, "n": 10, "weights": "bits",
         **_stage(rng, "d2", 10, t, "float")},
    ]
    for node in nodes[1:]:
        node["tensors"] = {"weight": f"{node['name']}.weight", **node["tensors"]}
    return nodes, t, [1, 16, 16]


def _write(path: Path, build) -> Path:
    nodes, tensors, shape = build(np.random.default_rng(0))
    graph = {"format": "onebit-model", "version": 1, "input": {"name": "input", "shape": shape, "dtype": "float32"},
             "output": nodes[-1]["output"], "nodes": nodes}
    write_container(path, tensors, {"onebit": json.dumps(graph)})
    return path


@pytest.fixture(scope="module", params=["cnn", "mlp"])
def model_path(request, tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("m") / f"{request.param}.onebit", {"cnn": _cnn, "mlp": _mlp}[request.param])


def _batches(in_shape: tuple[int, ...]) -> list[np.ndarray]:
    return [np.random.default_rng(i).standard_normal((1 + (i % 4) * 7, *in_shape)).astype(np.float32)
            for i in range(16)]


def test_one_model_from_8_threads_gives_the_sequential_results(model_path):
    model = rt.load(model_path, num_threads=2)
    batches = _batches(model.in_shape)
    sequential = [model(b) for b in batches]
    logits = np.concatenate(sequential)
    assert np.isfinite(logits).all() and logits.std(axis=0).min() > 0  # outputs that depend on the input
    with ThreadPoolExecutor(8) as pool:
        for _ in range(ROUNDS):
            for got, want in zip(pool.map(model, batches), sequential):
                assert got.tobytes() == want.tobytes()


def test_models_with_different_thread_counts_at_once(model_path):
    """Copies of a model on 1, 2, 3 and 8 kernel threads, called concurrently: one result."""
    models = [rt.load(model_path, num_threads=t) for t in (1, 2, 3, 8)]
    batches = _batches(models[0].in_shape)
    sequential = [models[0](b) for b in batches]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(ROUNDS):
            calls = [(models[i % 4], b) for i, b in enumerate(batches)]
            for got, want in zip(pool.map(lambda mb: mb[0](mb[1]), calls), sequential):
                assert got.tobytes() == want.tobytes()
