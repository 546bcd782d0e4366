"""Binary GEMM / GEMV of onebit's C++ engine against PyTorch fp32, in one process.

Prints a Markdown table (paste it into the README) of:

1. the register peak of each SIMD ISA (binary MACs/s per core, ``_core.peak_binary_macs``);
2. binary GEMM  M=64, K=4096, N=4096 for each ISA at 1 and 2 threads: median ms, spread,
   binary GMAC/s, % of the ISA's peak (x threads) and the speed-up over ``torch.matmul``
   in fp32 of the same shape at the same thread count, measured in the same run;
3. binary GEMV  M=1, K=N=4096, same columns;
4. the activation-packing cost (``_core.pack_rows`` of float32 64x4096 and 1x4096).

Every number is the median of ``--repeats`` timed samples taken after a warm-up; a sample
times a loop of calls long enough (``min_sample_s``) for perf_counter and Python call
overhead not to matter, and reports the time per call. Weights are packed once, outside
the timing; activations are random bits already packed (packing is reported apart).
Thread counts are set explicitly for each measurement, on both sides: onebit through
``num_threads``, torch through ``torch.set_num_threads`` (inter-op threads pinned to 1,
intra-op set back to 1 and a short pause after each torch measurement, so no idle OpenMP
thread spins beside onebit's). Each torch baseline is measured right before the onebit
rows it is compared with, and every row records how many CPUs other processes kept busy
meanwhile ("others' CPUs"), since the machine may be shared. A watchdog dumps all Python
stacks and exits if one measurement hangs.

Targets are printed beside the results, never asserted (see ARCHITECTURE.md, Measuring).

    python benchmarks/bench_bgemm.py            # full run, under ~2 minutes
    python benchmarks/bench_bgemm.py --quick    # smoke run, a few seconds
    python benchmarks/bench_bgemm.py --isa avx512 --repeats 51
"""

from __future__ import annotations

import argparse
import datetime as _dt
import faulthandler
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - the baseline is the point of this script
    sys.exit("bench_bgemm.py needs torch for its fp32 baseline: pip install 'onebit[train]'")

from onebit import _core

M_GEMM, K, N = 64, 4096, 4096
THREADS = (1, 2)
SIMD_ISAS = ("avx512", "avx2")

# Targets shown beside the results (not asserted).
TARGET_AVX512_GEMM_PEAK = 0.80  # AVX-512 GEMM, 1 thread: fraction of the AVX-512 peak
TARGET_AVX512_GEMM_TORCH = 13.0  # ... and speed-up over torch fp32, 1 thread
TARGET_AVX2_GEMM_PEAK = 0.60  # AVX2 GEMM, 1 thread: fraction of the AVX2 peak
TARGET_GEMV_TORCH = 30.0  # GEMV (best ISA): speed-up over torch fp32, same threads


# ---------------------------------------------------------------- timing


@dataclass
class Timing:
    """Per-call times in seconds of the timed samples."""

    samples: list[float]
    inner: int  # calls per sample
    others: float | None = None  # CPUs kept busy by other processes meanwhile (Linux)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def lo(self) -> float:
        return min(self.samples)

    @property
    def hi(self) -> float:
        return max(self.samples)


class CpuMeter:
    """CPU time used by *other* processes while a measurement runs, from /proc/stat (all
    CPUs busy, steal included) minus /proc/self/stat (this process, all its threads): on a
    shared machine this says which rows were measured with company. None where /proc is
    missing."""

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
            with open("/proc/self/stat", encoding="ascii") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        # user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait
        busy = sum(fields[:8]) - fields[3] - fields[4]
        return time.perf_counter(), busy, int(own[11]) + int(own[12])  # utime + stime

    def others(self) -> float | None:
        end = self._read()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        return max(0.0, ((end[1] - self.start[1]) - (end[2] - self.start[2])) / self.tick / (end[0] - self.start[0]))


def measure(fn: Callable[[], object], repeats: int, warmup_s: float, min_sample_s: float) -> Timing:
    """Warm up (at least 2 calls and ``warmup_s``), pick a loop count so one sample lasts
    ``min_sample_s``, then time ``repeats`` samples; returns the per-call times."""
    arm_watchdog()
    meter = CpuMeter()
    t_end = time.perf_counter() + warmup_s
    calls, t0 = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() < t_end:
        fn()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    inner = max(1, int(np.ceil(min_sample_s / max(per_call, 1e-9))))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return Timing(samples, inner, meter.others())


WATCHDOG_S = 300.0


def arm_watchdog() -> None:
    """A kernel call that never returns (a thread-pool deadlock, say) ends the run with
    every thread's Python stack on stderr instead of hanging forever."""
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)


def quiesce(seconds: float = 0.05) -> None:
    """Let the other side's idle threads stop spinning (libgomp, onebit's pool) before a
    measurement on a machine with few cores."""
    time.sleep(seconds)


# ---------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpus_usable() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_avg() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ---------------------------------------------------------------- formatting


def ms(seconds: float) -> str:
    x = seconds * 1e3
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    if x >= 0.1:
        return f"{x:.3f}"
    return f"{x:.4f}"


def spread(t: Timing) -> str:
    return f"{ms(t.lo)}–{ms(t.hi)}"


def ratio(x: float) -> str:
    return f"{x:.0f}×" if x >= 100 else f"{x:.1f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- benchmark


def random_bits(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    assert k % 64 == 0, "K must be a multiple of 64 here (no tail bits to clear)"
    return rng.integers(0, 2**64, size=(rows, k // 64), dtype=np.uint64, endpoint=False)


def peak_per_core(isa: str, repeats: int, sample_s: float) -> tuple[Timing, str]:
    """Samples of the ISA's register-resident peak loop on one core, as seconds per binary
    MAC. Returns (timing, instruction mix)."""
    arm_watchdog()
    meter = CpuMeter()
    macs, sec, mix = _core.peak_binary_macs(isa, 1000)
    iters = 1000
    while sec < sample_s / 4 and iters < 1 << 40:  # calibrate the loop length
        iters *= 4
        macs, sec, mix = _core.peak_binary_macs(isa, iters)
    iters = max(1, int(iters * sample_s / max(sec, 1e-9)))
    _core.peak_binary_macs(isa, iters)  # warm-up at full length (clocks settle)
    per_mac = []
    for _ in range(repeats):
        macs, sec, mix = _core.peak_binary_macs(isa, iters)
        per_mac.append(sec / macs)
    return Timing(per_mac, 1, meter.others()), mix


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="timed samples per measurement (default 21, quick 5)")
    ap.add_argument("--quick", action="store_true", help="few, short samples: a smoke run")
    ap.add_argument(
        "--isa",
        action="append",
        choices=["avx512", "avx2", "scalar"],
        help="restrict to this ISA (repeatable); default: every ISA this CPU runs",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    repeats = args.repeats or (5 if args.quick else 21)
    if repeats < 1:
        ap.error("--repeats must be >= 1")
    warmup_s = 0.05 if args.quick else 0.3
    min_sample_s = 0.005 if args.quick else 0.02
    peak_sample_s = 0.01 if args.quick else 0.05
    # The scalar kernel is ~10-50x slower: fewer, single-call samples.
    scalar_repeats = max(3, repeats // 4)

    available = list(_core.available_isas())
    isas = [i for i in ("avx512", "avx2", "scalar") if i in available and (not args.isa or i in args.isa)]
    skipped = [i for i in (args.isa or []) if i not in available]
    if not isas:
        ap.error(f"none of {args.isa} is available on this CPU (available: {available})")
    threads = [t for t in THREADS if t <= max(cpus_usable(), 1)] or [1]

    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_interop_threads(1)
    torch_threads_before = torch.get_num_threads()
    t_start = time.perf_counter()
    load_start = load_avg()

    # ---- data: weights packed once, outside every timing
    a_gemm = random_bits(rng, M_GEMM, K)
    a_gemv = random_bits(rng, 1, K)
    weights = _core.PackedWeights(random_bits(rng, N, K), K)
    x_pack = {m: rng.standard_normal((m, K), dtype=np.float32) for m in (M_GEMM, 1)}
    ta = {m: torch.randn(m, K) for m in (M_GEMM, 1)}
    tb = torch.randn(K, N)

    # ---- correctness guard (not timed): every ISA gives the scalar reference's bits
    ref = _core.bgemm(a_gemm[:8], weights, 1, "scalar")
    for isa in isas:
        got = _core.bgemm(a_gemm[:8], weights, 1, isa)
        if not np.array_equal(got, ref):
            sys.exit(f"bench_bgemm: {isa} bgemm differs from the scalar reference; not benchmarking")

    # ---- 1. register peaks (per core): half the samples now, half after the kernels, so a
    # change of machine conditions during the run shows as a start/end difference
    peak_start: dict[str, Timing] = {}
    mixes: dict[str, str] = {}
    half = max(1, (repeats + 1) // 2)
    for isa in isas:
        if isa in SIMD_ISAS:
            peak_start[isa], mixes[isa] = peak_per_core(isa, half, peak_sample_s)

    # ---- 2/3. per shape and thread count: the torch fp32 baseline, then onebit on every
    # ISA right after it, so that a ratio compares measurements made seconds apart (on a
    # shared machine the conditions drift over a run)
    torch_t: dict[tuple[int, int], Timing] = {}
    ob_t: dict[tuple[str, int, int], Timing] = {}
    for m, a_bits in ((M_GEMM, a_gemm), (1, a_gemv)):
        for nt in threads:
            with torch.inference_mode():
                torch.set_num_threads(nt)
                a, b = ta[m], tb
                torch_t[(m, nt)] = measure(lambda: torch.matmul(a, b), repeats, warmup_s, min_sample_s)
                torch.set_num_threads(1)  # no idle OpenMP team left spinning next to onebit's threads
            quiesce()
            for isa in isas:
                scalar = isa == "scalar"
                ob_t[(isa, m, nt)] = measure(
                    lambda: _core.bgemm(a_bits, weights, nt, isa),
                    scalar_repeats if scalar else repeats,
                    warmup_s,
                    0.0 if scalar else min_sample_s,
                )

    # ---- 4. activation packing
    pack_t: dict[tuple[str, int, int], Timing] = {}
    for isa in isas:
        for nt in threads:
            for m in (M_GEMM, 1):
                x = x_pack[m]
                pack_t[(isa, m, nt)] = measure(lambda: _core.pack_rows(x, nt, isa), repeats, warmup_s, min_sample_s)

    # ---- 1. (end) second half of the peak samples
    peak_end = {isa: peak_per_core(isa, half, peak_sample_s)[0] for isa in peak_start}
    peaks = {isa: Timing(peak_start[isa].samples + peak_end[isa].samples, 1) for isa in peak_start}
    peak_macs_s = {isa: 1.0 / t.median for isa, t in peaks.items()}  # median MACs/s per core

    faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - t_start
    torch.set_num_threads(torch_threads_before)

    # ---------------------------------------------------------------- report
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(
        f"**onebit bgemm benchmark** — {now} · CPU: {cpu_model()} ({cpus_usable()} usable cores) · "
        f"torch {torch.__version__} · numpy {np.__version__} · ISAs available: {', '.join(available)} "
        f"(default {_core.selected_isa()}; measured: {', '.join(isas)}) · "
        f"{repeats} repeats{' (quick)' if args.quick else ''}, scalar {scalar_repeats} · "
        f"load avg {load_start} → {load_avg()} · {elapsed:.0f} s"
    )
    if skipped:
        print(f"\n(not available on this CPU, skipped: {', '.join(skipped)})")
    print()

    def others(t: Timing | None) -> str:
        return "n/a" if t is None or t.others is None else f"{t.others:.1f}"

    # 1. peaks
    if peaks:
        rows = []
        for isa, t in peaks.items():
            rows.append(
                [
                    isa,
                    f"{peak_macs_s[isa] / 1e9:,.0f}",
                    f"{1e-9 / t.hi:,.0f}–{1e-9 / t.lo:,.0f}",
                    f"{1e-9 / peak_start[isa].median:,.0f} / {1e-9 / peak_end[isa].median:,.0f}",
                    f"{others(peak_start[isa])} / {others(peak_end[isa])}",
                    mixes[isa],
                ]
            )
        print("Register peak, one core (`peak_binary_macs`; half the samples before the kernels, half after):\n")
        print(
            table(
                ["ISA", "binary GMAC/s (median)", "min–max", "median start / end", "others' CPUs start / end", "loop"],
                rows,
            )
        )
        print()

    # 2/3. GEMM and GEMV
    best = isas[0]
    header = [
        "kernel",
        "threads",
        "median ms",
        "min–max ms",
        "GMAC/s",
        "% of peak",
        "× torch fp32",
        "target",
        "met?",
        "others' CPUs",
    ]
    for m, title in ((M_GEMM, f"Binary GEMM M={M_GEMM}, K={K}, N={N}"), (1, f"Binary GEMV M=1, K={K}, N={N}")):
        macs = m * K * N
        rows = []
        for nt in threads:
            tt = torch_t[(m, nt)]
            rows.append(
                [
                    "torch fp32 `matmul`",
                    str(nt),
                    ms(tt.median),
                    spread(tt),
                    f"{macs / tt.median / 1e9:,.1f} (fp32)",
                    "",
                    "1.0×",
                    "",
                    "",
                    others(tt),
                ]
            )
        for isa in isas:
            for nt in threads:
                t = ob_t[(isa, m, nt)]
                gmacs = macs / t.median
                frac = gmacs / (peak_macs_s[isa] * nt) if isa in peak_macs_s else None
                speedup = torch_t[(m, nt)].median / t.median
                targets, met = [], []
                if m == M_GEMM and nt == 1 and isa == "avx512":
                    targets += [f"≥{TARGET_AVX512_GEMM_PEAK:.0%} peak", f"≥{TARGET_AVX512_GEMM_TORCH:.0f}× torch"]
                    met += [frac is not None and frac >= TARGET_AVX512_GEMM_PEAK, speedup >= TARGET_AVX512_GEMM_TORCH]
                if m == M_GEMM and nt == 1 and isa == "avx2":
                    targets.append(f"≥{TARGET_AVX2_GEMM_PEAK:.0%} peak")
                    met.append(frac is not None and frac >= TARGET_AVX2_GEMM_PEAK)
                if m == 1 and isa == best and isa != "scalar":
                    targets.append(f"≥{TARGET_GEMV_TORCH:.0f}× torch")
                    met.append(speedup >= TARGET_GEMV_TORCH)
                rows.append(
                    [
                        f"onebit {isa}",
                        str(nt),
                        ms(t.median),
                        spread(t),
                        f"{gmacs / 1e9:,.1f}",
                        f"{frac:.0%}" if frac is not None else "–",
                        ratio(speedup),
                        ", ".join(targets),
                        ", ".join("yes" if x else "**no**" for x in met),
                        others(t),
                    ]
                )
        print(f"{title} ({macs / 1e9:.3g} G MACs; weights pre-packed, activations packed):\n")
        print(table(header, rows))
        print()

    # 4. packing
    rows = []
    for isa in isas:
        for nt in threads:
            for m in (M_GEMM, 1):
                t = pack_t[(isa, m, nt)]
                g = ob_t[(isa, m, nt)]
                rows.append(
                    [
                        f"`pack_rows` {isa}",
                        f"{m}×{K} f32",
                        str(nt),
                        ms(t.median),
                        spread(t),
                        f"{t.median / g.median:.1%}",
                        others(t),
                    ]
                )
    print("Activation packing (float32 → bits), the overhead a binary layer pays before its GEMM:\n")
    print(
        table(
            ["op", "input", "threads", "median ms", "min–max ms", "÷ bgemm of the same M, ISA, threads", "others' CPUs"],
            rows,
        )
    )
    print()
    print(
        "Median of the timed samples after warm-up; a sample loops enough calls to last "
        f"≥{min_sample_s * 1e3:.0f} ms (scalar: one call) and gives the per-call time. "
        "Binary MAC = one ±1 multiply-accumulate (one bit pair); torch's GMAC/s counts fp32 MACs. "
        "% of peak = achieved ÷ (median one-core register peak × threads). × torch fp32 = torch ms ÷ onebit ms "
        "at the same thread count, measured in this run. Others' CPUs = CPUs kept busy by other processes "
        "during that measurement (from /proc/stat): where it is not ~0 the row was measured on a shared "
        "machine, 2-thread rows most of all. Targets are shown, not asserted."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
