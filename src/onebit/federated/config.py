"""The settings of one FedHyBNN run, checked before any work: :class:`FederatedConfig`.

A run trains a HyBNN's binary head federated over ``clients`` clients for ``rounds`` rounds of
``local_epochs`` epochs each, on codes of a binary-latent autoencoder trained beforehand
(centrally, without labels, on the training rows) and frozen. Every field is checked by
:meth:`FederatedConfig.validate`, which raises a one-line :class:`~onebit.errors.ConfigError`
naming the field and its valid values.

Faults (for testing that a run survives them): ``{"kind", "client", "round"}`` with kind

- ``"crash"``: the client raises in that round (Flower returns an error reply);
- ``"disconnect"``: the client's node goes away mid-round (deployment: its SuperNode process is
  killed once the round has started; simulation: the node stops answering from that round on);
- ``"nan"``: the client uploads a NaN; ``"shape"``: it uploads a tensor of the wrong shape.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from onebit.errors import ConfigError, unknown_choice
from onebit.federated.uploads import SIGN_RULES, UPLOADS
from onebit.hybrid.latent import ESTIMATORS

__all__ = ["FAULTS", "PARTITIONS", "FederatedConfig"]

PARTITIONS = ("iid", "dirichlet")
FAULTS = ("crash", "disconnect", "nan", "shape")


def _positive_int(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


@dataclass
class FederatedConfig:
    """One FedHyBNN run (defaults: the issue's acceptance setting on MNIST-1D)."""

    clients: int = 5
    rounds: int = 20
    local_epochs: int = 2
    data: str = "mnist1d"
    split: tuple[int, int] | None = None
    partition: str = "iid"
    alpha: float = 0.5
    upload: str = "float32"
    rule: str = "mean"
    error_feedback: bool = True
    fedbn: bool = False
    latent_bits: int = 64
    estimator: str = "ste"
    vae_hidden: tuple[int, ...] = (512, 256)
    vae_epochs: int = 30
    beta: float = 1.0
    head_hidden: int = 256
    head_depth: int = 2
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    round_timeout: float = 300.0
    connect_timeout: float = 120.0
    faults: list[dict[str, Any]] = field(default_factory=list)

    def validate(self) -> FederatedConfig:
        """Raise a ConfigError naming the first bad field; returns self."""
        _positive_int("clients", self.clients)
        _positive_int("rounds", self.rounds)
        _positive_int("local_epochs", self.local_epochs)
        _positive_int("latent_bits", self.latent_bits)
        _positive_int("vae_epochs", self.vae_epochs)
        _positive_int("head_hidden", self.head_hidden)
        _positive_int("head_depth", self.head_depth)
        _positive_int("batch_size", self.batch_size, 2)
        _positive_int("seed", self.seed, 0)
        for name in ("alpha", "lr", "round_timeout", "connect_timeout"):
            _positive_float(name, getattr(self, name))
        if isinstance(self.beta, bool) or not isinstance(self.beta, int | float) or not (
                self.beta >= 0 and math.isfinite(self.beta)):
            raise ConfigError(f"beta must be a non-negative number, got {self.beta!r}")
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must be a data set name or folder, got {self.data!r}")
        if self.split is not None:
            if len(self.split) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.split):
                raise ConfigError(f"split must be two positive row counts (train, test), got {self.split!r}")
        for name, value, choices in (("partition", self.partition, PARTITIONS), ("upload", self.upload, UPLOADS),
                                     ("rule", self.rule, SIGN_RULES), ("estimator", self.estimator, ESTIMATORS)):
            if value not in choices:
                raise unknown_choice(name.replace("rule", "sign aggregation rule"), value, choices)
        if not isinstance(self.error_feedback, bool) or not isinstance(self.fedbn, bool):
            raise ConfigError("error_feedback and fedbn must be True or False")
        if not self.vae_hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                          for h in self.vae_hidden):
            raise ConfigError(f"vae_hidden must be positive integers, got {self.vae_hidden!r}")
        for fault in self.faults:
            if not isinstance(fault, dict) or set(fault) != {"kind", "client", "round"}:
                raise ConfigError(f"a fault is {{'kind', 'client', 'round'}}, got {fault!r}")
            if fault["kind"] not in FAULTS:
                raise unknown_choice("fault", fault["kind"], FAULTS)
            if isinstance(fault["client"], bool) or not isinstance(fault["client"], int) or not (
                    0 <= fault["client"] < self.clients):
                raise ConfigError(f"a fault's client must be in [0, {self.clients}), got {fault['client']!r}")
            if isinstance(fault["round"], bool) or not isinstance(fault["round"], int) or not (
                    1 <= fault["round"] <= self.rounds):
                raise ConfigError(f"a fault's round must be in [1, {self.rounds}], got {fault['round']!r}")
        return self

    def fault(self, client: int, server_round: int) -> str | None:
        """The fault injected into ``client`` in ``server_round``, if any."""
        for f in self.faults:
            if f["client"] == client and f["round"] == server_round:
                return str(f["kind"])
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        d = asdict(self)
        d["vae_hidden"] = list(self.vae_hidden)
        d["split"] = None if self.split is None else list(self.split)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FederatedConfig:
        """The config saved by :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown federated settings {unknown}; valid: {sorted(names)}")
        d = dict(d)
        if "vae_hidden" in d:
            d["vae_hidden"] = tuple(d["vae_hidden"])
        if d.get("split") is not None:
            d["split"] = tuple(d["split"])
        return cls(**d).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)
