"""Use a zoo model with the weights that ship inside onebit: evaluate it, run it on the engine.

    python examples/pretrained_zoo_model.py [--model lfc] [--data digits|mnist1d]

Nothing is downloaded: the weights live in the package (``onebit models`` lists the zoo;
``docs/training.md`` lists the shipped weights and how each was trained).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onebit
from onebit.models.pretrained import list_pretrained

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="lfc", help="a model with shipped weights")
parser.add_argument("--data", default="digits", help="the data set the weights were trained on")
parser.add_argument("--quick", action="store_true", help="accepted for symmetry with the other examples")
args = parser.parse_args()

print("shipped weights:", ", ".join(f"{m} on {d}" for m, d in list_pretrained()))
model = onebit.create_model(args.model, pretrained=args.data)  # eval mode, weights loaded
meta = model.onebit_pretrained
print(f"{args.model} trained on {args.data}: recorded runtime test accuracy {meta['runtime_test_accuracy']:.2%}")

data = onebit.load_dataset(args.data)
print(f"PyTorch, measured now: {onebit.evaluate(model, data.x_test, data.y_test)['accuracy']:.2%}")
with tempfile.TemporaryDirectory() as tmp:
    onebit.export_model(model, Path(tmp) / "zoo.onebit", data.x_test[:64])
    engine = onebit.load(Path(tmp) / "zoo.onebit")
    print(f"onebit.runtime: {(engine.predict(data.x_test) == data.y_test).mean():.2%}")
