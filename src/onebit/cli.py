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

DEFAULT_MODEL = "binarynet_mlp"
# The default run's width: BinaryNet's 4096 units are sized for MNIST and take minutes
# per epoch on 2 cores; 1024 units reach the same accuracy on the 8x8 digits in seconds.
DEFAULT_MODEL_ARGS: dict[str, Any] = {"hidden": 1024}
DEFAULT_DATA = "digits"
# The library's names (onebit.optim.OPTIMIZERS, onebit.train.SCHEDULES, onebit.recipes.RECIPE_KINDS,
# onebit.train.KEEP_CHOICES), repeated so that --help needs no torch; a test keeps them equal.
OPTIMIZER_CHOICES = ("adam", "adamw", "sgd", "bop")
SCHEDULE_CHOICES = ("cosine", "constant", "step")
RECIPE_CHOICES = ("single", "two-stage", "distill")
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
        if (not action.option_strings or "default" in text or action.default in (None, False, [], argparse.SUPPRESS)
                or isinstance(action, argparse._VersionAction)):
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

    t = command("train", "train a model and write a run folder", (model_args,))
    t.add_argument("--model", default=None, metavar="NAME",
                   help=f"registered model name (default: {DEFAULT_MODEL} with {_format_args(DEFAULT_MODEL_ARGS)})")
    t.add_argument("--data", default=DEFAULT_DATA,
                   help="digits, mnist1d, or a folder (MNIST IDX layout or cifar-10-batches-py)")
    t.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                   help="pool the data set's rows in file order and take the first TRAIN for training, the next "
                        "TEST for testing; needed for a folder that holds one part only (e.g. --data "
                        "../shared/data/mnist-t10k --split 8000:2000) (default: the data set's own split)")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs (default: the model/data recipe; two-stage splits them between its stages)")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="samples per step (default: the recipe's)")
    t.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: the recipe's)")
    t.add_argument("--optimizer", default="adam", help=f"{', '.join(OPTIMIZER_CHOICES)}")
    t.add_argument("--schedule", default="cosine", help=f"learning-rate schedule: {', '.join(SCHEDULE_CHOICES)}")
    t.add_argument("--weight-decay", type=_non_negative_float, default=0.0,
                   help="weight decay of the real-valued parameters")
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
                   help="continue an interrupted single-stage run from its last finished epoch, with its recorded "
                        "settings")
    t.add_argument("--recipe", default=None, metavar="{single,two-stage,distill}",
                   help="single: one binary run; two-stage: binary weights + float activations, then fully binary "
                        "from those weights; distill: a float teacher's logits guide the binary model "
                        "(default: the model/data recipe, see docs/training.md)")
    t.add_argument("--teacher", type=Path, default=None, metavar="CHECKPOINT",
                   help="distill: the teacher's checkpoint (default: train the float twin first, into RUN_DIR/teacher)")
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: the recipe's; results repeat bit for bit only at equal counts)")
    t.add_argument("--ce-weight", type=_unit_interval, default=None,
                   help="distill: loss = (1 - w) KL(teacher || student) + w cross-entropy (default: the recipe's, 0)")

    s = command("summary", "print a model's per-layer table: bits, bytes, binary and float MACs",
                (model_args, shape_args))
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
                   help="the .onebit file (default: the checkpoint's path with .onebit)")
    x.add_argument("--data", default=None, help="data set for the check (default: the one recorded in the checkpoint)")
    x.add_argument("--split", type=_split, default=None, metavar="TRAIN:TEST",
                   help="re-split the data set (default: the split recorded in the checkpoint)")

    b = command("bench", "latency of a model: onebit.runtime vs PyTorch fp32, 1 and N threads", (shape_args,))
    b.add_argument("model", metavar="MODEL",
                   help="a .onebit file, or a registered model name (timed with random weights at its native size)")
    b.add_argument("--batch-size", type=_positive_int, default=1, help="samples per call")
    b.add_argument("--threads", type=_thread_list, default=None, metavar="N,M",
                   help="comma-separated thread counts (default: 1 and all cores)")
    b.add_argument("--repeats", type=_positive_int, default=50, help="timed calls per thread count")

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


def _use_recorded_settings(args: argparse.Namespace) -> None:
    """``--resume RUN_DIR``: every setting comes from the run's saved state, none from the command line."""
    from onebit.train_state import load_train_state

    recorded = load_train_state(args.resume)["run_info"]
    if recorded.get("recipe", "single") != "single":
        raise ConfigError(
            f"{args.resume} is a {recorded['recipe']} run; --resume continues single-stage runs only: "
            f"start it again with a new --out"
        )
    args.model, args.model_arg, args.float = recorded["model"], list(recorded["model_args"].items()), False
    for key in ("data", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "val_fraction", "seed"):
        setattr(args, key, recorded[key])
    args.split = tuple(recorded["split"]) if recorded.get("split") else None
    args.recipe, args.teacher, args.ce_weight = "single", None, None
    args.threads = recorded.get("threads")
    args.out = args.resume


def _train_recipe(args: argparse.Namespace, name: str, data_name: str) -> Any:
    """The model/data recipe with the command line's overrides applied."""
    from dataclasses import replace

    from onebit.recipes import recipe_for

    recipe = recipe_for(name, data_name)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "kind": args.recipe,
                 "ce_weight": args.ce_weight, "threads": args.threads}
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if args.teacher is not None and recipe.kind != "distill":
        raise ConfigError(f"--teacher is for --recipe distill, not {recipe.kind}")
    if args.float and recipe.kind != "single":
        raise ConfigError(f"--float trains the float twin in one run; it does not combine with --recipe {recipe.kind}")
    if args.ce_weight is not None and recipe.kind != "distill":
        raise ConfigError(f"--ce-weight is for --recipe distill, not {recipe.kind}")
    return recipe


def _check_train_args(args: argparse.Namespace) -> tuple[str, Any, dict[str, Any], Path]:
    """Everything about a ``train`` command that can be checked without its data; returns
    (model name, recipe, model arguments, run folder)."""
    from onebit.checkpoint import read_checkpoint_meta
    from onebit.data import check_dataset_spec
    from onebit.models import check_model_args

    name = args.model or DEFAULT_MODEL
    for kind, value, choices in (("optimizer", args.optimizer, OPTIMIZER_CHOICES),
                                 ("schedule", args.schedule, SCHEDULE_CHOICES),
                                 ("recipe", args.recipe, RECIPE_CHOICES), ("--keep setting", args.keep, KEEP_CHOICES)):
        if value is not None and value not in choices:
            raise unknown_choice(kind, value, choices)
    data_name = check_dataset_spec(args.data)
    recipe = _train_recipe(args, name, data_name)
    kwargs = {**(DEFAULT_MODEL_ARGS if args.model is None else {}), **recipe.model_args, **dict(args.model_arg)}
    if args.float:
        kwargs.update(input_quantizer=None, weight_quantizer=None)
    check_model_args(name, kwargs)
    if args.teacher is not None:
        read_checkpoint_meta(args.teacher)
    out = args.out or Path("runs") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if args.resume is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"run folder {out} already exists and is not empty; choose another --out")
    return name, recipe, kwargs, out


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    if args.resume is not None:
        _use_recorded_settings(args)
    name, recipe, kwargs, out = _check_train_args(args)

    from onebit.data import load_dataset
    from onebit.export import export_checked
    from onebit.model_summary import summary
    from onebit.models import create_model
    from onebit.recipes import train_with_recipe
    from onebit.train import prune_run, record_metrics

    say = _sayer(args)
    data = load_dataset(args.data, seed=args.seed, split=args.split)
    n_val = data.validation_size(args.val_fraction)
    say(f"onebit train: model {name} {_format_args(kwargs)} on {data.name} ({data.source})")
    say(f"  {len(data.x_train) - n_val:,} training + {n_val:,} validation ({args.val_fraction:g} of the training "
        f"part) + {len(data.x_test):,} test samples, input {data.in_shape}, {data.num_classes} classes")
    say(f"  {recipe.kind} recipe, {recipe.epochs} epochs, batch {recipe.batch_size}, lr {recipe.lr}, {args.optimizer}, "
        f"{args.schedule} schedule, seed {args.seed}")
    table = summary(create_model(name, num_classes=data.num_classes, in_shape=data.in_shape, **kwargs), data.in_shape)
    say(str(table))
    info = {"model": name, "model_args": kwargs, "data": args.data, "data_name": data.name,
            "val_fraction": args.val_fraction, "summary": table.to_dict()["totals"], "recipe": recipe.kind,
            "threads": recipe.threads}
    if args.split is not None:
        info["split"] = list(args.split)
    if recipe.kind == "distill":
        info.update(ce_weight=recipe.ce_weight, teacher=str(args.teacher) if args.teacher else "float twin")
    try:
        trained = train_with_recipe(
            name, data, replace(recipe, model_args=kwargs), seed=args.seed, teacher=args.teacher,
            optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay,
            val_fraction=args.val_fraction, out_dir=out, progress=not args.no_progress,
            resume=args.resume is not None, info=info,
        )
    except KeyboardInterrupt:
        raise _Interrupted(_interrupted_message(out, recipe.kind)) from None
    model, result = trained.model, trained.result
    for stage, r in trained.stages.items():
        say(f"{stage}: best epoch {r.best_epoch}, validation accuracy {r.best_val_accuracy:.2%}, "
            f"test accuracy {r.test_accuracy:.2%}  (run folder {out / stage})")
    say(f"best epoch {result.best_epoch}: validation accuracy {result.best_val_accuracy:.2%}")
    say(f"test accuracy: {result.test_accuracy:.2%}  ({len(data.x_test):,} samples)")
    export_info = {"data": args.data, **({"split": list(args.split)} if args.split else {})}
    report: dict[str, Any] = {"run_dir": str(out), "model": name, "model_args": kwargs, "data": args.data,
                              "split": info.get("split"), "recipe": recipe.kind, "epochs": recipe.epochs,
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
    report["files"] = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    report["removed"] = {str(Path(p).relative_to(out)): n for p, n in removed.items()}
    if args.json:
        _emit_json(report)
        return 0
    print(f"wrote {out}/:")
    described = {"checkpoint.safetensors": "the best epoch's weights (float latent weights: eval, export, fine-tuning)",
                 "last.safetensors": "the last epoch's weights", "model.onebit": "the bit-packed model for "
                 "onebit.runtime", "train_state.pt": "resume state (--keep all)", "metrics.json": "per-epoch metrics",
                 "curves.png": "loss and accuracy curves"}
    for rel, size in report["files"].items():
        print(f"  {rel:34s} {_megabytes(size):>9s}  {described.get(Path(rel).name, '')}".rstrip())
    if removed:
        total = sum(removed.values())
        print(f"  removed {', '.join(sorted({Path(p).name for p in removed}))} ({_megabytes(total)}): only an "
              f"interrupted run needs {'it' if len(removed) == 1 else 'them'}; --keep all keeps everything")
    return 0


class _Interrupted(Exception):
    """Ctrl-C during a command; carries what to tell the user."""


def _interrupted_message(out: Path, kind: str) -> str:
    from onebit.train_state import STATE_FILE

    if kind == "single" and (out / STATE_FILE).is_file():
        return (f"interrupted; {out} holds the last finished epoch: continue with "
                f"onebit train --resume {out}")
    if kind != "single":
        return f"interrupted; --resume continues single-stage runs only: start the {kind} run again"
    return f"interrupted before the first epoch finished; nothing to resume in {out}"


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

        data = load_dataset(args.data)
        in_shape, num_classes = data.in_shape, data.num_classes
    in_shape = args.in_shape or in_shape
    num_classes = args.num_classes or num_classes
    model = create_model(name, num_classes=num_classes, in_shape=in_shape, **kwargs)
    table = summary(model, in_shape)
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
    data = load_dataset(spec, split=split)
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
    from onebit.export import export_checked

    model, _, data, source = _checkpoint_and_data(args)
    spec = source["data"]
    output = args.output or args.checkpoint.with_suffix(".onebit")
    engine = export_checked(model, output, data.x_test, data.y_test, info=source)
    if args.json:
        _emit_json({**engine.report.to_dict(), "data": spec, "test_samples": len(data.y_test),
                    "runtime_test_accuracy": engine.accuracy, "agreement_with_pytorch": engine.agreement})
    else:
        print(engine.report)
        print(f"test accuracy on {spec} computed by onebit.runtime: {engine.accuracy:.2%} ({len(data.y_test):,} "
              f"samples; same prediction as PyTorch on {engine.agreement:.2%})")
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
        result.path = f"{args.model} (random weights)"
    if args.json:
        _emit_json(result.to_dict())
    else:
        print(result)
    return 0


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


COMMANDS = {
    "train": _cmd_train, "summary": _cmd_summary, "eval": _cmd_eval, "export": _cmd_export,
    "bench": _cmd_bench, "models": _cmd_models,
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
