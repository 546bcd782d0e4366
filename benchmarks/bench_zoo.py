"""Every zoo model at its native input size in onebit.runtime vs PyTorch fp32 of the same architecture.

Each registered model is built with random weights and BatchNorm statistics (latency does
not depend on the values), exported, and timed at batch 1 with 1 and 2 threads; the
baseline is the same architecture with float layers (``input_quantizer=None,
weight_quantizer=None``) in PyTorch, timed in the same run. Also the ``.onebit`` file size
against the float32 state dict. Models that miss the 4× target get their per-layer
breakdown printed below the table (``--breakdown all`` prints every model's).
Usage: ``python benchmarks/bench_zoo.py [--repeats N] [--models a,b] [--breakdown none|missed|all]``.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import onebit.runtime as rt
from onebit import _core
from onebit.bench import cpu_name, export_random_model, float_twin, time_call
from onebit.models import list_models, model_info

TARGET = 4.0  # issue 4: every zoo model ≥ 4× PyTorch fp32 on one thread (QuickNetSmall ≥ 10×)


def _time_torch(model: torch.nn.Module, x: torch.Tensor, threads: int, repeats: int) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            return time_call(lambda: model(x), repeats)[0]
    finally:
        torch.set_num_threads(previous)


def _breakdown(engine: rt.Model, x: np.ndarray) -> str:
    engine.num_threads = 1
    engine.profile = True
    for _ in range(5):
        engine(x)
    engine.profile = False
    timings = engine.timings()
    total = sum(s for _, _, s in timings)
    by_kind: dict[str, float] = {}
    for _, kind, s in timings:
        by_kind[kind] = by_kind.get(kind, 0.0) + s
    top = sorted(timings, key=lambda t: -t[2])[:8]
    lines = [f"total {total * 1e3:.2f} ms, 1 thread; by kind: "
             + ", ".join(f"{k} {s / total:.0%}" for k, s in sorted(by_kind.items(), key=lambda kv: -kv[1])), "",
             "| layer | kind | ms | share |", "|---|---|---:|---:|"]
    lines += [f"| {n} | {k} | {s * 1e3:.3f} | {s / total:.0%} |" for n, k, s in top]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--models", default=None, help="comma-separated names (default: every registered model)")
    parser.add_argument("--breakdown", default="missed", choices=("none", "missed", "all"))
    args = parser.parse_args()
    names = args.models.split(",") if args.models else list_models()
    print(f"**onebit zoo** — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu_name()} · "
          f"ISA {_core.selected_isa()} · torch {torch.__version__} · batch 1, median of {args.repeats} calls\n")
    print("| model | input | onebit 1T ms | PyTorch 1T ms | speed-up 1T | onebit 2T ms | PyTorch 2T ms | speed-up 2T "
          "| .onebit size | float32 size | smaller |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    breakdowns = []
    for name in names:
        in_shape = model_info(name).in_shape  # the published network's input and classes
        twin = float_twin(name)
        x = np.random.default_rng(0).standard_normal((1, *in_shape)).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.onebit"
            report = export_random_model(name, path)
            engine = rt.load(path)
        cells, ratio1 = [], 0.0
        for threads in (1, 2):
            engine.num_threads = threads
            ob = time_call(lambda: engine(x), args.repeats)[0]
            pt = _time_torch(twin, torch.from_numpy(x), threads, args.repeats)
            ratio1 = ratio1 or pt / ob
            cells += [f"{ob * 1e3:.3f}", f"{pt * 1e3:.3f}", f"{pt / ob:.1f}×"]
        shape = "×".join(map(str, in_shape))
        print(f"| {name} | {shape} | {' | '.join(cells)} | {report.file_bytes / 1e6:.2f} MB "
              f"| {report.float32_state_bytes / 1e6:.2f} MB | {report.compression:.1f}× |", flush=True)
        if args.breakdown == "all" or (args.breakdown == "missed" and ratio1 < TARGET):
            breakdowns.append(f"#### {name}\n\n{_breakdown(engine, x)}\n")
    if breakdowns:
        print("\nPer-layer breakdown (the 8 slowest layers)" +
              (f" of the models under {TARGET:g}× on one thread" if args.breakdown == "missed" else "") + ":\n")
        print("\n".join(breakdowns))


if __name__ == "__main__":
    main()
