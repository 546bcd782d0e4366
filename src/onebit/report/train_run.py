"""The report of an ``onebit train`` run folder: settings, summary, curves, test-set confusion
(PyTorch and engine), file size, per-layer latency and the exporter's placement of each layer.

Everything the folder records is shown as recorded (``run.json``, ``metrics.json``); what it
does not record is measured again here from its files: the test-set predictions of the best
checkpoint and of ``model.onebit`` on the run's data set, the per-layer summary of the
checkpoint's model, which layers the exporter runs binary and why (the checkpoint exported
again to a temporary file: the same graph as ``model.onebit``), and the latency. A part that
cannot be shown (a file absent, the data set unreachable) is named in its section instead.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import OnebitError
from onebit.report import svg
from onebit.report.folder import read_json
from onebit.report.measure import (confusion_matrix, engine_latency, per_class_accuracy, torch_latency,
                                   torch_predictions)
from onebit.report.page import Page, Percent, Section, chart, png, table

__all__ = ["SUMMARY_COLUMNS", "train_sections"]

log = logging.getLogger(__name__)

# The summary rows' fields in the order shown; fields a newer onebit.summary adds (an energy
# estimate, say) follow them, so the report shows whatever the summary holds.
SUMMARY_COLUMNS = ("name", "kind", "output_shape", "weight_bits", "input_bits", "params", "packed_bytes",
                   "float32_bytes", "binary_macs", "float_macs", "float_reason")
_HIDDEN = {"binary_params", "low_bit_params", "float_params", "calls"}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _settings_rows(run: dict[str, Any], metrics: dict[str, Any]) -> list[list[Any]]:
    both = {**metrics, **run}
    recipe = run.get("recipe") if isinstance(run.get("recipe"), dict) else metrics.get("recipe_settings") or {}
    rows: list[list[Any]] = [["model", both.get("model")], ["model arguments", both.get("model_args") or {}],
                             ["data", both.get("data")]]
    if metrics.get("data_name") and metrics.get("data_name") != both.get("data"):
        rows.append(["data set name", metrics["data_name"]])
    for key in ("split", "seed", "val_fraction", "train_size", "val_size", "teacher", "procedure"):
        if both.get(key) is not None:
            rows.append([key.replace("_", " "), both[key]])
    for key, value in recipe.items():
        if key != "model_args":
            rows.append([f"recipe: {key.replace('_', ' ')}", value])
    return rows


def _results_rows(metrics: dict[str, Any], engine_acc: float | None, agreement: float | None) -> list[list[Any]]:
    rows = []
    for key, label in (("best_epoch", "best epoch"), ("best_val_accuracy", "best validation accuracy"),
                       ("test_accuracy", "test accuracy (PyTorch)"), ("test_loss", "test loss (PyTorch)"),
                       ("runtime_test_accuracy", "test accuracy (onebit.runtime, model.onebit)"),
                       ("model_onebit_bytes", "model.onebit bytes")):
        if key in metrics:
            value = metrics[key]
            rows.append([label, Percent(value) if "accuracy" in key and isinstance(value, float) else value])
    if engine_acc is not None and "runtime_test_accuracy" not in metrics:
        rows.append(["test accuracy (onebit.runtime, measured by this report)", Percent(engine_acc)])
    if agreement is not None:
        rows.append(["same prediction, engine vs PyTorch (measured by this report)", Percent(agreement)])
    return rows


def _history_table(history: list[dict[str, Any]], k: str = "") -> str:
    cols = ["epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    rows = [[Percent(h[c]) if c.endswith("accuracy") and isinstance(h.get(c), float) else h.get(c) for c in cols]
            for h in history]
    return table(cols, rows, css_id=f"{k}history", tall=True,
                 caption="metrics.json, one row per finished epoch")


def _summary_section(s: Section, model: Any, in_shape: tuple[int, ...] | None, metrics: dict[str, Any],
                     k: str = "") -> None:
    recorded = metrics.get("summary")
    energy, energy_line = None, ""
    if model is not None and in_shape is not None:
        table_, energy, energy_line = _summary_of(model, in_shape)
        d = table_.to_dict()
        rows = d["rows"]
        extra = [key for r in rows for key in r if key not in SUMMARY_COLUMNS and key not in _HIDDEN]
        cols = list(SUMMARY_COLUMNS) + list(dict.fromkeys(extra))
        if energy:  # the estimate's per-layer nJ per inference, this model and its float twin
            rows = [{**r, "energy_nJ": e, "float_twin_nJ": f} for r, e, f in zip(rows, *energy)]
            cols += ["energy_nJ", "float_twin_nJ"]
        shape = lambda v: "×".join(map(str, v)) if isinstance(v, (list, tuple)) else v  # noqa: E731
        s.add(table([c.replace("_", " ") for c in cols],
                    [[shape(r.get(c)) if c.endswith("shape") else r.get(c) for c in cols] for r in rows],
                    css_id=f"{k}summary-rows", caption=f"onebit.summary of the checkpoint's model, input {in_shape}, "
                                                   "batch 1"))
        totals = d["totals"]
    else:
        s.text("The per-layer table needs the checkpoint and the input shape; the totals recorded at the start of "
               "the run follow.", "note")
        totals = recorded
    if energy_line:
        s.text(energy_line)
    if totals:
        s.add(table(["total", "value"], [[n.replace("_", " "), v] for n, v in totals.items()], css_id=f"{k}summary-totals",
                    caption="totals (metrics.json records them as 'summary' when the run starts)"))


def _summary_of(model: Any, in_shape: tuple[int, ...]) -> tuple[Any, tuple[list[float], list[float]] | None, str]:
    """``onebit.summary`` of the model, with the energy estimate where this onebit's summary offers
    one (``summary(..., energy=True)``, :mod:`onebit.energy`): (the Summary, (nJ per layer, the float
    twin's nJ per layer) or None, a sentence with the totals or "")."""
    import inspect

    from onebit.model_summary import summary

    if "energy" not in inspect.signature(summary).parameters:
        return summary(model, in_shape), None, ""
    result = summary(model, in_shape, energy=True)
    try:
        ours, twin = result.energy, result.float_energy
        per = lambda e: [r.total_pj / 1e3 / result.batch_size for r in e.rows]  # noqa: E731
        line = (f"Estimated energy per inference: {ours.per_inference_pj / 1e3:,.1f} nJ, the float twin "
                f"{twin.per_inference_pj / 1e3:,.1f} nJ ({twin.per_inference_pj / ours.per_inference_pj:.1f}×): "
                "operations and compulsory memory traffic priced per operation (onebit.energy; docs/energy.md).")
        return result, (per(ours), per(twin)), line
    except (AttributeError, TypeError, ZeroDivisionError):  # an estimate shaped otherwise: the table without it
        return result, None, ""


def _export_layers(model: Any, example: np.ndarray) -> tuple[list[dict[str, Any]], float, int]:
    """The exporter's per-layer report for ``model``: exported to a temporary file."""
    import logging

    from onebit.export import export

    quiet = logging.getLogger("onebit.export")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its "exporting <temporary file>" line would only puzzle the reader
    try:
        with tempfile.TemporaryDirectory() as tmp:
            d = export(model, Path(tmp) / "report.onebit", example).to_dict()
    finally:
        quiet.setLevel(level)
    return d["layers"], d["max_abs_diff"], d["float32_state_bytes"]


def _curves(history: list[dict[str, Any]], best_epoch: int | None, loss_name: str = "loss") -> list[str]:
    """Loss and accuracy per epoch (training and validation), a dotted line at the best epoch."""
    epochs = [h["epoch"] for h in history]
    best = (best_epoch, f"best epoch ({best_epoch})") if best_epoch else None
    loss = svg.line_chart({"train": (epochs, [h["train_loss"] for h in history]),
                           "validation": (epochs, [h["val_loss"] for h in history])},
                          title="Loss", xlabel="epoch", ylabel=loss_name, vline=best, markers=len(epochs) <= 3)
    acc = svg.line_chart({"train": (epochs, [100 * h["train_accuracy"] for h in history]),
                          "validation": (epochs, [100 * h["val_accuracy"] for h in history])},
                         title="Accuracy", xlabel="epoch", ylabel="accuracy (%)", vline=best, markers=len(epochs) <= 3)
    return [loss, acc]


def _class_names(data: Any, n: int) -> list[str]:
    names = list(getattr(data, "class_names", ()) or ())
    return names if len(names) == n else [str(i) for i in range(n)]


def train_sections(page: Page, root: Path, *, data: Any = None, title_prefix: str = "", id_prefix: str = "",
                   latency_s: float = 0.15) -> dict[str, Any]:
    """Add the sections of the training run in ``root`` to ``page``; returns what was measured.

    ``title_prefix``/``id_prefix`` start every heading and element id (a search's winner)."""
    run, _ = read_json(root / "run.json")
    metrics, _ = read_json(root / "metrics.json")
    run, metrics = run or {}, metrics or {}
    measured: dict[str, Any] = {}
    p, k = title_prefix, id_prefix

    s = page.section(f"{p}Model, data and settings", ident=f"{k}settings")
    if run or metrics:
        s.add(table(["setting", "value"], _settings_rows(run, metrics), css_id=f"{k}settings-table", align=False))
    else:
        s.text("Neither run.json nor metrics.json is readable: the settings are unknown.", "missing")

    # The model (best checkpoint) and the test set.
    model, meta, model_note = None, {}, ""
    ckpt = root / "checkpoint.safetensors"
    if ckpt.is_file():
        try:
            from onebit.checkpoint import load_checkpoint

            model, meta = load_checkpoint(ckpt)
        except (OnebitError, ImportError) as exc:
            model_note = f"checkpoint.safetensors cannot be loaded: {_one_line(exc)}"
    else:
        model_note = "no checkpoint.safetensors"
    spec = run.get("data", metrics.get("data"))
    data_note = ""
    if data is None and spec is not None:
        try:
            from onebit.data import load_dataset

            split = run.get("split", metrics.get("split"))
            data = load_dataset(spec, seed=int(run.get("seed", metrics.get("seed", 0)) or 0),
                                split=tuple(split) if split else None)
        except (OnebitError, ImportError, OSError) as exc:
            data_note = f"the test set ({spec}) cannot be loaded here: {_one_line(exc)}"
    elif data is None:
        data_note = "the run records no data set"
    in_shape = tuple(meta.get("model", {}).get("args", {}).get("in_shape") or ()) or (
        tuple(data.in_shape) if data is not None else None)

    # Results.
    onebit_path = root / "model.onebit"
    engine_pred = torch_pred = None
    if data is not None and model is not None:
        try:
            threads = metrics.get("threads", (run.get("recipe") or {}).get("threads"))
            torch_pred = torch_predictions(model, data.x_test, threads=threads if isinstance(threads, int) else None)
        except Exception as exc:  # a checkpoint whose model does not run on this data: shown, not fatal
            model_note = f"the checkpoint's model does not run on the test set: {_one_line(exc)}"
            log.warning("report: %s", model_note)
    if data is not None and onebit_path.is_file():
        try:
            from onebit.runtime import load

            engine = load(onebit_path, num_threads=1)
            if not engine.out_bits:
                engine_pred = engine.predict(np.asarray(data.x_test, dtype=np.float32))
        except Exception as exc:  # a file this build of the engine cannot run: the rest of the report stands
            page.missing.append(f"model.onebit cannot be run here: {_one_line(exc)}")
            log.warning("report: model.onebit cannot be run here: %s", _one_line(exc))
    engine_acc = None if engine_pred is None else float((engine_pred == data.y_test).mean())
    agreement = None if engine_pred is None or torch_pred is None else float((engine_pred == torch_pred).mean())
    measured.update(engine_test_accuracy=engine_acc, agreement=agreement,
                    torch_test_accuracy=None if torch_pred is None else float((torch_pred == data.y_test).mean()))

    s = page.section(f"{p}Results", ident=f"{k}results")
    rows = _results_rows(metrics, engine_acc, agreement)
    if rows:
        s.add(table(["result", "value"], rows, css_id=f"{k}results-table"))
    if not metrics.get("finished"):
        s.text("Training did not finish: no test accuracy was recorded; the checkpoint is the best epoch so far.",
               "missing")

    s = page.section(f"{p}onebit.summary", ident=f"{k}summary")
    try:
        _summary_section(s, model, in_shape, metrics, k)
    except Exception as exc:  # a model the summary cannot walk: say so, keep the rest of the report
        s.text(f"onebit.summary failed: {_one_line(exc)}", "missing")

    s = page.section(f"{p}Loss and accuracy", ident=f"{k}curves")
    history = metrics.get("history") or []
    if history:
        loss = {"squared_hinge": "squared hinge"}.get(str(metrics.get("loss")), "cross-entropy")
        s.add(chart(_curves(history, metrics.get("best_epoch"), loss),
                    f"{len(history)} epochs; training loss and accuracy are means over the epoch's batches"))
        s.add(_history_table(history, k))
    elif (root / "curves.png").is_file():
        s.add(png((root / "curves.png").read_bytes(), "curves.png as the run wrote it"))
    else:
        s.text("No epoch finished: no curves.", "missing")

    s = page.section(f"{p}Test set: per-class accuracy and confusion", ident=f"{k}test-set")
    if data is None:
        s.text(data_note, "missing")
    elif torch_pred is None and engine_pred is None:
        s.text(" and ".join(n for n in (model_note, "no model.onebit" if not onebit_path.is_file() else "") if n)
               + ": no predictions to show.", "missing")
    else:
        n = int(data.num_classes)
        names = _class_names(data, n)
        matrices: dict[str, np.ndarray] = {}
        if torch_pred is not None:
            matrices["PyTorch (checkpoint.safetensors)"] = confusion_matrix(data.y_test, torch_pred, n)
        if engine_pred is not None:
            matrices["onebit.runtime (model.onebit)"] = confusion_matrix(data.y_test, engine_pred, n)
        accs = {k.split(" (")[0]: per_class_accuracy(m) for k, m in matrices.items()}
        support = np.bincount(np.asarray(data.y_test, dtype=np.int64), minlength=n)
        cols = ["class", "name", "test samples"] + [f"accuracy, {k}" for k in accs]
        rows = [[i, names[i], int(support[i])] + [Percent(a[i]) for a in accs.values()] for i in range(n)]
        rows.append(["all", "", int(support.sum())] + [Percent(np.trace(m) / max(1, m.sum())) for m in matrices.values()])
        s.text(f"{len(data.y_test):,} test samples of {getattr(data, 'name', spec)}, predicted on this machine by "
               "the best checkpoint in PyTorch and by model.onebit in onebit.runtime.")
        s.add(table(cols, rows, css_id=f"{k}per-class"))
        finite = [100 * v for a in accs.values() for v in a if np.isfinite(v)]
        s.add(chart(svg.grouped_bars(names, {k: [100 * float(v) for v in a] for k, a in accs.items()},
                                     title="Per-class accuracy on the test set", ylabel="test accuracy (%)",
                                     ymin=max(0.0, min(finite, default=0.0) - 5), ymax=100.0)))
        s.add(chart([svg.heatmap(m.tolist(), names, title=label) for label, m in matrices.items()],
                    "rows: true class; columns: predicted class"))
        for label, m in matrices.items():
            s.add(table(["true \\ predicted"] + names, [[names[i]] + [int(v) for v in m[i]] for i in range(n)],
                        caption=f"confusion matrix, {label}",
                        css_id=f"{k}confusion-{'engine' if 'runtime' in label else 'torch'}"))
        for note in (model_note, "" if onebit_path.is_file() else "no model.onebit: the engine's side is absent"):
            if note:
                s.text(note, "missing")

    # Export: file size and the layers' placement.
    s = page.section(f"{p}Exported file size", ident=f"{k}size")
    layers: list[dict[str, Any]] = []
    float32_bytes = None
    export_note = ""
    if model is not None:
        example = (np.asarray(data.x_test[:64], dtype=np.float32) if data is not None else
                   np.random.default_rng(0).standard_normal((8, *in_shape)).astype(np.float32) if in_shape else None)
        if example is not None:
            try:
                layers, max_diff, float32_bytes = _export_layers(model, example)
                measured["export_max_abs_diff"] = max_diff
            except OnebitError as exc:
                export_note = f"the exporter refuses this model: {_one_line(exc)}"
            except Exception as exc:  # noqa: BLE001 - shown on the page, the rest of the report stands
                export_note = f"the exporter failed here: {_one_line(exc)}"
                log.warning("report: %s", export_note)
    if onebit_path.is_file():
        size = onebit_path.stat().st_size
        labels, values = ["model.onebit"], [size]
        rows = [["model.onebit (packed weights, BatchNorm folded into thresholds)", size, 1.0]]
        if float32_bytes:
            labels.append("float32 state dict")
            values.append(float32_bytes)
            rows.append(["float32 state dict (every float tensor of the checkpoint's model at 4 bytes)",
                         float32_bytes, float32_bytes / size])
        if ckpt.is_file():
            labels.append("checkpoint.safetensors")
            values.append(ckpt.stat().st_size)
            rows.append(["checkpoint.safetensors (float latent weights, for training)", ckpt.stat().st_size,
                         ckpt.stat().st_size / size])
        s.add(table(["file", "bytes", "× model.onebit"], rows, css_id=f"{k}sizes"))
        s.add(chart(svg.hbars(labels, values, title="Exported model against float32", xlabel="bytes",
                              colour=list(svg.PALETTE[:3]))))
        measured["model_onebit_bytes"] = size
    else:
        s.text("No model.onebit: nothing exported yet (training unfinished, or the exporter refused the model).",
               "missing")

    s = page.section(f"{p}Which layers run binary, and why", ident=f"{k}binary-layers")
    if layers:
        s.text("The exporter's report (onebit.export) for the best checkpoint: a layer with 1-bit input and weights "
               "runs as XNOR-popcount; a first layer with float input keeps ±1 weights at 1 bit on a float kernel; "
               "the rest stays float.")
        types = {name: type(m).__name__ for name, m in model.named_modules()}
        s.add(table(["layer", "module", "runs as", "why"],
                    [[l["name"], types.get(l["name"], ""), l["kind"], l["reason"]] for l in layers],
                    css_id=f"{k}export-layers"))
        n_bin = sum(1 for l in layers if l["kind"] == "binary")
        s.text(f"{n_bin} of {len(layers)} weighted layers run binary.")
    else:
        s.text(export_note or model_note or "The exporter's report needs the checkpoint.", "missing")

    s = page.section(f"{p}Latency per layer on this machine", ident=f"{k}latency")
    if latency_s > 0 and onebit_path.is_file() and in_shape:
        try:
            _latency_section(s, onebit_path, meta, data, in_shape, measured, k, latency_s)
        except Exception as exc:  # noqa: BLE001 - shown on the page, the rest of the report stands
            s.text(f"latency not measured: {_one_line(exc)}", "missing")
            log.warning("report: latency not measured: %s", _one_line(exc))
    elif latency_s <= 0:
        s.text("latency not measured (asked not to).", "muted")
    else:
        s.text("latency needs model.onebit" + ("" if in_shape else " and the model's input shape"), "missing")

    subruns = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "metrics.json").is_file()]
    for sub in subruns:
        sm, _ = read_json(sub / "metrics.json")
        s = page.section(f"{p}Sub-run {sub.name}/", ident=f"{k}subrun-{sub.name}")
        rows = _results_rows(sm or {}, None, None)
        if rows:
            s.add(table(["result", "value"], rows))
        if sm and sm.get("history"):
            s.add(chart(_curves(sm["history"], sm.get("best_epoch")), f"{sub.name}/metrics.json"))
    return measured


def _latency_section(s: Section, path: Path, meta: dict[str, Any], data: Any, in_shape: tuple[int, ...],
                     measured: dict[str, Any], k: str = "", budget_s: float = 0.15) -> None:
    from onebit import _core
    from onebit.bench import cpu_name, float_twin

    x = (np.asarray(data.x_test[:1], dtype=np.float32) if data is not None
         else np.random.default_rng(0).standard_normal((1, *in_shape)).astype(np.float32))
    eng = engine_latency(path, x, budget_s=budget_s)
    twin = None
    source = meta.get("model") or {}
    if source.get("name"):
        try:
            twin = float_twin(source["name"], **dict(source.get("args", {})))
        except OnebitError:
            twin = None
    ref = torch_latency(twin, x, budget_s=budget_s) if twin is not None else None
    s.text(f"One input (batch 1), one thread on each side, {cpu_name()}, engine ISA {_core.selected_isa()}; "
           f"per-layer times are means over profiled calls (timer around each layer), whole-model times medians of "
           f"{eng.calls} unprofiled calls; the timer around each layer adds its own overhead to the per-layer sums "
           f"(most on PyTorch's side, whose hooks run in Python). The machine may have been shared: compare ratios, "
           f"not absolute times.")
    rows = [["onebit.runtime (model.onebit)", eng.total_ms, eng.layer_sum_ms, len(eng.rows)]]
    if ref is not None:
        rows.append(["PyTorch fp32 (the same architecture with float layers)", ref.total_ms, ref.layer_sum_ms,
                     len(ref.rows)])
    s.add(table(["side", "whole model, ms (median)", "sum of layers, ms", "layers"], rows, css_id=f"{k}latency-totals"))
    if ref is not None and eng.total_ms > 0:
        s.text(f"PyTorch fp32 / onebit: {ref.total_ms / eng.total_ms:.2f}× on this input.")
    measured["latency_ms"] = {"onebit": eng.total_ms, "torch": None if ref is None else ref.total_ms}
    sides = {"onebit.runtime": [(r.name, r.ms) for r in eng.rows]}
    if ref is not None:
        sides["PyTorch fp32"] = [(r.name, r.ms) for r in ref.rows]
    top = max((ms for layers in sides.values() for _, ms in layers), default=1.0) * 1.25
    s.add(chart([svg.hbars([n for n, _ in layers], [ms for _, ms in layers], title=label, xlabel="ms per call",
                           colour=svg.PALETTE[1 - i % 2], fmt="{:.3f}", xmax=top)
                 for i, (label, layers) in enumerate(sides.items())],
                "milliseconds per call of each layer, one scale for both (fused layers count once)"))
    total = eng.layer_sum_ms or 1.0
    s.add(table(["engine layer", "kind", "ms", "share"], [[r.name, r.kind, r.ms, Percent(r.ms / total)] for r in eng.rows],
                css_id=f"{k}latency-engine", caption="onebit.runtime, per layer as loaded (after load-time fusion)"))
    if ref is not None:
        total = ref.layer_sum_ms or 1.0
        s.add(table(["PyTorch module", "type", "ms", "share"], [[r.name, r.kind, r.ms, Percent(r.ms / total)] for r in ref.rows],
                    css_id=f"{k}latency-torch", caption="PyTorch fp32, per leaf module"))
