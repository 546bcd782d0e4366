"""The high-dimensional geometry of a trained binary net's layers (Anderson & Berg 2018).

    python examples/analyze_geometry.py [--quick]

In high dimension a vector and its sign are about 37° apart (arccos √(2/π)), while two random
vectors are about 90° apart: binarization nearly preserves direction, so dot products survive
it. This trains a binary MLP, then measures per binary layer the angle between its latent and
binarized weights and the correlation of dot products before and after binarization on real
activations. ``onebit analyze CHECKPOINT --out DIR`` does the same for any checkpoint, with plots.
"""

from __future__ import annotations

import argparse

import onebit
from onebit.analysis import analyze_geometry

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small, fast run")
args = parser.parse_args()

data = onebit.load_dataset("digits")
model = onebit.create_model("binarynet_mlp", hidden=256, num_classes=data.num_classes, in_shape=data.in_shape)
result = onebit.fit(model, data, epochs=3 if args.quick else 20, lr=3e-3, seed=0)
print(f"binary MLP on digits: test accuracy {result.test_accuracy:.2%}")

report = analyze_geometry(model, data.x_test[:200])
print(report)  # per layer: d, mean ± sd angle (theory: 37.07° at large d), ternary angle, correlations
