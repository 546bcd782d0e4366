"""Data-parallel training (onebit.distributed): 1 process against N, accuracy and samples/s.

For each task — the default run (``onebit train``: ``binary_cnn2d`` on digits) and
``lfc`` on the 8,000/2,000 MNIST split of ``../shared/data/mnist-t10k`` where present —
runs ``onebit train`` with 1 process and with ``onebit train --nproc N`` (torchrun, gloo,
synchronized BatchNorm) for each seed, alternating, with the task's default recipe (its
epochs replaced by ``--epochs`` when given). Every run is a real ``onebit train`` in its own
folder: the test accuracy comes from its ``metrics.json``, the speed from the per-epoch
times there (training rows / seconds, validation pass included, the first epoch left out
as warm-up, median over the rest and over seeds). One torch thread per process.

    python benchmarks/bench_distributed.py                       # both tasks, 3 seeds
    python benchmarks/bench_distributed.py --task lfc --epochs 5
    python benchmarks/bench_distributed.py --quick               # smoke run: digits, 2 epochs, 1 seed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg, ratio, table  # noqa: E402

TASKS = {
    "digits": ["--data", "digits"],  # the default run: onebit train's model and recipe
    "lfc": ["--model", "lfc", "--data", "MNIST", "--split", "8000:2000"],
}


def _mnist_folder() -> Path | None:
    from onebit.experiments.shared import shared_data

    return shared_data("mnist-t10k")


def _run(task_args: list[str], nproc: int, seed: int, epochs: int | None, root: Path) -> dict:
    out = root / f"{'-'.join(task_args[1::2][:1])}-p{nproc}-s{seed}"
    cmd = [sys.executable, "-m", "onebit", "train", *task_args, "--seed", str(seed), "--threads", "1",
           "--no-progress", "--keep", "best", "--out", str(out), "--json"]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    path = out / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    if not metrics.get("finished"):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    if proc.returncode != 0:  # training finished; a later step (the export) failed: the numbers stand
        said = [line for line in proc.stderr.splitlines() if "rror" in line] or ["?"]
        print(f"  (exit status {proc.returncode} after training: {said[-1].strip()[:200]})")
    rates = [metrics["train_size"] / r["seconds"] for r in metrics["history"][1:]]
    return {"test_accuracy": metrics["test_accuracy"], "rates": rates}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=[*TASKS, "all"], default="all")
    ap.add_argument("--nproc", type=int, default=2, help="processes of the parallel run (default 2)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 (default 3)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the task's recipe)")
    ap.add_argument("--quick", action="store_true", help="digits, 2 epochs, 1 seed")
    args = ap.parse_args(argv)
    tasks = ["digits"] if args.quick else ([*TASKS] if args.task == "all" else [args.task])
    seeds, epochs = (1, 2) if args.quick else (args.seeds, args.epochs)
    folder = _mnist_folder()
    if "lfc" in tasks and folder is None:
        print("# ../shared/data/mnist-t10k not found: lfc left out")
        tasks.remove("lfc")
    print(f"# 1 vs {args.nproc} processes (torchrun, gloo, synchronized BatchNorm) — {cpu_model()}, "
          f"{os.cpu_count()} CPUs, 1 torch thread per process, load {load_avg()} at the start")
    print(f"# seeds 0..{seeds - 1}; epochs: {epochs or 'the recipe'}; the global batch is the recipe's in both\n")
    acc_rows, speed_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            task_args = [a if a != "MNIST" else str(folder) for a in TASKS[task]]
            results: dict[int, list[dict]] = {1: [], args.nproc: []}
            for seed in range(seeds):
                for nproc in (1, args.nproc):
                    r = _run(task_args, nproc, seed, epochs, Path(tmp))
                    results[nproc].append(r)
                    print(f"  {task} seed {seed} {nproc} process(es): test {r['test_accuracy']:.2%}, "
                          f"{statistics.median(r['rates']) if r['rates'] else float('nan'):,.0f} samples/s",
                          flush=True)
            medians = {}
            for nproc, runs in results.items():
                accs = [100 * r["test_accuracy"] for r in runs]
                spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
                acc_rows.append([task, str(nproc), f"{statistics.mean(accs):.2f} ± {spread:.2f}",
                                 ", ".join(f"{a:.2f}" for a in accs)])
                rates = [x for r in runs for x in r["rates"]]
                medians[nproc] = statistics.median(rates) if rates else float("nan")
                speed_rows.append([task, str(nproc), f"{medians[nproc]:,.0f}", ratio(medians[nproc] / medians[1])])
    print("\n" + table(["task", "processes", "test accuracy % (mean ± sd)", "per seed"], acc_rows))
    print("\n" + table(["task", "processes", "samples/s (median)", "× 1 process"], speed_rows))
    print(f"\n# load {load_avg()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
