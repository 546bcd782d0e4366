"""The ``onebit`` command line: parses arguments and calls the library, nothing more.

Every option is checked before any work starts (no data is loaded for a bad argument),
and every error about the user's input is one line on stderr, exit status 2: an
:class:`~onebit.errors.OnebitError` from the library, or a bad option value, with the
closest valid name where one was misspelled. Output is a human table or sentence by
default; ``--json`` prints one JSON object on stdout instead (the header lines of
``train`` then go to stderr). Progress and status lines (the library's ``onebit.*``
loggers at INFO: epochs, export checks, timings) always go to stderr.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from onebit import __version__
from onebit.errors import ConfigError, ExportError, OnebitError, unknown_choice

# The default run: onebit's small binary CNN with ReActNet's blocks, its digits recipe in
# onebit.recipes (the most accurate binary network measured on digits within the run's
# 3-minute budget, docs/training.md).
DEFAULT_MODEL = "binary_cnn2d"
DEFAULT_DATA = "digits"
# The library's names (onebit.optim.OPTIMIZERS, onebit.train.SCHEDULES, onebit.recipes.RECIPE_CHOICES,
# onebit.train.KEEP_CHOICES), repeated so that --help needs no torch; a test keeps them equal.
OPTIMIZER_CHOICES = ("adam", "adamw", "sgd", "bop")
SCHEDULE_CHOICES = ("cosine", "linear", "constant", "step")
RECIPE_CHOICES = ("default", "binarynet", "bireal", "reactnet", "real2binary", "single", "two-stage", "distill")
KEEP_CHOICES = ("best", "last", "all")


# --------------------------------------------------------------------------- parsing


class _Parser(argparse.ArgumentParser):
    """argparse with onebit's error style: one line, the option named, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Appends "(default: X)" to every option whose help does not state its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == [] or (
            action.default == argparse.SUPPRESS)
        if not action.option_strings or "default" in text or unset or isinstance(action, argparse._VersionAction):
            return text
        return f"{text} (default: %(default)s)"


def _checked(convert: Any, test: Any, expected: str) -> Any:
    """An argparse ``type``: ``convert(text)`` that must satisfy ``test``, else "expected …, got '…'"."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (ValueError, OnebitError):
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _checked(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
_non_negative_float = _checked(float, lambda v: v >= 0 and math.isfinite(v), "a non-negative number")
_open_fraction = _checked(float, lambda v: 0 < v < 1, "a number strictly between 0 and 1")
_unit_interval = _checked(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def _parse_split(text: str) -> tuple[int, int]:
    from onebit.data import parse_split

    return parse_split(text)


def _parse_shape(text: str) -> tuple[int, ...]:
    shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    if not shape:
        raise ValueError(text)
    return shape


def _parse_threads(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


_split = _checked(_parse_split, lambda v: True, "TRAIN:TEST, two positive row counts such as 8000:2000")
_shape = _checked(_parse_shape, lambda v: min(v) >= 1, "positive integers like 1,28,28")
_thread_list = _checked(_parse_threads, lambda v: bool(v) and min(v) >= 1, "positive integers like 1,2")
_class_list = _checked(_parse_threads, lambda v: len(v) >= 2 and min(v) >= 0 and len(set(v)) == len(v),
                       "two or more distinct class indices like 5,6,7,8,9")


def _model_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is a Python literal (``3``, ``0.5``, ``None``, ``[1, 2]``) or a bare string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if value.lower() in ("none", "null", "float"):
        return key, None
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="onebit", description="Binary neural networks: train, inspect, export and benchmark.",
                formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"onebit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    json_arg = _Parser(add_help=False)
    json_arg.add_argument("--json", action="store_true",
                          help="print one JSON object on stdout instead of text (progress and logs go to stderr)")

    def command(name: str, help: str, parents: tuple[argparse.ArgumentParser, ...] = ()) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[*parents, json_arg], help=help, description=help, formatter_class=_Help)

    model_args = _Parser(add_help=False)
    model_args.add_argument(
        "--model-arg", "-M", action="append", type=_model_arg, default=[], metavar="KEY=VALUE",
        help="extra model argument, repeatable (e.g. -M hidden=1024 -M dropout=0.2; `onebit models` lists the models)",
    )
    model_args.add_argument(
        "--float", action="store_true",
        help="the float twin of the model: input_quantizer=None, weight_quantizer=None",
    )
    shape_args = _Parser(add_help=False)
    shape_args.add_argument("--in-shape", type=_shape, default=None, metavar="C,H,W",
                            help="input shape without the batch axis (default: the model's native shape, "
                                 "see `onebit models`)")
    shape_args.add_argument("--num-classes", type=_positive_int, default=None,
                            help="number of classes (default: the model's native count)")
    energy_args = _Parser(add_help=False)
    energy_args.add_argument("--energy", action="store_true",
                             help="estimate the energy per inference, per layer, of the model and of its float "
                                  "twin (docs/energy.md); bench also measures joules with RAPL where the machine "
                                  "exposes it, at the first --threads count")
    energy_args.add_argument("--energy-table", type=Path, default=None, metavar="JSON",
                             help="pJ per operation for your process (default: Horowitz, ISSCC 2014, 45 nm)")
    energy_args.add_argument("--cache-kb", type=_positive_int, default=1024,
                             help="on-chip SRAM a layer's working set must fit to stay off DRAM, in KiB")

    t = command("train", "train a model and write a run folder", (model_args,))
    t.add_argument("--model", default=None, metavar="NAME",
                   help=f"registered model name (default: {DEFAULT_MODEL}; binary_kws for fsdd and espeak-digits, "
                        "binary_text_mlp for a folder of text; with the arguments of its recipe)")
    t.add_argument("--data", default=DEFAULT_DATA,
                   help="digits, mnist1d, fsdd, espeak-digits, or a folder (MNIST IDX layout, "
                        "cifar-10-batches-py, the VADER sentences or label<TAB>text lines)")
    t.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                   help="pool the data set's rows in file order and take the first TRAIN for training, the next "
                        "TEST for testing; needed for a folder that holds one part only (e.g. --data "
                        "../shared/data/mnist-t10k --split 8000:2000) (default: the data set's own split)")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs (default: the model/data recipe; two-stage splits them between its stages)")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="samples per step (default: the recipe's)")
    t.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: the recipe's)")
    t.add_argument("--optimizer", default=None,
                   help=f"{', '.join(OPTIMIZER_CHOICES)} (default: the recipe's; bop = Bop for binary weights, "
                        "Adam for the rest)")
    t.add_argument("--schedule", default=None,
                   help=f"learning-rate schedule: {', '.join(SCHEDULE_CHOICES)} (default: the recipe's)")
    t.add_argument("--weight-decay", type=_non_negative_float, default=None,
                   help="weight decay of the real-valued weights, never of binary ones (default: the recipe's)")
    t.add_argument("--val-fraction", type=_open_fraction, default=0.1,
                   help="share of the training rows held out (stratified) to pick the best epoch")
    t.add_argument("--seed", type=_non_negative_int, default=0,
                   help="seed of the initial weights, the batch order and the validation split")
    t.add_argument("--out", type=Path, default=None, metavar="RUN_DIR", help="run folder (default: runs/<timestamp>)")
    t.add_argument("--keep", default="last", metavar="{best,last,all}",
                   help="what a finished run keeps beside checkpoint.safetensors, metrics.json, curves.png and "
                        "model.onebit: best = nothing more; last = also last.safetensors; all = also "
                        "train_state.pt (only an interrupted run needs it)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (it is drawn only on a terminal)")
    t.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted run (any recipe: finished steps are reloaded, the interrupted "
                        "one continues from its last finished epoch) with its recorded settings")
    t.add_argument("--recipe", default=None, metavar="NAME",
                   help=f"{', '.join(RECIPE_CHOICES)}: default = the model/data pair's tuned recipe; binarynet, "
                        "bireal, reactnet, real2binary = the papers' choices; single, two-stage, distill = the "
                        "default recipe with only its procedure changed (docs/training.md) (default: default)")
    t.add_argument("--set", dest="recipe_set", action="append", type=_model_arg, default=[], metavar="KEY=VALUE",
                   help="change one recipe setting, repeatable (e.g. --set label_smoothing=0.1 --set augment=false "
                        "--set two_step=activations; docs/training.md lists them)")
    t.add_argument("--teacher", type=Path, default=None, metavar="CHECKPOINT",
                   help="distill: the teacher's checkpoint (default: train the float twin first, into RUN_DIR/teacher)")
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: the recipe's; results repeat bit for bit only at equal counts)")
    t.add_argument("--ce-weight", type=_unit_interval, default=None,
                   help="distill: loss = (1 - w) KL(teacher || student) + w cross-entropy (default: the recipe's, 0)")
    t.add_argument("--nproc", type=_positive_int, default=None, metavar="N",
                   help="train data-parallel in N processes on this machine (starts torchrun with this command; "
                        "several machines: torchrun ... -m onebit train, docs/distributed.md); --batch-size stays "
                        "the whole step's batch")
    t.add_argument("--backend", default="auto", metavar="{auto,gloo,nccl}",
                   help="torch.distributed backend of a multi-process run: auto = nccl when every process has a "
                        "GPU, else gloo on the CPU")
    t.add_argument("--no-report", action="store_true",
                   help="do not write report.html (the run report, `onebit report RUN_DIR`) at the end")
    t.add_argument("--batchnorm", default="sync", metavar="{sync,per-rank}",
                   help="BatchNorm of a multi-process run: sync = statistics of the whole batch over all processes "
                        "(the arithmetic of one process); per-rank = each process's slice, running statistics "
                        "averaged over the processes after every step")

    s = command("summary", "print a model's per-layer table: bits, bytes, binary and float MACs",
                (model_args, shape_args, energy_args))
    s.add_argument("model", metavar="MODEL", help="registered model name (`onebit models` lists them)")
    s.add_argument("--data", default=None,
                   help="take the input shape and classes from this data set (default: the model's native ones)")

    e = command("eval", "evaluate a checkpoint on its data set's test split")
    e.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a checkpoint written by onebit train")
    e.add_argument("--data", default=None, help="data set (default: the one recorded in the checkpoint)")
    e.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                   help="re-split the data set (default: the split recorded in the checkpoint)")

    x = command("export", "export a checkpoint to a .onebit file for the runtime, checked against PyTorch")
    x.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a checkpoint written by onebit train")
    x.add_argument("-o", "--output", type=Path, default=None,
                   help="the output file (default: the checkpoint's path with .onebit, or .onnx for qonnx)")
    x.add_argument("--data", default=None, help="data set for the check (default: the one recorded in the checkpoint)")
    x.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                   help="re-split the data set (default: the split recorded in the checkpoint)")
    x.add_argument("--format", choices=("onebit", "c", "qonnx"), default="onebit",
                   help="onebit: the runtime's file; c: standalone C99 for microcontrollers (a directory: model.h, "
                        "model.c, main.c; CHECKPOINT may also be a .onebit file); qonnx: ONNX with QONNX quantizers for FINN "
                        "(extra 'onnx'), checked with QONNX's executor on up to 1,000 test inputs")
    x.add_argument("--flash-kb", type=float, default=None, metavar="KB",
                   help="--format c: fail if the const weights exceed this many KiB")
    x.add_argument("--ram-kb", type=float, default=None, metavar="KB",
                   help="--format c: fail if the activation arena exceeds this many KiB")
    x.add_argument("--word-bits", type=int, choices=(32, 64), default=32,
                   help="--format c: the word binary weights and activations are packed in")

    cv = command("convert", "import a Larq/Keras .h5 model (no TensorFlow needed): a checkpoint, and with --onebit "
                            "the engine's file, checked against PyTorch")
    cv.add_argument("model", type=Path, metavar="MODEL.h5", help="a Keras 2 HDF5 file saved with model.save('m.h5')")
    cv.add_argument("-o", "--output", type=Path, required=True, metavar="CHECKPOINT",
                    help="the checkpoint to write (.safetensors; load it with onebit.convert.load_converted)")
    cv.add_argument("--onebit", type=Path, default=None, metavar="FILE", help="also write the engine's .onebit file")
    cv.add_argument("--keep-softmax", action="store_true", help="keep a final softmax (default: return logits)")

    b = command("bench", "latency of a model: onebit.runtime vs PyTorch fp32, 1 and N threads",
                (shape_args, energy_args))
    b.add_argument("model", metavar="MODEL",
                   help="a .onebit file, or a registered model name (timed with random weights at its native size)")
    b.add_argument("--batch-size", type=_positive_int, default=1, help="samples per call")
    b.add_argument("--threads", type=_thread_list, default=None, metavar="N,M",
                   help="comma-separated thread counts (default: 1 and all cores)")
    b.add_argument("--repeats", type=_positive_int, default=50, help="timed calls per thread count")

    r = command("search", "width search (Shen et al. 2019): evolve per-layer widths of a binary net under a cost "
                          "budget, against random search; retrain and export the winner", (model_args,))
    r.add_argument("--model", default=None, metavar="NAME",
                   help="a model with per-layer width knobs: binary_cnn1d, binarynet_cnn, birealnet18, birealnet34, "
                        "reactnet_resnet18")
    r.add_argument("--data", default=None, help="digits, mnist1d, or a folder (MNIST IDX layout or cifar-10-batches-py)")
    r.add_argument("--cost", default=None, metavar="{binary_macs,bytes,latency}",
                   help="the constrained cost(s), comma-separated: binary MACs, packed bytes, or the exported model's "
                        "latency in onebit's runtime on this machine (default: binary_macs)")
    r.add_argument("--budget", default=None, metavar="B[,B]",
                   help="maximum of each cost, in MACs, bytes or milliseconds (default: --budget-like uniform:2)")
    r.add_argument("--budget-like", default=None, metavar="uniform:R",
                   help="the budget is the cost of the net with every width at ratio R (default: uniform:2)")
    r.add_argument("--population", type=_positive_int, default=None, help="genomes per generation (default: 8)")
    r.add_argument("--generations", type=_positive_int, default=None,
                   help="generations, the first one random (default: 5)")
    r.add_argument("--proxy-epochs", type=_positive_int, default=None,
                   help="training epochs that score a candidate (its validation accuracy) (default: 3)")
    r.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs of the winner's retraining from scratch (default: the model/data recipe's)")
    r.add_argument("--parents", type=_positive_int, default=None,
                   help="top-k genomes that breed (default: half the population)")
    r.add_argument("--elite", type=_non_negative_int, default=None,
                   help="fittest genomes kept unchanged each generation (default: a quarter of the population)")
    r.add_argument("--mutation-rate", type=_unit_interval, default=None,
                   help="per-gene mutation probability (default: 1 / number of genes)")
    r.add_argument("--over-budget", default=None, metavar="{repair,reject}",
                   help="over-budget offspring: lower random genes until it fits, or breed another (default: repair)")
    r.add_argument("--choices", default=None, metavar="R,R,...",
                   help="width ratios a gene may take (default: 0.5,1,2,3,4, the paper's)")
    r.add_argument("--no-random-search", action="store_true",
                   help="skip the random-search baseline (same number of evaluations as the evolution)")
    r.add_argument("--latency-batch", type=_positive_int, default=None,
                   help="samples per timed call of the latency cost (default: 1)")
    r.add_argument("--latency-threads", type=_positive_int, default=None,
                   help="engine threads of the latency cost (default: 1)")
    r.add_argument("--seed", type=_non_negative_int, default=None,
                   help="seed of the whole search: draws, validation split, each candidate's derived seed (default: 0)")
    r.add_argument("--workers", type=_positive_int, default=1,
                   help="candidate trainings in parallel (results do not depend on it)")
    r.add_argument("--backend", default="process", metavar="{process,ray}",
                   help="process: a local process pool; ray: Ray tasks (pip install 'onebit[search]')")
    r.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue a killed search from its folder, with its recorded settings")
    r.add_argument("--out", type=Path, default=None, metavar="DIR", help="search folder (default: runs/search-<timestamp>)")
    r.add_argument("--no-report", action="store_true",
                   help="do not write report.html (the search's report, `onebit report DIR`) at the end")

    xp = command("experiment", "paper reproductions: list them, or run one into a folder (results.json, "
                               "results.md, plots)")
    xp.add_argument("action", metavar="{list,run}", help="list: the registered experiments; run: run NAME")
    xp.add_argument("name", nargs="?", default=None, metavar="NAME", help="the experiment to run (`onebit experiment list`)")
    xp.add_argument("--quick", action="store_true", help="the smoke run: under a minute on 2 cores, numbers not meaningful")
    xp.add_argument("--seeds", type=_positive_int, default=None, help="seeds (default: the experiment's, 3 for a full run)")
    xp.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="results folder (default: runs/<NAME>-<timestamp>)")
    xp.add_argument("--no-report", action="store_true",
                    help="do not write report.html (the run's report, `onebit report DIR`) at the end")

    g = command("analyze", "geometry of a checkpoint's binary layers (Anderson & Berg 2018): angles between latent "
                           "and binarized weights, d, dot-product correlations on real data; table, JSON and PNGs")
    g.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a onebit checkpoint (.safetensors)")
    g.add_argument("--data", default=None,
                   help="data set whose test inputs feed the correlations (default: the one recorded in the "
                        "checkpoint; none recorded and none given: the weights alone are analyzed)")
    g.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                   help="re-split the data set (default: the split recorded in the checkpoint)")
    g.add_argument("--samples", type=_positive_int, default=512, help="test inputs run through the model")
    g.add_argument("--ternary-threshold", type=_non_negative_float, default=0.612, metavar="T",
                   help="ternarize at |w| > T·σ of each layer for the ternary angles (0.612 minimizes the "
                        "Gaussian angle)")
    g.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder for geometry.json, angles.png, angle_sd.png, dot_products.png")
    tr = command("transfer", "frozen binary features: cut a checkpoint at a layer, train a head for a new task "
                             "on the engine's packed features (Leroux et al. 2017)")
    tr.add_argument("--from", dest="checkpoint", type=Path, required=True, metavar="CHECKPOINT",
                    help="the trained source model (a checkpoint written by onebit train)")
    tr.add_argument("--cut", required=True, metavar="LAYER",
                    help="the module whose output, flattened and signed, is the feature vector (a wrong name lists "
                         "the valid ones)")
    tr.add_argument("--data", required=True, help="the target task: digits, mnist1d, or a folder")
    tr.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                    help="re-split the target data set (see onebit train --help)")
    tr.add_argument("--classes", type=_class_list, default=None, metavar="C,C,...",
                    help="keep these classes of the target data set, relabelled 0.. in this order (default: all)")
    tr.add_argument("--shots", type=_positive_int, default=None,
                    help="labelled training examples per class for the head (default: the whole training part)")
    tr.add_argument("--hidden", type=_non_negative_int, default=0,
                    help="hidden units of the head (0: logistic regression)")
    tr.add_argument("--binary-head", action="store_true", help="±1 weights in the head too")
    tr.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the shots drawn and of the head")
    tr.add_argument("--out", type=Path, required=True, metavar="DIR",
                    help="folder for extractor.onebit (outputs packed feature bits), head.safetensors, results.json")
    fd = command("federated", "FedHyBNN (Dua 2022): train a HyBNN's binary head federated on Flower, a SuperLink and "
                              "N SuperNodes on 127.0.0.1 (pip install 'onebit[federated]')")
    fd.add_argument("--clients", type=_positive_int, default=5, help="number of clients (one SuperNode each)")
    fd.add_argument("--rounds", type=_positive_int, default=20, help="federated rounds")
    fd.add_argument("--local-epochs", type=_positive_int, default=2, help="epochs each client trains per round")
    fd.add_argument("--data", default="mnist1d", help="digits, mnist1d, or a folder (MNIST IDX layout or "
                                                      "cifar-10-batches-py)")
    fd.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                    help="re-split the data set (see onebit train --help)")
    part = fd.add_mutually_exclusive_group()
    part.add_argument("--iid", action="store_true", help="deal the training rows out at random (the default)")
    part.add_argument("--dirichlet", type=_positive_float, default=None, metavar="ALPHA",
                      help="label-skewed clients: each class split by Dirichlet(ALPHA) shares (0.5: strongly non-IID)")
    fd.add_argument("--upload", default="float32", metavar="{float32,sign}",
                    help="float32: the trained tensors (FedAvg); sign: 1 bit per value, the signs of the update and "
                         "one scale per tensor")
    fd.add_argument("--rule", default="mean", metavar="{mean,vote}",
                    help="how the server combines 1-bit uploads: mean of the scaled signs, or majority vote")
    fd.add_argument("--no-error-feedback", action="store_true",
                    help="1-bit uploads without the residual each client carries to the next round")
    fd.add_argument("--fedbn", action="store_true", help="keep BatchNorm local to each client (FedBN); nothing "
                                                         "single is exported then")
    fd.add_argument("--latent-bits", type=_positive_int, default=64, help="bits m of the autoencoder's binary code")
    fd.add_argument("--estimator", default="ste", metavar="{ste,gumbel}",
                    help="latent training: straight-through sign, or Gumbel-sigmoid with a Bernoulli(1/2) KL term")
    fd.add_argument("--vae-epochs", type=_positive_int, default=30,
                    help="epochs of the autoencoder, trained before the run on the training rows (no labels)")
    fd.add_argument("--head-hidden", type=_positive_int, default=512, help="binary hidden units per head layer")
    fd.add_argument("--head-depth", type=_positive_int, default=2, help="binary hidden layers of the head")
    fd.add_argument("--batch-size", type=_positive_int, default=32, help="clients' mini-batch size")
    fd.add_argument("--lr", type=_positive_float, default=3e-3, help="clients' Adam learning rate")
    fd.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the partition, autoencoder and training")
    fd.add_argument("--round-timeout", type=_positive_float, default=300.0, metavar="SECONDS",
                    help="a client silent this long after a round starts is logged as lost and not asked again")
    fd.add_argument("--port", type=_positive_int, default=None,
                    help="the SuperLink's port on 127.0.0.1 (default: a free one)")
    fd.add_argument("--simulate", action="store_true",
                    help="run the same ServerApp and ClientApps in this process (no SuperLink, no sockets)")
    fd.add_argument("--out", type=Path, required=True, metavar="DIR",
                    help="run folder: federated.json, history.json, results.json, hybnn.onebit, logs/")
    se = command("separate", "two-speaker separation with a .onebit mask network (Simpson 2015; onebit.audio.separation): "
                             "writes source1.wav and source2.wav, run on onebit.runtime")
    se.add_argument("mixture", type=Path, metavar="MIX.wav", help="the mixture: a WAV file at the model's sample rate "
                                                                  "(several channels are averaged)")
    se.add_argument("--model", type=Path, required=True, metavar="M.onebit",
                    help="a mask network exported by onebit.audio.separation.export_separator (or the "
                         "simpson2015_separation experiment's runs/seed0/float.onebit)")
    mask = se.add_mutually_exclusive_group()
    mask.add_argument("--alpha", type=_checked(float, lambda v: 0.5 <= v < 1, "a confidence in [0.5, 1)"),
                      default=0.5, help="keep a bin for a speaker where the network is this sure it dominates "
                                        "(higher: less interference, more artefacts)")
    mask.add_argument("--soft", action="store_true", help="use the predicted probability itself as the mask")
    se.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR",
                    help="folder for source1.wav and source2.wav (created; must not hold them already)")
    rp = command("report", "write a run folder's report: one self-contained HTML page (settings, curves, confusion "
                           "matrices, sizes, latency, binary layers) for onebit train, search or experiment runs")
    rp.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a folder written by onebit train, onebit search or "
                                                                  "onebit experiment run")
    rp.add_argument("-o", "--output", type=Path, default=None, help="the HTML file (default: RUN_DIR/report.html)")
    rp.add_argument("--partial", action="store_true",
                    help="render what is there when the folder lacks parts (an interrupted run), listing them on "
                         "the page")
    rp.add_argument("--latency-seconds", type=_non_negative_float, default=0.15, metavar="S",
                    help="seconds of each of the four latency measurements (0: no latency section)")
    command("models", "list the registered models with their native input, classes and parameters")
    return p


def _format_args(kwargs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in kwargs.items())


# --------------------------------------------------------------------------- output


def _emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


# --------------------------------------------------------------------------- train


RUN_FILE = "run.json"  # a run folder's settings, written before training: what --resume reads


def _use_recorded_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``--resume RUN_DIR``: every setting comes from the run's ``run.json``, none from the command line."""
    given = sorted(f"--{k.replace('_', '-')}" for k in ("model", "epochs", "batch_size", "lr", "optimizer", "schedule",
                                                       "weight_decay", "recipe", "teacher", "threads", "ce_weight",
                                                       "split", "out") if getattr(args, k) is not None)
    given += [flag for flag, value in (("--model-arg", args.model_arg), ("--set", args.recipe_set),
                                       ("--float", args.float)) if value]
    if given:
        raise ConfigError(f"--resume takes every setting from {args.resume / RUN_FILE}; drop {', '.join(given)}")
    path = args.resume / RUN_FILE
    if not path.is_file():
        raise ConfigError(f"{args.resume} is not a onebit run folder (no {RUN_FILE}); nothing to resume")
    try:
        recorded = json.loads(path.read_text())
        args.model, args.data, args.seed = recorded["model"], recorded["data"], recorded["seed"]
        args.val_fraction = recorded["val_fraction"]
        args.split = tuple(recorded["split"]) if recorded.get("split") else None
        args.teacher = Path(recorded["teacher"]) if recorded.get("teacher") else None
        args.out = args.resume
        return recorded
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}); start the run again with a new --out") from None


_RECIPE_FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
                 "schedule": "--schedule", "weight_decay": "--weight-decay", "ce_weight": "--ce-weight",
                 "threads": "--threads"}


def _train_recipe(args: argparse.Namespace, name: str, data_name: str) -> Any:
    """The named recipe (default: the model/data pair's) with the command line's overrides applied."""
    from dataclasses import fields, replace

    from onebit.recipes import Recipe, named_recipe

    recipe = named_recipe(args.recipe or "default", name, data_name)
    overrides = {k: getattr(args, k) for k in _RECIPE_FLAGS if getattr(args, k) is not None}
    settable = {f.name for f in fields(Recipe)} - {"name", "model_args"}
    for key, value in args.recipe_set:
        if key not in settable:
            raise unknown_choice("recipe setting (--set)", key, sorted(settable))
        if key in _RECIPE_FLAGS:
            raise ConfigError(f"use {_RECIPE_FLAGS[key]} to set {key}, not --set")
        overrides[key] = value
    if overrides:
        recipe = replace(recipe, **overrides)
    if args.teacher is not None and not recipe.distill:
        raise ConfigError(f"--teacher is for a distilled recipe (distill, reactnet, real2binary), not {recipe.name}")
    if args.float and (recipe.two_step or recipe.distill):
        if args.recipe not in (None, "default") or {"two_step", "distill"} & {k for k, _ in args.recipe_set}:
            raise ConfigError(f"--float trains the float twin in one run; it does not combine with the {recipe.name} "
                              f"recipe ({recipe.kind}): add --set two_step=none --set distill=false")
        # The pair's float twin: the default recipe's choices in one step, as its distillation teacher trains.
        recipe = replace(recipe, two_step=None, distill=False, ce_weight=0.0, attention_weight=0.0)
    return recipe


def _check_train_args(args: argparse.Namespace) -> tuple[str, Any, dict[str, Any], Path]:
    """Everything about a ``train`` command that can be checked without its data; returns
    (model name, recipe, model arguments, run folder)."""
    from onebit.checkpoint import read_checkpoint_meta
    from onebit.data import check_dataset_spec
    from onebit.models import check_model_args
    from onebit.recipes import default_model

    name = args.model or default_model(args.data, DEFAULT_MODEL)
    for kind, value, choices in (("optimizer", args.optimizer, OPTIMIZER_CHOICES),
                                 ("schedule", args.schedule, SCHEDULE_CHOICES),
                                 ("recipe", args.recipe, RECIPE_CHOICES), ("--keep setting", args.keep, KEEP_CHOICES)):
        if value is not None and value not in choices:
            raise unknown_choice(kind, value, choices)
    data_name = check_dataset_spec(args.data)
    recipe = _train_recipe(args, name, data_name)
    kwargs = {**recipe.model_args, **dict(args.model_arg)}
    if args.float:
        kwargs.update(input_quantizer=None, weight_quantizer=None)
    check_model_args(name, kwargs)
    if args.teacher is not None:
        read_checkpoint_meta(args.teacher)
    out = args.out or Path("runs") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if args.resume is None:
        _check_new_folder(out, "run folder")
    return name, recipe, kwargs, out


def _check_new_folder(out: Path, what: str = "folder", alternative: str = "") -> None:
    """A command's output folder must not exist yet, or be empty: nothing of an earlier run is overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{what} {out} already exists and is not empty; choose another --out{alternative}")


def _cmd_train(args: argparse.Namespace) -> int:
    from onebit.distributed import start_from_env

    if args.nproc is not None:
        return _launch_train(args)
    dist_run = start_from_env(args.backend, args.batchnorm)  # None in a single process
    try:
        return _train_in_process(args, dist_run)
    finally:
        if dist_run is not None:
            dist_run.finish()


def _train_in_process(args: argparse.Namespace, dist_run: Any) -> int:
    """``onebit train`` in this process: the whole run, or this rank's part of a distributed one."""
    from dataclasses import replace

    if dist_run is not None and not dist_run.is_main:
        logging.getLogger("onebit").setLevel(logging.WARNING)  # rank 0 alone reports progress
    recorded = _use_recorded_settings(args) if args.resume is not None else None
    if recorded is None:
        name, recipe, kwargs, out = _check_train_args(args)
    else:
        from onebit.recipes import Recipe

        name, kwargs, out = recorded["model"], recorded["model_args"], args.out
        recipe = Recipe.from_dict(recorded["recipe"])
    if dist_run is not None:
        out = dist_run.broadcast(out)  # rank 0's folder (the default name holds the time)
        dist_run.barrier()  # every rank has checked the folder before rank 0 creates it

    from onebit.data import load_dataset
    from onebit.export import export_checked
    from onebit.model_summary import summary
    from onebit.models import create_model
    from onebit.recipes import train_with_recipe
    from onebit.train import prune_run, record_metrics

    say = _sayer(args) if dist_run is None or dist_run.is_main else (lambda line: None)
    data = load_dataset(args.data, seed=args.seed, split=args.split, model=name)
    n_val = data.validation_size(args.val_fraction)
    say(f"onebit train: model {name} {_format_args(kwargs)} on {data.name} ({data.source})")
    say(f"  {len(data.x_train) - n_val:,} training + {n_val:,} validation ({args.val_fraction:g} of the training "
        f"part) + {len(data.x_test):,} test samples, input {data.in_shape}, {data.num_classes} classes")
    say(f"  {recipe.name} recipe ({recipe.kind}), {recipe.epochs} epochs, batch {recipe.batch_size}, lr {recipe.lr}, "
        f"{recipe.optimizer}, {recipe.schedule} schedule, {recipe.loss.replace('_', ' ')} loss"
        f"{', augmented' if recipe.augment else ''}, seed {args.seed}")
    if args.recipe is not None and recorded is None:
        from onebit.recipes import inapplicable_choices

        left_out = inapplicable_choices(args.recipe, name)
        if left_out:
            say(f"  model {name} cannot take the {args.recipe} recipe's {', '.join(left_out)} (no such argument, or "
                f"no per-layer RSign): it trains with its own")
    table = summary(create_model(name, num_classes=data.num_classes, in_shape=data.in_shape, **kwargs), data.in_shape)
    say(str(table))
    kwargs = json.loads(json.dumps(kwargs))  # as run.json will give them back to --resume (tuples become lists)
    recipe = replace(recipe, model_args=kwargs)
    info = {"model": name, "model_args": kwargs, "data": args.data, "data_name": data.name,
            "val_fraction": args.val_fraction, "summary": table.to_dict()["totals"], "recipe": recipe.name,
            "procedure": recipe.kind, "threads": recipe.threads,
            "recipe_settings": {k: v for k, v in recipe.to_dict().items() if k != "model_args"}}
    if args.split is not None:
        info["split"] = list(args.split)
    if recipe.distill:
        info["teacher"] = str(args.teacher) if args.teacher else "float twin"
    if recorded is None and (dist_run is None or dist_run.is_main):
        from onebit.atomic import atomic_write_text

        out.mkdir(parents=True, exist_ok=True)
        run = {"model": name, "model_args": kwargs, "data": args.data, "split": info.get("split"), "seed": args.seed,
               "val_fraction": args.val_fraction, "teacher": info.get("teacher") if args.teacher else None,
               "recipe": recipe.to_dict()}
        atomic_write_text(out / RUN_FILE, json.dumps(run, indent=2) + "\n")
    try:
        trained = train_with_recipe(
            name, data, recipe, seed=args.seed, teacher=args.teacher, val_fraction=args.val_fraction, out_dir=out,
            progress=not args.no_progress, resume=recorded is not None, info=info, distributed=dist_run,
        )
    except KeyboardInterrupt:
        raise _Interrupted(_interrupted_message(out)) from None
    if dist_run is not None and not dist_run.is_main:
        return 0  # the run folder, the export and the report are rank 0's
    model, result = trained.model, trained.result
    for stage, r in trained.stages.items():
        say(f"{stage}: best epoch {r.best_epoch}, validation accuracy {r.best_val_accuracy:.2%}, "
            f"test accuracy {r.test_accuracy:.2%}  (run folder {out / stage})")
    say(f"best epoch {result.best_epoch}: validation accuracy {result.best_val_accuracy:.2%}")
    say(f"test accuracy: {result.test_accuracy:.2%}  ({len(data.x_test):,} samples)")
    export_info = {"data": args.data, **({"split": list(args.split)} if args.split else {}), **data.export_info()}
    report: dict[str, Any] = {"run_dir": str(out), "model": name, "model_args": kwargs, "data": args.data,
                              "split": info.get("split"), "recipe": recipe.name, "procedure": recipe.kind,
                              "epochs": recipe.epochs,
                              "samples": {"train": len(data.x_train) - n_val, "validation": n_val,
                                          "test": len(data.x_test)},
                              "best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                              "test_accuracy": result.test_accuracy, "runtime_test_accuracy": None}
    try:
        engine = export_checked(model, out / "model.onebit", data.x_test, data.y_test, info=export_info)
    except ExportError as exc:  # a model the engine cannot run yet: the training results stand
        say(f"model.onebit not written: {exc}")
    else:
        record_metrics(out, runtime_test_accuracy=engine.accuracy, model_onebit_bytes=engine.report.file_bytes)
        report["runtime_test_accuracy"] = engine.accuracy
        say(f"engine (onebit.runtime on model.onebit): test accuracy {engine.accuracy:.2%}; the file holds "
            f"{engine.report.file_bytes:,} bytes, {engine.report.compression:.1f}x smaller than the float32 state dict")
    removed = prune_run(out, args.keep)
    if not args.no_report:
        _write_run_report(out, data)
    report["files"] = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    report["removed"] = {str(Path(p).relative_to(out)): n for p, n in removed.items()}
    if args.json:
        _emit_json(report)
        return 0
    print(f"wrote {out}/:")
    described = {"checkpoint.safetensors": "the best epoch's weights (float latent weights: eval, export, fine-tuning)",
                 "last.safetensors": "the last epoch's weights", "model.onebit": "the bit-packed model for "
                 "onebit.runtime", "train_state.pt": "resume state (--keep all)", "metrics.json": "per-epoch metrics",
                 RUN_FILE: "the run's settings (--resume reads them)",
                 "curves.png": "loss and accuracy curves", "report.html": "the run report (open it in a browser)"}
    for rel, size in report["files"].items():
        print(f"  {rel:34s} {_megabytes(size):>9s}  {described.get(Path(rel).name, '')}".rstrip())
    if removed:
        total = sum(removed.values())
        print(f"  removed {', '.join(sorted({Path(p).name for p in removed}))} ({_megabytes(total)}): only an "
              f"interrupted run needs {'it' if len(removed) == 1 else 'them'}; --keep all keeps everything")
    return 0


def _write_run_report(out: Path, data: Any) -> None:
    """``report.html`` at the end of a training, search or experiment run: a report that cannot be
    written costs one warning line, never the finished run."""
    try:
        from onebit.report import write_report

        write_report(out, partial=True, data=data, latency_s=0.05)
    except Exception as exc:  # noqa: BLE001 - whatever the report hits, the trained run stands
        first = (str(exc).strip().splitlines() or [""])[0]
        logging.getLogger("onebit.cli").warning("report.html not written (%s: %s); try onebit report %s --partial",
                                                type(exc).__name__, first, out)


def _launch_train(args: argparse.Namespace) -> int:
    """``train --nproc N``: check the command here (one clear line for a bad one), then run it without
    ``--nproc`` in N processes through torchrun (:func:`onebit.distributed.launch`)."""
    from onebit.distributed import BATCHNORM_MODES, choose_backend, launch

    if args.batchnorm not in BATCHNORM_MODES:
        raise unknown_choice("--batchnorm mode", args.batchnorm, BATCHNORM_MODES)
    choose_backend(args.backend, args.nproc)
    argv = _without_option(args.argv, "--nproc")
    if args.resume is not None:
        _use_recorded_settings(args)
    else:
        out = _check_train_args(args)[3]
        if args.out is None:  # one time-stamped folder for all processes
            argv += ["--out", str(out)]
    return launch(args.nproc, argv)


def _without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` (or an abbreviation argparse accepted)."""
    kept, skip = [], False
    for token in argv:
        name = token.split("=", 1)[0]
        if skip:
            skip = False
        elif len(name) > 3 and option.startswith(name):
            skip = "=" not in token
        else:
            kept.append(token)
    return kept


class _Interrupted(Exception):
    """Ctrl-C during a command; carries what to tell the user."""


def _interrupted_message(out: Path) -> str:
    from onebit.train_state import STATE_FILE

    if any(out.rglob(STATE_FILE)):
        return (f"interrupted; {out} holds the last finished epoch: continue with "
                f"onebit train --resume {out}")
    return (f"interrupted before the first epoch finished; nothing to resume in {out} "
            f"(onebit train --resume {out} starts it again with the same settings)")


def _sayer(args: argparse.Namespace) -> Any:
    """Prose lines: printed in text mode, sent to stderr (through the log) with --json."""
    log = logging.getLogger("onebit.cli")
    return log.info if args.json else (lambda line: print(line, flush=True))


# --------------------------------------------------------------------------- summary, eval, export


def _cmd_summary(args: argparse.Namespace) -> int:
    from onebit.model_summary import summary
    from onebit.models import check_model_args, create_model, model_info

    info = model_info(args.model)
    name, kwargs = args.model, dict(args.model_arg)
    if args.float:
        kwargs.update(input_quantizer=None, weight_quantizer=None)
    check_model_args(name, kwargs)
    in_shape, num_classes = info.in_shape, info.num_classes
    if args.data is not None:
        from onebit.data import load_dataset

        data = load_dataset(args.data, model=name)
        in_shape, num_classes = data.in_shape, data.num_classes
    in_shape = args.in_shape or in_shape
    num_classes = args.num_classes or num_classes
    model = create_model(name, num_classes=num_classes, in_shape=in_shape, **kwargs)
    energy = (args.energy_table or True) if args.energy or args.energy_table else False
    table = summary(model, in_shape, energy=energy, cache_kb=args.cache_kb)
    table.model_name = name
    if args.json:
        _emit_json({**table.to_dict(), "num_classes": num_classes, "model_args": kwargs})
    else:
        print(table)
        if info.params is not None and (in_shape, num_classes, kwargs) == (info.in_shape, info.num_classes, {}):
            match = "equal" if table.total_params == info.params else "DIFFERENT"
            print(f"Published count: {info.params:,} parameters ({info.params_source}): {match}")
    return 0


def _checkpoint_and_data(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    """The model rebuilt from a checkpoint, its metadata, the data set to check it on, and that data
    set's record (``{"data": spec}``, plus ``"split"`` where one applies): the command line's
    ``--data``/``--split``, else what the checkpoint recorded."""
    from onebit.checkpoint import load_checkpoint
    from onebit.data import check_dataset_spec, load_dataset

    model, meta = load_checkpoint(args.checkpoint)
    recorded = meta.get("info", {})
    spec = args.data or recorded.get("data")
    if spec is None:
        raise ConfigError(f"{args.checkpoint} records no data set; pass --data")
    split = args.split if args.split is not None or args.data is not None else recorded.get("split")
    check_dataset_spec(spec)
    data = load_dataset(spec, split=split, model=meta["model"]["name"])
    expected = tuple(meta["model"]["args"].get("in_shape", ()))
    if expected and tuple(data.in_shape) != expected:
        raise ConfigError(f"data set {spec!r} has input shape {data.in_shape}, the checkpoint's model expects {expected}")
    return model, meta, data, {"data": str(spec), **({"split": list(split)} if split else {})}


def _cmd_eval(args: argparse.Namespace) -> int:
    from onebit.train import evaluate

    model, meta, data, source = _checkpoint_and_data(args)
    spec = source["data"]
    result = evaluate(model, data.x_test, data.y_test)
    report = {"checkpoint": str(args.checkpoint), "model": meta["model"]["name"], "data": spec,
              "epoch": meta.get("epoch"), "test_samples": len(data.x_test), "test_accuracy": result["accuracy"],
              "test_loss": result["loss"]}
    if args.json:
        _emit_json(report)
    else:
        epoch = f" (epoch {report['epoch']})" if report["epoch"] is not None else ""
        print(f"{args.checkpoint}: {report['model']}{epoch} on {spec}: test accuracy {result['accuracy']:.2%}, "
              f"loss {result['loss']:.4f} ({len(data.x_test):,} samples)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    if args.format == "c":
        return _export_c(args)
    from onebit.export import export_checked

    model, _, data, source = _checkpoint_and_data(args)
    spec = source["data"]
    if args.format == "qonnx":
        return _export_qonnx(args, model, data, spec)
    output = args.output or args.checkpoint.with_suffix(".onebit")
    engine = export_checked(model, output, data.x_test, data.y_test, info={**source, **data.export_info()})
    if args.json:
        _emit_json({**engine.report.to_dict(), "data": spec, "test_samples": len(data.y_test),
                    "runtime_test_accuracy": engine.accuracy, "agreement_with_pytorch": engine.agreement})
    else:
        print(engine.report)
        print(f"test accuracy on {spec} computed by onebit.runtime: {engine.accuracy:.2%} ({len(data.y_test):,} "
              f"samples; same prediction as PyTorch on {engine.agreement:.2%})")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from onebit.convert import convert_file

    result = convert_file(args.model, args.output, args.onebit, logits=not args.keep_softmax)
    if args.json:
        _emit_json(result)
    else:
        zoo = f", onebit's zoo model {result['zoo_model']!r}" if result["zoo_model"] else ""
        print(f"converted {result['keras_name']!r} ({result['layers']} layers, {result['parameters']:,} parameters, "
              f"input {tuple(result['in_shape'])}{zoo}) -> {result['checkpoint']}")
        if "export" in result:
            print(result["export"])
            print(f"wrote {result['onebit']}")
    return 0


def _export_qonnx(args: argparse.Namespace, model: Any, data: Any, spec: str) -> int:
    from onebit.deploy.qonnx import check_qonnx, to_qonnx

    output = to_qonnx(args.checkpoint, args.output or args.checkpoint.with_suffix(".onnx"))
    check = check_qonnx(output, model, data.x_test[:1000])
    if args.json:
        _emit_json({"output": str(output), "format": "qonnx", "data": spec, "checked_samples": check["samples"],
                    "same_prediction": check["same_prediction"], "max_rel_err": check["max_rel_err"]})
    else:
        print(f"wrote {output} (QONNX, batch size 1); QONNX's executor vs PyTorch on {check['samples']:,} test "
              f"inputs of {spec}: same prediction on {check['same_prediction']:.2%}, max relative logit error "
              f"{check['max_rel_err']:.2g}")
    return 0


def _export_c(args: argparse.Namespace) -> int:
    """``--format c``: a .onebit file straight to C, or a checkpoint exported (and checked) first."""
    from onebit.deploy import to_c

    out = args.output or args.checkpoint.with_name(args.checkpoint.stem + "_c")
    source = args.checkpoint
    if source.suffix != ".onebit":
        from onebit.export import export_checked

        model, _, data, record = _checkpoint_and_data(args)
        source = out / "model.onebit"
        export_checked(model, source, data.x_test, data.y_test, info={**record, **data.export_info()})
    result = to_c(source, out, word_bits=args.word_bits, flash_kb=args.flash_kb, ram_kb=args.ram_kb)
    if args.json:
        _emit_json(result.to_dict())
    else:
        print(result)
    return 0


# --------------------------------------------------------------------------- bench, models


def _cmd_bench(args: argparse.Namespace) -> int:
    import tempfile

    from onebit.bench import bench_model

    target = Path(args.model)
    if target.suffix or target.exists() or "/" in args.model:
        if args.in_shape or args.num_classes:
            raise ConfigError("--in-shape and --num-classes are for a registered model name; a .onebit file has its "
                              "own")
        result = bench_model(target, batch_size=args.batch_size, threads=args.threads, repeats=args.repeats)
        energy = _bench_energy(args, target)
    else:
        from onebit.bench import export_random_model
        from onebit.models import model_info

        info = model_info(args.model)
        logging.getLogger("onebit.cli").info(
            "%s with random weights at %s, %d classes: exporting it to a temporary file", args.model,
            args.in_shape or info.in_shape, args.num_classes or info.num_classes)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{args.model}.onebit"
            export_random_model(args.model, path, in_shape=args.in_shape, num_classes=args.num_classes)
            result = bench_model(path, batch_size=args.batch_size, threads=args.threads, repeats=args.repeats)
            energy = _bench_energy(args, path)
        result.path = f"{args.model} (random weights)"
    if args.json:
        _emit_json({**result.to_dict(), **({"energy": energy[0]} if energy else {})})
    else:
        print(result)
        if energy:
            print("\n" + "\n".join(energy[1]))
    return 0


def _bench_energy(args: argparse.Namespace, path: Path) -> tuple[dict[str, Any], list[str]] | None:
    """With --energy: RAPL joules per inference where the machine has readable counters (else one
    line saying why), and the estimate of onebit.energy: (JSON record, text lines)."""
    if not (args.energy or args.energy_table):
        return None
    from onebit.energy import estimate_file
    from onebit.rapl import RaplUnavailable, measure_file

    estimate = estimate_file(path, batch_size=args.batch_size, table=args.energy_table, cache_kb=args.cache_kb)
    record: dict[str, Any] = {"estimate": {"onebit": estimate.energy.to_dict()["totals"],
                                           "float_twin": estimate.float_energy.to_dict()["totals"],
                                           "ratio": estimate.energy_ratio, "cache_kb": args.cache_kb,
                                           "table": estimate.energy.table.to_dict()}}
    try:
        measured = measure_file(path, batch_size=args.batch_size, calls=args.repeats, threads=(args.threads or [1])[0])
        record["measured"], first = measured.to_dict(), f"energy {measured.line()}"
    except RaplUnavailable as exc:
        record["measured"], first = None, f"energy not measured: {exc}; the estimate only:"
    lines = [first, f"energy estimate (docs/energy.md): onebit {estimate.energy.line()}",
             f"                 float twin {estimate.float_energy.line()}: {estimate.energy_ratio:.1f}× onebit's"]
    return record, lines


def _cmd_models(args: argparse.Namespace) -> int:
    from onebit.models import list_models, model_info

    infos = [model_info(name) for name in list_models()]
    if args.json:
        _emit_json([{"name": i.name, "family": i.family, "paper": i.paper, "description": i.description,
                     "in_shape": list(i.in_shape), "num_classes": i.num_classes, "published_params": i.params,
                     "published_params_source": i.params_source} for i in infos])
        return 0
    rows = [("model", "family", "input", "classes", "published params", "description")]
    rows += [(i.name, i.family, "×".join(map(str, i.in_shape)), str(i.num_classes),
              f"{i.params:,}" if i.params else "-", i.description) for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths)) + "  " + r[5])
    print("\n`onebit summary NAME` shows one at its native size; create_model(NAME) builds it.")
    return 0


# --------------------------------------------------------------------------- search, experiment


_SEARCH_SETTINGS = ("model", "data", "cost", "budget", "budget_like", "population", "generations", "proxy_epochs",
                    "epochs", "parents", "elite", "mutation_rate", "over_budget", "choices", "latency_batch",
                    "latency_threads", "seed", "out")


def _search_config(args: argparse.Namespace) -> Any:
    """The SearchConfig of the command line, checked without loading data or building a model."""
    from onebit.search import SearchConfig
    from onebit.search.costs import check_costs, parse_budget
    from onebit.search.space import DEFAULT_CHOICES

    if args.model is None or args.data is None:
        raise ConfigError("onebit search needs --model and --data (or --resume DIR)")
    costs = check_costs([c.strip() for c in (args.cost or "binary_macs").split(",") if c.strip()])
    if args.budget is not None and args.budget_like is not None:
        raise ConfigError("give --budget or --budget-like, not both")
    budget, like = None, 2.0
    if args.budget is not None:
        budget, like = parse_budget(args.budget, costs), None
    elif args.budget_like is not None:
        kind, _, ratio = args.budget_like.partition(":")
        try:
            like = float(ratio)
        except ValueError:
            like = math.nan
        if kind != "uniform" or not (math.isfinite(like) and like > 0):
            raise ConfigError(f"--budget-like expects uniform:R with a positive ratio R (e.g. uniform:2), "
                              f"got {args.budget_like!r}")
    choices = DEFAULT_CHOICES
    if args.choices is not None:
        try:
            choices = tuple(float(c) for c in args.choices.split(",") if c.strip())
        except ValueError:
            choices = ()
        if not choices or min(choices) <= 0:
            raise ConfigError(f"--choices expects positive ratios like 0.5,1,2,3,4, got {args.choices!r}")
    given = {"population": args.population, "generations": args.generations, "proxy_epochs": args.proxy_epochs,
             "final_epochs": args.epochs, "parents": args.parents, "elite": args.elite,
             "mutation_rate": args.mutation_rate, "over_budget": args.over_budget, "seed": args.seed,
             "latency_batch": args.latency_batch, "latency_threads": args.latency_threads}
    config = SearchConfig(args.model, args.data, costs=tuple(costs), budget=budget, budget_like=like,
                          model_args=dict(args.model_arg), choices=choices,
                          random_baseline=not args.no_random_search,
                          **{k: v for k, v in given.items() if v is not None})
    config.check()
    return config


def _cmd_search(args: argparse.Namespace) -> int:
    from onebit.search import resume_search, run_search
    from onebit.search.backends import check_backend

    check_backend(args.backend)
    if args.float:
        raise ConfigError("--float does not apply to a width search of a binary net")
    if args.resume is not None:
        extra = [f"--{k.replace('_', '-')}" for k in _SEARCH_SETTINGS if getattr(args, k) is not None]
        extra += ["-M"] * bool(args.model_arg) + ["--no-random-search"] * args.no_random_search
        if extra:
            raise ConfigError(f"--resume takes every setting from the search folder; drop {', '.join(extra)}")
        record = resume_search(args.resume, workers=args.workers, backend=args.backend)
        out = args.resume
    else:
        config = _search_config(args)
        out = args.out or Path("runs") / f"search-{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"
        _check_new_folder(out, "search folder", " or --resume it")
        record = run_search(config, out, workers=args.workers, backend=args.backend)
    if not args.no_report:
        _write_run_report(out, None)
    winner, rnd = record["winner"], record.get("random_search")
    summary = {"out_dir": str(out), "model": record["model"], "data": record["data"], "budget": record["budget"],
               "budget_source": record["budget_source"], "evaluations": record["evolution"]["evaluations"],
               "winner": winner,
               "random_search_best": None if rnd is None else rnd["candidates"][rnd["best"]],
               "references": record["references"]}
    if args.json:
        _emit_json(summary)
        return 0
    from onebit.search.costs import format_cost

    fmt = lambda costs: ", ".join(format_cost(n, v) for n, v in costs.items())  # noqa: E731
    genome = "[" + ", ".join(f"{r:g}" for r in winner["genome"]) + "]"
    print(f"width search of {record['model']} on {record['data']}: {summary['evaluations']} evaluations, budget "
          f"{fmt(record['budget']) or 'none'} ({record['budget_source']})")
    print(f"  winner {genome}, widths {winner['widths']}: {fmt(winner['costs'])}; proxy accuracy "
          f"{winner['proxy_accuracy']:.2%}")
    if winner.get("test_accuracy") is not None:
        runtime = winner.get("runtime_test_accuracy")
        print(f"  retrained {winner['epochs']} epochs: test accuracy {winner['test_accuracy']:.2%}"
              + ("" if runtime is None else f" (onebit.runtime on model.onebit: {runtime:.2%})"))
    if rnd is not None:
        best = rnd["candidates"][rnd["best"]]
        print(f"  random search, same evaluations: best [{', '.join(f'{r:g}' for r in best['genome'])}] proxy "
              f"accuracy {best['proxy_accuracy']:.2%}")
    for ref in record["references"]:
        print(f"  uniform x{ref['genome'][0]:g}: {fmt(ref['costs'])}; proxy accuracy {ref['proxy_accuracy']:.2%}"
              f"{'' if ref['feasible'] else ' (over the budget)'}")
    print(f"wrote {out}/: search.json, pareto.png, winner/ (checkpoint, model.onebit, metrics.json), state.json"
          + ("" if args.no_report else ", report.html"))
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from onebit.experiments import get_experiment, list_experiments, run_experiment

    if args.action not in ("list", "run"):
        raise unknown_choice("experiment action", args.action, ("list", "run"))
    if args.action == "list":
        if args.name or args.quick or args.seeds or args.out:
            raise ConfigError("onebit experiment list takes no name or options")
        infos = [get_experiment(n) for n in list_experiments()]
        if args.json:
            _emit_json([{"name": i.name, "title": i.title, "paper": i.paper, "seeds": i.seeds} for i in infos])
        else:
            for i in infos:
                print(f"{i.name}  {i.title}\n    {i.paper}")
        return 0
    if args.name is None:
        raise ConfigError("onebit experiment run needs the experiment's NAME (`onebit experiment list`)")
    get_experiment(args.name)
    out = args.out or Path("runs") / f"{args.name}-{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"
    _check_new_folder(out, "experiment folder")
    results = run_experiment(args.name, out, quick=args.quick, seeds=args.seeds)
    if not args.no_report:
        _write_run_report(out, None)
    if args.json:
        _emit_json({"out_dir": str(out), **results})
        return 0
    verdict = {True: "holds", False: "does not hold", None: "undecided"}
    for c in results["claims"]:
        print(f"  {verdict[c['holds']]:>13s}: {c['claim']}: {c['measured']} {c['unit']}".rstrip())
    print(f"wrote {out}/: results.json, results.md, {', '.join(results['plots'])}"
          + ("" if args.no_report else ", report.html"))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from onebit.report import inspect_run, write_report

    folder = inspect_run(args.run_dir)
    path = write_report(args.run_dir, args.output, partial=args.partial, latency_s=args.latency_seconds)
    if args.json:
        _emit_json({"report": str(path), "kind": folder.kind, "missing": folder.missing, "bytes": path.stat().st_size})
    else:
        if not folder.complete:
            print(f"partial report: {folder.problem().rsplit('; --partial', 1)[0]}")
        print(f"wrote {path} ({_megabytes(path.stat().st_size)}): open it in a browser")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from onebit.analysis.geometry import analyze_geometry, binary_layers
    from onebit.checkpoint import load_checkpoint, read_checkpoint_meta

    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} exists and is not a folder")
    recorded = read_checkpoint_meta(args.checkpoint).get("info", {}).get("data")
    if args.data is None and recorded is None:
        if args.split is not None:
            raise ConfigError(f"--split needs a data set: {args.checkpoint} records none; pass --data")
        model, meta = load_checkpoint(args.checkpoint)
        binary_layers(model)
        logging.getLogger("onebit.cli").info("%s records no data set and no --data was given: analyzing the weights "
                                             "only (no dot-product correlations)", args.checkpoint)
        x, source = None, {}
    else:
        model, meta, data, source = _checkpoint_and_data(args)
        binary_layers(model)
        x = data.x_test[:args.samples]
    report = analyze_geometry(model, x, ternary_threshold=args.ternary_threshold)
    report.source = {"checkpoint": str(args.checkpoint), "model": meta["model"]["name"], **source}
    paths = report.save(args.out)
    if args.json:
        _emit_json({**report.to_dict(), "files": [str(p) for p in paths]})
    else:
        where = f" on {report.samples:,} test inputs of {source['data']}" if x is not None else " (weights only)"
        print(f"{args.checkpoint}: {meta['model']['name']}, {len(report.layers)} binary layers{where}")
        print(report)
        print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from onebit.checkpoint import load_checkpoint
    from onebit.data import check_dataset_spec, load_dataset
    from onebit.transfer import layer_names, transfer

    check_dataset_spec(args.data)
    _check_new_folder(args.out)
    model, meta = load_checkpoint(args.checkpoint)
    if args.cut not in layer_names(model):
        raise unknown_choice("layer", args.cut, layer_names(model))
    data = load_dataset(args.data, split=args.split)
    if args.classes is not None:
        data = data.subset_classes(args.classes)
    if args.shots is not None:
        data = data.few_shot(args.shots, seed=args.seed)
    info = {"source_checkpoint": str(args.checkpoint), "source_model": meta["model"]["name"], "data": args.data,
            "classes": args.classes, "shots": args.shots, "seed": args.seed}
    result = transfer(model, args.cut, data, args.out, hidden=args.hidden, binary_head=args.binary_head,
                      seed=args.seed, info=info)
    if args.json:
        _emit_json({**result.to_dict(), "settings": info})
        return 0
    same = "identical to" if result.identical_features and result.identical_outputs else "DIFFERENT from"
    print(f"{result.features} binary features at layer {args.cut!r} of {meta['model']['name']}; head trained on "
          f"{result.train_samples:,} {data.name} examples ({data.num_classes} classes)")
    print(f"test accuracy on {result.test_samples:,} samples, features from onebit.runtime: {result.accuracy:.2%} "
          f"(PyTorch's features and outputs: {same} the engine's)")
    print(f"wrote {args.out}/: extractor.onebit (outputs the packed features), head.safetensors, results.json")
    return 0


def _cmd_federated(args: argparse.Namespace) -> int:
    from onebit.data import check_dataset_spec
    from onebit.federated import FederatedConfig, require_flower, run_federated

    require_flower()
    config = FederatedConfig(
        clients=args.clients, rounds=args.rounds, local_epochs=args.local_epochs, data=str(args.data), split=args.split,
        partition="iid" if args.dirichlet is None else "dirichlet",
        alpha=0.5 if args.dirichlet is None else args.dirichlet, upload=args.upload, rule=args.rule,
        error_feedback=not args.no_error_feedback, fedbn=args.fedbn, latent_bits=args.latent_bits,
        estimator=args.estimator, vae_epochs=args.vae_epochs, head_hidden=args.head_hidden,
        head_depth=args.head_depth, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        round_timeout=args.round_timeout).validate()
    check_dataset_spec(args.data)
    _check_new_folder(args.out)
    if args.port is not None:
        if args.simulate:
            raise ConfigError("--port names the SuperLink's port; --simulate starts no SuperLink")
        from onebit.federated.deployment import check_port_free

        check_port_free(args.port)
    result = run_federated(config, args.out, simulate=args.simulate, port=args.port)
    if args.json:
        _emit_json(result.to_dict())
        return 0
    where = "in this process" if args.simulate else "on Flower's deployment engine (127.0.0.1)"
    print(f"FedHyBNN {where}: {config.clients} clients, {config.rounds} rounds × {config.local_epochs} local "
          f"epoch(s), {config.upload} uploads, {config.partition} partition")
    accuracy = "–" if result.accuracy is None else f"{result.accuracy:.2%}"
    print(f"test accuracy after round {len(result.rounds)}: {accuracy}"
          + ("" if result.engine_accuracy is None else f" (hybnn.onebit on onebit's engine: {result.engine_accuracy:.2%})"))
    print(f"bytes: uploaded {result.upload_bytes:,}, downloaded {result.download_bytes:,} "
          f"(encoder shipped once: {result.encoder_bytes:,})")
    if result.events:
        print(f"{len(result.events)} fault event(s): " + "; ".join(result.events))
    print(f"wrote {args.out}/: results.json, history.json" + (", hybnn.onebit" if result.model_path else ""))
    return 0


def _cmd_separate(args: argparse.Namespace) -> int:
    from onebit.audio.separation import load_separator, separation_config, separate
    from onebit.audio.wav import read_wav, write_wav

    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} exists and is not a folder")
    targets = [args.out / "source1.wav", args.out / "source2.wav"]
    if any(t.exists() for t in targets):
        raise ConfigError(f"{args.out} already holds source1.wav or source2.wav; choose another -o")
    model = load_separator(args.model)
    config = separation_config(model)
    mixture, rate = read_wav(args.mixture, sample_rate=config.sample_rate)
    alpha = None if args.soft else args.alpha
    sources = separate(mixture, model, sample_rate=rate, alpha=alpha)
    args.out.mkdir(parents=True, exist_ok=True)
    for target, source in zip(targets, sources):
        write_wav(target, source, rate)
    if args.json:
        _emit_json({"mixture": str(args.mixture), "model": str(args.model), "sample_rate": rate,
                    "samples": len(mixture), "alpha": alpha, "outputs": [str(t) for t in targets]})
        return 0
    masks = "soft masks" if alpha is None else f"binary masks at α = {alpha}"
    print(f"{args.mixture}: {len(mixture) / rate:.2f} s at {rate} Hz separated by {args.model} ({masks})")
    print(f"wrote {targets[0]}, {targets[1]}")
    return 0


COMMANDS = {
    "train": _cmd_train, "summary": _cmd_summary, "eval": _cmd_eval, "export": _cmd_export,
    "bench": _cmd_bench, "models": _cmd_models, "search": _cmd_search, "experiment": _cmd_experiment,
    "analyze": _cmd_analyze, "transfer": _cmd_transfer, "federated": _cmd_federated, "separate": _cmd_separate,
    "report": _cmd_report, "convert": _cmd_convert,
}


def _console() -> logging.Handler:
    """Show the library's INFO messages (progress: epochs, export checks, timings) on stderr; results go
    to stdout, as text or as one JSON object."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("onebit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # train --nproc runs it again under torchrun
    if args.command is None:
        parser.print_help()
        return 2
    handler = _console()
    try:
        return COMMANDS[args.command](args)
    except OnebitError as exc:
        print(f"onebit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except _Interrupted as exc:
        print(f"onebit {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"onebit {args.command}: interrupted", file=sys.stderr)
        return 130
    except ImportError as exc:
        print(f"onebit {args.command}: error: {exc}; install the training extras: pip install 'onebit[train]'",
              file=sys.stderr)
        return 2
    except BrokenPipeError:  # `onebit summary X | head`: the reader left; say nothing more
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 141
    finally:
        logging.getLogger("onebit").removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
