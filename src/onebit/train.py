"""Training: ``fit`` (the loop), ``evaluate``, and the run folder they write.

``fit`` trains with cross-entropy (or, given a ``teacher``, the distillation loss of
:func:`distillation_loss`) on in-memory data, validates after every epoch,
keeps the best (by validation accuracy) and last checkpoints, and writes
``metrics.json`` and ``curves.png`` to ``out_dir``. The learning rate follows a
per-step schedule. With a fixed seed, runs on CPU are bit-for-bit reproducible
(same torch build and thread count).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit.atomic import atomic_write_text
from onebit.augment import augmentation_for
from onebit.checkpoint import save_checkpoint
from onebit.data import Dataset
from onebit.distill import AttentionTransfer
from onebit.errors import ConfigError, DataError, unknown_choice
from onebit.nn.modes import eval_mode
from onebit.optim import make_optimizer
from onebit.train_state import STATE_FILE, load_train_state, save_train_state

if TYPE_CHECKING:
    from onebit.distributed import DistributedRun

__all__ = [
    "KEEP_CHOICES", "LOSSES", "SCHEDULES", "EpochRecord", "FitResult", "distillation_loss", "evaluate", "fit",
    "plot_curves", "prune_run", "record_metrics", "set_seed", "squared_hinge_loss", "torch_threads",
]

SCHEDULES = ("cosine", "linear", "constant", "step")
LOSSES = ("cross_entropy", "squared_hinge")
KEEP_CHOICES = ("best", "last", "all")

log = logging.getLogger(__name__)

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class EpochRecord:
    """One epoch's numbers, as written to ``metrics.json``."""

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class FitResult:
    """What ``fit`` returns: the per-epoch history and the final numbers."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    test_accuracy: float | None = None
    test_loss: float | None = None
    out_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: leave torch's setting), restored afterwards.

    Float sums on CPU depend on how torch splits them over threads, so a run that must
    repeat bit for bit fixes its count; small models also run fastest on one thread of a
    busy machine.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_tensors(x: np.ndarray, y: np.ndarray, what: str) -> tuple[Tensor, Tensor]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{what}: expected x of shape (N, ...) and y of shape (N,), got {x.shape} and {y.shape}")
    if len(x) == 0:
        raise DataError(f"{what} is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels must be integers, got {y.dtype}")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: inputs hold NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))


def _check_labels(y: Tensor, num_classes: int, what: str) -> None:
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(
            f"{what}: labels must lie in [0, {num_classes}) for a model with {num_classes} outputs, "
            f"got range [{int(y.min())}, {int(y.max())}]"
        )


def _output_width(model: nn.Module, x: Tensor, what: str) -> int:
    """Run ``model`` (eval mode, no grad) on two rows of ``x`` and return its number of outputs.

    A model built by ``create_model`` records its input shape, so a mismatch is named
    before any forward; any other model gets one probing forward whose failure becomes
    a :class:`DataError` instead of a traceback from deep inside torch.
    """
    expected = getattr(model, "onebit_config", {}).get("args", {}).get("in_shape")
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise DataError(
            f"{what}: samples have shape {tuple(x.shape[1:])}, the model expects {tuple(expected)} "
            f"(x must be (N, {', '.join(map(str, expected))}))"
        )
    try:
        with eval_mode(model), torch.no_grad():
            out = model(x[:2].to(_device_of(model)))
    except (RuntimeError, ValueError, IndexError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{what}: the model cannot take samples of shape {tuple(x.shape[1:])}: {first_line}") from None
    if out.dim() != 2:
        raise ConfigError(f"the model must output logits of shape (N, classes), got shape {tuple(out.shape)}")
    return int(out.shape[1])


def distillation_loss(student: Tensor, teacher: Tensor, target: Tensor | None = None, ce_weight: float = 0.0) -> Tensor:
    """Distributional loss of Real-to-Binary / ReActNet, optionally mixed with cross-entropy.

    ``KL(p_t ‖ p_s) = (1/B) Σ_b Σ_c p_t[b,c] (log p_t[b,c] − log p_s[b,c])`` with
    ``p = softmax(logits)``; the result is ``(1 − ce_weight)·KL + ce_weight·CE(student, target)``.
    The teacher's logits are detached: the gradient flows to the student only.
    """
    if not 0.0 <= ce_weight <= 1.0:
        raise ConfigError(f"ce_weight must lie in [0, 1], got {ce_weight!r}")
    log_ps = F.log_softmax(student, dim=1)
    log_pt = F.log_softmax(teacher.detach(), dim=1)
    kl = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
    if ce_weight == 0.0:
        return kl
    if target is None:
        raise ConfigError("distillation_loss needs the targets when ce_weight > 0")
    return (1.0 - ce_weight) * kl + ce_weight * F.cross_entropy(student, target)


def squared_hinge_loss(logits: Tensor, target: Tensor) -> Tensor:
    """BinaryNet's loss: ``mean((max(0, 1 − t·y))²)`` over samples and classes, ``t = ±1`` one-hot."""
    t = 2.0 * F.one_hot(target, logits.shape[1]).to(logits.dtype) - 1.0
    return F.relu(1.0 - t * logits).square().mean()


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on ``(x, y)``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    xt, yt = _as_tensors(x, y, "evaluation data")
    _check_labels(yt, _output_width(model, xt, "evaluation data"), "evaluation data")
    loss_sum, correct = 0.0, 0
    device = _device_of(model)
    with eval_mode(model):
        for idx in _batches(len(xt), batch_size, None):
            logits = model(xt[idx].to(device))
            labels = yt[idx].to(device)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(1) == labels).sum())
    return {"loss": loss_sum / len(xt), "accuracy": correct / len(xt)}


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def _lr_lambda(schedule: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """The lr factor at each step: a linear warm-up from 1/(w+1) to 1 over ``warmup_steps``,
    then the schedule over the remaining steps (cosine/linear decay to 0, constant, or
    step: ×0.1 at 50 % and 75 %)."""
    rest = max(1, total_steps - warmup_steps)

    def decay(step: int) -> float:
        if schedule == "constant":
            return 1.0
        step = min(step, rest)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * step / rest))
        if schedule == "linear":
            return 1.0 - step / rest
        return 0.1 ** sum(step >= rest * t for t in (0.5, 0.75))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return decay(step - warmup_steps)

    return factor


def fit(
    model: nn.Module,
    data: Dataset | Arrays,
    *,
    val: Arrays | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: str | torch.optim.Optimizer = "adam",
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    verbose: bool = False,
    info: dict[str, Any] | None = None,
    resume: bool = False,
    teacher: nn.Module | None = None,
    ce_weight: float = 0.0,
    loss: str = "cross_entropy",
    label_smoothing: float = 0.0,
    warmup_epochs: int = 0,
    augment: str | None = None,
    attention_weight: float = 0.0,
    distributed: DistributedRun | None = None,
) -> FitResult:
    """Train ``model`` and return its history; the weights end as the *best* epoch's.

    ``data`` is a :class:`~onebit.data.Dataset` (a validation split of
    ``val_fraction`` is held out of its training part unless ``val`` is given, and
    its test split is evaluated at the end) or an ``(x, y)`` pair of arrays.
    ``optimizer`` is a name from :data:`onebit.optim.OPTIMIZERS` or a ready optimizer.
    With ``out_dir``: ``checkpoint.safetensors`` (best), ``last.safetensors``,
    ``metrics.json`` (rewritten every epoch), ``curves.png`` and ``train_state.pt`` (see
    :mod:`onebit.train_state`). ``resume=True`` continues the run in ``out_dir`` from its
    last finished epoch; the arguments must be the ones it was started with.

    Each epoch's line (loss, accuracies, learning rate, time) goes to the ``onebit.train``
    logger at INFO level; ``verbose=True`` also prints it. ``progress=True`` draws a bar
    per epoch (batches, samples/s, running loss) on stderr when stderr is a terminal.

    With a ``teacher`` (a trained module with the same outputs), the training loss is
    :func:`distillation_loss` of the student's logits against the teacher's, mixed with
    ``ce_weight`` × cross-entropy. The teacher stays in eval mode and runs under
    ``torch.no_grad()``: it is never updated. ``attention_weight`` β > 0 adds Real-to-Binary's
    attention-transfer term (:class:`onebit.distill.AttentionTransfer`). Validation and test
    use cross-entropy.

    Without a teacher the loss is ``loss`` (:data:`LOSSES`): cross-entropy with
    ``label_smoothing`` ε (targets ``(1 − ε)·onehot + ε/K``), or BinaryNet's squared hinge.
    ``schedule`` (:data:`SCHEDULES`) runs per step after ``warmup_epochs`` of linear warm-up.
    ``augment`` (:data:`onebit.augment.AUGMENTATIONS`) transforms every training batch with
    random numbers from the run's generator, so the seed fixes them too.

    ``distributed`` (:func:`onebit.distributed.start_from_env`) trains data-parallel:
    every process calls ``fit`` with the same arguments, computes its slice of each
    batch of ``batch_size`` rows (the effective batch), and DistributedDataParallel
    averages the gradients; rank 0 alone writes ``out_dir`` and logs. The model comes
    back on the CPU, the same on every rank.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    if schedule not in SCHEDULES:
        raise unknown_choice("schedule", schedule, SCHEDULES)
    if teacher is not None and not isinstance(teacher, nn.Module):
        raise ConfigError(f"teacher must be a torch module, got {type(teacher).__name__}")
    if teacher is None and ce_weight != 0.0:
        raise ConfigError("ce_weight mixes cross-entropy into the distillation loss; it needs a teacher")
    if not (isinstance(ce_weight, int | float) and 0.0 <= ce_weight <= 1.0):
        raise ConfigError(f"ce_weight must be a number in [0, 1], got {ce_weight!r}")
    if loss not in LOSSES:
        raise unknown_choice("loss", loss, LOSSES)
    if not (isinstance(label_smoothing, int | float) and 0.0 <= label_smoothing < 1.0):
        raise ConfigError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
    if label_smoothing and loss != "cross_entropy":
        raise ConfigError(f"label_smoothing belongs to the cross_entropy loss, not {loss!r}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or not 0 <= warmup_epochs < epochs:
        raise ConfigError(f"warmup_epochs must be an integer in [0, epochs={epochs}), got {warmup_epochs!r}")
    if not (isinstance(attention_weight, int | float) and 0.0 <= attention_weight < math.inf):
        raise ConfigError(f"attention_weight must be a number ≥ 0, got {attention_weight!r}")
    if attention_weight and teacher is None:
        raise ConfigError("attention_weight transfers the teacher's attention maps; it needs a teacher")

    test: Arrays | None = None
    num_classes: int | None = None
    if isinstance(data, Dataset):
        test = (data.x_test, data.y_test)
        num_classes = data.num_classes
        if val is None:
            data, val = data.split_validation(val_fraction, seed=seed)
        train_arrays: Arrays = (data.x_train, data.y_train)
    else:
        train_arrays = data
    x_train, y_train = _as_tensors(*train_arrays, "training data")
    if val is None:
        raise ConfigError("fit needs validation data: pass a Dataset or val=(x, y)")
    x_val, y_val = _as_tensors(*val, "validation data")
    width = _output_width(model, x_train, "training data")
    if x_val.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"validation samples have shape {tuple(x_val.shape[1:])}, training samples {tuple(x_train.shape[1:])}"
        )
    if batch_size > len(x_train):
        raise ConfigError(f"batch_size {batch_size} is larger than the {len(x_train)} training samples")
    if num_classes is not None and width != num_classes:
        raise ConfigError(f"the model outputs {width} logits but the data set has {num_classes} classes")
    _check_labels(y_train, width, "training data")
    _check_labels(y_val, width, "validation data")
    if teacher is not None:
        teacher.eval()
        teacher_width = _output_width(teacher, x_train, "training data (teacher)")
        if teacher_width != width:
            raise ConfigError(f"the teacher outputs {teacher_width} logits, the student {width}")

    augmentation = None if augment is None else augmentation_for(augment, tuple(x_train.shape[1:]))

    set_seed(seed)
    device = distributed.device if distributed is not None else torch.device("cpu")
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    if isinstance(optimizer, str):
        opt = make_optimizer(model, optimizer, lr=lr, weight_decay=weight_decay)
    else:
        opt = optimizer
    steps_per_epoch = max(1, len(x_train) // batch_size + (len(x_train) % batch_size > 1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(schedule, epochs * steps_per_epoch,
                                                                       warmup_epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(seed)

    out = Path(out_dir) if out_dir is not None else None
    writes = out is not None and (distributed is None or distributed.is_main)  # rank 0 alone writes
    if writes:
        out.mkdir(parents=True, exist_ok=True)
    result = FitResult(out_dir=out)
    best_state: dict[str, Tensor] | None = None
    best_loss = math.inf
    run_info = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
        "schedule": schedule, "weight_decay": weight_decay, "seed": seed, "loss": loss,
        "label_smoothing": label_smoothing, "warmup_epochs": warmup_epochs, "augment": augment,
        "attention_weight": attention_weight,
        "train_size": len(x_train), "val_size": len(val[0]), **(info or {}),
    }
    if distributed is not None:
        run_info["distributed"] = distributed.describe()
    first_epoch = 1
    if resume:
        if out is None:
            raise ConfigError("resume=True needs the out_dir of the run to continue")
        state = load_train_state(out)
        if state["run_info"] != run_info:
            changed = sorted(k for k in set(state["run_info"]) | set(run_info)
                             if state["run_info"].get(k) != run_info.get(k))
            raise ConfigError(f"cannot resume {out}: these settings differ from the run's: {', '.join(changed)}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        result.history = [EpochRecord(**r) for r in state["history"]]
        result.best_epoch, result.best_val_accuracy = state["best_epoch"], state["best_val_accuracy"]
        best_loss, best_state = state["best_val_loss"], state["best_model"]
        first_epoch = state["epoch"] + 1
    attention = AttentionTransfer(model, teacher) if attention_weight else None  # hooks, removed below
    net = model if distributed is None else distributed.wrap(model)  # what the training steps run
    min_batch = 2 if distributed is None else distributed.min_batch()
    try:
        for epoch in range(first_epoch, epochs + 1):
            start = time.perf_counter()
            epoch_lr = opt.param_groups[0]["lr"]
            net.train()
            loss_sum, correct, seen = 0.0, 0, 0
            bar = _progress(steps_per_epoch, f"epoch {epoch}/{epochs}", progress
                            and (distributed is None or distributed.is_main))
            try:
                for idx in _batches(len(x_train), batch_size, generator):
                    if len(idx) < min_batch:
                        continue  # BatchNorm cannot train on a single sample
                    xb, yb = x_train[idx], y_train[idx]
                    if augmentation is not None:
                        xb = augmentation(xb, generator)  # the whole batch: the generator stays in step
                    if distributed is not None:
                        part = distributed.shard(torch.arange(len(idx)))
                        xb, yb = xb[part].to(device), yb[part].to(device)
                    logits = net(xb)
                    if teacher is None:
                        batch_loss = (F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
                                      if loss == "cross_entropy" else squared_hinge_loss(logits, yb))
                    else:
                        with torch.no_grad():
                            teacher_logits = teacher(xb)
                        batch_loss = distillation_loss(logits, teacher_logits, yb, ce_weight)
                        if attention is not None:
                            batch_loss = batch_loss + attention_weight * attention.loss()
                    if not torch.isfinite(batch_loss):
                        raise ConfigError(
                            f"training diverged: loss is {batch_loss.item()} at epoch {epoch}; lower the lr")
                    opt.zero_grad(set_to_none=True)
                    if distributed is None:
                        batch_loss.backward()
                    else:
                        (batch_loss * distributed.loss_scale(len(yb), len(idx))).backward()
                    opt.step()
                    scheduler.step()
                    if distributed is not None:
                        distributed.after_step(model)
                    loss_sum += batch_loss.item() * len(yb)
                    correct += int((logits.argmax(1) == yb).sum())
                    seen += len(yb)
                    if bar is not None:
                        rate = seen / max(time.perf_counter() - start, 1e-9)
                        bar.set_postfix_str(f"loss {loss_sum / seen:.4f}, {rate:,.0f} samples/s", refresh=False)
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
            if distributed is not None:  # the epoch's numbers over all ranks' rows
                loss_sum, correct, seen = distributed.sum([loss_sum, correct, seen])
            v = evaluate(model, x_val.numpy(), y_val.numpy(), batch_size=max(batch_size, 256))
            record = EpochRecord(
                epoch, epoch_lr, loss_sum / seen, correct / seen, v["loss"], v["accuracy"],
                time.perf_counter() - start,
            )
            result.history.append(record)
            # Best = highest validation accuracy; ties (frequent on small validation
            # sets) go to the lower validation loss, not to the earliest epoch.
            if best_state is None or (record.val_accuracy, -record.val_loss) > (result.best_val_accuracy, -best_loss):
                best_loss = record.val_loss
                result.best_epoch, result.best_val_accuracy = epoch, record.val_accuracy
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
                if writes:
                    save_checkpoint(out / "checkpoint.safetensors", model, epoch=epoch, info=run_info)
            if writes:
                save_checkpoint(out / "last.safetensors", model, epoch=epoch, info=run_info)
                result.metrics = _metrics(result, run_info)
                _write_json(out / "metrics.json", result.metrics)
                save_train_state(out, {
                    "epoch": epoch, "run_info": run_info, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "history": [asdict(r) for r in result.history], "best_epoch": result.best_epoch,
                    "best_val_accuracy": result.best_val_accuracy, "best_val_loss": best_loss,
                    "best_model": best_state,
                })
            # After the state is saved: a Ctrl-C once this line shows can resume from this epoch.
            if distributed is None or distributed.is_main:
                _say(
                    f"epoch {epoch:3d}/{epochs}  loss {record.train_loss:.4f}  train {record.train_accuracy:.2%}  "
                    f"val {record.val_accuracy:.2%}  lr {epoch_lr:.2e}  {record.seconds:.1f}s  "
                    f"({seen / record.seconds:,.0f} samples/s)", verbose,
                )
    finally:
        if attention is not None:
            attention.remove()
        if distributed is not None:
            distributed.unwrap()

    assert best_state is not None
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    if teacher is not None:
        teacher.to("cpu")
    if test is not None:
        t = evaluate(model, *test, batch_size=max(batch_size, 256))
        result.test_accuracy, result.test_loss = t["accuracy"], t["loss"]
    # "finished": a resumed multi-step recipe reloads this step instead of training it again.
    result.metrics = {**_metrics(result, run_info), "finished": True}
    if writes:
        _write_json(out / "metrics.json", result.metrics)
        plot_curves(result.history, out / "curves.png")
    return result


def record_metrics(out_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Add ``fields`` to the run folder's ``metrics.json`` (atomically); returns the result."""
    path = Path(out_dir) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    metrics.update(fields)
    _write_json(path, metrics)
    return metrics


def prune_run(out_dir: str | os.PathLike, keep: str = "last") -> dict[str, int]:
    """Delete what a *finished* run folder no longer needs; returns ``{path: bytes}`` removed.

    ``keep="all"`` removes nothing. ``"last"`` removes ``train_state.pt`` (the weights,
    optimizer state and best weights that only an interrupted run resumes from: about
    4× the checkpoint). ``"best"`` also removes ``last.safetensors``, leaving the best
    checkpoint, ``metrics.json``, ``curves.png`` and the exported model. Sub-runs (a
    two-stage run's ``stage1``, a distilled run's ``teacher``) are pruned alike.
    """
    if keep not in KEEP_CHOICES:
        raise unknown_choice("keep setting", keep, KEEP_CHOICES)
    names = {"all": (), "last": (STATE_FILE,), "best": (STATE_FILE, "last.safetensors")}[keep]
    removed: dict[str, int] = {}
    root = Path(out_dir)
    for name in names:
        for path in sorted(root.rglob(name)):
            removed[str(path)] = path.stat().st_size
            path.unlink()
    return removed


def _metrics(result: FitResult, run_info: dict[str, Any]) -> dict[str, Any]:
    return {
        **run_info,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "history": [asdict(r) for r in result.history],
    }


def _progress(batches: int, description: str, enabled: bool) -> Any:
    """One epoch's progress bar on stderr, or None. Only on a terminal: redirected to a
    file (a CI log) the bar's redraws became hundreds of lines; the per-epoch log lines
    say the same there. ``leave=False``: the epoch's line replaces its bar."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        width = 0
    # A pseudo-terminal without a window size (`script -c`, some CI runners) reports 0
    # columns and lines, and tqdm then draws nothing at all: give it a fixed size instead.
    size = {"dynamic_ncols": True} if width > 0 else {"ncols": 100, "nrows": 24}
    return tqdm(total=batches, desc=description, unit="batch", file=sys.stderr, leave=False, **size)


def _say(message: str, verbose: bool) -> None:
    """A progress message: to the ``onebit.train`` logger, and printed when ``verbose``."""
    log.info(message)
    if verbose:
        print(message, flush=True)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def plot_curves(history: list[EpochRecord], path: str | os.PathLike) -> Path:
    """Save loss and accuracy per epoch (train and validation) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ax_loss.plot(epochs, [r.train_loss for r in history], label="train")
    ax_loss.plot(epochs, [r.val_loss for r in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.plot(epochs, [100 * r.train_accuracy for r in history], label="train")
    ax_acc.plot(epochs, [100 * r.val_accuracy for r in history], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
