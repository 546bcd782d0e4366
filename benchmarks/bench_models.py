"""Whole networks in onebit.runtime vs the same architecture in PyTorch fp32.

BinaryNet's MLP (784-4096-4096-4096-10), its CIFAR-10 VGG-small and Bi-Real Net-18 at
224x224 (1,000 classes), built with random
weights and BatchNorm statistics (latency does not depend on the values) and exported;
for each: ``onebit bench``'s table at batch 1 (1 and 2 threads), and the engine's
per-layer breakdown at batch 64 (1 thread) with, per layer, the time inside the kernels
proper (micro-kernels; the rest is packing, im2col, output stages and Python glue); for
Bi-Real Net also at batch 1, 1 and 2 threads. Usage: ``python benchmarks/bench_models.py
[--repeats N] [--models binarynet_mlp,binarynet_cnn]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import onebit.runtime as rt
from onebit import _core
from onebit.bench import bench_model, cpu_name
from onebit.export import export
from onebit.models import create_model
from onebit.runtime import blas
from onebit.runtime.container import read_container

SHAPES = {"binarynet_mlp": (1, 28, 28), "binarynet_cnn": (3, 32, 32), "birealnet18": (3, 224, 224)}


def _random_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-5, 5)
            m.running_var.uniform_(10, 100)


def _median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _kernel_seconds(path: Path, engine: rt.Model, x: np.ndarray, repeats: int) -> dict[str, float]:
    """Per conv / dense node, the median seconds (1 thread) inside its micro-kernels on the
    node's real input: the binary conv's GEMM phase (im2col and the epilogue excluded), the
    float conv's micro-kernel with the output stage it fuses (padded-row copies excluded),
    the whole packed GEMM of a binary dense layer, the BLAS product of a float one."""
    tensors, _ = read_container(path)
    values: dict = {"input": x}
    engine._run(values)  # every intermediate value, by name
    out = {}
    for node in engine.graph["nodes"]:
        t = {k: tensors[v] for k, v in node.get("tensors", {}).items()}
        src = np.ascontiguousarray(values[node["inputs"][0]])
        bits_in = src.dtype == np.uint64
        if node["op"] == "conv2d" and bits_in:
            conv = _core.BinaryConv2d(t["weight"], node["cin"], node["groups"], node["stride"], node["padding"],
                                      node["dilation"], node["pad_value"])
            if node["out"] == "bits":
                run = lambda: conv._run_threshold_profiled(src, t["threshold"], t["flip"], 1)[2]  # noqa: E731
            else:
                run = lambda: conv._run_profiled(src, 1)[2]  # noqa: E731
            out[node["name"]] = _median(run, repeats)
        elif node["op"] == "conv2d":
            cout, cg = node["cout"], node["cin"] // node["groups"]
            w = t["weight"]
            if node["weights"] == "bits":
                w = _core.unpack_rows(np.ascontiguousarray(w.reshape(-1, w.shape[-1])), cg)
            conv = _core.FloatConv2d(np.ascontiguousarray(w.reshape(cout, *node["kernel"], cg), np.float32),
                                     node["cin"], node["groups"], node["stride"], node["padding"], node["dilation"],
                                     float(node["pad_value"]))
            pool = node.get("pool")
            pool = None if pool is None else (pool["kernel"], pool["stride"], pool["padding"])
            act = node.get("act", "none") if node["out"] == "float" else "none"
            out[node["name"]] = _median(lambda: conv.run(src, t["scale"], t["bias"], act, node["out"] == "bits", pool,
                                                         1, profile=True)[2], repeats)
        elif node["op"] == "dense" and bits_in:
            packed = _core.PackedWeights(t["weight"], node["k"])
            out[node["name"]] = _median(lambda: _timed(lambda: _core.bgemm(src, packed, 1)), repeats)
        elif node["op"] == "dense":
            wt = np.ascontiguousarray(t["weight"].T) if node["weights"] == "float" else None
            if wt is not None:
                out[node["name"]] = _median(lambda: _timed(lambda: src @ wt), repeats)
    return out


def _breakdown(path: Path, in_shape: tuple[int, ...], batch: int, threads: int = 1, kernels: bool = False) -> str:
    engine = rt.load(path, num_threads=threads)
    x = np.random.default_rng(0).standard_normal((batch, *in_shape)).astype(np.float32)
    calls = 5 if batch > 1 else 200
    engine(x)
    engine.profile = True
    for _ in range(calls):
        engine(x)
    total = sum(s for _, _, s in engine.timings())
    head = f"Per-layer time, batch {batch}, {threads} thread{'s' if threads > 1 else ''} (total {total * 1e3:.3f} ms"
    if not kernels:
        lines = [head + "):", "", "| layer | kind | ms | share |", "|---|---|---:|---:|"]
        lines += [f"| {name} | {kind} | {s * 1e3:.3f} | {s / total:.0%} |" for name, kind, s in engine.timings()]
        return "\n".join(lines)
    with blas.limit(1):
        ks = _kernel_seconds(path, engine, x, 5)
    kt = sum(ks.values())
    lines = [head + f"; kernels proper {kt * 1e3:.3f} ms = {kt / total:.0%}):", "",
             "| layer | kind | ms | share | kernel ms | kernel share of layer |", "|---|---|---:|---:|---:|---:|"]
    for name, kind, s in engine.timings():
        k = ks.get(name)
        kcol = f"{k * 1e3:.3f} | {k / s:.0%}" if k is not None else "– | –"
        lines.append(f"| {name} | {kind} | {s * 1e3:.3f} | {s / total:.0%} | {kcol} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--models", default=",".join(SHAPES))
    args = parser.parse_args()
    print(f"**onebit models** — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu_name()} · torch {torch.__version__}\n")
    for name in args.models.split(","):
        torch.manual_seed(0)
        in_shape = SHAPES[name]
        model = create_model(name, num_classes=1000 if name == "birealnet18" else 10, in_shape=in_shape)
        _random_bn(model)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.onebit"
            report = export(model, path, torch.randn(2, *in_shape), verbose=False)
            print(f"### {name} {in_shape}: file {report.file_bytes:,} bytes vs float32 state dict "
                  f"{report.float32_state_bytes:,} ({report.compression:.1f}× smaller)\n")
            print(bench_model(path, batch_size=1, repeats=args.repeats))
            print()
            if name == "birealnet18":
                for threads in (1, 2):
                    print(_breakdown(path, in_shape, 1, threads))
                    print()
            print(_breakdown(path, in_shape, 64, kernels=True))
            print()


if __name__ == "__main__":
    main()
