"""Reuse a frozen binary network as a feature extractor for a new task (Leroux et al. 2017).

    python examples/transfer_binary_features.py [--quick]

A BNN trained on digits 0–4 is cut after a hidden layer and frozen; exported, onebit's engine
returns its features as packed bits (1 bit per feature). A small head is trained on the
features of 10 examples per class of digits 5–9. ``onebit transfer --from CHECKPOINT --cut
LAYER --data D --shots K --out DIR`` does the same from the command line; see
docs/leroux2017_transfer.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onebit
from onebit.transfer import FeatureExtractor, fit_head, head_accuracy, layer_names

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small, fast run")
args = parser.parse_args()

data = onebit.load_dataset("digits")
source, target = data.subset_classes([0, 1, 2, 3, 4]), data.subset_classes([5, 6, 7, 8, 9])
model = onebit.create_model("tfc", num_classes=5, in_shape=data.in_shape)
onebit.fit(model, source, epochs=3 if args.quick else 20, lr=3e-3, seed=0)
print(f"layers you can cut at: {layer_names(model)}")

extractor = FeatureExtractor(model, "12")  # the ±1 activations after the third hidden layer
few = target.few_shot(10, seed=0)  # 10 labelled examples per new class
with tempfile.TemporaryDirectory() as tmp:
    extractor.export(Path(tmp) / "extractor.onebit", few.x_test[:64])
    engine = onebit.load(Path(tmp) / "extractor.onebit")
    bits = engine(few.x_test)  # uint64 words: 1 bit per feature
    print(f"{extractor.num_features} features per image, packed into {bits.shape[1]} uint64 word(s)")
    head = fit_head(engine(few.x_train, unpack=True), few.y_train, seed=0)  # logistic regression on ±1 features
    accuracy = head_accuracy(head, engine(few.x_test, unpack=True), few.y_test)
print(f"new task (digits 5-9, 10 shots per class): head test accuracy {accuracy:.2%} (chance 20%)")
