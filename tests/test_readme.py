"""The README's two set-up commands are the ones CI and users run, and its quickstart runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks[:2]]


def test_ci_runs_exactly_the_readme_test_command():
    main_job, tests = _commands()
    assert main_job.endswith("onebit train") and "torch==2.13.0" in main_job
    assert "pytest" in tests and "torch==2.13.0" in tests
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()


def test_the_quickstart_runs_as_written(tmp_path):
    """The README's Python block, executed unchanged in a fresh interpreter and an empty folder."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Quickstart"):]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    accuracy = float(re.search(r"engine accuracy ([0-9.]+)", proc.stdout).group(1))
    assert accuracy > 0.9 and "PyTorch test accuracy" in proc.stdout and "Params:" in proc.stdout
    assert (tmp_path / "mlp.onebit").is_file() and (tmp_path / "runs" / "quick" / "checkpoint.safetensors").is_file()
