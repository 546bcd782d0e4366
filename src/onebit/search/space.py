"""Search spaces of per-layer widths (Shen, Han, Xu and Wang 2019, arXiv:1909.07378).

A binary layer's features are weaker than a float layer's of the same width, so width
search keeps a network's topology and chooses only how many channels each binary layer
gets. A **gene** is one width knob of the network with a base channel count; a
**genome** is one expansion ratio per gene, taken from ``choices`` (the paper's
{0.5, 1, 2, 3, 4}). Gene ``i`` gets ``round_width(ratio_i · base_i)`` channels.

Rounding follows how the engine packs activations: a binary layer reads its input in
words of 64 channels (``ceil(C / 64)`` words per position), so a layer whose output
feeds a binary layer (``Gene.packed``) gets a multiple of 64 channels once it needs more
than one word: ``C > 64`` rounds *up* to the next multiple of 64, since the word is paid
for anyway and its empty bits would carry no feature. Widths of at most one word stay
as they are (one word is the least any layer pays; fewer channels still cut the
layer's own output rows), and genes that feed a float layer are only rounded to an
integer.

A gene may set the width of several layers: ``SearchSpace.layout`` maps each entry of
the builder's ``widths`` argument to the gene it takes. Bi-Real Net-18 has 16 binary
convs but 12 genes, as in the paper's ResNet-18 genomes: per stage one width for the
convs that end a basic block (they share the residual path's width) and one width per
basic block for its first conv.

:func:`search_space` builds the space of a model of the zoo; :func:`searchable_models`
names the models that have per-layer width knobs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from onebit.errors import ConfigError

__all__ = ["DEFAULT_CHOICES", "WORD", "Gene", "SearchSpace", "round_width", "search_space", "searchable_models"]

DEFAULT_CHOICES: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0)  # Shen et al. 2019's expansion ratios
WORD = 64  # channels per packed word of the engine

Genome = tuple[float, ...]


def round_width(channels: float, *, packed: bool = True, word: int = WORD) -> int:
    """Channel count for ``channels`` (a ratio times a base width), rounded as the engine packs.

    ``packed`` (the layer's output is a binary layer's input): above one word, up to a
    multiple of ``word``; at most one word, to the nearest integer (at least 1). Not
    packed: the nearest integer (at least 1).
    """
    if not (isinstance(channels, int | float) and math.isfinite(channels) and channels > 0):
        raise ConfigError(f"a width must be a positive number, got {channels!r}")
    if packed and channels > word:
        return word * math.ceil(channels / word - 1e-9)
    return max(1, round(channels))


@dataclass(frozen=True)
class Gene:
    """One width knob: its name, its base channel count (ratio 1) and whether its output is packed."""

    name: str
    base: int
    packed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base, "packed": self.packed}


@dataclass(frozen=True)
class SearchSpace:
    """The widths a search may give a model: genes, ratio choices, and how a genome becomes a model.

    ``layout[j]`` is the gene whose width the ``j``-th entry of the builder's ``widths``
    argument takes; ``model_args`` are the model's other (fixed) arguments. Picklable and
    JSON-describable (:meth:`to_dict`), so worker processes rebuild candidates from it.
    """

    model: str
    genes: tuple[Gene, ...]
    layout: tuple[int, ...]
    choices: tuple[float, ...] = DEFAULT_CHOICES
    model_args: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    in_shape: tuple[int, ...] | None = None
    word: int = WORD

    def __post_init__(self) -> None:
        if not self.genes:
            raise ConfigError("a search space needs at least one gene")
        if not self.choices or not all(isinstance(c, int | float) and c > 0 for c in self.choices):
            raise ConfigError(f"choices must be positive ratios, got {self.choices!r}")
        if len(set(self.choices)) != len(self.choices):
            raise ConfigError(f"choices must be distinct, got {self.choices!r}")
        if sorted(set(self.layout)) != list(range(len(self.genes))):
            raise ConfigError("layout must use every gene")
        object.__setattr__(self, "choices", tuple(sorted(float(c) for c in self.choices)))

    @property
    def gene_names(self) -> list[str]:
        return [g.name for g in self.genes]

    @property
    def size(self) -> int:
        """Number of distinct genomes: ``len(choices) ** len(genes)``."""
        return len(self.choices) ** len(self.genes)

    def check(self, genome: Sequence[float]) -> Genome:
        """``genome`` as a tuple of floats, after checking its length and that every ratio is a choice."""
        if isinstance(genome, str | bytes) or not isinstance(genome, Sequence) or len(genome) != len(self.genes):
            raise ConfigError(f"a genome of {self.model} has {len(self.genes)} ratios ({', '.join(self.gene_names)}), "
                              f"got {genome!r}")
        values = tuple(float(r) for r in genome)
        bad = [r for r in values if r not in self.choices]
        if bad:
            raise ConfigError(f"ratios {bad} are not among the choices {list(self.choices)}")
        return values

    def uniform(self, ratio: float) -> Genome:
        """Every gene at ``ratio`` (need not be a choice: the uniform ×r reference nets)."""
        if not (isinstance(ratio, int | float) and math.isfinite(ratio) and ratio > 0):
            raise ConfigError(f"a width ratio must be a positive number, got {ratio!r}")
        return (float(ratio),) * len(self.genes)

    def cheapest(self) -> Genome:
        """Every gene at the smallest choice: the cheapest genome under any cost that grows with width."""
        return self.uniform(self.choices[0])

    def random(self, rng: random.Random) -> Genome:
        """A genome drawn uniformly from the space."""
        return tuple(rng.choice(self.choices) for _ in self.genes)

    def widths(self, genome: Sequence[float]) -> list[int]:
        """Channels per gene: ``round_width(ratio · base)``."""
        if len(genome) != len(self.genes):
            raise ConfigError(f"a genome of {self.model} has {len(self.genes)} ratios, got {len(genome)}")
        return [round_width(r * g.base, packed=g.packed, word=self.word) for r, g in zip(genome, self.genes)]

    def model_kwargs(self, genome: Sequence[float]) -> dict[str, Any]:
        """The builder arguments of ``genome``: the fixed ones plus ``widths`` (one entry per layout slot)."""
        per_gene = self.widths(genome)
        return {**self.model_args, "widths": [per_gene[i] for i in self.layout]}

    def build(self, genome: Sequence[float]) -> Any:
        """The model of ``genome`` (torch module, fresh random weights from torch's global generator)."""
        from onebit.models import create_model

        return create_model(self.model, num_classes=self.num_classes, in_shape=self.in_shape,
                            **self.model_kwargs(genome))

    def format(self, genome: Sequence[float]) -> str:
        """``[0.5, 2, 1]``: a genome as the paper writes it."""
        return "[" + ", ".join(f"{r:g}" for r in genome) + "]"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "genes": [g.to_dict() for g in self.genes], "layout": list(self.layout),
                "choices": list(self.choices), "model_args": self.model_args, "num_classes": self.num_classes,
                "in_shape": None if self.in_shape is None else list(self.in_shape), "word": self.word}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        return cls(d["model"], tuple(Gene(**g) for g in d["genes"]), tuple(d["layout"]), tuple(d["choices"]),
                   dict(d["model_args"]), d["num_classes"], None if d["in_shape"] is None else tuple(d["in_shape"]),
                   d["word"])


# --------------------------------------------------------------------------- the zoo's width knobs


def _defaults(model: str) -> dict[str, Any]:
    import inspect

    from onebit.models import model_info

    params = inspect.signature(model_info(model).builder).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _vgg_small(args: dict[str, Any]) -> tuple[list[Gene], list[int]]:
    """BinaryNet VGG-small: one gene per conv (6), base ``channels[stage]`` twice (128-128-256-256-512-512)."""
    channels = args["channels"]
    genes = [Gene(f"conv{i + 1}", int(channels[i // 2])) for i in range(6)]
    return genes, list(range(6))


def _cnn1d(args: dict[str, Any]) -> tuple[list[Gene], list[int]]:
    """binary_cnn1d: one gene per binary conv (``depth``), base ``channels``; the last feeds the float head."""
    depth, channels = int(args["depth"]), int(args["channels"])
    genes = [Gene(f"conv{i + 1}", channels, packed=i < depth - 1) for i in range(depth)]
    return genes, list(range(depth))


def _bireal(blocks: tuple[int, ...]) -> Callable[[dict[str, Any]], tuple[list[Gene], list[int]]]:
    """Bi-Real Net: per stage a gene for the convs that close a basic block (the residual width) and one
    per basic block for its first conv. ResNet-18 (2, 2, 2, 2): 4 + 8 = 12 genes over 16 binary convs."""

    def space(args: dict[str, Any]) -> tuple[list[Gene], list[int]]:
        width = int(args["width"])
        genes: list[Gene] = []
        layout: list[int] = []
        for stage, count in enumerate(blocks):
            base = width * 2**stage
            stage_gene = len(genes)
            genes.append(Gene(f"stage{stage + 1}", base, packed=stage < len(blocks) - 1))
            for block in range(count):
                genes.append(Gene(f"stage{stage + 1}.block{block + 1}.conv1", base))
                layout += [len(genes) - 1, stage_gene]
        return genes, layout

    return space


_SPACES: dict[str, Callable[[dict[str, Any]], tuple[list[Gene], list[int]]]] = {
    "binarynet_cnn": _vgg_small,
    "binary_cnn1d": _cnn1d,
    "birealnet18": _bireal((2, 2, 2, 2)),
    "birealnet34": _bireal((3, 4, 6, 3)),
    "reactnet_resnet18": _bireal((2, 2, 2, 2)),  # the Bi-Real Net-18 layout with ReActNet's activations
}


def searchable_models() -> list[str]:
    """The registered models that have per-layer width knobs (a ``widths`` argument), sorted."""
    return sorted(_SPACES)


def search_space(
    model: str, *, num_classes: int | None = None, in_shape: Sequence[int] | None = None,
    model_args: dict[str, Any] | None = None, choices: Sequence[float] = DEFAULT_CHOICES,
) -> SearchSpace:
    """The width search space of a model of the zoo, sized for ``in_shape``/``num_classes``.

    ``model_args`` are the model's fixed arguments (e.g. ``{"channels": [32, 64, 128]}``
    for a reduced VGG-small: the base widths follow them). A model without width knobs is
    a :class:`ConfigError` naming the ones that have them.
    """
    from onebit.models import check_model_args, model_info

    info = model_info(model)  # unknown names: the registry's error, with "did you mean"
    if model not in _SPACES:
        raise ConfigError(f"model {model!r} has no per-layer width knobs to search; searchable models: "
                          f"{', '.join(searchable_models())}")
    args = dict(model_args or {})
    if "widths" in args:
        raise ConfigError("widths is what the search chooses; give the base widths through the model's own "
                          "arguments (channels, width) instead")
    check_model_args(model, args)
    genes, layout = _SPACES[model]({**_defaults(model), **args})
    return SearchSpace(model, tuple(genes), tuple(layout), tuple(choices), args,
                       info.num_classes if num_classes is None else num_classes,
                       tuple(info.in_shape if in_shape is None else in_shape))
