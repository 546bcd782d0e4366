"""Binary morphology on onebit's packed engine vs scipy.ndimage, on the same images.

A dilation by a 7×7 disk (29 pixels) as a binarized BiMoNN exported to ``.onebit``
(:mod:`onebit.morphology.engine`: a ``sign`` of the paired input, then one binary conv with
integer thresholds) against ``scipy.ndimage.binary_dilation`` (one thread, C): one 512×512
image (Diskorect statistics scaled up: random rotated rectangles and ellipses, holes, salt
noise), and a batch of 64 Diskorect images of 50×50 (scipy on the 3-D stack with a flat
1×7×7 structure, one call; and image by image). Erosion by the same disk too. The engine's
output is checked bit-exact against scipy's first. Medians of ``--repeats`` calls after
warm-up, min–max beside them, engine at 1 and 2 threads; "ops/s" = images per second.
The engine is timed as a user calls it (``MorphologyEngine(x)``: input check, float32
conversion, NHWC↔NCHW) and as the bare graph (``model(x)`` on float32 NCHW).

    python benchmarks/bench_morphology.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg  # noqa: E402

from onebit import _core  # noqa: E402
from onebit.bench import time_call  # noqa: E402
from onebit.morphology import MorphologyEngine, diskorect, export_morphology, structuring_element  # noqa: E402
from onebit.nn import MorphologicalLayer, MorphologicalNet  # noqa: E402


def _net(S: np.ndarray, op: str) -> MorphologicalNet:
    return MorphologicalNet([MorphologicalLayer(S[None, None], [[op]], np.ones((1, 1), bool), ["union"])])


def _scipy(op: str, S: np.ndarray):
    """scipy's operation on one image (H, W) or a stack (N, H, W) (a flat 1 × k × k structure)."""
    fn = ndimage.binary_dilation if op == "dilation" else ndimage.binary_erosion
    return lambda x: fn(x, S if x.ndim == 2 else S[None], border_value=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    S = structuring_element("disk", 7)
    big = diskorect(1, 512, seed=0, n_shapes=2000, max_shape=60, n_holes=1000, max_hole=30, border=0)
    batch = diskorect(64, 50, seed=1)
    print(f"# bench_morphology: {datetime.now(timezone.utc):%Y-%m-%d}, {cpu_model()}, load {load_avg()}, "
          f"ISA {_core.selected_isa()}; the machine is shared, medians after warm-up\n")
    print("| case | op | method | threads | median ms | min–max ms | ops/s | engine speed-up vs scipy |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, x in (("1 × 512×512", big), ("64 × 50×50", batch)):
            n, h, w = x.shape
            xb, xf = x.astype(bool), x[:, None].astype(np.float32)
            for op in ("dilation", "erosion"):
                path = export_morphology(_net(S, op), Path(tmp) / f"{op}{h}.onebit", h, w)
                want = _scipy(op, S)(xb)
                base = time_call(lambda: _scipy(op, S)(xb), args.repeats)
                rows = [("scipy.ndimage (one call on the stack)", 1, base)]
                if n > 1:
                    one = lambda: [_scipy(op, S)(xb[i]) for i in range(n)]  # noqa: E731
                    rows.append(("scipy.ndimage (image by image)", 1, time_call(one, args.repeats)))
                for threads in (1, 2):
                    engine = MorphologyEngine(path, num_threads=threads)
                    got = engine(x)[:, 0]
                    if not (got == want).all():
                        raise SystemExit(f"{label} {op}: the engine differs from scipy.ndimage")
                    rows.append(("onebit engine (MorphologyEngine call)", threads, time_call(lambda: engine(x),
                                                                                               args.repeats)))
                    rows.append(("onebit engine (bare graph, float32 in)", threads,
                                 time_call(lambda: engine.model(xf), args.repeats)))
                for method, threads, (med, lo, hi) in rows:
                    ratio = "" if method.startswith("scipy") else f"{base[0] / med:.2f}×"
                    print(f"| {label} | {op} | {method} | {threads} | {med * 1e3:.3f} | {lo * 1e3:.3f}–{hi * 1e3:.3f} "
                          f"| {n / med:,.0f} | {ratio} |")
    print("\nEvery engine output was checked equal to scipy.ndimage's (whole image, border_value=0) before timing.")


if __name__ == "__main__":
    main()
