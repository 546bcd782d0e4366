"""Single-stage vs two-stage vs distilled training on MNIST-1D: the table of docs/training.md.

Trains ``binary_cnn1d`` with each recipe for the same number of epochs (two-stage
splits them between its stages; distillation first trains the float teacher for as
many) on seeds 0, 1, 2, one torch thread, and prints the test accuracies as a
Markdown table (mean ± sample standard deviation, and the range).

    python scripts/compare_recipes.py [--epochs 20] [--seeds 0 1 2] [--model binary_cnn1d]
"""

from __future__ import annotations

import argparse
import statistics
import time

from onebit.data import load_dataset
from onebit.recipes import RECIPE_KINDS, Recipe, train_with_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="binary_cnn1d")
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    data = load_dataset(args.data)
    accuracy: dict[str, list[float]] = {kind: [] for kind in ("float twin", *RECIPE_KINDS)}
    seconds: dict[str, float] = {kind: 0.0 for kind in accuracy}
    for seed in args.seeds:
        for kind in RECIPE_KINDS:
            recipe = Recipe(epochs=args.epochs, batch_size=64, lr=3e-3, kind=kind, threads=1)
            start = time.perf_counter()
            out = train_with_recipe(args.model, data, recipe, seed=seed, progress=False, verbose=False)
            seconds[kind] += time.perf_counter() - start
            accuracy[kind].append(out.result.test_accuracy)
            if "teacher" in out.stages:
                accuracy["float twin"].append(out.stages["teacher"].test_accuracy)
            print(f"seed {seed} {kind:9s} test accuracy {out.result.test_accuracy:.2%}", flush=True)

    print(f"\n{args.model} on {args.data}, {args.epochs} epochs, seeds {args.seeds}, 1 thread\n")
    print("| recipe | test accuracy, mean ± std | min – max | per seed | training time (all seeds) |")
    print("|---|---:|---:|---|---:|")
    for kind, values in accuracy.items():
        mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
        per_seed = ", ".join(f"{v:.1%}" for v in values)
        time_text = "(inside distill)" if kind == "float twin" else f"{seconds[kind]:.0f} s"
        spread = f"{min(values):.1%} – {max(values):.1%}"
        print(f"| {kind} | {mean:.2%} ± {std:.2%} | {spread} | {per_seed} | {time_text} |")


if __name__ == "__main__":
    main()
