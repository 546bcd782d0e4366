"""A client's local work in FedHyBNN, in plain PyTorch: train the head a few epochs, evaluate it.

The same functions train the centralized reference (one "client" holding every row, for
``rounds × local_epochs`` epochs), so the federated and centralized numbers differ only in
how the data and the updates are split.

Local training: Adam at a constant learning rate (a fresh optimizer each round, as FedAvg
clients usually start one), shuffled mini-batches from a seeded generator, binary latent
weights clipped to [−1, 1] after every step (:func:`onebit.optim.make_optimizer`), batches
of one row skipped (BatchNorm).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onebit.errors import ConfigError, DataError
from onebit.nn.modes import eval_mode

__all__ = ["client_seed", "evaluate_head", "head_state", "load_head_state", "train_head"]


def client_seed(seed: int, server_round: int, client: int) -> int:
    """The seed of one client's local training in one round (distinct for every pair)."""
    return (int(seed) * 1_000_003 + int(server_round) * 1_009 + int(client)) % (2**31 - 1)


def head_state(model: nn.Module, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """``{name: float32 array}`` of the model's parameters and BatchNorm buffers (``keys`` only, if given);
    ``num_batches_tracked`` counters are never part of it."""
    state = {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    return state if keys is None else {k: state[k] for k in keys}


def load_head_state(model: nn.Module, state: dict[str, np.ndarray]) -> None:
    """Copy the given tensors into the model (the others are left as they are)."""
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ConfigError(f"the model has no tensors named {unknown}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(torch.from_numpy(np.asarray(v, dtype=np.float32)).reshape(own[k].shape))


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise DataError(f"expected inputs (N, F) and labels (N,), got {x.shape} and {y.shape}")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))


def train_head(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, lr: float,
               seed: int) -> dict[str, float]:
    """Train ``model`` in place on ``(x, y)``; returns the last epoch's mean loss and accuracy and the row count."""
    from onebit.optim import make_optimizer

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"local epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ConfigError(f"batch_size must be an integer ≥ 2, got {batch_size!r}")
    if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    xt, yt = _tensors(x, y)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, "adam", lr=lr)
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for _ in range(epochs):
        loss_sum, correct, seen = 0.0, 0, 0
        order = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(xt), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:
                continue
            logits = model(xt[idx])
            loss = F.cross_entropy(logits, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yt[idx]).sum())
            seen += len(idx)
    model.eval()
    return {"loss": loss_sum / max(1, seen), "accuracy": correct / max(1, seen), "examples": float(len(xt))}


@torch.no_grad()
def evaluate_head(model: nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Cross-entropy and accuracy of ``model`` (eval mode) on ``(x, y)``."""
    xt, yt = _tensors(x, y)
    with eval_mode(model):
        logits = model(xt)
    return {"loss": float(F.cross_entropy(logits, yt)), "accuracy": float((logits.argmax(1) == yt).float().mean()),
            "examples": float(len(xt))}
