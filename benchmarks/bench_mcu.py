"""Every shipped pretrained model as standalone C on an emulated Cortex-M4F: flash, RAM, instructions per inference.

For each (model, data set) of ``onebit.models.pretrained.list_pretrained()``: export to
``.onebit``, write C with :func:`onebit.deploy.to_c` (32-bit words), cross-compile for QEMU's
``mps2-an386`` (Cortex-M4F, ``-O2``, hard float) and run the first ``--samples`` test inputs
under ``qemu-system-arm -icount shift=0`` with semihosting. Columns:

- flash: ``arm-none-eabi-size`` text + data of model.o (code + const weights/thresholds);
- RAM: data + bss of model.o (the activation arena + the logits buffer) + an upper bound of the
  stack (``-fstack-usage``: the run's frame plus every kernel's); the caller's input is not counted;
- float32: the PyTorch model's floating-point state (every weight, BatchNorm statistic, scale)
  at 4 bytes, the baseline the flash is compared with;
- instructions/inference: SysTick ticks × instructions per tick (40, calibrated on a loop of
  known length in the same run), the median over the samples: QEMU counts guest
  instructions, not cycles (no pipeline, wait states or caches are modelled);
- agree: samples whose prediction equals onebit.runtime's; acc: the C predictions' accuracy
  on those samples.

    python benchmarks/bench_mcu.py [--samples 100] [--board mps2-an386]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg  # noqa: E402

from onebit.data import load_dataset  # noqa: E402
from onebit.deploy import to_c  # noqa: E402
from onebit.deploy.cbuild import (build_cortex_m, instructions_per_tick, missing_cortex_m_tools,  # noqa: E402
                                  read_main_output, run_qemu)
from onebit.export import export  # noqa: E402
from onebit.models import create_model  # noqa: E402
from onebit.models.pretrained import list_pretrained  # noqa: E402
from onebit.runtime import load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100, help="test inputs run per model")
    parser.add_argument("--board", default="mps2-an386", choices=["mps2-an386", "mps2-an500"])
    args = parser.parse_args()
    reason = missing_cortex_m_tools()
    if reason is not None:
        sys.exit(f"bench_mcu: {reason}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        per_tick = instructions_per_tick(work / "calibrate", args.board)
        for name, data in list_pretrained():
            dataset = load_dataset(data)
            x, y = dataset.x_test[: args.samples], dataset.y_test[: args.samples]
            model = create_model(name, pretrained=data).eval()
            path = work / f"{name}-{data}.onebit"
            with torch.no_grad():
                report = export(model, path, dataset.x_test[:16])
            out = work / f"{name}-{data}"
            result = to_c(path, out, samples=x)
            build = build_cortex_m(out, args.board, systick=True)
            preds, _, ticks = read_main_output(run_qemu(build.elf, args.board))
            runtime = load(path, num_threads=1).predict(x)
            rows.append((f"{name} ({data})", build.flash_bytes, build.ram_bytes + build.stack_bytes,
                         result.arena_bytes, report.float32_state_bytes,
                         statistics.median(ticks.tolist()) * per_tick, int((preds == runtime).sum()),
                         float((preds == y).mean()), len(x), len(result.float_layers)))
    print(f"# bench_mcu: {datetime.now(timezone.utc):%Y-%m-%d}, host {cpu_model()}, load {load_avg()} (shared "
          f"machine; the counts below do not depend on it)")
    print(f"# board {args.board} under qemu-system-arm -icount shift=0; {per_tick:g} instructions per SysTick tick "
          f"(calibrated); arm-none-eabi-gcc -O2, 32-bit words\n")
    header = ("model (data)", "flash B", "RAM B", "arena B", "float32 B", "flash/float32", "instr/inference",
              "agree", "acc", "float layers")
    table = [header] + [(r[0], f"{r[1]:,}", f"{r[2]:,}", f"{r[3]:,}", f"{r[4]:,}", f"{r[1] / r[4]:.3f}",
                         f"{r[5]:,.0f}", f"{r[6]}/{r[8]}", f"{r[7]:.1%}", str(r[9])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    if any(r[6] != r[8] for r in rows):
        sys.exit("bench_mcu: a C prediction differs from onebit.runtime's")


if __name__ == "__main__":
    np.set_printoptions(linewidth=120)
    main()
