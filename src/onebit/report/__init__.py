"""The run report: one self-contained static HTML page per run folder (``onebit report RUN_DIR``).

``write_report(run_dir)`` writes ``run_dir/report.html``: styles and plots inline (PNG as
``data:`` URIs), no script, nothing fetched, so it opens anywhere and prints. What it shows
depends on the folder (see :mod:`onebit.report.folder`):

- a training run (``onebit train``, also written at the end of every training): model, data
  and settings; the results; the ``onebit.summary`` table; loss and accuracy curves; per-class
  accuracy and confusion matrices of PyTorch and of the engine on the test set; the exported
  file's size against float32; per-layer latency of the engine beside PyTorch fp32 on this
  machine; which layers run binary and why (:mod:`onebit.report.train_run`);
- a width search (``onebit search``): settings, Pareto plot, per-generation progress against
  random search, every candidate, and the retrained winner as a training run;
- a paper reproduction (``onebit experiment run``): claims with verdicts, tables, its plots.

A folder that is not a run folder, or an unfinished one (a run killed mid-epoch), raises
:class:`~onebit.errors.ConfigError` naming what is missing; ``partial=True`` renders what is
there, with the missing parts listed at the top of the page.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from onebit.errors import ConfigError
from onebit.report.folder import RunFolder, inspect_run, read_json
from onebit.report.page import Page, table

__all__ = ["REPORT_FILE", "RunFolder", "inspect_run", "render_report", "write_report"]

REPORT_FILE = "report.html"


def render_report(run_dir: str | os.PathLike, *, partial: bool = False, data: Any = None,
                  latency_s: float = 0.15) -> tuple[str, RunFolder]:
    """The report page of ``run_dir`` as an HTML string, and what :func:`inspect_run` found.

    ``data``: the run's data set when the caller has it loaded (else it is loaded from the
    recorded spec); ``latency_s``: seconds each of the four latency measurements lasts (engine
    and PyTorch, whole model and per layer; 0 skips them: a faster, machine-independent page).
    """
    folder = inspect_run(run_dir)
    if not folder.complete and not partial:
        raise ConfigError(folder.problem())
    import onebit

    root = folder.path
    kind = folder.kind
    page = Page(title=_title(root, kind))
    page.subtitle.append(f"{'Run folder' if kind else 'Folder'} {root.resolve()}; report written "
                         f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by onebit {onebit.__version__}")
    page.missing = (["no run.json or metrics.json (onebit train), search.json (onebit search) or results.json "
                     "(onebit experiment run): not a onebit run folder"] if kind is None else []) + folder.missing
    if kind == "train":
        from onebit.report.train_run import train_sections

        train_sections(page, root, data=data, latency_s=latency_s)
    elif kind == "search":
        from onebit.report.search_run import search_sections

        search_sections(page, root, data=data, latency_s=latency_s)
    elif kind == "experiment":
        from onebit.report.experiment_run import experiment_sections

        experiment_sections(page, root)
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != REPORT_FILE]
    s = page.section("Files", ident="files")
    s.add(table(["file", "bytes"], [[str(p.relative_to(root)), p.stat().st_size] for p in files], css_id="files-table",
                tall=True))
    return page.html(), folder


def write_report(run_dir: str | os.PathLike, output: str | os.PathLike | None = None, *, partial: bool = False,
                 data: Any = None, latency_s: float = 0.15) -> Path:
    """Write the report of ``run_dir`` to ``output`` (default ``run_dir/report.html``); returns its path."""
    from onebit.atomic import atomic_write_text

    text, folder = render_report(run_dir, partial=partial, data=data, latency_s=latency_s)
    path = Path(output) if output is not None else folder.path / REPORT_FILE
    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder; give the report's file name (e.g. {path / REPORT_FILE})")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


def _title(root: Path, kind: str | None) -> str:
    if kind == "train":
        run, _ = read_json(root / "run.json")
        metrics, _ = read_json(root / "metrics.json")
        both = {**(metrics or {}), **(run or {})}
        return f"onebit training run: {both.get('model', '?')} on {both.get('data', '?')}"
    if kind == "search":
        record, _ = read_json(root / "search.json")
        record = record or {}
        return f"onebit width search: {record.get('model', '?')} on {record.get('data', '?')}"
    if kind == "experiment":
        results, _ = read_json(root / "results.json")
        return f"onebit experiment: {(results or {}).get('experiment', '?')}"
    return f"onebit report: {root.name}"
