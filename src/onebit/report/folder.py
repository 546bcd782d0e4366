"""Which kind of run a folder holds, and what it lacks.

Three commands write run folders:

- ``onebit train``: ``run.json`` (settings, written first), ``metrics.json`` (rewritten
  every epoch; ``"finished": true`` once the best weights were tested),
  ``checkpoint.safetensors``, ``model.onebit`` (written after training), ``curves.png``;
  a two-stage or distilled run also holds sub-runs (``stage1/``, ``teacher/``).
- ``onebit search``: ``search.json`` (``"status": "done"`` at the end), ``pareto.png``,
  ``winner/`` (a training run of the winning widths).
- ``onebit experiment run``: ``results.json`` (written last) and the PNG plots it names.

:func:`inspect_run` names the kind and every missing or unfinished part; a report of a
folder with missing parts needs ``partial=True``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onebit.errors import ConfigError, MissingFileError

__all__ = ["RunFolder", "inspect_run", "read_json"]

KINDS = ("train", "search", "experiment")


@dataclass
class RunFolder:
    """A run folder: its kind (``train``, ``search``, ``experiment``, or None when no run file is
    there) and the parts it lacks, each a short phrase."""

    path: Path
    kind: str | None
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.kind is not None and not self.missing

    def problem(self) -> str:
        """One line: what is wrong with the folder (empty when it is complete)."""
        if self.kind is None:
            return (f"{self.path} is not a onebit run folder: no run.json or metrics.json (onebit train), "
                    f"search.json (onebit search) or results.json (onebit experiment run); "
                    f"--partial renders what is there")
        if not self.missing:
            return ""
        what = {"train": "training run", "search": "search", "experiment": "experiment"}[self.kind]
        return f"{self.path} is an incomplete {what}: {'; '.join(self.missing)}; --partial renders what is there"


def read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in ``path``, None), or (None, why it cannot be read)."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{path.name} is unreadable ({str(exc).splitlines()[0][:80]})"
    if not isinstance(value, dict):
        return None, f"{path.name} is not a JSON object"
    return value, None


def _train_missing(root: Path) -> list[str]:
    missing = []
    run, err = read_json(root / "run.json")
    if err and (root / "run.json").exists():
        missing.append(err)
    metrics, err = read_json(root / "metrics.json")
    if err:
        missing.append(err + " (no epoch finished)" if err.startswith("no ") else err)
    elif not metrics.get("finished"):
        done = len(metrics.get("history") or [])
        planned = metrics.get("epochs")
        missing.append(f"training did not finish (metrics.json has {done}"
                       + (f" of {planned}" if planned else "") + " epochs, no test accuracy)")
    for name, what in (("checkpoint.safetensors", "no checkpoint.safetensors (the best weights)"),
                       ("model.onebit", "no model.onebit (the exported model)")):
        if not (root / name).is_file():
            missing.append(what)
    return missing


def _search_missing(root: Path) -> list[str]:
    record, err = read_json(root / "search.json")
    if err:
        return [err]
    missing = []
    if record.get("status") != "done":
        evo = record.get("evolution") or {}
        missing.append(f"the search did not finish (status {record.get('status')!r}, "
                       f"{len(evo.get('candidates') or [])} evolution candidates scored)")
    if not (root / "winner" / "model.onebit").is_file():
        missing.append("no winner/model.onebit (the retrained winner)")
    return missing


def _experiment_missing(root: Path) -> list[str]:
    results, err = read_json(root / "results.json")
    if err:
        return [err]
    return [f"no {p} (a plot results.json names)" for p in results.get("plots", []) if not (root / str(p)).is_file()]


def inspect_run(run_dir: str | Path) -> RunFolder:
    """The kind of run in ``run_dir`` and what it lacks; an absent path raises MissingFileError."""
    root = Path(run_dir)
    if not root.exists():
        raise MissingFileError(f"run folder not found: {root}")
    if not root.is_dir():
        raise ConfigError(f"{root} is a file, not a run folder (give the folder that holds metrics.json, "
                          f"search.json or results.json)")
    results, _ = read_json(root / "results.json")
    if results is not None and "experiment" in results:  # other commands (transfer, federated) write one too
        return RunFolder(root, "experiment", _experiment_missing(root))
    if (root / "search.json").is_file():
        return RunFolder(root, "search", _search_missing(root))
    if (root / "run.json").is_file() or (root / "metrics.json").is_file():
        return RunFolder(root, "train", _train_missing(root))
    return RunFolder(root, None, [])
