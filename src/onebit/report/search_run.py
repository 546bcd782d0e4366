"""The report of an ``onebit search`` folder: settings and budget, the candidates, the Pareto plot,
the best proxy accuracy per generation against random search, and the retrained winner (its
``winner/`` folder is a training run and gets the training report's sections)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from onebit.report import svg
from onebit.report.folder import read_json
from onebit.report.page import Page, chart, png, table
from onebit.report.train_run import train_sections

__all__ = ["search_sections"]


def _running_best(values: list[float]) -> list[float]:
    best, out = float("-inf"), []
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


def search_sections(page: Page, root: Path, *, data: Any = None, latency_s: float = 0.15) -> dict[str, Any]:
    """Add the sections of the search in ``root`` to ``page``; returns what was measured."""
    record, _ = read_json(root / "search.json")
    record = record or {}
    evo = (record.get("evolution") or {}).get("candidates") or []
    rnd = (record.get("random_search") or {}).get("candidates") or []
    refs = record.get("references") or []

    s = page.section("Search settings", ident="settings")
    rows = [["model", record.get("model")], ["data", record.get("data")], ["seed", record.get("seed")],
            ["status", record.get("status")], ["budget", record.get("budget")],
            ["budget source", record.get("budget_source")]]
    rows += [[f"evolution: {k.replace('_', ' ')}", v] for k, v in (record.get("evolution_settings") or {}).items()]
    rows += [[f"proxy training: {k.replace('_', ' ')}", v] for k, v in (record.get("proxy_training") or {}).items()]
    if record.get("latency_settings"):
        rows += [[f"latency: {k.replace('_', ' ')}", v] for k, v in record["latency_settings"].items()]
    rows += [[f"run: {k.replace('_', ' ')}", v] for k, v in (record.get("run") or {}).items()]
    s.add(table(["setting", "value"], rows, css_id="settings-table", align=False))

    s = page.section("Accuracy against cost", ident="pareto")
    if evo:
        if (root / "pareto.png").is_file() and record.get("status") == "done":
            s.add(png((root / "pareto.png").read_bytes(), "pareto.png as the search wrote it"))
        else:
            from onebit.search.pareto import plot_pareto

            with tempfile.TemporaryDirectory() as tmp:
                path = plot_pareto(record, Path(tmp) / "pareto.png")
                s.add(png(path.read_bytes(), "drawn by this report from search.json so far"))
        gens = sorted({c["generation"] for c in evo})
        best = [max(c["proxy_accuracy"] for c in evo if c["generation"] == g) for g in gens]
        mean = [sum(c["proxy_accuracy"] for c in evo if c["generation"] == g)
                / sum(1 for c in evo if c["generation"] == g) for g in gens]
        charts = [svg.line_chart({"best of the generation": (gens, [100 * b for b in best]),
                                  "mean of the generation": (gens, [100 * m for m in mean]),
                                  "best so far": (gens, [100 * b for b in _running_best(best)])},
                                 title="Evolution, per generation", xlabel="generation",
                                 ylabel="proxy accuracy (%)", markers=True)]
        if rnd:
            n = min(len(evo), len(rnd))
            xs = list(range(1, n + 1))
            charts.append(svg.line_chart(
                {"evolution, best so far": (xs, [100 * v for v in _running_best([c["proxy_accuracy"] for c in evo[:n]])]),
                 "random search, best so far": (xs, [100 * v for v in
                                                     _running_best([c["proxy_accuracy"] for c in rnd[:n]])])},
                title="Against random search, same evaluations", xlabel="evaluations", ylabel="proxy accuracy (%)",
                markers=True))
        s.add(chart(charts, "proxy accuracy: validation accuracy after the short proxy training"))
    else:
        s.text("No candidate scored yet.", "missing")

    s = page.section("Candidates", ident="candidates")
    cols = ["id", "strategy", "generation", "origin", "genome", "widths", "costs", "proxy accuracy", "feasible",
            "wall s"]
    all_rows = [[c["id"], strategy, c["generation"], c["origin"], c["genome"], c["widths"], c["costs"],
                 c["proxy_accuracy"], c.get("feasible", True), c.get("wall_seconds")]
                for strategy, group in (("reference", refs), ("evolution", evo), ("random", rnd)) for c in group]
    if all_rows:
        s.add(table(cols, all_rows, css_id="candidates-table", tall=True,
                    caption="every scored genome in search.json: width ratios per layer, costs, proxy accuracy"))

    winner = record.get("winner")
    s = page.section("Winner", ident="winner")
    if winner:
        s.add(table(["field", "value"], [[k.replace("_", " "), v] for k, v in winner.items()],
                    css_id="winner-table", align=False))
    else:
        s.text("The search has no winner yet.", "missing")
    measured: dict[str, Any] = {}
    if (root / "winner").is_dir() and ((root / "winner" / "metrics.json").is_file()
                                      or (root / "winner" / "run.json").is_file()):
        measured = train_sections(page, root / "winner", data=data, title_prefix="Winner: ", id_prefix="winner-",
                                  latency_s=latency_s)
    return measured
