"""Training time per epoch of each named recipe against plain BinaryNet training, in one process.

For each task (the default run: ``onebit train``'s model on digits; ``binary_cnn1d`` on
MNIST-1D; LFC on the 8,000/2,000 MNIST split where ``../shared/data`` is present) and each
recipe of ``onebit.recipes.RECIPE_NAMES``, trains ``--epochs`` epochs (two-step recipes
split them; a distilled recipe first trains its float teacher for as many) and divides
the whole recipe's wall time by the epochs: the distillation teacher's cost is included.
Median over ``--repeats`` runs after one warm-up run, one torch thread, ratio to the
``binarynet`` recipe measured in the same run. Validation passes are included (each
epoch ends with one), the final test pass is not.

    python benchmarks/bench_recipes.py            # full run, about 10 minutes on 2 cores
    python benchmarks/bench_recipes.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bgemm import cpu_model, load_avg, ratio, table  # noqa: E402

import torch  # noqa: E402

from onebit.data import load_dataset  # noqa: E402
from onebit.experiments.shared import shared_data  # noqa: E402
from onebit.recipes import RECIPE_NAMES, named_recipe, train_with_recipe  # noqa: E402


def _tasks(quick: bool) -> list[tuple[str, str, object]]:
    from onebit.cli import DEFAULT_DATA, DEFAULT_MODEL

    tasks = [(f"{DEFAULT_MODEL}, digits (default run)", DEFAULT_MODEL, load_dataset(DEFAULT_DATA)),
             ("binary_cnn1d, MNIST-1D", "binary_cnn1d", load_dataset("mnist1d"))]
    folder = shared_data("mnist-t10k")
    if folder is not None and not quick:
        tasks.append(("lfc, MNIST 8000/2000", "lfc", load_dataset(folder, split=(8000, 2000))))
    return tasks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=4, help="epochs per timed run (default 4)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per recipe after one warm-up (default 3)")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 1 repeat, two tasks")
    args = ap.parse_args(argv)
    epochs, repeats = (2, 1) if args.quick else (args.epochs, args.repeats)
    logging.disable(logging.INFO)
    torch.set_num_threads(1)
    print(f"# recipe training time per epoch — {cpu_model()}, 1 torch thread, torch {torch.__version__}, "
          f"load {load_avg()}")
    print(f"# {epochs} epochs per run, median of {repeats} run(s) after a warm-up; teacher time included\n")
    rows = []
    for label, model, data in _tasks(args.quick):
        per_epoch: dict[str, float] = {}
        for name in RECIPE_NAMES:
            recipe = replace(named_recipe(name, model, data.name), epochs=epochs, warmup_epochs=0, threads=1)
            samples = []
            for i in range(repeats + 1):
                start = time.perf_counter()
                train_with_recipe(model, data, recipe, seed=0, progress=False, verbose=False)
                if i > 0:  # the first run warms up
                    samples.append((time.perf_counter() - start) / epochs)
            per_epoch[name] = statistics.median(samples)
            spread = f"{min(samples):.2f}–{max(samples):.2f}" if len(samples) > 1 else "–"
            rows.append([label, name, recipe.kind, f"{per_epoch[name]:.2f}", spread, ""])
        base = per_epoch["binarynet"]
        for row in rows[-len(RECIPE_NAMES):]:
            row[-1] = ratio(float(row[3]) / base)
    print(table(["task", "recipe", "procedure", "s / epoch (median)", "min–max", "× binarynet"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
