"""The model-file fuzzers' harness: one example's check, and the time-bounded CI run.

Each fuzzer (tests/test_corpus.py: raw bytes; tests/test_export_runtime.py: JSON graph
fields) builds a hostile ``.onebit`` file from a real exported model and hands it to
:func:`check_model_file`: the file must either be refused by ``load`` with a
``ModelFileError`` whose message names the file and the problem, or load and run. Each
example runs under a watchdog (faulthandler): one taking longer than
``EXAMPLE_TIMEOUT_S`` is a hang, and the process exits with every thread's traceback.

The normal suite runs each fuzzer on a fixed, derandomized set of examples. With
``ONEBIT_FUZZ_SECONDS`` set (``.ci/fuzz``), :func:`fuzz_for_a_while` runs it on random
examples for that many seconds, in chunks of hypothesis runs seeded ``seed, seed + 1, ...``
(``seed``: ``ONEBIT_FUZZ_SEED``, or random; printed). A failing input is then written to
``tests/corpus/`` (the shrunk example of a Python exception), or left in
``build/fuzz/in-flight-*.onebit`` when the process died in it (crash or hang), where
``.ci/fuzz`` moves it into the corpus: either way it becomes a regression case.
"""

from __future__ import annotations

import faulthandler
import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.control import current_build_context

import onebit.runtime as rt
from onebit.errors import ModelFileError

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO / "tests" / "corpus"
IN_FLIGHT_DIR = REPO / "build" / "fuzz"
SECONDS_ENV, SEED_ENV = "ONEBIT_FUZZ_SECONDS", "ONEBIT_FUZZ_SEED"
SKIP_REASON = f"the time-bounded fuzz runs with {SECONDS_ENV} set (.ci/fuzz)"
# A load + run of these small models takes milliseconds; 30 s is a hang even under load.
EXAMPLE_TIMEOUT_S = 30.0
EXAMPLES_PER_CHUNK = 50


def fuzz_seconds() -> float:
    """The time-bounded run's length per fuzzer (``ONEBIT_FUZZ_SECONDS``), 0 when unset."""
    return float(os.environ.get(SECONDS_ENV) or 0)


def timed_run() -> bool:
    return fuzz_seconds() > 0


def example_path(name: str, tmp_dir: Path) -> Path:
    """Where an example's file is written: a temporary folder in the normal suite; in the
    time-bounded run a fixed file that survives a crash (removed after each example)."""
    if timed_run():
        IN_FLIGHT_DIR.mkdir(parents=True, exist_ok=True)
        return IN_FLIGHT_DIR / f"in-flight-{name}.onebit"
    return tmp_dir / f"{name}.onebit"


def check_model_file(blob: bytes, path: Path, name: str) -> None:
    """``blob`` written to ``path`` is refused with a ModelFileError naming the file and the
    problem, or loads and runs a zero batch; within EXAMPLE_TIMEOUT_S (else the process
    exits with the tracebacks). In the time-bounded run a failing example is kept."""
    path.write_bytes(blob)
    faulthandler.dump_traceback_later(EXAMPLE_TIMEOUT_S, exit=True)
    try:
        try:
            model = rt.load(path)
        except ModelFileError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and len(message) > len(f"{path}: ") + 8, message
            return
        model(np.zeros((2, *model.in_shape), np.float32))
    except BaseException:
        if timed_run() and current_build_context().is_final:
            kept = CORPUS_DIR / f"fuzz-{name}-{hashlib.sha256(blob).hexdigest()[:12]}.onebit"
            kept.write_bytes(blob)
            print(f"\nfailing input kept as {kept.relative_to(REPO)}")
        raise
    finally:
        faulthandler.cancel_dump_traceback_later()
        if timed_run():
            path.unlink(missing_ok=True)


def fuzz_for_a_while(example: Callable[[st.DataObject], None], name: str) -> int:
    """Runs ``example(data)`` on random examples for ``ONEBIT_FUZZ_SECONDS``; returns how many."""
    base = int(os.environ.get(SEED_ENV) or random.randrange(2**32))
    print(f"\n{name}: {SEED_ENV}={base}, {fuzz_seconds():g} s")
    count = 0

    def counted(data: st.DataObject) -> None:
        nonlocal count
        count += 1
        example(data)

    end = time.monotonic() + fuzz_seconds()
    chunk = 0
    while time.monotonic() < end:
        run = given(data=st.data())(counted)
        run = settings(max_examples=EXAMPLES_PER_CHUNK, deadline=None, derandomize=False, database=None,
                       suppress_health_check=list(HealthCheck))(run)
        try:
            seed(base + chunk)(run)()
        except BaseException as exc:
            exc.add_note(f"{name}: reproduce with {SEED_ENV}={base + chunk} {SECONDS_ENV}=1")
            raise
        chunk += 1
    print(f"{name}: {count} examples in {chunk} chunks, no failure")
    return count
