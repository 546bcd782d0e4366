"""Whole networks in onebit.runtime vs the same architecture in PyTorch fp32.

BinaryNet's MLP (784-4096-4096-4096-10), its CIFAR-10 VGG-small and Bi-Real Net-18 at
224x224 (1,000 classes), built with random
weights and BatchNorm statistics (latency does not depend on the values) and exported;
for each: ``onebit bench``'s table at batch 1 (1 and 2 threads), and the engine's
per-layer breakdown at batch 64. Usage: ``python benchmarks/bench_models.py [--repeats N]
[--models binarynet_mlp,binarynet_cnn]``.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import onebit.runtime as rt
from onebit.bench import bench_model, cpu_name
from onebit.export import export
from onebit.models import create_model

SHAPES = {"binarynet_mlp": (1, 28, 28), "binarynet_cnn": (3, 32, 32), "birealnet18": (3, 224, 224)}


def _random_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-5, 5)
            m.running_var.uniform_(10, 100)


def _breakdown(path: Path, in_shape: tuple[int, ...], batch: int) -> str:
    engine = rt.load(path, num_threads=1)
    x = np.random.default_rng(0).standard_normal((batch, *in_shape)).astype(np.float32)
    engine(x)
    engine.profile = True
    for _ in range(5):
        engine(x)
    total = sum(s for _, _, s in engine.timings())
    lines = [f"Per-layer time, batch {batch}, 1 thread (total {total * 1e3:.2f} ms):", "",
             "| layer | kind | ms | share |", "|---|---|---:|---:|"]
    lines += [f"| {name} | {kind} | {s * 1e3:.3f} | {s / total:.0%} |" for name, kind, s in engine.timings()]
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
            print(_breakdown(path, in_shape, 64))
            print()


if __name__ == "__main__":
    main()
