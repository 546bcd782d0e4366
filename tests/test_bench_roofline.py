"""benchmarks/bench_roofline.py: the roofline table's structure and its one physical law (no
model runs faster than its roofline). Times are not asserted."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from onebit import _core

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_roofline.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_roofline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(_core.selected_isa() not in ("avx2", "avx512"), reason="the ISA in use has no peak loop")
def test_roofline_quick_table(capsys):
    assert load_script().main(["--quick", "--layers"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| tfc |") or line.startswith("| binary_cnn1d |")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        share = int(cells[5].rstrip("%"))
        assert 0 < share <= 100  # below the roofline, never above it
        roofline_ms, onebit_ms = float(cells[3]), float(cells[4])
        assert 0 < roofline_ms <= onebit_ms
    assert "#### tfc — per layer" in out and re.search(r"Nodes without MACs: \d+", out)


def test_roofline_unknown_model(capsys):
    with pytest.raises(SystemExit) as exc:
        load_script().main(["--models", "no_such_net"])
    assert exc.value.code == 2
    assert "unknown model(s) no_such_net (valid: " in capsys.readouterr().err
