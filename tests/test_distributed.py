"""Data-parallel training on torch.distributed (onebit.distributed): two gloo processes on the CPU.

The spawned workers assert inside themselves (a failed assertion fails ``mp.spawn``):
every rank holds bit-identical weights and buffers after every optimizer step (Bop with
Adam, Adam with the latent-weight clip; BatchNorm synchronized and per-rank), rank 0
alone writes the run folder, a 2-process run killed mid-epoch and resumed ends with the
weights of an uninterrupted one, and with synchronized BatchNorm the averaged gradient
of a split batch equals one process's gradient of the whole batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from onebit.cli import _without_option, main
from onebit.errors import ConfigError

WORLD = 2


def _data(rows: int = 96) -> tuple:
    from onebit.data import load_dataset

    d = load_dataset("digits", seed=0)
    return d.x_train[:rows], d.y_train[:rows], d.x_train[rows:rows + 64], d.y_train[rows:rows + 64]


def _model(seed: int = 0) -> torch.nn.Module:
    from onebit.models import create_model

    torch.manual_seed(seed)
    return create_model("binarynet_mlp", num_classes=10, in_shape=(1, 8, 8), hidden=24)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _worker(rank: int, store: str, base: str) -> None:
    import onebit.train as train_module
    from onebit.distributed import DistributedRun, OutOfSyncError

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        base_dir = Path(base)
        x, y, xv, yv = _data()
        common = {"val": (xv, yv), "epochs": 2, "batch_size": 48, "seed": 3}

        # 1. Bop (+ Adam for the rest), synchronized BatchNorm, checked after every step; each rank is
        #    given its own folder: only rank 0's may exist afterwards.
        run = DistributedRun(rank, WORLD, batchnorm="sync", check_sync=True)
        bop = _model()
        train_module.fit(bop, (x, y), optimizer="bop", lr=3e-3, out_dir=base_dir / f"bop{rank}",
                         distributed=run, **common)
        run.assert_in_sync(bop)
        # 2. The check can fail: one rank's weights changed.
        with torch.no_grad():
            next(bop.parameters()).add_(float(rank))
        with pytest.raises(OutOfSyncError, match="ranks \\[1\\]"):
            run.assert_in_sync(bop)

        # 3. Adam with the latent-weight clip, per-rank BatchNorm: uninterrupted, then killed in
        #    epoch 2 (after epoch 1's state was saved) and resumed, in one shared folder.
        run = DistributedRun(rank, WORLD, batchnorm="per-rank", check_sync=True)
        whole = _model()
        whole_result = train_module.fit(whole, (x, y), optimizer="adam", lr=3e-3, distributed=run, **common)
        evaluate, calls = train_module.evaluate, []

        def crash_in_epoch_2(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return evaluate(*args, **kwargs)

        train_module.evaluate = crash_in_epoch_2
        try:
            with pytest.raises(KeyboardInterrupt):
                train_module.fit(_model(), (x, y), optimizer="adam", lr=3e-3, out_dir=base_dir / "killed",
                                 distributed=run, **common)
        finally:
            train_module.evaluate = evaluate
        dist.barrier()
        resumed = _model(seed=99)  # other initial weights: everything must come from the saved state
        resumed_result = train_module.fit(resumed, (x, y), optimizer="adam", lr=3e-3, out_dir=base_dir / "killed",
                                          resume=True, distributed=run, **common)
        assert _same_state(resumed, whole)
        assert resumed_result.history[-1].val_loss == whole_result.history[-1].val_loss

        # 4. Synchronized BatchNorm and the loss scale: the averaged gradient of a 7-row batch split
        #    4 + 3 is one process's gradient of the 7 rows.
        run = DistributedRun(rank, WORLD, batchnorm="sync")
        single, split = _model(), _model()
        xb, yb = torch.from_numpy(x[:7]).float(), torch.from_numpy(y[:7]).long()
        torch.nn.functional.cross_entropy(single(xb), yb).backward()
        net = run.wrap(split)
        part = run.shard(torch.arange(7))
        loss = torch.nn.functional.cross_entropy(net(xb[part]), yb[part])
        (loss * run.loss_scale(len(part), 7)).backward()
        run.unwrap()
        for (name, p), q in zip(single.named_parameters(), split.parameters()):
            if p.grad is not None:
                torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)
        for key in ("running_mean", "running_var"):
            a = [v for k, v in single.state_dict().items() if k.endswith(key)]
            b = [v for k, v in split.state_dict().items() if k.endswith(key)]
            for u, v in zip(a, b):
                torch.testing.assert_close(v, u, rtol=1e-5, atol=1e-6)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_stay_in_sync_write_once_and_resume_exactly(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    assert (tmp_path / "bop0" / "metrics.json").is_file() and not (tmp_path / "bop1").exists()
    metrics = json.loads((tmp_path / "bop0" / "metrics.json").read_text())
    assert metrics["distributed"] == {"processes": 2, "batchnorm": "sync"}
    assert len(metrics["history"]) == 2
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["finished"]


def test_nproc_runs_the_command_under_torchrun(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "onebit", "train", "--nproc", "2", "--model", "binarynet_mlp", "-M", "hidden=16",
         "--data", "digits", "--split", "300:100", "--epochs", "1", "--batch-size", "100", "--threads", "1", "--no-progress",
         "--keep", "all", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy:") == 1  # rank 0 alone prints
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["distributed"] == {"processes": 2, "batchnorm": "sync"}
    assert {p.name for p in out.iterdir()} >= {"run.json", "metrics.json", "checkpoint.safetensors",
                                              "train_state.pt", "model.onebit"}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("argv, message", [
    (["--nproc", "0"], "argument --nproc: expected a positive integer, got '0'"),
    (["--nproc", "2", "--backend", "mpi"], "unknown distributed backend 'mpi'; valid choices: auto, gloo, nccl"),
    (["--nproc", "2", "--batchnorm", "global"], "unknown --batchnorm mode 'global'; valid choices: per-rank, sync"),
    (["--backend", "mpi"], "unknown distributed backend 'mpi'"),
])
def test_bad_distributed_options_get_one_line(argv, message, capsys, tmp_path):
    assert _status(["train", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _status(argv: list[str]) -> int:
    """``onebit ARGV``'s exit status (argparse's own errors exit instead of returning)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has GPUs for NCCL")
def test_nccl_without_gpus_is_one_line(capsys, tmp_path):
    assert main(["train", "--nproc", "2", "--backend", "nccl", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nccl" in err and "--backend gloo" in err


def test_nproc_under_torchrun_is_refused(monkeypatch):
    from onebit.distributed import launch

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    with pytest.raises(ConfigError, match="under torchrun leave it out"):
        launch(2, ["train"])


def test_the_launcher_drops_nproc_and_runs_torch_distributed_run():
    from onebit.distributed import launch_command

    assert _without_option(["train", "--nproc", "2", "--epochs", "1"], "--nproc") == ["train", "--epochs", "1"]
    assert _without_option(["train", "--nproc=2", "--npr", "3", "-M", "x=1"], "--nproc") == ["train", "-M", "x=1"]
    cmd = launch_command(3, ["train", "--epochs", "1"])
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3", "-m", "onebit",
                       "train", "--epochs", "1"]
    with pytest.raises(ConfigError, match="positive integer"):
        launch_command(0, ["train"])
