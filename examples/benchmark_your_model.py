"""Benchmark a model on onebit's engine against PyTorch fp32 of the same architecture.

    python examples/benchmark_your_model.py [--model binarynet_cnn] [--quick]

The model is timed with random weights at its native input size (latency does not depend
on the values): the numbers a deployment will see before any training. ``onebit bench
NAME`` on the command line does the same; ``onebit bench model.onebit`` times a trained file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from onebit.bench import bench_model, export_random_model
from onebit.models import model_info

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="binarynet_cnn", help="a registered model name (see `onebit models`)")
parser.add_argument("--quick", action="store_true", help="few repeats, one thread count")
args = parser.parse_args()

info = model_info(args.model)
print(f"{args.model}: input {info.in_shape}, {info.num_classes} classes")
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / f"{args.model}.onebit"
    report = export_random_model(args.model, path)
    print(f"{path.name}: {report.file_bytes:,} bytes ({report.compression:.1f}x smaller than float32)")
    result = bench_model(path, threads=[1] if args.quick else None, repeats=5 if args.quick else 100)
print(result)
for row in result.rows:
    print(f"{row.threads} thread(s): onebit {row.onebit[0] * 1e3:.3f} ms, {row.speedup:.1f}x faster than PyTorch fp32")
