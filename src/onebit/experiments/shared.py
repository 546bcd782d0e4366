"""Where the experiments find the real data of ``../shared/data`` (the MNIST test set, rated sentences).

A source checkout has it beside the repository (``<repo>/../shared/data``, as CI does);
``ONEBIT_SHARED_DATA`` names another folder. An installed package has neither: the
experiments that use it then leave that part out and say so in their notes.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SHARED_DATA_ENV", "shared_data"]

SHARED_DATA_ENV = "ONEBIT_SHARED_DATA"


def shared_data(name: str) -> Path | None:
    """The folder ``name`` of the shared data (``mnist-t10k``, ``vader-sentences``), or None where absent."""
    roots = [Path(os.environ[SHARED_DATA_ENV])] if os.environ.get(SHARED_DATA_ENV) else []
    roots.append(Path(__file__).resolve().parents[3].parent / "shared" / "data")  # src/onebit/experiments/ → repo
    for root in roots:
        if (root / name).is_dir():
            return root / name
    return None
