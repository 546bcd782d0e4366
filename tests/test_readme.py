"""The README's two set-up commands are the ones CI and users run."""

from __future__ import annotations

import re
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
