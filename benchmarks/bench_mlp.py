"""BinaryNet MLP (784-4096-4096-4096-10) in onebit.runtime vs the same MLP in PyTorch fp32.

Builds the network with random weights and BatchNorm statistics (latency does not depend
on the values), exports it, and prints ``onebit bench``'s table at batch 1 and 64, then
the engine's per-layer breakdown at batch 64. Usage: ``python benchmarks/bench_mlp.py [--repeats N]``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model("binarynet_mlp", num_classes=10, in_shape=(1, 28, 28))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-5, 5)
            m.running_var.uniform_(10, 100)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "binarynet_mlp.onebit"
        report = export(model, path, torch.randn(8, 1, 28, 28), verbose=False)
        print(f"**BinaryNet MLP** — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu_name()} · torch {torch.__version__}")
        print(f"file {report.file_bytes:,} bytes vs float32 state dict {report.float32_state_bytes:,} "
              f"({report.compression:.1f}× smaller)\n")
        for batch in (1, 64):
            print(bench_model(path, batch_size=batch, repeats=args.repeats if batch == 1 else max(5, args.repeats // 5)))
            print()
        engine = rt.load(path, num_threads=1)
        x = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32)
        engine(x)
        engine.profile = True
        for _ in range(10):
            engine(x)
        total = sum(s for _, _, s in engine.timings())
        print("Per-layer time at batch 64, 1 thread:\n\n| layer | kind | ms | share |\n|---|---|---:|---:|")
        for name, kind, seconds in engine.timings():
            print(f"| {name} | {kind} | {seconds * 1e3:.3f} | {seconds / total:.0%} |")


if __name__ == "__main__":
    main()
