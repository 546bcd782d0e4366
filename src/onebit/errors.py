"""The exceptions onebit raises on bad input: one base class, one subclass per area.

Each subclasses ``ValueError`` (or ``FileNotFoundError`` for missing files) too, so
code written against the standard exceptions keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OnebitError(Exception):
    """Base class of every error onebit raises about its input."""


class ConfigError(OnebitError, ValueError):
    """An argument, name or option that is not one of the valid choices."""


class DataError(OnebitError, ValueError):
    """A data set that cannot be found, read or used as given."""


class CheckpointError(OnebitError, ValueError):
    """A checkpoint or model file that is missing, malformed or inconsistent."""


class MissingFileError(OnebitError, FileNotFoundError):
    """A path that does not exist."""


def unknown_choice(
    kind: str, name: object, choices: Iterable[str], *, suggest_from: Iterable[str] | None = None
) -> ConfigError:
    """The error for a name that is not among ``choices``: names both, and the closest choice.

    ``did you mean 'binarynet_mlp'?`` comes from :func:`difflib.get_close_matches` over
    ``suggest_from`` (default: ``choices``), so a typo costs one look at the message.
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), sorted(suggest_from or choices), n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; valid choices: {', '.join(choices)}")


class ModelFileError(OnebitError, ValueError):
    """A ``.onebit`` model file that is truncated, corrupted or inconsistent."""


class InputError(OnebitError, ValueError):
    """An input array the runtime cannot run (wrong shape, dtype, or non-finite values)."""


class ExportError(OnebitError, ValueError):
    """A model (or layer) the exporter cannot turn into a ``.onebit`` file."""
