"""onebit: binary neural networks, trained in PyTorch and run bit-packed.

The names below load lazily so that ``import onebit.runtime`` never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "binarize": "onebit.nn",
    "summary": "onebit.model_summary",
    "Summary": "onebit.model_summary",
    "fit": "onebit.train",
    "export_model": "onebit.export",
    "load": "onebit.runtime",
    "evaluate": "onebit.train",
    "create_model": "onebit.models",
    "list_models": "onebit.models",
    "load_dataset": "onebit.data",
    "OnebitError": "onebit.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onebit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
