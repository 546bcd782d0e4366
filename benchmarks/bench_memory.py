"""Retrieval throughput of the B-matrix memory (onebit.memory): onebit's packed kernels vs numpy.

N = 1,024 and 4,096 neurons, k = 3 random ±1 memories stored by the Hebbian rule (integer
``T``, so the float-input path is exact), neuron N/2 clamped to +1 and to −1 (a batch of the
2 states that can start there, sharing one ``B``), spreading order of neurons on a line. Two
tables:

- one retrieval from the clamped neuron to the fixed point (``onebit.memory.retrieve``), per
  engine: ``numpy`` (the float64 reference), ``float-input`` (real ``B`` × packed states),
  ``xnor`` (``sgn(B)`` in the XNOR-popcount GEMM); includes building that neuron's ``B``;
- one field product ``B f`` for the batch, the step the iteration repeats: numpy float64 (the
  reference's) and float32 BLAS against the two kernels (including packing the states).

Medians after warm-up (min–max beside), engine and numpy's BLAS both at 1 and 2 threads, in
one process; every engine result is checked equal to numpy's first.

    python benchmarks/bench_memory.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg  # noqa: E402

from onebit import _core  # noqa: E402
from onebit.bench import time_call  # noqa: E402
from onebit.memory import b_matrix, binarize_weights, hebbian, random_patterns, retrieve, spreading_order  # noqa: E402
from onebit.memory.retrieval import line_proximity  # noqa: E402
from onebit.runtime import blas  # noqa: E402

K = 3


def _cell(t: tuple[float, float, float]) -> str:
    return f"{t[0] * 1e3:9.3f} ms ({t[1] * 1e3:.3f}–{t[2] * 1e3:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    args = parser.parse_args()
    print(f"# bench_memory: {datetime.now(timezone.utc):%Y-%m-%d}, {cpu_model()}, load {load_avg()}, "
          f"ISA {_core.selected_isa()}; k={K} Hebbian memories, a batch of the clamp values +1 and -1")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        x = random_patterns(K, n, rng=rng)
        t = hebbian(x)
        p = line_proximity(n)
        i = n // 2
        values = np.array([1.0, -1.0])
        ref = retrieve(t, i, values, p)
        repeats = max(3, args.repeats if n <= 1024 else args.repeats // 4)
        print(f"\n## N = {n:,}: fixed point after {ref.iterations} field products; "
              f"{int(sum((ref.states == m).all(axis=1).any() for m in x))} of {K} memories retrieved from neuron {i}\n")
        print("| threads | path | one retrieval (batch of 2) | retrievals/s | vs numpy |")
        print("|---|---|---|---|---|")
        for threads in (1, 2):
            base = None
            for engine in ("numpy", "float-input", "xnor"):
                exact_ref = ref if engine != "xnor" else retrieve(binarize_weights(t), i, values, p)
                got = retrieve(t, i, values, p, engine=engine, num_threads=threads)
                assert np.array_equal(got.states, exact_ref.states) and got.iterations == exact_ref.iterations
                with blas.limit(threads):
                    tm = time_call(lambda e=engine: retrieve(t, i, values, p, engine=e, num_threads=threads), repeats)
                base = base or tm[0]
                print(f"| {threads} | {engine} | {_cell(tm)} | {2 / tm[0]:,.1f} | {base / tm[0]:.2f}x |")
        order = spreading_order(p, i)
        b64 = b_matrix(t, order)
        b32 = np.ascontiguousarray(b64, dtype=np.float32)
        signs = b_matrix(binarize_weights(t), order)
        packed = _core.PackedWeights(_core.pack_rows(np.ascontiguousarray(signs + np.triu(np.ones((n, n))),
                                                                          np.float32)), n)  # as engine.py
        f = ref.states[:, order]
        f32 = np.ascontiguousarray(f, np.float32)
        want = f @ b64.T
        print("\n| threads | one field product B·f (2 states) | time | vs numpy float64 |")
        print("|---|---|---|---|")
        for threads in (1, 2):
            def fi() -> np.ndarray:
                return _core.BinaryWeightsF32(_core.pack_rows(f32, threads), n).run(b32, threads)

            def xn() -> np.ndarray:
                return _core.bgemm(_core.pack_rows(f32, threads), packed, threads)

            assert np.array_equal(fi().T.astype(np.float64), want)
            assert np.array_equal(xn().astype(np.float64) - np.cumsum(f[:, ::-1], axis=1)[:, ::-1], f @ signs.T)
            with blas.limit(threads):
                rows = [("numpy float64 (the reference)", time_call(lambda: f @ b64.T, repeats)),
                        ("numpy float32 BLAS", time_call(lambda: f32 @ b32.T, repeats))]
            rows += [("float-input kernel (pack + build + run)", time_call(fi, repeats)),
                     ("xnor bgemm on sgn(B) (pack + run)", time_call(xn, repeats))]
            for name, tm in rows:
                print(f"| {threads} | {name} | {_cell(tm)} | {rows[0][1][0] / tm[0]:.2f}x |")
    print("\nThe machine was shared with other jobs (load above): medians, not best cases.")


if __name__ == "__main__":
    main()
