"""The costs of a candidate architecture, and the budget a search keeps to.

Three costs, by name (:data:`COSTS`):

``binary_macs``
    Multiply-accumulates of the layers whose weights *and* inputs are 1-bit, per
    sample (:attr:`onebit.model_summary.Summary.binary_macs`; exact).
``bytes``
    Bytes of the packed model: 1-bit weights at one bit (padded to 64-bit words along
    the input channels), every float parameter at four
    (:attr:`onebit.model_summary.Summary.packed_bytes`, equal to the exported file's
    weight bytes; exact).
``latency``
    Milliseconds per call of the exported ``.onebit`` model in onebit's runtime *on
    this machine*: the median of ``repeats`` calls after warm-up, at a chosen batch
    size and thread count. Latency does not depend on the weights' values, so each
    architecture is exported once with random weights and timed; the result is cached
    per architecture (in memory, and in a JSON file when given one), so a genome met
    again, or a resumed search, reuses the measured value. Unlike FLOP proxies this is
    the cost of the real deployment engine, padded words, float layers and per-layer
    overheads included. It is a measurement: it varies a little from run to run.

A **budget** maps cost names to maxima (``{"binary_macs": 1.2e6, "latency": 0.05}``);
a genome is within it when every named cost is at most its maximum. The costs are
combinable: every cost in the budget constrains the search.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onebit.atomic import atomic_write_text
from onebit.errors import ConfigError, unknown_choice
from onebit.search.space import SearchSpace

__all__ = ["COSTS", "UNITS", "CostModel", "check_costs", "format_cost", "over_budget", "parse_budget"]

log = logging.getLogger(__name__)

COSTS = ("binary_macs", "bytes", "latency")
UNITS = {"binary_macs": "MACs", "bytes": "bytes", "latency": "ms"}


def check_costs(names: Sequence[str]) -> list[str]:
    """``names`` as a list, each one of :data:`COSTS` (else a ConfigError with the valid choices)."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ConfigError(f"name at least one cost; valid choices: {', '.join(COSTS)}")
    for name in names:
        if name not in COSTS:
            raise unknown_choice("cost", name, COSTS)
    return names


def over_budget(costs: dict[str, float], budget: dict[str, float]) -> list[str]:
    """The cost names of ``budget`` whose value in ``costs`` exceeds its maximum (empty: within budget)."""
    return [name for name, limit in budget.items() if costs[name] > limit]


class CostModel:
    """Measures and remembers the costs of a space's genomes.

    ``measure(genome, names)`` returns ``{name: value}``. ``binary_macs`` and ``bytes``
    come together from one :func:`onebit.model_summary.summary`; ``latency`` exports the
    architecture with random weights (:func:`onebit.bench.export_random_model`) and times
    it with :func:`onebit.bench.time_call` on ``onebit.runtime.load(path,
    num_threads=latency_threads)`` at batch ``latency_batch``. Results are cached per
    architecture; with ``cache_path`` the latency cache is also a JSON file, read at start
    and rewritten (atomically) after each new measurement.
    """

    def __init__(
        self, space: SearchSpace, *, latency_batch: int = 1, latency_threads: int = 1, latency_repeats: int = 200,
        cache_path: str | os.PathLike | None = None,
    ) -> None:
        for name, value in (("latency_batch", latency_batch), ("latency_threads", latency_threads),
                            ("latency_repeats", latency_repeats)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.space = space
        self.latency_batch, self.latency_threads, self.latency_repeats = latency_batch, latency_threads, latency_repeats
        self.cache_path = None if cache_path is None else Path(cache_path)
        self._exact: dict[str, dict[str, float]] = {}
        self._latency: dict[str, float] = {}
        if self.cache_path is not None and self.cache_path.is_file():
            self._latency = self._read_cache(self.cache_path)

    def attach_cache(self, path: str | os.PathLike) -> None:
        """Keep the latency cache in the JSON file ``path`` from now on: its entries are read (if it
        exists), and it is rewritten with the values measured so far."""
        self.cache_path = Path(path)
        if self.cache_path.is_file():
            self._latency = {**self._read_cache(self.cache_path), **self._latency}
        if self._latency:
            atomic_write_text(self.cache_path, json.dumps(self._latency, indent=1) + "\n")

    @staticmethod
    def _read_cache(path: Path) -> dict[str, float]:
        try:
            return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{path} is not a latency cache: {exc}") from None

    def settings(self) -> dict[str, Any]:
        """What fixes a latency value besides the architecture (recorded in search.json)."""
        from onebit.bench import cpu_name

        return {"batch_size": self.latency_batch, "threads": self.latency_threads, "repeats": self.latency_repeats,
                "isa": _isa(), "cpu": cpu_name(), "statistic": "median ms per call"}

    def _arch_key(self, genome: Sequence[float]) -> str:
        return json.dumps({"model": self.space.model, "args": self.space.model_kwargs(genome),
                           "in_shape": list(self.space.in_shape or ()), "num_classes": self.space.num_classes},
                          sort_keys=True)

    def measure(self, genome: Sequence[float], names: Sequence[str]) -> dict[str, float]:
        """The costs ``names`` of ``genome``."""
        names = check_costs(names)
        out: dict[str, float] = {}
        key = self._arch_key(genome)
        if {"binary_macs", "bytes"} & set(names):
            if key not in self._exact:
                self._exact[key] = self._exact_costs(genome)
            out.update({n: self._exact[key][n] for n in ("binary_macs", "bytes") if n in names})
        if "latency" in names:
            lkey = json.dumps([key, self.latency_batch, self.latency_threads, self.latency_repeats, _isa()])
            if lkey not in self._latency:
                self._latency[lkey] = self._measure_latency(genome)
                if self.cache_path is not None:
                    atomic_write_text(self.cache_path, json.dumps(self._latency, indent=1) + "\n")
            out["latency"] = self._latency[lkey]
        return {n: out[n] for n in names}

    def _exact_costs(self, genome: Sequence[float]) -> dict[str, float]:
        from onebit.model_summary import summary

        s = summary(self.space.build(genome), tuple(self.space.in_shape or ()))
        return {"binary_macs": int(s.binary_macs), "bytes": int(s.packed_bytes)}

    def _measure_latency(self, genome: Sequence[float]) -> float:
        import numpy as np

        from onebit.bench import export_random_model, time_call
        from onebit.runtime import load

        export_log = logging.getLogger("onebit.export")
        level = export_log.level
        export_log.setLevel(logging.WARNING)  # one line per measurement (below), not the exporter's report
        try:
            with tempfile.TemporaryDirectory(prefix="onebit-latency-") as tmp:
                path = Path(tmp) / "candidate.onebit"
                export_random_model(self.space.model, path, in_shape=self.space.in_shape,
                                    num_classes=self.space.num_classes, **self.space.model_kwargs(genome))
                engine = load(path, num_threads=self.latency_threads)
        finally:
            export_log.setLevel(level)
        x = np.random.default_rng(0).standard_normal((self.latency_batch, *engine.in_shape)).astype(np.float32)
        median, _, _ = time_call(lambda: engine(x), self.latency_repeats, warmup=10)
        ms = median * 1e3
        log.info("latency of %s: %.4f ms per call (batch %d, %d thread%s, median of %d)", self.space.format(genome),
                 ms, self.latency_batch, self.latency_threads, "" if self.latency_threads == 1 else "s",
                 self.latency_repeats)
        return ms


def _isa() -> str:
    from onebit import _core  # the kernels' ISA, as the runtime's dispatch chose it

    return str(_core.selected_isa())


def format_cost(name: str, value: float) -> str:
    """A cost for a progress line: ``1.23M MACs``, ``18.4 kB``, ``0.0213 ms``."""
    if name == "latency":
        return f"{value:.4g} ms"
    if name == "bytes":
        return f"{value / 1e3:.1f} kB" if value < 1e6 else f"{value / 1e6:.2f} MB"
    return f"{value / 1e6:.3g}M MACs" if value >= 1e5 else f"{value:,.0f} MACs"


def parse_budget(text: str, costs: Sequence[str]) -> dict[str, float]:
    """``--budget`` text: one number per cost, comma-separated, in the costs' units (MACs, bytes, ms)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if len(parts) != len(costs):
        raise ConfigError(f"--budget needs one number per cost ({', '.join(costs)}), got {text!r}")
    budget = {}
    for name, part in zip(costs, parts):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"the {name} budget must be a positive number ({UNITS[name]}), got {part!r}")
        budget[name] = value
    return budget
