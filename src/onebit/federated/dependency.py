"""Flower is an optional extra: ``import onebit.federated`` works without it; running a federation needs it.

:func:`require_flower` is called first by every function that needs Flower; without it the
user gets one line saying what to install, not an ImportError from deep inside.
"""

from __future__ import annotations

from onebit.errors import ConfigError

__all__ = ["FLOWER_HINT", "MIN_FLOWER", "flower_available", "require_flower"]

MIN_FLOWER = "1.42"  # the version this code is tested with (Message API, deployment engine over HTTP)
FLOWER_HINT = "pip install 'onebit[federated]'"


def flower_available() -> bool:
    """Whether the ``flwr`` package can be imported."""
    try:
        import flwr  # noqa: F401
    except ImportError:
        return False
    return True


def require_flower() -> str:
    """Flower's version, or a ConfigError saying how to install it (also when it is older than :data:`MIN_FLOWER`)."""
    if not flower_available():
        raise ConfigError(f"federated training needs Flower (flwr), which is not installed: {FLOWER_HINT}")
    from importlib.metadata import version

    installed = version("flwr")
    from packaging.version import Version

    if Version(installed) < Version(MIN_FLOWER):
        raise ConfigError(f"federated training needs Flower ≥ {MIN_FLOWER}, found {installed}: {FLOWER_HINT}")
    return installed
