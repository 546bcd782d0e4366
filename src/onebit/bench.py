"""Latency of a ``.onebit`` model in the runtime against PyTorch fp32 of the same architecture.

The PyTorch baseline is the network recorded in the file (registry name and arguments)
rebuilt with float layers (``input_quantizer=None, weight_quantizer=None`` where the
builder takes them): the model a user would otherwise deploy. Times are medians of
``repeats`` calls after warm-up, per thread count; the ratio is PyTorch / onebit.
:func:`export_random_model` writes a registered model with random weights at its
native size, so a model can be timed before it is trained (``onebit bench NAME``).
"""

from __future__ import annotations

import inspect
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import ConfigError, ModelFileError

__all__ = ["BenchResult", "BenchRow", "bench_model", "cpu_name", "export_random_model", "float_twin", "time_call"]

log = logging.getLogger(__name__)

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
    """One thread count: (median, min, max) seconds per batch for onebit and for PyTorch fp32."""

    threads: int
    onebit: tuple[float, float, float]
    torch: tuple[float, float, float] | None
    scaling: float | None = None  # onebit's median on one thread / its median on `threads`

    @property
    def speedup(self) -> float | None:
        """PyTorch's median / onebit's median (None without a PyTorch baseline)."""
        return None if self.torch is None else self.torch[0] / self.onebit[0]

    def to_dict(self) -> dict[str, Any]:
        ms = lambda t: None if t is None else {"median": t[0] * 1e3, "min": t[1] * 1e3, "max": t[2] * 1e3}  # noqa: E731
        return {"threads": self.threads, "onebit_ms": ms(self.onebit), "torch_ms": ms(self.torch),
                "speedup": self.speedup, "vs_one_thread": self.scaling}

    def line(self) -> str:
        ob = f"{self.onebit[0] * 1e3:9.3f} ({self.onebit[1] * 1e3:.3f}–{self.onebit[2] * 1e3:.3f})"
        sc = "n/a" if self.scaling is None else f"{self.scaling:5.2f}×"
        if self.torch is None:
            return f"| {self.threads:7d} | {ob} | {sc} | n/a | n/a |"
        tt = f"{self.torch[0] * 1e3:9.3f} ({self.torch[1] * 1e3:.3f}–{self.torch[2] * 1e3:.3f})"
        return f"| {self.threads:7d} | {ob} | {sc} | {tt} | {self.torch[0] / self.onebit[0]:6.1f}× |"


def _summary(times: list[float]) -> tuple[float, float, float]:
    return statistics.median(times), min(times), max(times)


@dataclass
class BenchResult:
    """What :func:`bench_model` measured; ``str()`` is the Markdown table."""

    path: str
    batch_size: int
    repeats: int
    rounds: int
    isa: str
    cpu: str
    rows: list[BenchRow] = field(default_factory=list)

    def table(self) -> str:
        head = [
            f"{self.path}: batch {self.batch_size}, {self.repeats} calls per cell in {self.rounds} interleaved rounds, "
            f"ISA {self.isa}, {self.cpu}",
            "",
            "| threads | onebit ms, median (min–max) | onebit vs 1 thread | PyTorch fp32 ms, median (min–max) | speed-up |",
            "|--------:|----------------------------:|-------------------:|----------------------------------:|---------:|",
        ]
        return "\n".join(head + [r.line() for r in self.rows])

    def pipeline_table(self, front_label: str, front: tuple[float, float, float], per: str) -> str:
        """A Markdown table of a whole pipeline: a front end that both sides share (``front``:
        median, min, max seconds), then this network on onebit and in PyTorch fp32, per thread
        count, and the end-to-end time ``per`` item (``"per sentence"``) on each side."""
        def cell(t: tuple[float, float, float]) -> str:
            return f"{1e3 * t[0]:.3f} ({1e3 * t[1]:.3f}–{1e3 * t[2]:.3f})"

        lines = [f"| stage | threads | onebit ms, median (min–max) | PyTorch fp32 ms, median (min–max) | network speed-up "
                 f"| {per}, end to end (onebit vs PyTorch) |", "|---|---:|---:|---:|---:|---|",
                 f"| {front_label} | 1 | {cell(front)} | | | |"]
        for r in self.rows:
            if r.torch is None:
                lines.append(f"| network, batch {self.batch_size} | {r.threads} | {cell(r.onebit)} | | | |")
                continue
            ours, theirs = front[0] + r.onebit[0], front[0] + r.torch[0]
            lines.append(f"| network, batch {self.batch_size} | {r.threads} | {cell(r.onebit)} | {cell(r.torch)} | "
                         f"{r.speedup:.1f}× | {1e3 * ours:.3f} vs {1e3 * theirs:.3f} ms ({theirs / ours:.1f}×) |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.path, "batch_size": self.batch_size, "repeats": self.repeats, "rounds": self.rounds,
                "isa": self.isa, "cpu": self.cpu, "rows": [r.to_dict() for r in self.rows]}


def float_twin(name: str, **args: Any) -> Any:
    """The registered model ``name`` with float layers (every ``*input_quantizer``/``weight_quantizer``
    argument its builder takes set to None), in eval mode: the PyTorch baseline of a benchmark."""
    from onebit.models import create_model, model_info

    params = inspect.signature(model_info(name).builder).parameters
    for key in ("input_quantizer", "weight_quantizer", "first_input_quantizer"):
        if key in params:
            args[key] = None
    return create_model(name, **args).eval()


def export_random_model(
    name: str, path: str | os.PathLike, *, in_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
    seed: int = 0, **model_args: Any,
) -> Any:
    """Export the registered model ``name`` with random weights to ``path``; returns the ExportReport.

    The model is built at its native size unless ``in_shape``/``num_classes`` say otherwise,
    its BatchNorm statistics drawn at random too (so thresholds are not all zero), and the
    export is checked against PyTorch on one random input. Latency does not depend on the
    values, so the file times the architecture before it is trained.
    """
    import torch

    from onebit.export import export
    from onebit.models import create_model

    torch.manual_seed(seed)
    model = create_model(name, in_shape=in_shape, num_classes=num_classes, **model_args)
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) and m.track_running_stats:
            m.running_mean.uniform_(-5, 5, generator=generator)
            m.running_var.uniform_(10, 100, generator=generator)
    shape = tuple(model.onebit_config["args"]["in_shape"])
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((1, *shape)).astype(np.float32))
    vocab = getattr(next(iter(model.children()), None), "num_embeddings", None)
    if vocab is not None:  # a text CNN (a TokenEmbedding first) takes token ids
        x = torch.from_numpy(np.random.default_rng(seed).integers(0, vocab, (1, *shape)).astype(np.float32))
    return export(model.eval(), path, x)


def _torch_twin(graph: dict) -> Callable[[np.ndarray], object] | None:
    """The recorded architecture with float layers, as a callable on numpy input; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    source = (graph.get("source") or {}).get("model")
    if not isinstance(source, dict) or "name" not in source:
        return None
    model = float_twin(source["name"], **dict(source.get("args", {})))

    def run(x: np.ndarray) -> object:
        with torch.no_grad():
            return model(torch.from_numpy(x))

    return run


def bench_model(
    path: str | os.PathLike, *, batch_size: int = 1, threads: list[int] | None = None, repeats: int = 50
) -> BenchResult:
    """Time the ``.onebit`` file at ``path``: median (min–max) per batch, onebit vs PyTorch fp32, per thread count."""
    from onebit import _core
    from onebit.runtime import load

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be a positive integer, got {repeats!r}")
    cores = int(_core.default_num_threads())
    threads = threads or sorted({1, cores})
    if any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in threads):
        raise ConfigError(f"thread counts must be positive integers, got {threads}")
    _refuse_checkpoint(Path(path))
    model = load(path, num_threads=threads[0])
    x = np.random.default_rng(0).standard_normal((batch_size, *model.in_shape)).astype(np.float32)
    lookup = next((n for n in model.graph["nodes"] if n["op"] == "embedding"), None)
    if lookup is not None:  # a text CNN takes token ids: whole numbers below its vocabulary size
        x = np.random.default_rng(0).integers(0, lookup["vocab"], x.shape).astype(np.float32)
    twin = _torch_twin(model.graph)

    def onebit_at(t: int, calls: int) -> list[float]:
        model.num_threads = t
        return _times(lambda: model(x), calls)

    def torch_at(t: int, calls: int) -> list[float]:
        from onebit.train import torch_threads

        with torch_threads(t):
            return _times(lambda: twin(x), calls)

    rounds = min(ROUNDS, repeats)
    counts = ", ".join(map(str, threads))
    log.info("timing onebit.runtime on %s: %d calls per thread count (%s) in %d rounds", path, repeats, counts, rounds)
    # PyTorch's rounds come after onebit's: its float weights streaming through the caches
    # would evict onebit's between blocks.
    samples = _interleaved(onebit_at, threads, repeats)
    torch_samples = None
    if twin is not None:
        log.info("timing the PyTorch fp32 baseline (the same architecture with float layers)")
        torch_samples = _interleaved(torch_at, threads, repeats)
    base = statistics.median(samples[1]) if 1 in samples else None
    result = BenchResult(str(path), batch_size, repeats, rounds, str(_core.selected_isa()), cpu_name())
    for t in threads:
        ob = _summary(samples[t])
        result.rows.append(BenchRow(t, ob, None if torch_samples is None else _summary(torch_samples[t]),
                                    None if base is None else base / ob[0]))
    return result


def _refuse_checkpoint(path: Path) -> None:
    """A training checkpoint given where a ``.onebit`` file belongs: say how to export it."""
    if path.suffix != ".safetensors" or not path.is_file():
        return
    try:
        from onebit.checkpoint import read_checkpoint_meta

        read_checkpoint_meta(path)
    except Exception:  # not a checkpoint (or no torch/safetensors): let the runtime's reader judge it
        return
    raise ModelFileError(
        f"{path} is a training checkpoint, not a .onebit model; export it first: "
        f"onebit export {path} -o {path.with_suffix('.onebit')}, then onebit bench {path.with_suffix('.onebit')}"
    )


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
