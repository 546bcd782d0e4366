"""The C++ graph executor (onebit.runtime.executor) on whole models: every zoo network runs as one
segment and gives the Python runtime's bits, at any batch and thread count, from several Python
threads at once, profiled per layer. The Plan on its own: tests/test_plan.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import onebit.runtime as rt
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


def test_unknown_executor_is_refused(tmp_path):
    path = tmp_path / "m.onebit"
    _export("tfc", path)
    with pytest.raises(ConfigError, match="executor must be one of native, python"):
        rt.load(path, executor="c++")
