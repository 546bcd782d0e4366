"""The registry of reproducible experiments: one per paper, run by name.

An experiment is a function ``run(out_dir: Path, quick: bool, seeds: int) -> dict``
registered with :func:`register_experiment`. It uses onebit's public functions (the
same ones a user calls; no second implementation for the paper), writes its plots as
PNG files into ``out_dir`` and returns its results: ``claims`` (see
:class:`~onebit.experiments.results.Claim`), ``tables``, ``plots`` (file names in
``out_dir``), and optionally ``settings`` and ``notes``. :func:`run_experiment` adds the
experiment's identity, the date, the seeds, the environment and the wall time, checks
that every declared plot exists, and writes ``results.json`` (atomically) and
``results.md``.

``quick=True`` must finish in under a minute on 2 cores: it is what the tests run, a
smoke test of the whole path whose numbers mean nothing (claims are reported, but their
verdicts are not to be quoted). The full run's numbers go in ``docs/<experiment>.md``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from onebit.atomic import atomic_write_text
from onebit.errors import ConfigError, unknown_choice
from onebit.experiments.results import Claim, environment, render_markdown

__all__ = ["ExperimentInfo", "get_experiment", "list_experiments", "register_experiment", "run_experiment"]

log = logging.getLogger(__name__)

Runner = Callable[[Path, bool, int], dict[str, Any]]

# The modules that register the built-in experiments, imported on first use of the registry.
_BUILT_IN = (
    "onebit.experiments.shen2019",
    "onebit.experiments.leroux2017",
    "onebit.experiments.anderson2017",
    "onebit.experiments.zhang2022",
    "onebit.experiments.beknazaryan2022",
    "onebit.experiments.dua2022",
    "onebit.experiments.dua2022_federated",
    "onebit.experiments.training_ablation",
    "onebit.experiments.simpson2015",
    "onebit.experiments.speech_digits",
    "onebit.experiments.text_sentiment",
    "onebit.experiments.he2018_jbnn",
    "onebit.experiments.aouad2022_bimonn",
    "onebit.experiments.lingashetty2010",
)


@dataclass(frozen=True)
class ExperimentInfo:
    """A registered experiment: its name, paper, title, runner and default seed counts."""

    name: str
    paper: str
    title: str
    run: Runner
    seeds: int = 3
    quick_seeds: int = 1
    description: str = ""


_REGISTRY: dict[str, ExperimentInfo] = {}


def register_experiment(
    name: str, *, paper: str, title: str, seeds: int = 3, quick_seeds: int = 1,
) -> Callable[[Runner], Runner]:
    """Decorator: register ``run(out_dir, quick, seeds) -> dict`` as experiment ``name``.

    ``paper``: the reference (authors, year, title, arXiv id); ``title``: what is
    reproduced; ``seeds``/``quick_seeds``: the default seed counts of a full and a quick run.
    """
    if not name.isidentifier():
        raise ConfigError(f"an experiment name must be an identifier (letters, digits, _), got {name!r}")

    def wrap(fn: Runner) -> Runner:
        if name in _REGISTRY:
            raise ConfigError(f"experiment {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = ExperimentInfo(name, paper, title, fn, seeds, quick_seeds, doc)
        return fn

    return wrap


def _load_built_in() -> None:
    for module in _BUILT_IN:
        importlib.import_module(module)


def list_experiments() -> list[str]:
    """The registered experiment names, sorted."""
    _load_built_in()
    return sorted(_REGISTRY)


def get_experiment(name: str) -> ExperimentInfo:
    """The experiment ``name`` (a ConfigError naming the registered ones otherwise)."""
    _load_built_in()
    if name not in _REGISTRY:
        raise unknown_choice("experiment", name, _REGISTRY)
    return _REGISTRY[name]


def run_experiment(
    name: str, out_dir: str | os.PathLike, *, quick: bool = False, seeds: int | None = None,
) -> dict[str, Any]:
    """Run experiment ``name`` into ``out_dir`` (created; must be empty); returns ``results.json``'s content."""
    info = get_experiment(name)
    if seeds is None:
        seeds = info.quick_seeds if quick else info.seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be a positive integer, got {seeds!r}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"experiment folder {out} already exists and is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    log.info("experiment %s (%s run, %d seed%s) into %s", name, "quick" if quick else "full", seeds,
             "" if seeds == 1 else "s", out)
    start = time.perf_counter()
    body = info.run(out, quick, seeds)
    results = _assemble(info, body, quick, seeds, date, time.perf_counter() - start)
    missing = [p for p in results["plots"] if not (out / p).is_file()]
    if missing:
        raise ConfigError(f"experiment {name} declared plots it did not write: {', '.join(missing)}")
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, default=float) + "\n")
    atomic_write_text(out / "results.md", render_markdown(results))
    log.info("wrote %s and %s", out / "results.json", out / "results.md")
    return results


def _assemble(info: ExperimentInfo, body: dict[str, Any], quick: bool, seeds: int, date: str,
              seconds: float) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ConfigError(f"experiment {info.name} returned {type(body).__name__}, not a dict")
    unknown = sorted(set(body) - {"claims", "tables", "plots", "settings", "notes"})
    if unknown:
        raise ConfigError(f"experiment {info.name} returned unknown result keys: {', '.join(unknown)}")
    claims = [c.to_dict() if isinstance(c, Claim) else Claim(**c).to_dict() for c in body.get("claims", [])]
    plots = [str(p) for p in body.get("plots", [])]
    return {"experiment": info.name, "paper": info.paper, "title": info.title, "quick": quick, "seeds": seeds,
            "date": date, "wall_seconds": seconds, "environment": environment(),
            "settings": body.get("settings", {}), "claims": claims, "tables": body.get("tables", {}),
            "plots": plots, "notes": list(body.get("notes", []))}
