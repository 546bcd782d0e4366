"""The report of an ``onebit experiment run`` folder: the paper, each claim beside our measurement
with its verdict, the experiment's tables and its own PNG plots, notes, settings and environment
(all from ``results.json``; see :mod:`onebit.experiments.results`)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from onebit.report.folder import read_json
from onebit.report.page import Page, fmt, png, table

__all__ = ["experiment_sections"]

_VERDICT = {True: ('<span class="good">holds</span>', "holds"),
            False: ('<span class="bad">does not hold</span>', "does not hold"),
            None: ("undecided", "undecided")}


def experiment_sections(page: Page, root: Path) -> dict[str, Any]:
    """Add the sections of the experiment in ``root`` to ``page``; returns the claims' verdict counts."""
    results, _ = read_json(root / "results.json")
    results = results or {}
    s = page.section("Experiment", ident="settings")
    s.add(table(["field", "value"], [[k, results.get(k)] for k in
                                     ("experiment", "title", "paper", "quick", "seeds", "date", "wall_seconds")],
                css_id="settings-table", align=False))
    if results.get("quick"):
        s.text("A --quick run: a smoke test of the whole path; its numbers and verdicts are not to be quoted.", "note")

    claims = results.get("claims") or []
    s = page.section("Claims", ident="claims")
    if claims:
        counts = {label: sum(1 for c in claims if c.get("holds") is value) for value, (_, label) in _VERDICT.items()}
        s.text(f"{len(claims)} claims: " + ", ".join(f"{n} {label}" for label, n in counts.items()) + ".")
        rows = [[html.escape(fmt(c.get("claim"))), html.escape(fmt(c.get("paper"))), html.escape(fmt(c.get("measured"))),
                 html.escape(fmt(c.get("unit"))), _VERDICT.get(c.get("holds"), _VERDICT[None])[0],
                 html.escape(fmt(c.get("detail")))] for c in claims]
        s.add(table(["claim", "paper", "measured", "unit", "verdict", "detail"], rows, css_id="claims-table", raw=True))
    else:
        s.text("results.json holds no claims.", "muted")

    for i, (name, t) in enumerate((results.get("tables") or {}).items()):
        if not isinstance(t, dict) or "columns" not in t:
            continue
        s = page.section(f"Table: {name}", ident=f"table-{i}")
        s.add(table([str(c) for c in t["columns"]], [list(r) for r in t.get("rows", [])], caption=t.get("caption", "")))

    plots = [str(p) for p in results.get("plots") or []]
    s = page.section("Plots", ident="plots")
    for name in plots:
        path = root / name
        if path.is_file() and path.suffix.lower() == ".png":
            s.add(png(path.read_bytes(), name))
        else:
            s.text(f"{name}: not in the folder", "missing")
    if not plots:
        s.text("The experiment declares no plots.", "muted")

    notes = results.get("notes") or []
    if notes:
        s = page.section("Notes", ident="notes")
        s.add("<ul>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")
    s = page.section("Settings and environment", ident="environment")
    s.add(table(["environment", "value"], list((results.get("environment") or {}).items()),
                css_id="environment-table", align=False))
    s.add(f"<pre class=\"scroll\">{html.escape(json.dumps(results.get('settings') or {}, indent=1, default=str))}</pre>")
    return {"claims": {v[1]: sum(1 for c in claims if c.get("holds") is k) for k, v in _VERDICT.items()}}
