"""The results format every experiment writes: ``results.json``, and ``results.md`` rendered from it.

``results.json``::

    {
      "experiment": "shen2019_width_search", "paper": "...", "title": "...",
      "quick": false, "seeds": 3, "date": "2026-12-06T10:00:00+00:00", "wall_seconds": 4321.0,
      "environment": {"python", "torch", "numpy", "onebit", "cpu", "cores", "isa", "platform"},
      "settings": {...},                  # what the run did (epochs, population, ...)
      "claims": [{"claim", "measured", "paper", "unit", "holds", "detail"}, ...],
      "tables": {"name": {"columns": [...], "rows": [[...], ...], "caption": "..."}},
      "plots": ["pareto_seed0.png", ...],  # PNG files beside results.json
      "notes": ["...", ...]
    }

A claim is one statement of the paper (or of the issue that asked for the reproduction)
put to the test: ``measured`` is our number (mean, or a string such as "91.2 ± 0.4"),
``paper`` the paper's figure where one exists (else None), ``holds`` True/False, or
None where the run cannot decide (a ``--quick`` run decides nothing it should not).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Claim", "environment", "mean_std", "render_markdown", "table"]


@dataclass
class Claim:
    """One claim and what we measured for it."""

    claim: str
    measured: Any
    paper: Any = None
    unit: str = ""
    holds: bool | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> dict[str, Any]:
    """A table for ``results.json``: column names, rows of plain values, and a caption."""
    return {"columns": list(columns), "rows": [list(r) for r in rows], "caption": caption}


def environment() -> dict[str, Any]:
    """Versions and machine of the run (what a reader needs to compare numbers)."""
    import numpy as np

    import onebit
    from onebit.bench import cpu_name

    env: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__,
                           "onebit": onebit.__version__, "cpu": cpu_name(), "cores": os.cpu_count(),
                           "platform": platform.platform()}
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:
        env["torch"] = None
    try:
        from onebit import _core

        env["isa"] = str(_core.selected_isa())
    except ImportError:
        env["isa"] = None
    return env


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value).replace("|", "\\|")


def render_markdown(results: dict[str, Any]) -> str:
    """``results.md``: the claims table first, then every table, the plots and the notes."""
    holds = {True: "**holds**", False: "**does not hold**", None: "undecided"}
    lines = [f"# {results['title']}", "",
             f"Experiment `{results['experiment']}`: reproduction of {results['paper']}.", "",
             f"Run {results['date']}{' (**--quick**: a smoke run, not a measurement)' if results['quick'] else ''}, "
             f"{results['seeds']} seed{'s' if results['seeds'] != 1 else ''}, "
             f"{results.get('wall_seconds', 0) / 60:.1f} minutes; {results['environment'].get('cpu')}, "
             f"{results['environment'].get('cores')} cores, torch {results['environment'].get('torch')}.", "",
             "## Claims", "", "| claim | measured | paper | verdict | detail |", "|---|---|---|---|---|"]
    for c in results["claims"]:
        measured = f"{_cell(c['measured'])} {c['unit']}".rstrip()
        paper = "–" if c["paper"] is None else f"{_cell(c['paper'])} {c['unit']}".rstrip()
        lines.append(f"| {_cell(c['claim'])} | {measured} | {paper} | {holds[c['holds']]} | {_cell(c['detail'])} |")
    for name, t in results.get("tables", {}).items():
        lines += ["", f"## {name}", ""]
        if t.get("caption"):
            lines += [t["caption"], ""]
        lines.append("| " + " | ".join(t["columns"]) + " |")
        lines.append("|" + "---|" * len(t["columns"]))
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in t["rows"]]
    if results.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in results["plots"]]
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"
