"""Data-parallel training on torch.distributed: one :class:`DistributedRun` per process.

``torchrun --nproc-per-node=N -m onebit train ...`` (or ``onebit train --nproc N``, which
starts the same through ``torch.distributed.run``) runs N copies of the training; each
calls :func:`start_from_env`, which joins the process group torchrun set up and returns
the run (None for a single process), and :func:`onebit.train.fit` takes it as
``distributed=``. The engine is torch's: ``DistributedDataParallel`` averages the
gradients (gloo on CPU, NCCL when every local process has its own GPU).

How the work is split (docs/distributed.md):

- **Batches**: every rank draws the *same* seeded permutation of the training rows as a
  single process would (the run's generator, so augmentation draws too), cuts it into
  global batches of ``batch_size`` B, and computes only its slice
  ``batch.tensor_split(N)[rank]`` (the ``DistributedSampler`` idea, at the batch level).
  Each rank's mean loss is scaled by ``N·b_r / b`` (b_r its rows, b the batch's), so
  DDP's average of the ranks' gradients is the gradient of the whole batch's mean loss:
  B is the effective batch and the learning rate needs no scaling.
- **Weights**: DDP broadcasts rank 0's weights once; after that every rank applies the
  same optimizer step to the same averaged gradient (Adam, Bop's moving average and flip
  rule, the latent-weight clip are deterministic), so the weights stay bit-identical
  (``check_sync=True`` verifies it after every step).
- **BatchNorm** (:data:`BATCHNORM_MODES`): ``"sync"`` normalizes each training batch with
  the statistics of the *global* batch (all-reduced, differentiable), so training follows
  the single-process arithmetic; ``"per-rank"`` normalizes with each rank's slice and
  averages the running statistics over the ranks after every step. Either way every
  rank holds the same running statistics, and those are what checkpoints save.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from onebit.errors import ConfigError, unknown_choice

__all__ = [
    "BACKENDS", "BATCHNORM_MODES", "DistributedRun", "OutOfSyncError", "choose_backend", "launch", "launch_command",
    "start_from_env", "under_launcher",
]

BACKENDS = ("auto", "gloo", "nccl")
BATCHNORM_MODES = ("sync", "per-rank")


class OutOfSyncError(RuntimeError):
    """The ranks' weights or buffers differ: a bug, never the user's input."""


def under_launcher() -> bool:
    """True in a process that torchrun (``torch.distributed.run``) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def choose_backend(requested: str = "auto", local_processes: int = 1) -> str:
    """The process-group backend: ``nccl`` when every local process can have its own GPU, else ``gloo``.

    ``requested`` names one (:data:`BACKENDS`); asking for ``nccl`` without the GPUs is a
    :class:`~onebit.errors.ConfigError`, as is a backend this torch build lacks.
    """
    if requested not in BACKENDS:
        raise unknown_choice("distributed backend", requested, BACKENDS)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        requested = "nccl" if gpus >= local_processes and dist.is_nccl_available() else "gloo"
    if requested == "nccl" and not dist.is_nccl_available():
        raise ConfigError("backend nccl is not available in this torch build (it needs CUDA); use --backend gloo")
    if requested == "nccl" and gpus < local_processes:
        raise ConfigError(f"backend nccl needs one GPU per process: {local_processes} processes on this machine, "
                          f"{gpus} GPU(s) visible; use --backend gloo")
    if requested == "gloo" and not dist.is_gloo_available():
        raise ConfigError("backend gloo is not available in this torch build; use --backend nccl")
    return requested


@dataclass
class DistributedRun:
    """This process's place in a data-parallel run, and the collectives ``fit`` needs.

    Build it with :func:`start_from_env` (under torchrun), or directly once
    ``torch.distributed`` is initialized (tests spawn processes that way).
    """

    rank: int
    world_size: int
    local_rank: int = 0
    backend: str = "gloo"
    batchnorm: str = "sync"
    check_sync: bool = False
    _bn_layers: list[nn.Module] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batchnorm not in BATCHNORM_MODES:
            raise unknown_choice("batchnorm mode", self.batchnorm, BATCHNORM_MODES)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder and prints."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def describe(self) -> dict[str, Any]:
        """What a run folder records (``metrics.json``; ``--resume`` must match it)."""
        return {"processes": self.world_size, "batchnorm": self.batchnorm}

    # ---------------------------------------------------------------- the batches

    def min_batch(self) -> int:
        """The smallest global batch every rank gets ≥ 2 rows of (BatchNorm cannot train on one)."""
        return 2 * self.world_size

    def shard(self, batch: Tensor) -> Tensor:
        """This rank's part of a global batch of row indices (sizes differ by at most one)."""
        return batch.tensor_split(self.world_size)[self.rank]

    def loss_scale(self, local_rows: int, batch_rows: int) -> float:
        """``N·b_r / b``: DDP's mean over ranks of the scaled local means is the global batch's mean."""
        return self.world_size * local_rows / batch_rows

    # ---------------------------------------------------------------- the model

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)``; with ``batchnorm="sync"`` its BatchNorm layers
        normalize with the global batch's statistics until :meth:`unwrap`.

        Buffers are not broadcast at each forward (rank 0's would overwrite the others'):
        they stay equal by construction (sync) or by :meth:`after_step` (per-rank).
        """
        from torch.nn.parallel import DistributedDataParallel

        if self.batchnorm == "sync":
            for layer in model.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    # An instance attribute shadows the class's forward; the module, its
                    # state_dict and its type (the exporter folds it) stay as they are.
                    layer.forward = _SyncedForward(layer)
                    self._bn_layers.append(layer)
        devices = [self.device.index] if self.device.type == "cuda" else None
        with warnings.catch_warnings():  # its successor, forward_sync_buffers=False, still syncs at init
            warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
            return DistributedDataParallel(model, device_ids=devices, broadcast_buffers=False)

    def unwrap(self) -> None:
        """Give the BatchNorm layers that :meth:`wrap` synchronized their own forward back."""
        for layer in self._bn_layers:
            del layer.forward
        self._bn_layers.clear()

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        """After each optimizer step: average per-rank BatchNorm statistics; check sync if asked."""
        if self.batchnorm == "per-rank":
            stats = [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                     for b in (m.running_mean, m.running_var) if b is not None]
            if stats:
                flat = torch.cat([s.reshape(-1) for s in stats])
                dist.all_reduce(flat)
                flat /= self.world_size
                for s, v in zip(stats, flat.split([s.numel() for s in stats])):
                    s.copy_(v.view_as(s))
        if self.check_sync:
            self.assert_in_sync(model)

    def assert_in_sync(self, model: nn.Module) -> None:
        """Raise :class:`OutOfSyncError` unless every rank holds bit-identical parameters and buffers."""
        digest = hashlib.sha256()
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        digests: list[str | None] = [None] * self.world_size
        dist.all_gather_object(digests, digest.hexdigest())
        if len(set(digests)) != 1:
            differ = [r for r, d in enumerate(digests) if d != digests[0]]
            raise OutOfSyncError(f"ranks {differ} hold other weights than rank 0")

    # ---------------------------------------------------------------- collectives

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks (float64)."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable value)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def finish(self) -> None:
        """Wait for every rank, then leave the process group.

        Ranks other than 0 finish training while rank 0 still exports and reports; a rank that
        tore its gloo group down alone then could abort in gloo's teardown ("terminate called
        without an active exception"). A rank whose group is already broken leaves at once.
        """
        if not dist.is_initialized():
            return
        try:
            dist.barrier()
        except RuntimeError:
            pass  # another rank failed: there is no one left to wait for
        dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """``Σ_r x_r`` on every rank; the gradient of each ``x_r`` is ``Σ_r`` of the output's gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _SyncedForward:
    r"""A BatchNorm layer's forward over the global batch: in training,

    ``μ = Σ_r Σ x / n``, ``σ² = Σ_r Σ x² / n − μ²`` (n = rows of all ranks; the three sums in
    one differentiable all-reduce, in float64 so the difference loses nothing), then
    ``y = (x − μ)/√(σ² + ε)·γ + β``; the running statistics take μ and the unbiased
    ``σ²·n/(n − 1)``, as ``torch.nn.SyncBatchNorm`` does (which runs on GPUs only).
    In eval mode it is the layer's own forward.
    """

    def __init__(self, layer: nn.modules.batchnorm._BatchNorm) -> None:
        self.layer = layer

    def __call__(self, x: Tensor) -> Tensor:
        bn = self.layer
        if not bn.training:
            return type(bn).forward(bn, x)
        bn._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        x64 = x.double()
        rows = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        total = _AllReduceSum.apply(torch.cat([x64.sum(dims), x64.square().sum(dims), rows]))
        channels = x.shape[1]
        n = total[-1]
        mean64 = total[:channels] / n
        var64 = (total[channels:2 * channels] / n - mean64.square()).clamp_min(0.0)
        mean, var = mean64.to(x.dtype), var64.to(x.dtype)
        centered = x - mean.view(shape)
        if bn.track_running_stats and bn.running_mean is not None:
            with torch.no_grad():
                bn.num_batches_tracked += 1
                factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
                bn.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                rows_all = float(n)
                bn.running_var.mul_(1 - factor).add_(var.detach() * (rows_all / (rows_all - 1)), alpha=factor)
        y = centered * torch.rsqrt(var + bn.eps).view(shape)
        if bn.affine:
            y = y * bn.weight.view(shape) + bn.bias.view(shape)
        return y


def start_from_env(backend: str = "auto", batchnorm: str = "sync") -> DistributedRun | None:
    """Join the process group that torchrun described in the environment; None for one process.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` (and the
    rendezvous address torchrun set), initializes ``torch.distributed`` with
    :func:`choose_backend`, and destroys the group when the process exits. Outside torchrun,
    or with a world of one, nothing is initialized: training is the plain single-process loop.
    """
    if batchnorm not in BATCHNORM_MODES:
        raise unknown_choice("batchnorm mode", batchnorm, BATCHNORM_MODES)
    if not under_launcher() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        choose_backend(backend, 1)  # a bad --backend is an error with one process too
        return None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    chosen = choose_backend(backend, local)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if chosen == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(chosen)
        atexit.register(_destroy)
    return DistributedRun(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                          backend=chosen, batchnorm=batchnorm)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The ``torch.distributed.run`` command line that runs ``python -m onebit ARGV`` in ``nproc``
    processes on this machine (``--standalone``: a local rendezvous on a free port)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"the number of processes must be a positive integer, got {nproc!r}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "onebit", *argv]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``onebit ARGV`` in ``nproc`` processes through torchrun; returns its exit status.

    Each process gets ``OMP_NUM_THREADS=1`` unless it is set (torchrun's own default for
    several processes, said without its warning).
    """
    if under_launcher():
        raise ConfigError("--nproc starts the processes itself; under torchrun leave it out")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.call(launch_command(nproc, argv), env=env)
