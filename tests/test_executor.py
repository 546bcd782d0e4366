"""The C++ graph executor (onebit.runtime.executor, csrc/executor.h): every zoo network gives the
Python runtime's bits, the arena is laid out by lifetimes, and misuse gets a clear error."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import onebit.runtime as rt
from onebit import _core
from onebit.bench import export_random_model
from onebit.errors import ConfigError
from onebit.models import list_models, model_info
from onebit.runtime.executor import Segment


def _export(name: str, path) -> None:
    shape = model_info(name).in_shape
    small = len(shape) == 3 and shape[1] >= 64  # ImageNet networks at 64 x 64: the same graph, faster
    export_random_model(name, path, **(dict(in_shape=(shape[0], 64, 64), num_classes=10) if small else {}))


def _input(model: rt.Model, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if model.layers[0].op == "embedding":  # token ids
        return rng.integers(0, 100, (n, *model.in_shape)).astype(np.float32)
    return rng.standard_normal((n, *model.in_shape)).astype(np.float32)


def _segments(model: rt.Model) -> list[Segment]:
    return [run for run in model._runs if isinstance(run, Segment)]


@pytest.mark.parametrize("name", list_models())
def test_zoo_native_equals_python(tmp_path, name):
    path = tmp_path / f"{name}.onebit"
    _export(name, path)
    for threads in (1, 2):
        native, python = rt.load(path, threads), rt.load(path, threads, executor="python")
        assert native.executor == "native" and _segments(native)
        # 17 rows: beyond the float-weight product's FloatConv2d limit, that segment runs in Python
        for n in (1, 3, 17):
            x = _input(native, n, n)
            a, b = native(x), python(x)
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), (name, threads, n)
        assert native(x).tobytes() == python(x).tobytes()  # a second call reuses the planned arena


def test_one_segment_for_the_conv_nets(tmp_path):
    path = tmp_path / "q.onebit"
    _export("quicknet_small", path)
    model = rt.load(path, 1)
    assert len(model._runs) == 1 and len(_segments(model)[0].layers) == len(model.layers)
    assert "native executor" in repr(model)


def test_arena_reuses_bytes_of_dead_values():
    # x -> a -> b -> c -> y, 1,000 floats each: a and c never live at once, b overlaps both.
    plan = _core.Plan()
    x, a, b, c, y = (plan.value(1000, False) for _ in range(5))
    for src, dst in ((x, a), (a, b), (b, c), (c, y)):
        plan.clip(src, dst, -1.0, 1.0, False)
    plan.set_io([x], [y])
    assert plan.num_steps == 4
    assert plan.arena_bytes(1) == 2 * 4032  # two 64-byte aligned blocks of 4,000 bytes
    assert plan.arena_bytes(3) == 2 * 12032
    data = np.linspace(-3, 3, 2000, dtype=np.float32).reshape(2, 1000)
    (out,) = plan.run([data], 2, 1)
    assert out.shape == (2, 1000) and out.tobytes() == np.clip(data, -1, 1).tobytes()


def test_relu_and_clip_follow_numpy_signed_zeros():
    plan = _core.Plan()
    x, r, c = plan.value(6, False), plan.value(6, False), plan.value(6, False)
    plan.clip(x, r, 0.0, 0.0, True)
    plan.clip(x, c, -1.0, 1.0, False)
    plan.set_io([x], [r, c])
    data = np.array([[-0.0, 0.0, -2.5, 0.5, 3.0, -1.0]], np.float32)
    relu, clip = plan.run([data], 1, 1)
    assert relu.tobytes() == np.maximum(data, np.float32(0)).tobytes()
    assert clip.tobytes() == np.clip(data, np.float32(-1), np.float32(1)).tobytes()


def test_misuse_gets_a_clear_error(tmp_path):
    plan = _core.Plan()
    x, y = plan.value(4, False), plan.value(4, False)
    with pytest.raises(ValueError, match="already written"):
        plan.clip(x, y, 0, 0, True)
        plan.clip(x, y, 0, 0, True)
    with pytest.raises(ValueError, match="dst must hold 4 float32 per sample, value 2 holds 8 elements of 4 bytes"):
        plan.add(x, y, plan.value(8, False))
    with pytest.raises(ValueError, match="unknown value"):
        _core.Plan().add(0, 1, 2)
    with pytest.raises(ValueError, match="per_sample must be >= 1"):
        plan.value(0, False)
    orphan = _core.Plan()
    p, q, r = (orphan.value(4, False) for _ in range(3))
    orphan.clip(p, q, 0, 0, True)
    with pytest.raises(ValueError, match="before any step writes it"):
        orphan.set_io([r], [q])  # q's step reads p, which is neither an input nor written
    plan.set_io([x], [y])
    with pytest.raises(ValueError, match="must hold 8 elements"):
        plan.run([np.zeros((2, 3), np.float32)], 2, 1)
    with pytest.raises(ValueError, match="must be float32"):
        plan.run([np.zeros((1, 4), np.float64)], 1, 1)
    with pytest.raises(ValueError, match="needs 1 inputs"):
        plan.run([], 1, 1)
    path = tmp_path / "m.onebit"
    _export("tfc", path)
    with pytest.raises(ConfigError, match="executor must be one of native, python"):
        rt.load(path, executor="c++")


def test_concurrent_calls_share_one_plan(tmp_path):
    path = tmp_path / "m.onebit"
    _export("binarynet_cnn", path)
    model = rt.load(path, 2)
    xs = [_input(model, 2, seed) for seed in range(4)]
    expected = [rt.load(path, 1, executor="python")(x) for x in xs]
    failures = []

    def worker(i: int) -> None:
        for _ in range(20):
            if model(xs[i]).tobytes() != expected[i].tobytes():
                failures.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


@pytest.mark.parametrize("executor", ["native", "python"])
def test_profile_times_each_layer(tmp_path, executor):
    path = tmp_path / "m.onebit"
    _export("binary_cnn2d", path)  # its float dense runs in Python beyond 16 rows
    model = rt.load(path, 1, executor=executor)
    model.profile = True
    for n in (1, 17):
        x = _input(model, n, 0)
        assert model(x).tobytes() == rt.load(path, 1, executor="python")(x).tobytes()
    assert all(layer.calls == 2 for layer in model.layers)
    assert all(layer.seconds > 0 for layer in model.layers if layer.op != "flatten")
    model.reset_timings()
    assert all(layer.calls == 0 for layer in model.layers)


def test_benchmark_quick_table(capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_executor.py"
    spec = importlib.util.spec_from_file_location("bench_executor", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| lfc", "| cnv"))]
    assert len(rows) == 2 and all(row.split("|")[3].strip() == "1" for row in rows)  # one run: all in C++
    with pytest.raises(SystemExit):
        module.main(["--models", "resnet1000"])


@pytest.mark.parametrize("isa", _core.available_isas())
@pytest.mark.parametrize("threads", [1, 2])
def test_elementwise_steps_are_numpys_on_every_isa(monkeypatch, isa, threads):
    """The steps the Python runtime runs in numpy (relu, clip, the gate product, concat and
    concat + affine) and the sigmoid kernel: the same bits on every ISA and thread count,
    signed zeros and extremes included (sizes large enough to be threaded)."""
    monkeypatch.setenv("ONEBIT_ISA", isa)
    rng = np.random.default_rng(7)
    n, hw, c1, c2 = 2, 40 * 40, 24, 40
    a = (rng.standard_normal((n, hw, c1)) * 3).astype(np.float32)
    b = (rng.standard_normal((n, hw, c2)) * 3).astype(np.float32)
    a.reshape(-1)[:8] = [0.0, -0.0, 1.0, -1.0, 3e38, -3e38, 1e-45, -1e-45]
    gate = rng.random((n, c1)).astype(np.float32)
    scale = rng.standard_normal(c1 + c2).astype(np.float32)
    bias = rng.standard_normal(c1 + c2).astype(np.float32)
    plan = _core.Plan()
    va, vb, vg = plan.value(hw * c1, False), plan.value(hw * c2, False), plan.value(c1, False)
    outs = [plan.value(hw * c1, False) for _ in range(4)] + [plan.value(hw * (c1 + c2), False) for _ in range(2)]
    plan.clip(va, outs[0], 0.0, 0.0, True)
    plan.clip(va, outs[1], -1.0, 1.0, False)
    plan.sigmoid(va, outs[2])
    plan.channel_mul(va, vg, outs[3], c1)
    plan.concat([va, vb], [c1, c2], outs[4])
    plan.concat([va, vb], [c1, c2], outs[5], scale, bias)
    plan.set_io([va, vb, vg], outs)
    got = plan.run([a, b, gate], n, threads)
    joined = np.concatenate([a, b], axis=-1)
    with np.errstate(over="ignore"):
        sig = (1.0 / (1.0 + np.exp(-a.astype(np.float64)))).astype(np.float32)
    expected = [np.maximum(a, np.float32(0)), np.clip(a, np.float32(-1), np.float32(1)), sig,
                a * gate[:, None, :], joined, joined * scale + bias]
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.tobytes() == np.ascontiguousarray(e).tobytes(), i
    assert _core.sigmoid(a, threads, isa=isa).tobytes() == sig.tobytes()
