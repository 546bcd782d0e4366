"""Binarize your own float PyTorch model, train it, and run it on onebit's engine.

    python examples/binarize_your_model.py [--quick]

``onebit.binarize(model)`` swaps the model's ``Linear``/``Conv`` layers for quantized ones
in place: weights and activations become ±1 (sign, with a straight-through gradient),
while the first and last layer stay float as in every published BNN. Everything else in
the model is untouched, so the same training loop and exporter apply.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from torch import nn

import onebit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small, fast run")
args = parser.parse_args()

# Any float network: here a small conv net for 8x8 digits, written the usual way.
model = nn.Sequential(
    nn.Conv2d(1, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
    nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(128), nn.ReLU(),
    nn.Flatten(),
    nn.Linear(128 * 4 * 4, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
    nn.Linear(256, 10),
)
onebit.binarize(model)  # ReLUs before a sign become Hardtanh; first conv and last linear stay float
print(onebit.summary(model, (1, 8, 8)))

data = onebit.load_dataset("digits")
result = onebit.fit(model, data, epochs=3 if args.quick else 20, lr=3e-3, seed=0)
print(f"PyTorch: test accuracy {result.test_accuracy:.2%}")

with tempfile.TemporaryDirectory() as tmp:
    report = onebit.export_model(model, Path(tmp) / "net.onebit", data.x_test[:64])
    for layer in report.layers:  # which layers run binary on the engine, and why
        print(f"  {layer}")
    engine = onebit.load(Path(tmp) / "net.onebit")
    print(f"onebit.runtime: test accuracy {(engine.predict(data.x_test) == data.y_test).mean():.2%}")
