"""Every script in examples/ runs to the end in its quick mode, as a user would start it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# What each example must print: the numbers a reader looks for.
EXPECTED = {
    "train_export_run.py": ["PyTorch: test accuracy", "onebit.runtime: test accuracy", "smaller than float32"],
    "binarize_your_model.py": ["XNOR-popcount", "onebit.runtime: test accuracy"],
    "pretrained_zoo_model.py": ["lfc trained on digits", "onebit.runtime: 9"],
    "benchmark_your_model.py": ["| threads |", "faster than PyTorch fp32"],
    "width_search.py": ["evolution: ", "random: ", "budget: "],
    "analyze_geometry.py": ["binary MLP on digits: test accuracy", "37"],
    "transfer_binary_features.py": ["packed into", "head test accuracy"],
    "hybnn_federated.py": ["HyBNN on digits", "onebit.runtime on hybnn.onebit", "FedHyBNN, 3 clients"],
}


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name, tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for text in EXPECTED[name]:
        assert text in proc.stdout, (text, proc.stdout)
    assert not list(tmp_path.iterdir())  # examples clean up after themselves
