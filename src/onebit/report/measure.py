"""What a report measures on the machine that renders it: test-set predictions of PyTorch and
of the engine, confusion matrices, and per-layer latency of the engine beside PyTorch fp32.

Latency is measured per layer on one input (batch 1) and one thread on both sides: the
engine with ``Model.profile`` (wall time around each of its layers, fused ones counted
once), PyTorch with forward hooks around each leaf module of the float twin
(:func:`onebit.bench.float_twin`: the same architecture with float layers, the model a
user would otherwise deploy). Each side is called until ``budget_s`` seconds have passed
(at least ``min_calls`` times) after warm-up; the whole-model time is the median of
separate calls made without the profiling. Numbers depend on the machine and its load.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LatencyRow", "LayerLatency", "confusion_matrix", "engine_latency", "per_class_accuracy",
           "torch_latency", "torch_predictions"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = test samples of class ``i`` predicted as ``j`` (int64, ``num_classes`` square)."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class: ``C[i, i] / sum_j C[i, j]`` (nan for a class with no test sample)."""
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)


def torch_predictions(model: Any, x: np.ndarray, batch_size: int = 512, threads: int | None = None) -> np.ndarray:
    """The argmax class of each row of ``x`` under ``model`` in eval mode, on ``threads`` torch threads
    (the run's count: float sums, and so rare near-ties, depend on it; None: torch's setting)."""
    import torch

    from onebit.nn.modes import eval_mode
    from onebit.train import torch_threads

    out = []
    with eval_mode(model), torch.no_grad(), torch_threads(threads):
        for i in range(0, len(x), batch_size):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))).argmax(1))
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


@dataclass
class LatencyRow:
    """One layer: its name, what it is, and mean milliseconds per call."""

    name: str
    kind: str
    ms: float


@dataclass
class LayerLatency:
    """Per-layer times of one side (engine or PyTorch) and its whole-model median."""

    side: str
    rows: list[LatencyRow] = field(default_factory=list)
    total_ms: float = 0.0  # median of unprofiled whole-model calls
    calls: int = 0

    @property
    def layer_sum_ms(self) -> float:
        return sum(r.ms for r in self.rows)


def _repeat(fn: Any, budget_s: float, min_calls: int, max_calls: int = 1000) -> list[float]:
    for _ in range(3):  # warm-up: caches, the engine's thread pool, torch's allocator
        fn()
    times: list[float] = []
    stop = time.perf_counter() + budget_s
    while len(times) < min_calls or (time.perf_counter() < stop and len(times) < max_calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def engine_latency(path: Any, x: np.ndarray, *, budget_s: float = 0.15, min_calls: int = 5) -> LayerLatency:
    """Per-layer latency of the ``.onebit`` file at ``path`` on the batch ``x``, one engine thread."""
    from onebit.runtime import load

    engine = load(path, num_threads=1)
    x = np.ascontiguousarray(x, dtype=np.float32)
    result = LayerLatency("onebit.runtime")
    times = _repeat(lambda: engine(x), budget_s, min_calls)
    result.total_ms, result.calls = 1e3 * statistics.median(times), len(times)
    engine.profile = True
    engine.reset_timings()
    _repeat(lambda: engine(x), budget_s, min_calls)
    engine.profile = False
    result.rows = [LatencyRow(name, kind, 1e3 * seconds) for name, kind, seconds in engine.timings()]
    return result


def torch_latency(model: Any, x: np.ndarray, *, budget_s: float = 0.15, min_calls: int = 5) -> LayerLatency:
    """Per-leaf-module latency of the PyTorch ``model`` on the batch ``x``, one torch thread."""
    import torch

    from onebit.train import torch_threads

    model = model.eval()
    inp = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    spent: dict[str, float] = {n: 0.0 for n, _ in leaves}
    counts: dict[str, int] = {n: 0 for n, _ in leaves}
    started: dict[str, float] = {}
    result = LayerLatency("PyTorch fp32")
    with torch.no_grad(), torch_threads(1):
        times = _repeat(lambda: model(inp), budget_s, min_calls)
        result.total_ms, result.calls = 1e3 * statistics.median(times), len(times)
        handles = []
        for name, module in leaves:
            def pre(_m: Any, _a: Any, name: str = name) -> None:
                started[name] = time.perf_counter()

            def post(_m: Any, _a: Any, _o: Any, name: str = name) -> None:
                spent[name] += time.perf_counter() - started.pop(name)
                counts[name] += 1

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        try:
            calls = len(_repeat(lambda: model(inp), budget_s, min_calls)) + 3
        finally:
            for h in handles:
                h.remove()
    result.rows = [LatencyRow(n, type(m).__name__, 1e3 * spent[n] / calls) for n, m in leaves if counts[n]]
    return result
