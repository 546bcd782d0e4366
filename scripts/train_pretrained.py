"""Train and write the pretrained weights that ship in src/onebit/models/weights/.

Each pair of ``onebit.recipes.PRETRAINED`` is trained exactly as
``onebit train --model M --data D`` trains it (``train_with_recipe`` with the pair's
recipe, seed 0), exported, scored by ``onebit.runtime`` on the test split, written
with :func:`onebit.models.pretrained.save_pretrained`, then reloaded from the file and
scored again: the two runtime accuracies must be equal.

    python scripts/train_pretrained.py                  # every pair
    python scripts/train_pretrained.py tfc-digits lfc   # pairs named model-data, or every pair of a model
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import onebit
from onebit.data import load_dataset
from onebit.export import export_checked
from onebit.models import create_model
from onebit.models.pretrained import WEIGHTS_DIR, save_pretrained, weights_path
from onebit.recipes import PRETRAINED, recipe_for, train_with_recipe

SEED = 0


def _selected(names: list[str]) -> list[tuple[str, str]]:
    if not names:
        return list(PRETRAINED)
    chosen = [p for p in PRETRAINED if f"{p[0]}-{p[1]}" in names or p[0] in names]
    unknown = set(names) - {f"{m}-{d}" for m, d in PRETRAINED} - {m for m, _ in PRETRAINED}
    if unknown:
        sys.exit(f"unknown pair(s) {sorted(unknown)}; choose from {[f'{m}-{d}' for m, d in PRETRAINED]}")
    return chosen


def train_pair(model_name: str, data_name: str, work: Path) -> dict[str, object]:
    data = load_dataset(data_name, seed=SEED)
    recipe = recipe_for(model_name, data_name)
    start = time.perf_counter()
    trained = train_with_recipe(model_name, data, recipe, seed=SEED, out_dir=work / "run", progress=False,
                                verbose=False)
    seconds = time.perf_counter() - start
    engine = export_checked(trained.model, work / "trained.onebit", data.x_test, data.y_test, verbose=False)
    path = save_pretrained(
        weights_path(model_name, data_name), trained.model,
        data=data_name, data_source=data.source, recipe=recipe.to_dict(), seed=SEED,
        command=f"onebit train --model {model_name} --data {data_name}",
        test_samples=len(data.y_test), runtime_test_accuracy=engine.accuracy,
        torch_test_accuracy=trained.result.test_accuracy, best_epoch=trained.result.best_epoch,
        best_val_accuracy=trained.result.best_val_accuracy,
        trained_with=f"onebit {onebit.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads",
    )
    reloaded = create_model(model_name, pretrained=data_name)
    again = export_checked(reloaded, work / "reloaded.onebit", data.x_test, data.y_test, verbose=False)
    if again.accuracy != engine.accuracy:
        raise SystemExit(f"{path}: the reloaded weights score {again.accuracy} in the runtime, "
                         f"the trained model {engine.accuracy}")
    return {"pair": f"{model_name}-{data_name}", "recipe": recipe.kind, "epochs": recipe.epochs,
            "torch": trained.result.test_accuracy, "runtime": engine.accuracy, "bytes": path.stat().st_size,
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", nargs="*", help="model-data pairs or model names (default: all)")
    args = parser.parse_args()
    rows = []
    for model_name, data_name in _selected(args.pairs):
        with tempfile.TemporaryDirectory() as tmp:
            row = train_pair(model_name, data_name, Path(tmp))
        rows.append(row)
        print(f"{row['pair']:24s} {row['recipe']:9s} {row['epochs']:3d} epochs  torch {row['torch']:.2%}  "
              f"runtime {row['runtime']:.2%}  {row['bytes']:9,d} bytes  {row['seconds']:.0f}s", flush=True)
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.safetensors"))
    print(f"total size of {WEIGHTS_DIR}: {total:,} bytes")


if __name__ == "__main__":
    main()
