"""Latency of a ``.onebit`` model in the runtime against PyTorch fp32 of the same architecture.

The PyTorch baseline is the network recorded in the file (registry name and arguments)
rebuilt with float layers (``input_quantizer=None, weight_quantizer=None`` where the
builder takes them): the model a user would otherwise deploy. Times are medians of
``repeats`` calls after warm-up, per thread count; the ratio is PyTorch / onebit.
"""

from __future__ import annotations

import inspect
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onebit.errors import ConfigError

__all__ = ["BenchRow", "bench_model", "cpu_name", "time_call"]

ROUNDS = 5  # interleaved rounds of bench_model


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float, float]:
    """(median, min, max) seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    return _summary(_times(fn, repeats, warmup))


@dataclass
class BenchRow:
    threads: int
    onebit: tuple[float, float, float]
    torch: tuple[float, float, float] | None
    scaling: float | None = None  # onebit's median on one thread / its median on `threads`

    def line(self) -> str:
        ob = f"{self.onebit[0] * 1e3:9.3f} ({self.onebit[1] * 1e3:.3f}–{self.onebit[2] * 1e3:.3f})"
        sc = "n/a" if self.scaling is None else f"{self.scaling:5.2f}×"
        if self.torch is None:
            return f"| {self.threads:7d} | {ob} | {sc} | n/a | n/a |"
        tt = f"{self.torch[0] * 1e3:9.3f} ({self.torch[1] * 1e3:.3f}–{self.torch[2] * 1e3:.3f})"
        return f"| {self.threads:7d} | {ob} | {sc} | {tt} | {self.torch[0] / self.onebit[0]:6.1f}× |"


def _summary(times: list[float]) -> tuple[float, float, float]:
    return statistics.median(times), min(times), max(times)


def _torch_twin(graph: dict) -> Callable[[np.ndarray], object] | None:
    """The recorded architecture with float layers, as a callable on numpy input; None without torch."""
    try:
        import torch

        from onebit.models import create_model, model_info
    except ImportError:
        return None
    source = (graph.get("source") or {}).get("model")
    if not isinstance(source, dict) or "name" not in source:
        return None
    args = dict(source.get("args", {}))
    params = inspect.signature(model_info(source["name"]).builder).parameters
    for key in ("input_quantizer", "weight_quantizer", "first_input_quantizer"):
        if key in params:
            args[key] = None
    model = create_model(source["name"], **args).eval()

    def run(x: np.ndarray) -> object:
        with torch.no_grad():
            return model(torch.from_numpy(x))

    return run


def bench_model(
    path: str | os.PathLike, *, batch_size: int = 1, threads: list[int] | None = None, repeats: int = 50
) -> str:
    """A Markdown table: median (min–max) ms per batch, onebit vs PyTorch fp32, per thread count."""
    from onebit import _core
    from onebit.runtime import load

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
    cores = int(_core.default_num_threads())
    threads = threads or sorted({1, cores})
    if any(t < 1 for t in threads):
        raise ConfigError(f"thread counts must be positive, got {threads}")
    model = load(path, num_threads=threads[0])
    x = np.random.default_rng(0).standard_normal((batch_size, *model.in_shape)).astype(np.float32)
    twin = _torch_twin(model.graph)

    def onebit_at(t: int, calls: int) -> list[float]:
        model.num_threads = t
        return _times(lambda: model(x), calls)

    def torch_at(t: int, calls: int) -> list[float]:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(t)
        try:
            return _times(lambda: twin(x), calls)
        finally:
            torch.set_num_threads(previous)

    # PyTorch's rounds come after onebit's: its float weights streaming through the caches
    # would evict onebit's between blocks.
    samples = _interleaved(onebit_at, threads, repeats)
    torch_samples = _interleaved(torch_at, threads, repeats) if twin is not None else None
    base = statistics.median(samples[1]) if 1 in samples else None
    rows = []
    for t in threads:
        ob = _summary(samples[t])
        rows.append(BenchRow(t, ob, None if torch_samples is None else _summary(torch_samples[t]),
                             None if base is None else base / ob[0]))
    head = [
        f"{path}: batch {batch_size}, {repeats} calls per cell in {min(ROUNDS, repeats)} interleaved rounds, ISA "
        f"{_core.selected_isa()}, {cpu_name()}",
        "",
        "| threads | onebit ms, median (min–max) | onebit vs 1 thread | PyTorch fp32 ms, median (min–max) | speed-up |",
        "|--------:|----------------------------:|-------------------:|----------------------------------:|---------:|",
    ]
    return "\n".join(head + [r.line() for r in rows])


def _interleaved(time_at: Callable[[int, int], list[float]], threads: list[int], repeats: int) -> dict[int, list[float]]:
    """Per thread count, ``repeats`` call times measured in rounds that each time every thread
    count in turn (``time_at(threads, calls)``), so that a phase of the machine (a busy
    neighbour on a shared host) weighs on all of them alike and their ratio compares like
    with like."""
    rounds = min(ROUNDS, repeats)
    samples: dict[int, list[float]] = {t: [] for t in threads}
    for r in range(rounds):
        calls = repeats // rounds + (1 if r < repeats % rounds else 0)
        for t in threads:
            samples[t] += time_at(t, calls)
    return samples


def _times(fn: Callable[[], object], calls: int, warmup: int = 3) -> list[float]:
    """Seconds of each of ``calls`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
