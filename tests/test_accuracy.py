"""End-to-end accuracy on real data with fixed seeds: the numbers the README quotes.

Each test trains through the same code path a user runs (the CLI or ``fit``) and
asserts an accuracy floor; the measured numbers are in the README.
"""

from __future__ import annotations

import json
import subprocess
import sys

from onebit.data import load_dataset, read_idx, write_idx
from onebit.models import create_model
from onebit.train import fit

# Measured with these seeds (README): binary 92.4 %, float 96.0 % on MNIST-1D's 1,000 test sequences.
EPOCHS_MNIST1D = 40
MNIST1D_BINARY_FLOOR = 0.88
MNIST1D_FLOAT_FLOOR = 0.93


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onebit.cli", "train", "--no-progress", *args],
        capture_output=True, text=True, timeout=600,
    )


def test_default_run_on_digits_is_binary_and_reaches_97_percent(tmp_path):
    """`onebit train` with no options: a binary MLP on the bundled digits, ≥ 97 % test accuracy."""
    proc = _train_cli("--out", str(tmp_path / "binary"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "binary" / "metrics.json").read_text())
    assert metrics["model"] == "binarynet_mlp" and metrics["data"] == "digits" and metrics["seed"] == 0
    assert metrics["summary"]["binary_mac_fraction"] > 0.95  # only the float-input first layer is not XNOR
    assert metrics["test_accuracy"] >= 0.97, metrics["test_accuracy"]
    assert f"test accuracy: {metrics['test_accuracy']:.2%}" in proc.stdout
    for name in ("checkpoint.safetensors", "last.safetensors", "metrics.json", "curves.png", "model.onebit"):
        assert (tmp_path / "binary" / name).is_file()
    # The bit-packed engine scores the exported file as PyTorch scores the checkpoint.
    assert abs(metrics["runtime_test_accuracy"] - metrics["test_accuracy"]) <= 1 / 360

    # The float twin of the same MLP, for the README's comparison.
    proc = _train_cli("--float", "--out", str(tmp_path / "float"))
    assert proc.returncode == 0, proc.stderr
    float_metrics = json.loads((tmp_path / "float" / "metrics.json").read_text())
    assert float_metrics["summary"]["binary_macs"] == 0
    assert float_metrics["test_accuracy"] >= 0.97, float_metrics["test_accuracy"]


def test_lfc_on_real_mnist_reaches_93_percent(mnist_t10k_dir, tmp_path):
    """LFC (3 × 1024 binary units) trained by the CLI on 8,000 real MNIST digits, tested on 2,000."""
    images = read_idx(mnist_t10k_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_t10k_dir / "t10k-labels-idx1-ubyte.gz")
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[:8000])
    write_idx(folder / "train-labels-idx1-ubyte", labels[:8000])
    write_idx(folder / "t10k-images-idx3-ubyte", images[8000:])
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[8000:])
    proc = _train_cli("--model", "lfc", "--data", str(folder), "--epochs", "10", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.93, metrics["test_accuracy"]


def test_binary_conv1d_net_trains_on_mnist1d_through_fit():
    """A small binary 1-D conv net trains on MNIST-1D through ``fit``; its float twin beside it."""
    data = load_dataset("mnist1d")
    accuracy = {}
    for kind, kwargs in (("binary", {}), ("float", {"input_quantizer": None, "weight_quantizer": None})):
        model = create_model("binary_cnn1d", num_classes=data.num_classes, in_shape=data.in_shape, **kwargs)
        result = fit(model, data, epochs=EPOCHS_MNIST1D, batch_size=64, lr=3e-3, seed=0, progress=False, verbose=False)
        accuracy[kind] = result.test_accuracy
    # Chance is 10 %; the binary net is well above it, and below or near its float twin.
    assert accuracy["binary"] >= MNIST1D_BINARY_FLOOR, accuracy
    assert accuracy["float"] >= MNIST1D_FLOAT_FLOOR, accuracy
