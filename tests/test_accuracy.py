"""End-to-end accuracy on real data with fixed seeds: the numbers the README quotes.

Each test runs the command printed beside the number in the README and asserts an
accuracy floor; the measured numbers are in the README.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

# Measured with these seeds (README, docs/training.md): on MNIST-1D's 1,000 test sequences the
# binary net's recipe (ReActNet's blocks, augmentation, distillation) reaches 98.5 %, its float twin 99.2 %.
MNIST1D_BINARY_FLOOR = 0.96
MNIST1D_FLOAT_FLOOR = 0.97


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onebit.cli", "train", "--no-progress", *args],
        capture_output=True, text=True, timeout=1800,  # a safety net against a hang, not a time limit
    )


def test_default_run_on_digits_is_binary_and_reaches_97_5_percent(tmp_path):
    """`onebit train` with no options: a binary CNN on the bundled digits, ≥ 97.5 % test accuracy (98.33 %)."""
    proc = _train_cli("--out", str(tmp_path / "binary"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "binary" / "metrics.json").read_text())
    assert metrics["model"] == "binary_cnn2d" and metrics["data"] == "digits" and metrics["seed"] == 0
    assert metrics["summary"]["binary_mac_fraction"] > 0.95  # only the float stem and head are not XNOR
    assert metrics["test_accuracy"] >= 0.975, metrics["test_accuracy"]
    assert f"test accuracy: {metrics['test_accuracy']:.2%}" in proc.stdout
    for name in ("checkpoint.safetensors", "last.safetensors", "metrics.json", "curves.png", "model.onebit"):
        assert (tmp_path / "binary" / name).is_file()
    # The bit-packed engine scores the exported file as PyTorch scores the checkpoint.
    assert abs(metrics["runtime_test_accuracy"] - metrics["test_accuracy"]) <= 1 / 360

    # The float twin of the same network, for the README's comparison.
    proc = _train_cli("--float", "--out", str(tmp_path / "float"))
    assert proc.returncode == 0, proc.stderr
    float_metrics = json.loads((tmp_path / "float" / "metrics.json").read_text())
    assert float_metrics["summary"]["binary_macs"] == 0
    assert float_metrics["test_accuracy"] >= 0.97, float_metrics["test_accuracy"]


def test_lfc_on_real_mnist_reaches_93_percent(mnist_t10k_dir, tmp_path):
    """LFC (3 × 1024 binary units) trained by the README's command on 8,000 real MNIST digits, tested on 2,000:
    ``onebit train --model lfc --data ../shared/data/mnist-t10k --split 8000:2000 --epochs 10``."""
    proc = _train_cli("--model", "lfc", "--data", str(mnist_t10k_dir), "--split", "8000:2000", "--epochs", "10",
                      "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.93, metrics["test_accuracy"]


def test_binary_conv1d_net_on_mnist1d_and_its_float_twin(tmp_path):
    """The README's MNIST-1D row: ``onebit train --model binary_cnn1d --data mnist1d [--float]`` (the recipe:
    ReActNet's blocks, MNIST-1D augmentation, 60 epochs distilled from the float twin; ``--float`` trains that
    twin alone).

    The binary run trains the float twin first, as its teacher (``RUN_DIR/teacher``), with the settings of the
    ``--float`` run: the twin's accuracy is read there instead of training it a second time. That the two are
    one training is checked on one epoch: the same weights, bit for bit, and the same test accuracy."""
    from safetensors.torch import load_file

    from onebit.cli import main

    short = tmp_path / "one_epoch"
    for kind, extra in (("binary", ()), ("float", ("--float",))):
        assert main(["train", "--no-progress", "--model", "binary_cnn1d", "--data", "mnist1d", "--epochs", "1",
                     *extra, "--out", str(short / kind)]) == 0
    teacher, twin = (load_file(short / "binary" / "teacher" / "checkpoint.safetensors"),
                     load_file(short / "float" / "checkpoint.safetensors"))
    assert sorted(teacher) == sorted(twin) and all(torch.equal(teacher[k], twin[k]) for k in twin)
    twin_metrics = json.loads((short / "float" / "metrics.json").read_text())
    assert twin_metrics["summary"]["binary_macs"] == 0
    assert json.loads((short / "binary" / "teacher" / "metrics.json").read_text())["test_accuracy"] == \
        twin_metrics["test_accuracy"]

    proc = _train_cli("--model", "binary_cnn1d", "--data", "mnist1d", "--out", str(tmp_path / "binary"))
    assert proc.returncode == 0, proc.stderr
    accuracy = {"binary": json.loads((tmp_path / "binary" / "metrics.json").read_text())["test_accuracy"],
                "float": json.loads((tmp_path / "binary" / "teacher" / "metrics.json").read_text())["test_accuracy"]}
    # Chance is 10 %; the binary net is well above it, and near its float twin.
    assert accuracy["binary"] >= MNIST1D_BINARY_FLOOR, accuracy
    assert accuracy["float"] >= MNIST1D_FLOAT_FLOOR, accuracy
