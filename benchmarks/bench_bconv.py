"""Binary 3x3 convolutions of BinaryNet's VGG-small (CIFAR-10) against PyTorch fp32, in one
process.

For each 3x3 layer (C -> O at HxW, padding 1, pad_value +1) at batch 1 and 64, on one
thread and one ISA (default avx512, else the best available), prints:

- onebit ``BinaryConv2d.run`` (int32 output) and ``run_threshold`` (packed bits): median ms;
- where run's time goes, from ``_run_profiled`` (per-task timers, summed): bit-level
  im2col vs the bgemm micro-kernels;
- binary GMAC/s and % of the ISA's one-core register peak (``_core.peak_binary_macs``);
- ÷ bgemm: run's time over ``_core.bgemm`` of the same (M=N*H*W, K=9C, N=O) on an
  already-built im2col matrix (what the convolution costs beyond its GEMM);
- torch fp32 ``conv2d`` (NCHW, 1 thread) of the same shape, measured in the same run, and
  the speed-up over it.

glibc returns blocks of 32 MiB and more to the OS on free (mmap), so a fresh 32 MiB int32
output (128→128 at batch 64) would pay first-touch page faults on every call, inside the
kernel's first writes: the script raises M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (mallopt)
so that both onebit's and torch's outputs are reused heap memory; ``--keep-malloc`` leaves glibc's default.

Timing helpers (median of repeated samples after a warm-up, watchdog, others' CPUs) are
those of bench_bgemm.py. Nothing is asserted.

    python benchmarks/bench_bconv.py            # full run, about a minute
    python benchmarks/bench_bconv.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, measure, ms, peak_per_core, quiesce, ratio, table, torch  # noqa: E402

from onebit import _core  # noqa: E402

# BinaryNet VGG-small 3x3 layers after the first (C, O, H=W).
LAYERS = [(128, 128, 32), (128, 256, 16), (256, 256, 16), (256, 512, 8), (512, 512, 8)]
BATCHES = (1, 64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--isa", default="avx512" if _core.isa_supported("avx512") else _core.selected_isa())
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats, short samples")
    ap.add_argument("--keep-malloc", action="store_true", help="leave glibc's mmap threshold as it is")
    args = ap.parse_args(argv)
    malloc_note = "glibc default mmap threshold"
    if not args.keep_malloc:
        try:
            libc = ctypes.CDLL(None)
            m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
            if libc.mallopt(m_mmap_threshold, 256 << 20) and libc.mallopt(m_trim_threshold, 1 << 30):
                malloc_note = "M_MMAP_THRESHOLD 256 MiB, M_TRIM_THRESHOLD 1 GiB (outputs reuse heap memory)"
        except (OSError, AttributeError):
            pass
    repeats, warmup_s, sample_s = (3, 0.05, 0.05) if args.quick else (args.repeats, 0.3, 0.2)
    isa = args.isa
    rng = np.random.default_rng(0)

    torch_threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    peak = None
    if isa != "scalar":
        peak_t, _ = peak_per_core(isa, repeats, sample_s)
        peak = 1.0 / peak_t.median  # binary MACs/s, one core

    rows = []
    for batch in BATCHES:
        for c, o, hw in LAYERS:
            x = rng.integers(0, 2**64, size=(batch, hw, hw, c // 64), dtype=np.uint64)
            w = rng.integers(0, 2**64, size=(o, 3, 3, c // 64), dtype=np.uint64)
            conv = _core.BinaryConv2d(w, c, padding=(1, 1), pad_value=1)
            thresholds = np.zeros(o, np.int32)
            flips = np.ones(o, np.int8)
            macs = batch * hw * hw * o * 9 * c

            t_run = measure(lambda: conv.run(x, num_threads=1, isa=isa), repeats, warmup_s, sample_s)
            t_thr = measure(
                lambda: conv.run_threshold(x, thresholds, flips, num_threads=1, isa=isa), repeats, warmup_s, sample_s
            )
            prof = [conv._run_profiled(x, num_threads=1, isa=isa)[1:] for _ in range(max(3, repeats))]
            im2col = statistics.median(p[0] / sum(p) for p in prof)
            gemm = statistics.median(p[1] / sum(p) for p in prof)

            a = rng.integers(0, 2**64, size=(batch * hw * hw, 9 * c // 64), dtype=np.uint64)
            pw = _core.PackedWeights(w.reshape(o, -1), 9 * c)
            t_gemm = measure(lambda: _core.bgemm(a, pw, num_threads=1, isa=isa), repeats, warmup_s, sample_s)

            xt = torch.randn(batch, c, hw, hw)
            wt = torch.randn(o, c, 3, 3)
            quiesce()
            with torch.inference_mode():
                t_torch = measure(lambda: torch.nn.functional.conv2d(xt, wt, padding=1), repeats, warmup_s, sample_s)

            rows.append(
                [
                    f"{c}→{o}, {hw}×{hw}",
                    str(batch),
                    ms(t_run.median),
                    ms(t_thr.median),
                    f"{im2col:.1%}",
                    f"{gemm:.1%}",
                    f"{macs / t_run.median / 1e9:,.0f}",
                    f"{macs / t_run.median / peak:.0%}" if peak else "n/a",
                    f"{t_run.median / t_gemm.median:.2f}",
                    ms(t_torch.median),
                    ratio(t_torch.median / t_run.median),
                ]
            )
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    torch.set_num_threads(torch_threads_before)

    print(f"\nBinaryNet VGG-small 3x3 layers, padding 1 (pad_value +1), 1 thread, ISA {isa}, {cpu_model()}")
    print(f"allocator: {malloc_note}")
    if peak:
        print(f"one-core register peak: {peak / 1e9:,.0f} binary GMAC/s")
    print(
        table(
            [
                "layer",
                "batch",
                "run ms",
                "run_threshold ms",
                "im2col",
                "gemm",
                "binary GMAC/s",
                "% of peak",
                "÷ bgemm same shape",
                "torch fp32 ms",
                "× torch",
            ],
            rows,
        )
    )
    print(
        "\nim2col / gemm: share of run's time per phase (per-task timers, median of calls); the rest is "
        "the epilogue. ÷ bgemm: run ms over _core.bgemm of the same M, K, N on a prebuilt im2col matrix. "
        "× torch: torch.nn.functional.conv2d fp32 (1 thread) ms over run ms."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
