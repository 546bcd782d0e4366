"""Reproducible experiments, one per paper: ``onebit experiment list`` / ``run NAME``.

Each writes ``results.json`` (measured numbers beside the paper's), PNG plots and a short
``results.md`` (:mod:`onebit.experiments.results`); :mod:`onebit.experiments.registry`
holds the registry. Built in: ``shen2019_width_search`` (:mod:`onebit.experiments.shen2019`).
"""

from onebit.experiments.registry import (
    ExperimentInfo, get_experiment, list_experiments, register_experiment, run_experiment,
)
from onebit.experiments.results import Claim, mean_std, render_markdown, table

__all__ = ["Claim", "ExperimentInfo", "get_experiment", "list_experiments", "mean_std", "register_experiment",
           "render_markdown", "run_experiment", "table"]
