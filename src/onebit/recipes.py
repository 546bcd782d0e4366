"""Training recipes: the epochs, batch size and learning rate ``onebit train`` uses by default.

A recipe is chosen by (model, data set); ``onebit train`` options override each field.
The numbers are the ones measured to reach the README's accuracies on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3


DEFAULT = Recipe()

# (model, data set name) -> recipe; "*" matches any model or data set.
_RECIPES: dict[tuple[str, str], Recipe] = {
    ("*", "digits"): Recipe(epochs=30, batch_size=64, lr=3e-3),
    ("*", "mnist1d"): Recipe(epochs=40, batch_size=64, lr=3e-3),
}


def recipe_for(model: str, data: str) -> Recipe:
    """The most specific recipe for ``model`` trained on ``data``."""
    for key in ((model, data), (model, "*"), ("*", data)):
        if key in _RECIPES:
            return _RECIPES[key]
    return DEFAULT
