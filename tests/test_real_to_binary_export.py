"""Real-to-Binary Net's data-dependent channel gates on the engine (issue 20).

The gate σ(W₂ ReLU(W₁ mean_hw(x))) ⊙ conv(sign(x)) exports as a global ``avgpool2d`` →
``flatten`` → float ``dense`` (ReLU) → ``dense`` → ``sigmoid`` → ``channel_mul``; the
model exported must equal PyTorch, the new nodes a hand numpy computation, and the
files written before them must still load.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import onebit.runtime as rt
from onebit.errors import ExportError
from onebit.export import export
from onebit.models import create_model
from onebit.runtime.container import read_container, write_container
from tests.exporting import check_export, randomize_bn, refuses
from tests.test_export_runtime import _mutated_graph


def _graph(path) -> dict:
    return json.loads(read_container(path)[1]["onebit"])


# 64: the strided convs' TF "same" padding is asymmetric (even maps); "keras": Larq zoo's stem padding
@pytest.mark.parametrize("size,padding", [(32, "symmetric"), (64, "keras")])
def test_real_to_binary_net_exports_equal_to_pytorch(size, padding, tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(create_model("real_to_binary_net", num_classes=10, in_shape=(3, size, size), width=8,
                                      padding=padding))
    for m in model.modules():  # per-channel slopes of both signs, gates far from 1/2
        if isinstance(m, nn.PReLU):
            m.weight.data.copy_(torch.randn(m.num_parameters))
        if isinstance(m, nn.Linear) and m.bias is None:
            m.weight.data.mul_(3)
    x = torch.randn(16, 3, size, size)
    logits = []  # the last gate's pre-sigmoid logits: they vary with the input (else a constant scale would do)
    model[-4].expand.register_forward_hook(lambda m, args, out: logits.append(out))
    report = check_export(model, x, tmp_path / "r2b.onebit")
    assert float(torch.sigmoid(logits[-1]).std(0).max()) > 0.05
    ops = [n["op"] for n in _graph(tmp_path / "r2b.onebit")["nodes"]]
    assert ops.count("sigmoid") == ops.count("channel_mul") == 16
    assert sum(layer.kind == "binary" for layer in report.layers) == 16  # every gated conv stays XNOR-popcount


def _gate_file(path, c: int = 8, r: int = 2, h: int = 3, w: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """A hand-written graph: y = x ⊙ σ(W₂ relu(W₁ mean_hw(x) + b₁) + b₂) per channel, then flattened."""
    rng = np.random.default_rng(seed)
    t = {"w1": rng.normal(size=(r, c)).astype(np.float32) * 4, "b1": rng.normal(size=r).astype(np.float32),
         "w2": rng.normal(size=(c, r)).astype(np.float32) * 40, "b2": rng.normal(size=c).astype(np.float32)}
    tensors = {"d1.weight": t["w1"], "d1.scale": np.ones(r, np.float32), "d1.bias": t["b1"],
               "d2.weight": t["w2"], "d2.scale": np.ones(c, np.float32), "d2.bias": t["b2"]}
    dense = {"op": "dense", "weights": "float", "out": "float"}
    nodes = [
        {"op": "to_nhwc", "name": "nhwc", "inputs": ["input"], "output": "x"},
        {"op": "avgpool2d", "name": "mean", "inputs": ["x"], "output": "m",
         "pool": {"kernel": [h, w], "stride": [h, w], "padding": [0, 0]}},
        {"op": "flatten", "name": "mean.flat", "inputs": ["m"], "output": "mf"},
        {**dense, "name": "d1", "inputs": ["mf"], "output": "z1", "k": c, "n": r, "act": "relu",
         "tensors": {"weight": "d1.weight", "scale": "d1.scale", "bias": "d1.bias"}},
        {**dense, "name": "d2", "inputs": ["z1"], "output": "z2", "k": r, "n": c, "act": "none",
         "tensors": {"weight": "d2.weight", "scale": "d2.scale", "bias": "d2.bias"}},
        {"op": "sigmoid", "name": "gate", "inputs": ["z2"], "output": "g"},
        {"op": "channel_mul", "name": "gated", "inputs": ["x", "g"], "output": "y"},
        {"op": "flatten", "name": "out", "inputs": ["y"], "output": "yf"},
    ]
    graph = {"format": "onebit-model", "version": 3, "input": {"name": "input", "shape": [c, h, w], "dtype": "float32"},
             "output": "yf", "nodes": nodes}
    write_container(path, tensors, {"onebit": json.dumps(graph)})
    return t


def test_gate_nodes_equal_a_hand_numpy_computation(tmp_path):
    t = _gate_file(tmp_path / "gate.onebit")
    x = np.random.default_rng(1).normal(size=(6, 8, 3, 5)).astype(np.float32)
    x[0] *= 30  # saturated gates: σ(z) for |z| in the hundreds, 0 and 1 without an overflow warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = rt.load(tmp_path / "gate.onebit", num_threads=1)(x)
    x64 = x.astype(np.float64)
    z = np.maximum(x64.mean(axis=(2, 3)) @ t["w1"].T + t["b1"], 0) @ t["w2"].T + t["b2"]
    with np.errstate(over="ignore"):
        gate = 1 / (1 + np.exp(-z))
    assert (gate[0] < 1e-30).any() and (gate[0] > 1 - 1e-12).any()
    want = (x64 * gate[:, :, None, None]).transpose(0, 2, 3, 1).reshape(len(x), -1)  # the engine's (H, W, C) order
    # float32 logits z (|z| up to hundreds) move σ(z) in its tails by |z|·2⁻²⁴ relative: far below 1e-7 of the largest output
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7 * np.abs(want).max())
    dead = gate[0] < 1e-46  # below float32's smallest subnormal: the engine's gate is exactly 0 there
    assert dead.any() and (got[0].reshape(3, 5, 8)[..., dead] == 0).all()


def test_gate_nodes_with_wrong_operands_are_refused_naming_the_node(tmp_path):
    _gate_file(tmp_path / "gate.onebit")
    rewrite = refuses(tmp_path / "gate.onebit", tmp_path / "bad.onebit")

    rewrite(lambda g: g["nodes"][6].update(inputs=["x", "z1"]), r"\('gated'\): channel_mul needs a float \(H, W, C\) value "
                                                               r"and a float \(C,\) vector")
    rewrite(lambda g: g["nodes"][6].update(inputs=["x"]), r"\('gated'\): inputs must be a list of 2")
    rewrite(lambda g: g["nodes"][5].update(op="channel_gate"), r"\('gate'\): .*unknown op 'channel_gate'")


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_mutated_gate_graphs_are_refused_cleanly_or_run(tmp_path_factory, data):
    """The graph fuzz of tests/test_export_runtime.py on the hand-written gate graph: any field of a
    node replaced by another JSON value is a ModelFileError naming the problem, or a model that runs."""
    folder = tmp_path_factory.getbasetemp()
    if not (folder / "gate-seed.onebit").exists():
        _gate_file(folder / "gate-seed.onebit")
    tensors, meta = read_container(folder / "gate-seed.onebit")
    _mutated_graph([({k: np.array(v) for k, v in tensors.items()}, meta)], folder, data)


def test_files_written_before_the_gate_nodes_still_load(tmp_path):
    """The committed version-1 seeds (no sigmoid/channel_mul then) load and run, fused or not."""
    from tests.fuzzing import CORPUS_DIR

    for name, shape in (("small-cnn", (3, 8, 8)), ("tiny-mlp", (1, 4, 4))):
        path = CORPUS_DIR / "seeds" / f"{name}.onebit"
        assert _graph(path)["version"] == 1
        x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
        fused, plain = rt.load(path)(x), rt.load(path, fuse=False)(x)
        assert np.isfinite(fused).all() and fused.shape[0] == 3
        np.testing.assert_array_equal(fused, plain)


def test_products_other_than_a_channel_gate_fail_naming_the_operation(tmp_path):
    class Square(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return (y * y).flatten(1)

    with pytest.raises(ExportError, match=r"mul: a product is supported only as image \* g\[:, :, None, None\]"):
        export(Square(), tmp_path / "sq.onebit", torch.randn(2, 3, 6, 6))

    class MeanOverChannels(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x).mean(1).flatten(1)

    with pytest.raises(ExportError, match=r"mean: only the mean of a convolution's output over height and width"):
        export(MeanOverChannels(), tmp_path / "mc.onebit", torch.randn(2, 3, 6, 6))

    class OtherIndex(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return (y * y.mean((2, 3))[..., None, None])[:, :2].flatten(1)  # the gate's index is fine, not the slice

    with pytest.raises(ExportError, match=r"getitem_1: indexing \[\(slice\(None, None, None\), slice\(None, 2, None\)\)\] "
                                          r"is supported only as g\[:, :, None, None\] .* shape \(4, 4, 4\)"):
        export(OtherIndex(), tmp_path / "oi.onebit", torch.randn(2, 3, 6, 6))
    keras_order = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Unflatten(1, (64, 1, 1)), nn.Conv2d(64, 2, 1),
                                nn.Flatten())  # BinaryAlexNet's Larq head: a flattened image as a (C, 1, 1) image
    with pytest.raises(ExportError, match=r"Unflatten\(1, \(64, 1, 1\)\) is supported only as .* \(a flattened image\)"):
        export(keras_order, tmp_path / "ko.onebit", torch.randn(2, 3, 6, 6))


def test_a_squeeze_excitation_block_with_biases_and_nn_sigmoid_exports(tmp_path):
    """The same nodes for a generic gate: Linear with biases, nn.Sigmoid, the gate on the left and
    through nn.Unflatten (a converted Keras gate: Reshape((1, 1, C)) then Multiply)."""

    class SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)
            self.fc1, self.fc2, self.act = nn.Linear(16, 4), nn.Linear(4, 16), nn.Sigmoid()
            self.unflatten = nn.Unflatten(1, (16, 1, 1))
            self.head = nn.Linear(16 * 6 * 6, 5)

        def forward(self, x):
            y = self.conv(x)
            g = self.act(self.fc2(torch.relu(self.fc1(y.mean(dim=(-2, -1))))))
            return self.head((g[:, :, None, None] * y * self.unflatten(g)).flatten(1))

    torch.manual_seed(0)
    check_export(SE().eval(), torch.randn(8, 3, 6, 6), tmp_path / "se.onebit")


def test_larq_zoo_real_to_binary_file_as_a_keras_graph_runs_on_the_engine_equal_to_larq(tmp_path):
    """Larq zoo's own RealToBinaryNet (tests/fixtures/larq, width 8, 32 x 32) converted as a generic graph
    (its gate: GlobalAveragePooling2D → Dense → Dense(sigmoid) → Reshape((1, 1, C)) → Multiply): the
    engine equals PyTorch and Larq's logits. The zoo-model mapping of the file: tests/test_convert.py."""
    pytest.importorskip("h5py")
    from onebit.convert import KerasGraph, from_larq

    fixtures = Path(__file__).parent / "fixtures" / "larq"
    data = np.load(fixtures / "zoo_real_to_binary.npz")
    x = torch.from_numpy(data["x"].astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    graph = from_larq(fixtures / "zoo_real_to_binary.h5", zoo=False)
    assert isinstance(graph, KerasGraph)
    check_export(graph, x, tmp_path / "graph.onebit")
    engine = rt.load(tmp_path / "graph.onebit")
    gates = [layer.name for layer in rt.load(tmp_path / "graph.onebit", fuse=False).layers if layer.op == "channel_mul"]
    assert len(gates) == 16
    fused = [layer.name.split("+") for layer in engine.layers]  # each gate runs inside its conv's step
    assert all(sum(g in parts[1:] for parts in fused) == 1 for g in gates)
    larq = data["logits"]
    assert np.abs(engine(x.numpy()) - larq).max() <= 1e-4 * np.abs(larq).max()
