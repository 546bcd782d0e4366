"""Export a trained onebit PyTorch model to a ``.onebit`` file for :mod:`onebit.runtime`.

``export(model, path, example_input)`` walks the model (see :mod:`onebit.export.graph`),
folds BatchNorm into integer thresholds or a per-channel scale and bias, packs binary
weights at one bit each, writes the graph as JSON in the file's metadata, then loads
the file with the runtime and checks that it reproduces the PyTorch eval forward on
``example_input``. It returns (and logs to the ``onebit.export`` logger; ``verbose=True``
prints) which layers run binary and why. :func:`export_model` (``onebit.export_model``)
is the same function under a name that does not clash with this subpackage.

The check: max |runtime − PyTorch| ≤ 1e-4 · max(1, max |logit|). A float value that lies
within rounding of a sign threshold can binarize differently in two float32 computations
and move the logits far; where the float32 forward fails the check, the forward is run
again in float64, and the runtime passes if it agrees with that (``reference="float64"``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from onebit.errors import ExportError
from onebit.export.graph import LayerReport, capture
from onebit.nn.modes import eval_mode
from onebit.runtime.container import write_container
from onebit.runtime.model import FORMAT, FORMAT_VERSION, META_KEY

__all__ = ["CheckedExport", "ExportReport", "LayerReport", "export", "export_checked", "export_model"]

log = logging.getLogger(__name__)


@dataclass
class ExportReport:
    """What ``export`` wrote: per-layer placement, sizes, and the check against PyTorch."""

    path: Path
    layers: list[LayerReport] = field(default_factory=list)
    file_bytes: int = 0
    float32_state_bytes: int = 0
    max_abs_diff: float = 0.0
    reference: str = "float32"  # the PyTorch forward the runtime matched: float32, or float64 (see above)

    @property
    def compression(self) -> float:
        return self.float32_state_bytes / self.file_bytes if self.file_bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        return {
            "path": str(self.path), "file_bytes": self.file_bytes, "float32_state_bytes": self.float32_state_bytes,
            "compression": self.compression, "max_abs_diff": self.max_abs_diff, "reference": self.reference,
            "layers": [{"name": l.name, "kind": l.kind, "reason": l.reason} for l in self.layers],
        }

    def __str__(self) -> str:
        lines = [f"exported {self.path}: {self.file_bytes:,} bytes on disk (BatchNorm folded into integer thresholds), "
                 f"{self.compression:.1f}× smaller than the float32 state dict ({self.float32_state_bytes:,} bytes)"]
        lines += [f"  {layer}" for layer in self.layers]
        lines.append(f"  runtime vs PyTorch ({self.reference}) on the example input: max |difference| "
                     f"{self.max_abs_diff:.3g}")
        return "\n".join(lines)


def export(
    model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor | np.ndarray, *,
    verbose: bool = False, info: dict[str, Any] | None = None,
) -> ExportReport:
    """Write ``model`` (eval mode is used) to ``path``; ``example_input`` is a batch ``(N, ...)``.

    The file is loaded back with :mod:`onebit.runtime` and checked against the PyTorch
    forward on ``example_input`` (see the module docstring); ``info`` adds JSON fields to
    the graph's ``source`` record. ``verbose=True`` prints the report.
    """
    example = torch.as_tensor(np.asarray(example_input, dtype=np.float32))
    if example.ndim < 2 or len(example) == 0:
        raise ExportError(f"example_input must be a non-empty batch (N, ...), got shape {tuple(example.shape)}")
    log.info("exporting %s and checking it against PyTorch on %d example inputs", path, len(example))
    with eval_mode(model), torch.no_grad():
        try:
            expected = model(example).numpy()
        except Exception as exc:  # the model's own forward failed on the example
            raise ExportError(f"the model's forward fails on example_input {tuple(example.shape)}: {exc}") from None
        nodes, output, tensors, layers, output_bits = capture(model, example)
    graph = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "input": {"name": "input", "shape": list(example.shape[1:]), "dtype": "float32"},
        "output": output, "nodes": nodes, **({"output_bits": output_bits} if output_bits else {}),
        "source": {"model": getattr(model, "onebit_config", None), **(info or {})},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_container(path, tensors, {META_KEY: json.dumps(graph)})

    from onebit.runtime import load

    got = load(path, num_threads=1)(example.numpy(), unpack=output_bits is not None)  # features: ±1 values
    report = ExportReport(
        path=path, layers=layers, file_bytes=path.stat().st_size,
        float32_state_bytes=sum(4 * t.numel() for t in model.state_dict().values() if t.is_floating_point()),
        max_abs_diff=float(np.abs(got - expected).max()),
    )
    scale = max(1.0, float(np.abs(expected).max()))
    if report.max_abs_diff > 1e-4 * scale:
        exact = _float64_forward(model, example)
        if exact is not None and float(np.abs(got - exact).max()) <= 1e-4 * scale:
            report.max_abs_diff, report.reference = float(np.abs(got - exact).max()), "float64"
    if report.max_abs_diff > 1e-4 * scale:
        raise ExportError(
            f"the exported model differs from the PyTorch forward by {report.max_abs_diff:.3g} on the example "
            f"input (tolerance {1e-4 * scale:.3g}); this is a bug in onebit, please report it"
        )
    log.debug("%s", report)
    if verbose:
        print(report)
    return report


export_model = export


def _float64_forward(model: nn.Module, example: torch.Tensor) -> np.ndarray | None:
    """The eval forward of a float64 copy of ``model`` (None where the model does not run in float64)."""
    twin = copy.deepcopy(model).double().eval()
    try:
        with torch.no_grad():
            return twin(example.double()).numpy()
    except Exception:  # a model that hard-codes float32 somewhere: no second opinion
        return None


@dataclass
class CheckedExport:
    """An export plus the test accuracy the runtime reaches with the written file."""

    report: ExportReport
    accuracy: float
    agreement: float  # fraction of test inputs where runtime and PyTorch predict the same class


def export_checked(
    model: nn.Module, path: str | os.PathLike, x_test: np.ndarray, y_test: np.ndarray, *,
    verbose: bool = False, info: dict[str, Any] | None = None,
) -> CheckedExport:
    """Export with the first test inputs as the example, then measure accuracy with the runtime."""
    from onebit.runtime import load

    report = export(model, path, x_test[:256], verbose=verbose, info=info)
    log.info("scoring %s with onebit.runtime on %d test samples", path, len(x_test))
    engine = load(path)
    predicted = engine.predict(np.asarray(x_test, dtype=np.float32))
    with eval_mode(model), torch.no_grad():
        reference = torch.cat([model(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))).argmax(1)
                               for b in np.array_split(x_test, max(1, len(x_test) // 1024))]).numpy()
    return CheckedExport(report, float((predicted == y_test).mean()), float((predicted == reference).mean()))
