"""Every zoo model against its roofline: binary MACs at the popcount peak plus float MACs at
the FMA peak, both peaks measured in the same run, batch 1, one thread.

    roofline(model) = binary MACs / popcount peak + float MACs / FMA peak

The peaks are the register-resident loops of the ISA in use (``_core.peak_binary_macs``:
XOR + popcount + add per word pair; ``_core.peak_float_macs``: independent FMA chains),
one core, median of several samples taken before and after the models. The MAC counts are
``onebit.summary``'s (weight layers only: pools, BatchNorm, adds and signs cost time but no
MACs, so they count against the share). Each model is built with random weights (latency does
not depend on them), exported, loaded on one thread, and timed at its native input size; its
PyTorch fp32 twin (float layers, same architecture) is timed in the same run.

The per-layer table (``--layers``) is the runtime's profile (``Model.profile``: each node's
time in the C++ executor's steps) matched to the summary's MACs by the node's first name (a
fused node ``conv+add+sign`` is its conv): each MAC layer's rate and its share of its kind's
peak, then the time in layers without MACs.

    python benchmarks/bench_roofline.py                        # every model, about 3 minutes
    python benchmarks/bench_roofline.py --models quicknet_small --layers
    python benchmarks/bench_roofline.py --quick                # smoke run

Nothing is asserted; the issue's targets are printed beside the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import onebit.runtime as rt
from onebit import _core
from onebit.bench import cpu_name, export_random_model, float_twin, time_call
from onebit.model_summary import summary
from onebit.models import create_model, list_models, model_info

TARGET_SHARE = 0.80  # issue 21: every zoo model >= 80 % of its roofline, batch 1, 1 thread
TARGET_LAYER = 0.70  # issue 21: every binary layer >= 70 % of the popcount peak
TARGET_TORCH = 10.0  # issue 21: every zoo model >= 10x PyTorch fp32 on one thread


def peaks(isa: str, samples: int, sample_s: float) -> tuple[float, float]:
    """(binary MACs/s, float MACs/s) of one core: medians of `samples` runs of about `sample_s` each."""
    def rate(fn, iters: int) -> float:
        macs, secs = fn(iters)[:2]
        iters = max(1, int(iters * sample_s / max(secs, 1e-9)))
        fn(iters)  # warm-up at full length (clocks settle)
        return statistics.median(m / s for m, s in (fn(iters)[:2] for _ in range(samples)))

    binary = rate(lambda n: _core.peak_binary_macs(isa, n), 10_000)
    fma = rate(lambda n: _core.peak_float_macs(isa, n), 10_000)
    return binary, fma


@dataclass
class Layer:
    name: str
    kind: str  # "binary", "float" or "other" (no MACs)
    macs: int
    seconds: float


def measure(name: str, repeats: int) -> tuple[dict, list[Layer]]:
    info = model_info(name)
    model = create_model(name)
    s = summary(model, info.in_shape)
    x = np.random.default_rng(0).standard_normal((1, *info.in_shape)).astype(np.float32)
    vocab = getattr(next(iter(model.children()), None), "num_embeddings", None)
    if vocab is not None:  # a text CNN takes token ids
        x = np.random.default_rng(0).integers(0, vocab, (1, *info.in_shape)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onebit"
        export_random_model(name, path)
        engine = rt.load(path, 1)
    seconds = time_call(lambda: engine(x), repeats)[0]
    twin = float_twin(name)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            xt = torch.from_numpy(x)
            torch_seconds = time_call(lambda: twin(xt), repeats)[0]
    finally:
        torch.set_num_threads(previous)

    engine.profile = True
    for _ in range(max(5, repeats // 2)):
        engine(x)
    engine.profile = False
    rows = {r.name: r for r in s.rows}
    layers = []
    for layer, (lname, _, secs) in zip(engine.layers, engine.timings()):
        row = rows.get(lname.split("+")[0])
        b, f = (row.binary_macs, row.float_macs) if row is not None else (0, 0)
        kind = "binary" if b else ("float" if f else "other")
        layers.append(Layer(lname, kind, b + f, secs))
    result = {"model": name, "binary_macs": s.binary_macs, "float_macs": s.float_macs, "seconds": seconds,
              "torch_seconds": torch_seconds}
    return result, layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated names (default: every registered model)")
    parser.add_argument("--repeats", type=int, default=30, help="calls per timing (median)")
    parser.add_argument("--layers", action="store_true", help="print each model's per-layer table")
    parser.add_argument("--quick", action="store_true", help="two small models, few repeats")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else (["tfc", "binary_cnn1d"] if args.quick else list_models())
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)} (valid: {', '.join(list_models())})")
    repeats = 5 if args.quick else args.repeats
    samples, sample_s = (3, 0.01) if args.quick else (7, 0.05)
    isa = _core.selected_isa()
    if isa not in ("avx2", "avx512"):
        print(f"bench_roofline: the {isa} kernels have no peak loop to measure a roofline against; run on a CPU "
              f"with AVX2 or AVX-512 (ONEBIT_ISA selects the ISA)", file=sys.stderr)
        return 2

    before = peaks(isa, samples, sample_s)
    results, tables = [], []
    for name in names:
        result, layers = measure(name, repeats)
        results.append(result)
        tables.append(layers)
    after = peaks(isa, samples, sample_s)
    binary_peak, fma_peak = statistics.median((before[0], after[0])), statistics.median((before[1], after[1]))

    print(f"**onebit roofline** — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu_name()} · ISA {isa} · "
          f"torch {torch.__version__} · batch 1, 1 thread, median of {repeats} calls\n")
    print(f"Peaks, one core, same run (before / after the models): popcount {before[0] / 1e9:,.0f} / "
          f"{after[0] / 1e9:,.0f} binary GMAC/s, FMA {before[1] / 1e9:,.1f} / {after[1] / 1e9:,.1f} GMAC/s; "
          f"the roofline uses their medians.\n")
    print("| model | binary MACs | float MACs | roofline ms | onebit ms | share of roofline | binary layers, "
          "% of popcount peak | float layers, % of FMA peak | other nodes ms | PyTorch ms | × PyTorch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r, layers in zip(results, tables):
        roof = r["binary_macs"] / binary_peak + r["float_macs"] / fma_peak
        tb = sum(l.seconds for l in layers if l.kind == "binary")
        tf = sum(l.seconds for l in layers if l.kind == "float")
        to = sum(l.seconds for l in layers if l.kind == "other")
        bshare = f"{r['binary_macs'] / tb / binary_peak:.0%}" if tb else "–"
        fshare = f"{r['float_macs'] / tf / fma_peak:.0%}" if tf else "–"
        print(f"| {r['model']} | {r['binary_macs'] / 1e6:,.1f} M | {r['float_macs'] / 1e6:,.1f} M | {roof * 1e3:.4f} "
              f"| {r['seconds'] * 1e3:.4f} | {roof / r['seconds']:.0%} | {bshare} | {fshare} | {to * 1e3:.3f} "
              f"| {r['torch_seconds'] * 1e3:.3f} | {r['torch_seconds'] / r['seconds']:.1f}× |", flush=True)
    met = sum(1 for r in results if (r["binary_macs"] / binary_peak + r["float_macs"] / fma_peak) / r["seconds"]
              >= TARGET_SHARE)
    fast = sum(1 for r in results if r["torch_seconds"] / r["seconds"] >= TARGET_TORCH)
    print(f"\nTargets (issue 21, not asserted): ≥ {TARGET_SHARE:.0%} of the roofline — {met} of {len(results)} "
          f"models; ≥ {TARGET_TORCH:g}× PyTorch fp32 — {fast} of {len(results)}; every binary layer ≥ "
          f"{TARGET_LAYER:.0%} of the popcount peak (see --layers). Layer times are the executor's per-step "
          f"times (Model.profile); the model's time adds the call's fixed cost.")

    if args.layers:
        for r, layers in zip(results, tables):
            total = sum(l.seconds for l in layers)
            print(f"\n#### {r['model']} — per layer, 1 thread (profile total {total * 1e3:.3f} ms)\n")
            print("| layer | kind | MACs | µs | GMAC/s | % of its peak | share of time |")
            print("|---|---|---:|---:|---:|---:|---:|")
            for l in sorted(layers, key=lambda l: -l.seconds):
                if l.kind == "other":
                    continue
                rate = l.macs / l.seconds if l.seconds else 0.0
                peak = binary_peak if l.kind == "binary" else fma_peak
                print(f"| {l.name} | {l.kind} | {l.macs / 1e6:,.1f} M | {l.seconds * 1e6:.1f} | {rate / 1e9:,.1f} "
                      f"| {rate / peak:.0%} | {l.seconds / total:.0%} |")
            others = [l for l in layers if l.kind == "other"]
            ot = sum(l.seconds for l in others)
            top = ", ".join(f"{l.name} {l.seconds * 1e6:.0f} µs" for l in sorted(others, key=lambda l: -l.seconds)[:5])
            print(f"\nNodes without MACs: {len(others)}, {ot * 1e3:.3f} ms ({ot / total:.0%}); the largest: {top}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
