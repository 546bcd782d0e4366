"""The experiment registry (onebit.experiments): registration, errors, the results format, and the
quick run of shen2019_width_search end to end (the one end-to-end test, under a minute)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from onebit.errors import ConfigError
from onebit.experiments import (
    Claim, get_experiment, list_experiments, register_experiment, render_markdown, run_experiment, table,
)
from onebit.experiments import registry

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def toy(monkeypatch):
    """A throw-away experiment that writes one plot (removed from the registry afterwards)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_experiment("toy_experiment", paper="Nobody 2026 (arXiv:0000.00000)", title="a toy", seeds=2)
    def run(out_dir, quick, seeds):
        """Writes a PNG and claims one thing."""
        (out_dir / "plot.png").write_bytes(PNG)
        return {"claims": [Claim("one is one", 1.0, 1.0, "units", True, "exact")],
                "tables": {"numbers": table(["seed", "value"], [[s, s / 2] for s in range(seeds)], "a caption")},
                "plots": ["plot.png"], "settings": {"quick": quick}}

    return run


def test_registry_lists_and_names_the_experiments():
    assert "shen2019_width_search" in list_experiments()
    info = get_experiment("shen2019_width_search")
    assert "arXiv:1909.07378" in info.paper and info.seeds == 3
    with pytest.raises(ConfigError, match="unknown experiment 'shen2019_width_serch' .*did you mean "
                                          "'shen2019_width_search'.*valid choices: .*shen2019_width_search"):
        get_experiment("shen2019_width_serch")


def test_registration_errors(toy):
    with pytest.raises(ConfigError, match="already registered"):
        register_experiment("toy_experiment", paper="p", title="t")(toy)
    with pytest.raises(ConfigError, match="must be an identifier"):
        register_experiment("bad name", paper="p", title="t")


def test_run_writes_results_json_and_markdown(toy, tmp_path):
    results = run_experiment("toy_experiment", tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert results["seeds"] == 2 and results["quick"] is False and results["plots"] == ["plot.png"]
    assert results["claims"] == [{"claim": "one is one", "measured": 1.0, "paper": 1.0, "unit": "units",
                                  "holds": True, "detail": "exact"}]
    assert {"python", "torch", "numpy", "onebit", "cpu", "cores"} <= set(results["environment"])
    md = (tmp_path / "out" / "results.md").read_text()
    assert md == render_markdown(results)
    assert "| one is one | 1 units | 1 units | **holds** | exact |" in md and "![plot.png](plot.png)" in md
    assert "a caption" in md and "| 1 | 0.5 |" in md
    assert run_experiment("toy_experiment", tmp_path / "quick", quick=True, seeds=1)["seeds"] == 1


def test_run_errors(toy, tmp_path, monkeypatch):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ConfigError, match="not empty"):
        run_experiment("toy_experiment", tmp_path / "full")
    with pytest.raises(ConfigError, match="seeds must be a positive integer"):
        run_experiment("toy_experiment", tmp_path / "a", seeds=0)
    info = registry._REGISTRY["toy_experiment"]
    monkeypatch.setitem(registry._REGISTRY, "toy_experiment",
                        registry.ExperimentInfo(info.name, info.paper, info.title,
                                                lambda out, quick, seeds: {"plots": ["missing.png"]}))
    with pytest.raises(ConfigError, match="declared plots it did not write: missing.png"):
        run_experiment("toy_experiment", tmp_path / "b")
    monkeypatch.setitem(registry._REGISTRY, "toy_experiment",
                        registry.ExperimentInfo(info.name, info.paper, info.title, lambda out, quick, seeds: {"x": 1}))
    with pytest.raises(ConfigError, match="unknown result keys: x"):
        run_experiment("toy_experiment", tmp_path / "c")


def test_shen2019_quick_run_end_to_end(tmp_path):
    """`onebit experiment run shen2019_width_search --quick`: every step of the reproduction, small."""
    out = tmp_path / "shen"
    proc = subprocess.run([sys.executable, "-m", "onebit.cli", "experiment", "run", "shen2019_width_search",
                           "--quick", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"] == "shen2019_width_search" and results["quick"] and results["seeds"] == 1
    assert len(results["claims"]) == 5 and all(c["holds"] is None for c in results["claims"])  # quick decides nothing
    assert "uniform ×4 width closes at least half" in results["claims"][3]["claim"]
    rows = results["tables"]["Test accuracy after full retraining"]["rows"]
    assert [r[0] for r in rows] == ["float ×1", "uniform ×1", "uniform ×2", "uniform ×4",
                                    "random search (MAC budget)", "searched (MAC budget)", "searched (latency budget)"]
    for plot in results["plots"]:
        assert (out / plot).read_bytes()[:8] == PNG, plot
    search = json.loads((out / "seed0" / "macs" / "search.json").read_text())
    assert search["budget_source"] == "uniform:2" and search["random_search"]["evaluations"] == \
        search["evolution"]["evaluations"]
    for c in search["evolution"]["candidates"] + search["random_search"]["candidates"]:
        assert c["costs"]["binary_macs"] <= search["budget"]["binary_macs"] and c["costs"]["latency"] > 0
    latency = json.loads((out / "seed0" / "latency" / "search.json").read_text())
    assert list(latency["budget"]) == ["latency"]
    assert all(c["costs"]["latency"] <= latency["budget"]["latency"] for c in latency["evolution"]["candidates"])
    md = (out / "results.md").read_text()
    assert "## Claims" in md and "undecided" in md and "searched (latency budget)" in md
    assert proc.stdout.count("undecided: ") == 5  # the CLI's summary: one line per claim
