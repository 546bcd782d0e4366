"""The C++ graph executor against the Python runtime, on every zoo model, same run.

Both run the same kernels with the same arguments (the bits are tested equal); the
executor plans the graph once at load and runs it without returning to Python between
nodes, with its intermediate values in one reused arena instead of a fresh numpy array per
node. Each model is exported with random weights at its native size and loaded twice
(``executor="native"`` and ``executor="python"``); the two are called alternately, batch 1
(``--batch``), so both see the same machine state; medians after warm-up, with min–max.

    python benchmarks/bench_executor.py                      # every model, about 3 minutes
    python benchmarks/bench_executor.py --models quicknet_small birealnet18 --seconds 5
    python benchmarks/bench_executor.py --quick              # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import onebit.runtime as rt
from onebit import _core
from onebit.bench import cpu_name, export_random_model
from onebit.models import list_models, model_info


def measure(name: str, batch: int, threads: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onebit"
        export_random_model(name, path)
        native = rt.load(path, threads)
        python = rt.load(path, threads, executor="python")
    rng = np.random.default_rng(0)
    if native.layers[0].op == "embedding":
        x = rng.integers(0, 100, (batch, *native.in_shape)).astype(np.float32)
    else:
        x = rng.standard_normal((batch, *native.in_shape)).astype(np.float32)
    assert native(x).tobytes() == python(x).tobytes()
    times: dict[str, list[float]] = {"native": [], "python": []}
    for _ in range(5):
        native(x), python(x)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times["native"]) < 5:
        for key, model in (("native", native), ("python", python)):
            start = time.perf_counter()
            model(x)
            times[key].append(time.perf_counter() - start)
    runs = len(native._runs)
    return {"name": name, "layers": len(native.layers), "runs": runs, "calls": len(times["native"]),
            **{key: (statistics.median(t), min(t), max(t)) for key, t in times.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="zoo models (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per model (default 4)")
    parser.add_argument("--quick", action="store_true", help="two small models, 0.2 s each")
    args = parser.parse_args(argv)
    names = args.models or (["lfc", "cnv"] if args.quick else list_models())
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        parser.error(f"unknown models {', '.join(unknown)} (valid: {', '.join(list_models())})")
    if args.threads < 1 or args.batch < 1 or args.seconds <= 0:
        parser.error("--threads and --batch must be >= 1 and --seconds > 0")
    seconds = 0.2 if args.quick else args.seconds
    print(f"# C++ graph executor vs the Python runtime — {datetime.now(timezone.utc):%Y-%m-%d}, {cpu_name()}, "
          f"ISA {_core.selected_isa()}, {args.threads} thread(s), batch {args.batch}")
    print("\n| model | layers | runs | Python runtime ms | executor ms | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        r = measure(name, args.batch, args.threads, seconds)
        p, n = r["python"], r["native"]
        print(f"| {name} ({'x'.join(map(str, model_info(name).in_shape))}) | {r['layers']} | {r['runs']} | "
              f"{p[0] * 1e3:.3f} ({p[1] * 1e3:.3f}–{p[2] * 1e3:.3f}) | {n[0] * 1e3:.3f} ({n[1] * 1e3:.3f}–"
              f"{n[2] * 1e3:.3f}) | {p[0] / n[0]:.2f}× |", flush=True)
    print("\nruns: the executor's segments plus the layers it leaves to Python (1 = the whole graph in C++).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
