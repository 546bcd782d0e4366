"""Export to ``.onebit`` and run in ``onebit.runtime``: equal to the PyTorch eval forward,
small on disk, torch-free, and every bad file or input a clear onebit error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import onebit.runtime as rt
from onebit import _core
from onebit.errors import ExportError, InputError, MissingFileError, ModelFileError
from onebit.export import export
from onebit.export.fold import relu_bn_sign, thresholds
from onebit.model_summary import packed_weight_bytes
from onebit.models import create_model
from onebit.nn import QuantLinear
from onebit.runtime.container import read_container, write_container
from tests import fuzzing
from tests.exporting import refuses
from tests.test_runtime_import import run_without_torch


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial eval statistics and affine parameters (both signs of w)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 4)
            m.running_var.copy_(torch.rand(n, generator=g) * 20 + 1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


def _mlp(in_shape=(1, 8, 8), seed=0, **kwargs):
    torch.manual_seed(seed)
    model = create_model("binarynet_mlp", num_classes=10, in_shape=in_shape, **kwargs)
    _randomize_bn(model, seed)
    return model.eval()


def _logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(0).standard_normal((1000, 1, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("hidden", [100, 256])
def test_exported_mlp_equals_pytorch_on_1000_inputs(tmp_path, inputs, hidden):
    """Hidden widths that are and are not multiples of 64; relative logit error ≤ 1e-4, same predictions."""
    model = _mlp(hidden=hidden)
    report = export(model, tmp_path / "m.onebit", inputs[:32], verbose=False)
    assert [l.kind for l in report.layers] == ["binary weights, float input", "binary", "binary", "binary"]
    engine = rt.load(tmp_path / "m.onebit")
    got, want = engine(inputs), _logits(model, inputs)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


def test_every_isa_and_thread_count_gives_identical_logits(tmp_path, inputs):
    """The integer parts are bit-exact across ISAs and threads, so the logits are identical."""
    model = _mlp(hidden=130)
    export(model, tmp_path / "m.onebit", inputs[:8], verbose=False)
    code = (
        "import numpy as np, onebit.runtime as rt, sys\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"for t in (1, 2): np.save({str(tmp_path)!r} + f'/{{sys.argv[1]}}-{{t}}.npy', rt.load({str(tmp_path / 'm.onebit')!r}, num_threads=t)(x))\n"
    )
    np.save(tmp_path / "x.npy", inputs)
    for isa in _core.available_isas():
        proc = subprocess.run([sys.executable, "-c", code, isa], env={**os.environ, "ONEBIT_ISA": isa},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    results = [np.load(tmp_path / f"{isa}-{t}.npy") for isa in _core.available_isas() for t in (1, 2)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_thresholds_match_brute_force():
    """Folded integer thresholds reproduce sign(alpha·y + beta) for every reachable y, all signs of alpha."""
    rng = np.random.default_rng(1)
    k = 37
    alpha = np.concatenate([rng.standard_normal(200), [0.0, 0.0, 1.0, -1.0, 1e-9]])
    beta = np.concatenate([rng.standard_normal(200) * 20, [1.0, -1.0, 0.0, 0.0, 5.0]])
    beta[:20] = alpha[:20] * rng.integers(-k, k + 1, 20)  # ties: alpha·y + beta == 0 exactly at some y
    t, flip = thresholds(alpha, beta, k)
    y = np.arange(-k, k + 1)[:, None]
    want = alpha * y + beta >= 0
    got = flip * (y - t.astype(np.int64)) >= 0
    np.testing.assert_array_equal(got, want)


def test_relu_bn_sign_thresholds_match_brute_force():
    """XNOR-Net's order: sign(a·relu(alpha·y + beta) + b) for every reachable y, every sign of alpha, a and b
    (zeros included), ties exact (dyadic values), constant channels where the ReLU decides."""
    rng = np.random.default_rng(2)
    k, n = 45, 2000
    alpha = rng.choice([-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0], n)
    beta = rng.integers(-60, 61, n) / 4
    a = rng.choice([-1.5, -1.0, -0.25, 0.0, 0.25, 1.0, 1.5], n)
    b = rng.integers(-40, 41, n) / 8
    y0 = rng.integers(-k, k + 1, n)
    tie = np.arange(n) < n // 2  # b = −a·relu(z(y0)): the BatchNorm output is exactly 0 at y0
    b[tie] = -a[tie] * np.maximum(alpha[tie] * y0[tie] + beta[tie], 0)
    scale, bias = relu_bn_sign(alpha, beta, a, b)
    t, flip = thresholds(scale, bias, k)
    y = np.arange(-k, k + 1)[:, None]
    want = a * np.maximum(alpha * y + beta, 0) + b >= 0
    np.testing.assert_array_equal(flip * (y - t.astype(np.int64)) >= 0, want)
    np.testing.assert_array_equal(scale * y + bias >= 0, want)  # the float-input form: +1 iff scale·y + bias ≥ 0
    constant = want.all(0) | ~want.any(0)
    assert constant.sum() > n // 4 and (~constant).sum() > n // 4  # both kinds well represented


def test_binarynet_mlp_file_is_under_a_25th_of_float32_and_summary_agrees(tmp_path):
    """784-4096-4096-4096-10: the .onebit file vs its float32 state dict; weight bytes as the summary says."""
    model = _mlp(in_shape=(1, 28, 28))
    report = export(model, tmp_path / "b.onebit", torch.randn(4, 1, 28, 28), verbose=False)
    assert report.file_bytes * 25 <= report.float32_state_bytes, report.compression  # measured 31.4×
    tensors, _ = read_container(tmp_path / "b.onebit")
    weight_bytes = sum(a.nbytes for name, a in tensors.items() if name.endswith(".weight"))
    assert weight_bytes == sum(packed_weight_bytes(m) for m in model.modules() if isinstance(m, QuantLinear))


def test_float_twin_and_scaled_weights_export(tmp_path, inputs):
    """Float layers and XNOR-style scaled binary weights fold into scale and bias exactly."""
    for kwargs in ({"input_quantizer": None, "weight_quantizer": None}, {"weight_quantizer": "xnor_sign"},
                   {"weight_quantizer": "magnitude_aware_sign"}):
        model = _mlp(hidden=96, **kwargs)
        export(model, tmp_path / "m.onebit", inputs[:8], verbose=False)
        got, want = rt.load(tmp_path / "m.onebit")(inputs), _logits(model, inputs)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), kwargs


def test_runtime_loads_and_runs_a_model_without_torch(tmp_path, inputs):
    model = _mlp(hidden=64)
    export(model, tmp_path / "m.onebit", inputs[:8], verbose=False)
    np.save(tmp_path / "x.npy", inputs[:10])
    np.save(tmp_path / "want.npy", _logits(model, inputs[:10]))
    proc = run_without_torch(f"""
        import numpy as np, onebit.runtime as rt
        m = rt.load({str(tmp_path / 'm.onebit')!r})
        got, want = m(np.load({str(tmp_path / 'x.npy')!r})), np.load({str(tmp_path / 'want.npy')!r})
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
        assert "torch" not in sys.modules
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_unsupported_layers_are_named(tmp_path):
    model = nn.Sequential(nn.Flatten(), QuantLinear(64, 32, input_quantizer=None), nn.BatchNorm1d(32),
                          nn.Tanh(), nn.Linear(32, 10))
    with pytest.raises(ExportError, match=r"layer '3' \(Tanh\)"):
        export(model, tmp_path / "m.onebit", torch.randn(2, 1, 8, 8), verbose=False)
    model = nn.Sequential(nn.Flatten(), QuantLinear(64, 32, input_quantizer="dorefa"), nn.Linear(32, 10))
    with pytest.raises(ExportError, match="input quantizer 'dorefa'"):
        export(model, tmp_path / "m.onebit", torch.randn(2, 1, 8, 8), verbose=False)

    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ExportError, match="cannot trace DataDependent"):
        export(DataDependent(), tmp_path / "m.onebit", torch.randn(2, 4), verbose=False)
    export(nn.Linear(4, 2), tmp_path / "m.onebit", torch.randn(2, 4), verbose=False)  # a lone layer is a model too


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, inputs):
    path = tmp_path_factory.mktemp("m") / "m.onebit"
    export(_mlp(hidden=70), path, inputs[:4], verbose=False)
    return path


def test_truncated_and_corrupted_files_raise_model_file_error(model_file, tmp_path):
    data = model_file.read_bytes()
    bad = tmp_path / "bad.onebit"
    for cut in (0, 4, 8, 20, len(data) // 2, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            rt.load(bad)
    rng = np.random.default_rng(0)
    for _ in range(200):  # random byte flips: a clean error or a model that still runs
        mutated = bytearray(data)
        for i in rng.integers(0, len(data), 3):
            mutated[i] = rng.integers(0, 256)
        bad.write_bytes(bytes(mutated))
        try:
            rt.load(bad)(np.zeros((2, 1, 8, 8), np.float32))
        except (ModelFileError, InputError):
            pass
    with pytest.raises(MissingFileError):
        rt.load(tmp_path / "missing.onebit")


def test_inconsistent_graphs_are_refused_at_load(model_file, tmp_path):
    tensors, meta = read_container(model_file)
    graph = json.loads(meta["onebit"])
    rewrite = refuses(model_file, tmp_path / "g.onebit")

    rewrite(lambda g: g.update(version=99), "version 99")
    rewrite(lambda g: g["nodes"][1].update(k=65), "k=65")
    rewrite(lambda g: g["nodes"][1].update(op="conv9"), "op must be")
    rewrite(lambda g: g["nodes"][2].update(inputs=["nowhere"]), "'nowhere' is not produced")
    rewrite(lambda g: g["nodes"][2].update(inputs=["v0", "v1"]), "inputs must be a list of 1")
    rewrite(lambda g: g["nodes"][2]["tensors"].update(weight="missing"), "not in the file")
    rewrite(lambda g: g.update(output="v1"), "packed bits")
    rewrite(lambda g: g["nodes"][1]["tensors"].update(post_scale="1.scale", post_bias="1.bias"), "need a float output")
    g1 = {**graph, "version": 1}  # version 1 (no post_scale/post_bias yet) is still read
    write_container(tmp_path / "v1.onebit", tensors, {"onebit": json.dumps(g1)})
    assert rt.load(tmp_path / "v1.onebit")(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 10)


def test_a_sign_whose_tensors_are_not_an_object_is_refused(tmp_path):
    """Found by the graph fuzz: a TypeError from deep inside before."""
    tensors, meta = read_container(fuzzing.CORPUS_DIR / "seeds" / "small-cnn.onebit")
    graph = json.loads(meta["onebit"])
    sign = next(n for n in graph["nodes"] if n["op"] == "sign")
    sign["tensors"] = 5
    write_container(tmp_path / "g.onebit", tensors, {"onebit": json.dumps(graph)})
    with pytest.raises(ModelFileError, match=r"\('v1.sign'\): tensors must be an object of tensor names, got 5"):
        rt.load(tmp_path / "g.onebit")


def test_bad_inputs_raise_input_error(model_file):
    m = rt.load(model_file)
    with pytest.raises(InputError, match="float32"):
        m(np.zeros((2, 1, 8, 8), np.float64))
    with pytest.raises(InputError, match=r"shape \(N, 1, 8, 8\)"):
        m(np.zeros((2, 64), np.float32))
    with pytest.raises(InputError, match="NaN"):
        m(np.full((2, 1, 8, 8), np.nan, np.float32))
    with pytest.raises(InputError, match="numpy array"):
        m([[0.0]])
    assert m(np.zeros((0, 1, 8, 8), np.float32)).shape == (0, 10)
    view = np.zeros((4, 1, 8, 16), np.float32)[..., ::2]  # non-contiguous
    assert m(view).shape == (4, 10)


def test_thread_count_from_argument_and_environment(model_file, monkeypatch):
    assert rt.load(model_file, num_threads=2).num_threads == 2
    monkeypatch.setenv("ONEBIT_NUM_THREADS", "1")
    assert rt.load(model_file).num_threads == 1
    monkeypatch.setenv("ONEBIT_NUM_THREADS", "lots")
    with pytest.raises(Exception, match="ONEBIT_NUM_THREADS"):
        rt.load(model_file)
    with pytest.raises(Exception, match="num_threads"):
        rt.load(model_file, num_threads=0)


def test_layers_and_per_layer_timing(model_file):
    m = rt.load(model_file)
    assert [l.kind for l in m.layers] == ["reshape", "binary weights, float input", "binary", "binary", "binary"]
    m.profile = True
    m(np.zeros((3, 1, 8, 8), np.float32))
    assert all(calls == 1 for calls in (l.calls for l in m.layers))
    assert len(m.timings()) == len(m.layers)


def test_blas_threads_are_held_to_the_model_thread_count():
    """numpy's OpenBLAS runs on at most the model's threads during a call, and is restored after."""
    from onebit.runtime import blas

    found = blas._openblas()
    if found is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS")
    setter, getter = found
    before = getter()
    with blas.limit(1):
        assert getter() == 1
    assert getter() == before


def test_one_model_called_from_8_threads_matches_sequential_calls(tmp_path):
    """The kernels release the GIL and share one thread pool: concurrent calls give the sequential results."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(8)
    model = create_model("binarynet_cnn", num_classes=10, in_shape=(3, 16, 16), channels=(64, 64, 128), hidden=64)
    _randomize_bn(model)
    export(model, tmp_path / "c.onebit", torch.randn(2, 3, 16, 16), verbose=False)
    engine = rt.load(tmp_path / "c.onebit", num_threads=2)
    batches = [np.random.default_rng(i).standard_normal((1 + i % 3, 3, 16, 16)).astype(np.float32) for i in range(32)]
    sequential = [engine(b) for b in batches]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            concurrent = list(pool.map(engine, batches))
            for got, want in zip(concurrent, sequential):
                np.testing.assert_array_equal(got, want)


def _mutated_graph(seeds, tmp_dir, data) -> None:
    """One example: a field of a node (or of a pool, the input, the graph) of a seed model
    replaced by an arbitrary JSON value."""
    tensors, meta = data.draw(st.sampled_from(seeds))
    graph = json.loads(meta["onebit"])
    node = data.draw(st.sampled_from(graph["nodes"] + [graph, graph["input"]]
                                     + [n["pool"] for n in graph["nodes"] if "pool" in n]))
    key = data.draw(st.sampled_from(sorted(node)))
    node[key] = data.draw(st.recursive(
        st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=6,
    ))
    path = fuzzing.example_path("graph", tmp_dir)
    write_container(path, tensors, {"onebit": json.dumps(graph)})
    fuzzing.check_model_file(path.read_bytes(), path, "graph")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_mutated_graphs_are_refused_cleanly_or_run(fuzz_seeds, tmp_path_factory, data):
    """Hypothesis over the JSON graphs of real exported models (an MLP, a conv net with pooling,
    a conv net with a residual block): any field of a node (or of a pool) replaced by another
    JSON value gives a ModelFileError naming the file and the problem at load, or a model that
    runs; never another exception, a crash or a hang. The fixed examples of the normal suite."""
    _mutated_graph(fuzz_seeds, tmp_path_factory.getbasetemp(), data)


@pytest.mark.skipif(not fuzzing.timed_run(), reason=fuzzing.SKIP_REASON)
def test_mutated_graphs_time_bounded(fuzz_seeds, tmp_path):
    """The same fuzz on random examples for ONEBIT_FUZZ_SECONDS (CI: .ci/fuzz)."""
    assert fuzzing.fuzz_for_a_while(lambda data: _mutated_graph(fuzz_seeds, tmp_path, data), "graph") > 0


@pytest.fixture(scope="module")
def fuzz_seeds(model_file, tmp_path_factory):
    """(tensors, metadata) of the graph fuzz's seeds: the MLP of model_file, a binarynet_cnn,
    the byte fuzz's small conv net with a residual block (tests/corpus/seeds/), and a small
    BinaryDenseNet (concats and affines the runtime unfolds at load)."""
    torch.manual_seed(9)
    folder = tmp_path_factory.mktemp("seed")
    conv = create_model("binarynet_cnn", num_classes=10, in_shape=(3, 8, 8), channels=(8, 16, 64), hidden=32)
    _randomize_bn(conv)
    export(conv.eval(), folder / "conv.onebit", torch.randn(2, 3, 8, 8), verbose=False)
    dense = create_model("binarydensenet28", num_classes=4, in_shape=(3, 32, 32), initial_filters=32, growth_rate=16)
    _randomize_bn(dense)
    export(dense.eval(), folder / "dense.onebit", torch.randn(2, 3, 32, 32), verbose=False)
    seeds = []
    for file in (model_file, folder / "conv.onebit", fuzzing.CORPUS_DIR / "seeds" / "small-cnn.onebit",
                 folder / "dense.onebit"):
        tensors, meta = read_container(file)
        seeds.append(({k: np.array(v) for k, v in tensors.items()}, meta))
    return seeds
