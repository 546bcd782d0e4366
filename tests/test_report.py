"""The run report (onebit.report, `onebit report`): written at the end of `onebit train`, self-contained,
its tables equal to metrics.json and to the engine's own predictions, rendered by a real browser
(Debian's chromium, headless), and one clear line for a folder that is not a (finished) run."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from onebit.cli import main
from onebit.errors import ConfigError, MissingFileError
from onebit.report import inspect_run, render_report, write_report


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny finished training run (tfc on digits, 2 epochs); its report.html comes from the train hook."""
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", "--model", "tfc", "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    return out


class _Page(HTMLParser):
    """Every tag's attributes, every table (by id) as rows of cell texts, the <style> text."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.style = ""
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id") or f"table{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_style:
            self.style += data


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _number(cell: str) -> float:
    """A cell's number: "97.50 %" → 0.975, "1,293" → 1293.0."""
    cell = cell.replace(",", "")
    return float(cell[:-1].strip()) / 100 if cell.endswith("%") else float(cell)


def _rows(page: _Page, ident: str) -> dict[str, str]:
    return {r[0]: r[1] for r in page.tables[ident][1:]}


def assert_self_contained(text: str) -> None:
    """Nothing outside the page: every src/href/… is a data: URI or an in-page anchor; no url() but data:."""
    page = _parse(text)
    for tag, key, value in page.attrs:
        if key in ("src", "href", "srcset", "action", "data", "poster", "background", "formaction"):
            assert value.startswith(("data:", "#")), (tag, key, value[:80])
        assert not value.lower().startswith(("http:", "https:", "file:", "//")), (tag, key, value[:80])
    assert not any(tag in ("script", "link", "iframe", "object", "embed") for tag, _, _ in page.attrs)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    for url in re.findall(r"url\(([^)]*)\)", page.style):
        assert url.strip("'\" ").startswith("data:"), url
    assert "@import" not in page.style


def test_train_writes_a_self_contained_report(run):
    text = (run / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert_self_contained(text)
    assert text.count("<svg") >= 8  # curves (2), per-class, confusion (2), size, latency (2)
    assert 'id="missing"' not in text and 'class="missing"' not in text  # a finished run: nothing missing


def test_report_tables_equal_metrics_json(run):
    metrics = json.loads((run / "metrics.json").read_text())
    page = _parse((run / "report.html").read_text())

    results = _rows(page, "results-table")
    assert int(results["best epoch"]) == metrics["best_epoch"]
    for label, key in (("best validation accuracy", "best_val_accuracy"), ("test accuracy (PyTorch)", "test_accuracy"),
                       ("test accuracy (onebit.runtime, model.onebit)", "runtime_test_accuracy")):
        assert _number(results[label]) == pytest.approx(metrics[key], abs=5e-5)
    assert int(_number(results["model.onebit bytes"])) == metrics["model_onebit_bytes"] == (run / "model.onebit").stat().st_size

    history = page.tables["history"]
    assert history[0][:7] == ["epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    assert len(history) - 1 == len(metrics["history"]) == 2
    for row, h in zip(history[1:], metrics["history"]):
        assert int(row[0]) == h["epoch"]
        for cell, key in zip(row[1:], ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")):
            assert _number(cell) == pytest.approx(h[key], rel=5e-4, abs=5e-5)

    totals = _rows(page, "summary-totals")
    for key, value in metrics["summary"].items():
        assert _number(totals[key.replace("_", " ")]) == pytest.approx(value, rel=5e-4)
    # The per-layer rows add up to the recorded totals.
    rows = page.tables["summary-rows"]
    col = rows[0].index("binary macs")
    assert sum(_number(r[col]) for r in rows[1:]) == metrics["summary"]["binary_macs"]


def test_confusion_matrices_are_the_recorded_accuracies(run):
    """The report's own test-set predictions: PyTorch's equal metrics.json's test accuracy, the engine's
    the runtime accuracy the training recorded, each matrix holding every test sample once."""
    metrics = json.loads((run / "metrics.json").read_text())
    page = _parse((run / "report.html").read_text())
    for ident, key in (("confusion-torch", "test_accuracy"), ("confusion-engine", "runtime_test_accuracy")):
        m = np.array([[int(c.replace(",", "")) for c in r[1:]] for r in page.tables[ident][1:]])
        assert m.shape == (10, 10) and m.sum() == 360
        assert np.trace(m) / m.sum() == pytest.approx(metrics[key], abs=1e-12)
    per_class = page.tables["per-class"]
    assert per_class[-1][0] == "all"
    assert _number(per_class[-1][3]) == pytest.approx(metrics["test_accuracy"], abs=5e-5)
    assert _number(per_class[-1][4]) == pytest.approx(metrics["runtime_test_accuracy"], abs=5e-5)
    layers = page.tables["export-layers"]
    assert [r[2] for r in layers[1:]].count("binary") >= 1 and layers[1][2] != "binary"  # first layer: float input
    assert page.tables["latency-engine"][0][0] == "engine layer" and len(page.tables["latency-engine"]) > 2


def test_report_renders_in_chromium(run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): the browser check needs it")
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,2000", (run / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (2000, 1280)
    dark = (image < 128).mean()  # text, rules, plot lines
    assert 0.005 < dark < 0.5, dark
    assert len(np.unique(image)) > 32  # anti-aliased text and images, not a flat page


def _half_written(run: Path, target: Path) -> Path:
    """What a run killed during its second epoch leaves: run.json, the best checkpoint so far,
    train_state.pt, and metrics.json as rewritten after the first epoch (no "finished", no test)."""
    target.mkdir()
    for name in ("run.json", "checkpoint.safetensors", "last.safetensors"):
        shutil.copy(run / name, target / name)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["history"] = metrics["history"][:1]
    for key in ("finished", "runtime_test_accuracy", "model_onebit_bytes"):
        metrics.pop(key)
    metrics["test_accuracy"] = metrics["test_loss"] = None
    (target / "metrics.json").write_text(json.dumps(metrics))
    return target


def test_half_written_run_names_what_is_missing(run, tmp_path, capsys):
    half = _half_written(run, tmp_path / "half")
    assert inspect_run(half).missing == ["training did not finish (metrics.json has 1 of 2 epochs, no test accuracy)",
                                         "no model.onebit (the exported model)"]
    capsys.readouterr()
    assert main(["report", str(half)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "training did not finish" in err and "no model.onebit" in err and "--partial" in err
    assert not (half / "report.html").exists()

    assert main(["report", str(half), "--partial", "-o", str(tmp_path / "partial.html"), "--latency-seconds", "0"]) == 0
    text = (tmp_path / "partial.html").read_text()
    assert_self_contained(text)
    page = _parse(text)
    assert 'id="missing"' in text and "training did not finish" in text
    assert len(page.tables["history"]) == 2  # the one finished epoch
    assert "confusion-torch" in page.tables and "confusion-engine" not in page.tables  # no model.onebit yet


def test_not_a_run_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a onebit run folder" in err and "run.json" in err and "--partial" in err
    assert main(["report", str(tmp_path), "--partial"]) == 0
    text = (tmp_path / "report.html").read_text()
    assert "not a onebit run folder" in text and "notes.txt" in text
    with pytest.raises(MissingFileError, match="run folder not found"):
        write_report(tmp_path / "absent")
    with pytest.raises(ConfigError, match="is a file, not a run folder"):
        write_report(tmp_path / "notes.txt")
    with pytest.raises(ConfigError, match="is not a onebit run folder"):
        render_report(tmp_path)


def test_damaged_metrics_json_is_named(run, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    (damaged / "metrics.json").write_text('{"history": [')
    assert "metrics.json is unreadable" in inspect_run(damaged).problem()
    text, folder = render_report(damaged, partial=True, latency_s=0)
    assert "metrics.json is unreadable" in text and folder.kind == "train"


def test_experiment_report(run, tmp_path, monkeypatch):
    """An experiment folder (results.json through the real registry) gets its claims, tables and plots."""
    from onebit.experiments import Claim, register_experiment, run_experiment, table
    from onebit.experiments import registry

    registry.list_experiments()  # the built-ins register now, into the registry that outlives this test
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    metrics = json.loads((run / "metrics.json").read_text())

    @register_experiment("report_probe", paper="onebit (this repository)", title="the fixture run's accuracy")
    def probe(out_dir, quick, seeds):
        """The fixture run's accuracies as claims, its validation curve as the plot."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([h["val_accuracy"] for h in metrics["history"]])
        fig.savefig(out_dir / "val.png")
        plt.close(fig)
        same = metrics["runtime_test_accuracy"] == metrics["test_accuracy"]
        return {"claims": [Claim("engine accuracy equals PyTorch's", metrics["runtime_test_accuracy"],
                                 metrics["test_accuracy"], "", same),
                           Claim("two epochs reach 99 %", metrics["test_accuracy"], 0.99, "", False),
                           Claim("undecidable here", 1.0)],
                "tables": {"epochs": table(["epoch", "val"], [[h["epoch"], h["val_accuracy"]]
                                                              for h in metrics["history"]], "per epoch")},
                "plots": ["val.png"]}

    assert main(["experiment", "run", "report_probe", "--quick", "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.html").is_file()  # written at the end of the run, as for train
    assert main(["experiment", "run", "report_probe", "--quick", "--no-report", "--out", str(tmp_path / "no")]) == 0
    assert not (tmp_path / "no" / "report.html").exists()
    out = tmp_path / "exp"
    results = run_experiment("report_probe", out, quick=True)
    assert inspect_run(out).complete
    path = write_report(out)
    text = path.read_text()
    assert_self_contained(text)
    page = _parse(text)
    claims = page.tables["claims-table"]
    verdict = {True: "holds", False: "does not hold", None: "undecided"}
    assert [r[0] for r in claims[1:]] == [c["claim"] for c in results["claims"]]
    assert [r[4] for r in claims[1:]] == [verdict[c["holds"]] for c in results["claims"]]
    assert base64.b64encode((out / "val.png").read_bytes()).decode() in text
    assert "A --quick run" in text
    (out / "val.png").unlink()
    assert inspect_run(out).missing == ["no val.png (a plot results.json names)"]



def test_search_report(tmp_path):
    """A real (tiny) width search: its settings, every candidate, the charts and the retrained winner."""
    out = tmp_path / "search"
    assert main(["search", "--model", "binarynet_cnn", "-M", "channels=[8,16,32]", "-M", "hidden=32", "--data",
                 "digits", "--population", "2", "--generations", "1", "--proxy-epochs", "1", "--epochs", "1",
                 "--no-random-search", "--out", str(out), "--json"]) == 0
    assert (out / "report.html").is_file()  # written at the end of the search
    record = json.loads((out / "search.json").read_text())
    assert inspect_run(out).complete
    text = write_report(out, latency_s=0).read_text()
    assert_self_contained(text)
    page = _parse(text)
    candidates = page.tables["candidates-table"][1:]
    expected = record["references"] + record["evolution"]["candidates"]
    assert [int(r[0]) for r in candidates] == [c["id"] for c in expected]
    assert [_number(r[7]) for r in candidates] == pytest.approx([c["proxy_accuracy"] for c in expected], abs=5e-4)
    winner = json.loads((out / "winner" / "metrics.json").read_text())
    results = _rows(page, "winner-results-table")
    assert _number(results["test accuracy (PyTorch)"]) == pytest.approx(winner["test_accuracy"], abs=5e-5)
    m = np.array([[int(c.replace(",", "")) for c in r[1:]] for r in page.tables["winner-confusion-engine"][1:]])
    assert np.trace(m) / m.sum() == pytest.approx(winner["runtime_test_accuracy"], abs=1e-12)
    assert text.count("<svg") >= 5  # per generation; the winner's curves (2), per-class, confusion (2), size

    (out / "winner" / "model.onebit").unlink()
    assert inspect_run(out).missing == ["no winner/model.onebit (the retrained winner)"]


def test_a_failing_report_never_fails_the_training(tmp_path, monkeypatch, caplog):
    """The end-of-training hook: whatever the report raises becomes one warning line."""
    import onebit.report
    from onebit.cli import _write_run_report

    def broken(*args, **kwargs):
        raise RuntimeError("disk full\nsecond line")

    monkeypatch.setattr(onebit.report, "write_report", broken)
    with caplog.at_level("WARNING", logger="onebit.cli"):
        _write_run_report(tmp_path, None)  # returns: no exception
    (record,) = [r for r in caplog.records if r.name == "onebit.cli"]
    assert record.getMessage() == (f"report.html not written (RuntimeError: disk full); try onebit report {tmp_path} "
                                   "--partial")
