"""A Larq model on onebit's engine vs Larq Compute Engine's x86 runtime, on the same .h5 file.

Larq zoo's QuickNetSmall (224 x 224 x 3, 1000 classes, random weights: latency does not
depend on them) is built and saved as Keras HDF5 in the Larq environment, converted there
by LCE's converter (``lce.convert_keras_model``) and timed with LCE's interpreter
(``benchmarks/larq_lce_side.py``, every LCE engine option: its default bgemm, the indirect
bgemm, XNNPACK for the float layers, both; the fastest is LCE's number); here the same file goes through ``onebit convert`` and
the ``.onebit`` file is timed with :func:`onebit.bench.bench_model`, beside its PyTorch fp32
float twin (the baseline measured in the same run). Batch 1, 1 and 2 threads, medians after
warm-up. The converted model's output is checked against Keras's first.

    python benchmarks/bench_larq.py --larq-python /work/larq-env/bin/python [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from onebit.bench import bench_model, cpu_name
from onebit.convert import convert_file, load_converted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--larq-python", required=True, help="python of the Larq environment (larq-zoo, LCE)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--work", default=None, help="folder for the .h5/.tflite/.onebit files (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="reuse the Larq side (files, LCE times) found in --work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_larq_"))
    side = Path(__file__).with_name("larq_lce_side.py")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    if args.reuse and (work / "lce.json").exists():  # the Larq side of an earlier run in --work
        lce = json.loads((work / "lce.json").read_text())
    else:
        proc = subprocess.run([args.larq_python, str(side), str(work), str(args.repeats)], capture_output=True,
                              text=True, env=env, check=True)
        lce = json.loads(proc.stdout.strip().splitlines()[-1])
        (work / "lce.json").write_text(json.dumps(lce))

    result = convert_file(work / "quicknet_small.h5", work / "qns.safetensors", work / "qns.onebit")
    model, _ = load_converted(work / "qns.safetensors")
    x = np.load(work / "x.npy")
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    with torch.no_grad():
        y = model(xt).numpy()
        y64 = model.double()(xt.double()).numpy()  # random weights leave sign inputs within float32 rounding of 0
    keras = np.load(work / "keras_logits.npy")
    rel = lambda a, b: np.abs(a - b).max() / np.abs(b).max()  # noqa: E731
    print(f"QuickNetSmall from Larq zoo -> onebit ({result['zoo_model'] or 'graph'}): max |Δ logit| / max |logit|: "
          f"Keras vs onebit in float64 {rel(keras, y64):.1e}, onebit float32 vs float64 {rel(y, y64):.1e}, "
          f"Keras vs onebit float32 {rel(keras, y):.1e}; LCE's softmax vs Keras's: max |Δ| = "
          f"{np.abs(np.load(work / 'lce.npy') - np.load(work / 'keras.npy')).max():.1e}")

    bench = bench_model(work / "qns.onebit", threads=[1, 2], repeats=args.repeats)
    print(f"\nCPU: {cpu_name()}, ISA {bench.isa}; batch 1, median of {args.repeats} runs after warm-up "
          f"(the machine was shared with other jobs)\n")
    print(f"{'threads':>7} | {'onebit engine':>13} | {'LCE (x86)':>10} | {'PyTorch fp32':>12} | LCE/onebit | torch/onebit")
    for row in bench.rows:
        ob = 1e3 * row.onebit[0]
        tl = lce[f"lce_ms_{row.threads}t"]
        tt = 1e3 * row.torch[0] if row.torch else float("nan")
        print(f"{row.threads:>7} | {ob:>10.2f} ms | {tl:>7.2f} ms | {tt:>9.2f} ms | {tl / ob:>9.2f}x | {tt / ob:>10.2f}x")
    configs = sorted({k.split("t_", 1)[1] for k in lce if k.startswith("lce_ms_") and "t_" in k})
    if configs:  # LCE's engine options, each timed; the table shows the fastest (its best x86 engine)
        print("\nLCE by engine option (ms): " + "; ".join(
            f"{t} thread{'s' if t > 1 else ''}: " + ", ".join(f"{c} {lce[f'lce_ms_{t}t_{c}']:.2f}" for c in configs)
            + f" (best: {lce[f'lce_config_{t}t']})" for t in (1, 2)))
    print(f"\nLCE {lce['lce_version']}; files in {work}")


if __name__ == "__main__":
    sys.exit(main())
