"""Measured energy from Linux RAPL counters (``/sys/class/powercap``), joules per inference.

RAPL (Running Average Power Limit) exposes, per CPU package, a cumulative energy counter
in microjoules: ``/sys/class/powercap/intel-rapl:N/energy_uj`` (on AMD Zen processors
recent kernels expose the same ``intel-rapl`` zones), with ``name`` (``package-0``) and
``max_energy_range_uj``, the value at which the counter wraps to zero. :func:`find_zones`
lists the package zones; :func:`measure` reads them around ``calls`` calls of a function
and returns joules per call: ``sum over packages of (after − before) / calls``, where a
counter that went down wrapped once, so its delta is ``after + max_energy_range_uj −
before``. A run long enough to wrap a counter twice (minutes at full power) would be
undercounted: keep measurements short.

What RAPL measures is the whole package (every core, the uncore, and every process on
it), not one program. Where the counters are missing (most VMs and containers) or not
readable (``energy_uj`` is root-only since the 2020 PLATYPUS fix, CVE-2020-8694),
:func:`find_zones` raises :class:`RaplUnavailable` with the reason in one line;
``onebit bench --energy`` then prints the estimate of :mod:`onebit.energy` only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from onebit.errors import OnebitError

__all__ = [
    "POWERCAP", "MeasuredEnergy", "RaplUnavailable", "RaplZone", "counter_delta", "find_zones", "measure",
    "measure_file", "read_counters",
]

POWERCAP = Path("/sys/class/powercap")


class RaplUnavailable(OnebitError, RuntimeError):
    """No readable RAPL package counter on this machine; the message says why."""


@dataclass(frozen=True)
class RaplZone:
    """One package's energy counter: its sysfs folder, name and wrap-around range (µJ)."""

    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        return _read_int(self.path / "energy_uj")


def _read_int(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except PermissionError:
        raise RaplUnavailable(f"{path} is not readable by this user (RAPL counters are root-only on "
                              "recent kernels)") from None
    except OSError as exc:
        raise RaplUnavailable(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        return int(text)
    except ValueError:
        raise RaplUnavailable(f"{path} holds {text[:40]!r}, not an integer count of microjoules") from None


def find_zones(root: str | os.PathLike | None = None) -> list[RaplZone]:
    """The RAPL package zones under ``root`` (default :data:`POWERCAP`): ``intel-rapl:N`` folders
    named ``package-*``, each counter read once to check it is readable; raises
    :class:`RaplUnavailable` when there is none."""
    base = Path(POWERCAP if root is None else root)
    if not base.is_dir():
        raise RaplUnavailable(f"{base} does not exist: this machine (a VM or container?) exposes no RAPL counters")
    zones = []
    for folder in sorted(base.glob("intel-rapl:*")):
        if folder.name.count(":") != 1 or not (folder / "energy_uj").exists():
            continue  # subzones (intel-rapl:0:0, core/uncore/dram) are inside the package's count
        try:
            name = (folder / "name").read_text().strip()
        except OSError:
            continue
        if not name.startswith("package"):
            continue
        zone = RaplZone(folder, name, _read_int(folder / "max_energy_range_uj"))
        zone.read_uj()
        zones.append(zone)
    if not zones:
        raise RaplUnavailable(f"{base} holds no RAPL package zone (intel-rapl:N named package-N)")
    return zones


def read_counters(zones: list[RaplZone]) -> list[int]:
    """Each zone's counter now, in µJ."""
    return [z.read_uj() for z in zones]


def counter_delta(before: int, after: int, max_range_uj: int) -> int:
    """µJ between two reads of one counter; a counter that went down wrapped once at ``max_range_uj``."""
    return after - before if after >= before else after + max_range_uj - before


def measure(fn: Callable[[], object], calls: int, *, zones: list[RaplZone] | None = None,
            root: str | os.PathLike | None = None, warmup: int = 3) -> tuple[float, float]:
    """(joules per call, seconds per call) of ``fn`` over ``calls`` calls after ``warmup``
    calls, summed over every package zone (whole-package energy, see the module docstring)."""
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise ValueError(f"calls must be a positive int, got {calls!r}")
    zones = zones if zones is not None else find_zones(root)
    for _ in range(warmup):
        fn()
    before = read_counters(zones)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    seconds = time.perf_counter() - start
    after = read_counters(zones)
    micro = sum(counter_delta(b, a, z.max_range_uj) for b, a, z in zip(before, after, zones))
    return micro * 1e-6 / calls, seconds / calls


@dataclass
class MeasuredEnergy:
    """Joules and seconds per inference of a ``.onebit`` file on onebit.runtime and of its PyTorch
    fp32 twin, measured with RAPL (whole-package energy, see the module docstring)."""

    zones: list[str]
    batch_size: int
    calls: int
    threads: int
    onebit_j: float
    onebit_s: float
    torch_j: float | None
    torch_s: float | None

    def to_dict(self) -> dict[str, object]:
        return {"zones": self.zones, "batch_size": self.batch_size, "calls": self.calls, "threads": self.threads,
                "onebit_j_per_inference": self.onebit_j, "onebit_s_per_inference": self.onebit_s,
                "torch_j_per_inference": self.torch_j, "torch_s_per_inference": self.torch_s}

    def line(self) -> str:
        def side(j: float, s: float) -> str:
            return f"{j * 1e3:.3f} mJ per inference ({j / s:.1f} W over {s * 1e3:.3f} ms)"

        text = (f"measured (RAPL {', '.join(self.zones)}, whole package, {self.threads} thread(s), batch "
                f"{self.batch_size}, {self.calls} calls): onebit {side(self.onebit_j, self.onebit_s)}")
        if self.torch_j is not None and self.torch_s is not None:
            text += f"; PyTorch fp32 {side(self.torch_j, self.torch_s)}"
            if self.onebit_j:
                text += f": {self.torch_j / self.onebit_j:.1f}× onebit's"
        return text


def measure_file(path: str | os.PathLike, *, batch_size: int = 1, calls: int = 50, threads: int = 1,
                 root: str | os.PathLike | None = None) -> MeasuredEnergy:
    """RAPL joules per inference of the ``.onebit`` file at ``path`` on onebit.runtime and of the
    same architecture in PyTorch fp32 (:func:`onebit.bench.float_twin`; absent if the file records
    no registered model); raises :class:`RaplUnavailable` where there are no readable counters."""
    import numpy as np

    from onebit.bench import float_twin
    from onebit.runtime import load

    zones = find_zones(root)
    model = load(path, num_threads=threads)
    x = np.random.default_rng(0).standard_normal((batch_size, *model.in_shape)).astype(np.float32)
    onebit_j, onebit_s = measure(lambda: model(x), calls, zones=zones)
    torch_j = torch_s = None
    source = (model.graph.get("source") or {}).get("model")
    if isinstance(source, dict) and "name" in source:
        import torch

        from onebit.train import torch_threads

        twin = float_twin(source["name"], **dict(source.get("args", {})))
        xt = torch.from_numpy(x)

        def run() -> object:
            with torch.no_grad():
                return twin(xt)

        with torch_threads(threads):
            torch_j, torch_s = measure(run, calls, zones=zones)
    n = batch_size
    return MeasuredEnergy([z.name for z in zones], batch_size, calls, threads, onebit_j / n, onebit_s / n,
                          None if torch_j is None else torch_j / n, None if torch_s is None else torch_s / n)
