"""Train a binary MLP, export it bit-packed, and run it on onebit's engine without PyTorch.

    python examples/train_export_run.py            # BinaryNet MLP, 1,024 units, 30 epochs (about 30 s)
    python examples/train_export_run.py --quick    # a smaller run, for the tests

The engine (``onebit.runtime``) needs only numpy: ``model.onebit`` can be copied to a
machine without PyTorch and loaded there with ``onebit.load``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onebit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small, fast run")
parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary folder)")
args = parser.parse_args()
hidden, epochs = (256, 5) if args.quick else (1024, 30)

data = onebit.load_dataset("digits")  # scikit-learn's 8x8 digits: 1,437 training, 360 test images
model = onebit.create_model("binarynet_mlp", hidden=hidden, num_classes=data.num_classes, in_shape=data.in_shape)
print(onebit.summary(model, data.in_shape))

with tempfile.TemporaryDirectory() as tmp:
    out = args.out or Path(tmp)
    result = onebit.fit(model, data, epochs=epochs, lr=3e-3, seed=0, out_dir=out / "run")
    print(f"PyTorch: test accuracy {result.test_accuracy:.2%} (best epoch {result.best_epoch})")

    report = onebit.export_model(model, out / "mlp.onebit", data.x_test[:64])  # BN folded into thresholds
    print(f"model.onebit: {report.file_bytes:,} bytes, {report.compression:.1f}x smaller than float32")

    engine = onebit.load(out / "mlp.onebit")  # torch-free from here on
    predicted = engine.predict(data.x_test)  # numpy float32 in, class indices out
    print(f"onebit.runtime: test accuracy {(predicted == data.y_test).mean():.2%}")
