"""The runtime's glibc malloc settings: set once on load, off with ONEBIT_MALLOC_TUNING=0."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
SCRIPT = "from onebit.runtime import malloc; print(malloc.keep_freed_memory(), malloc.keep_freed_memory())"


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ONEBIT_MALLOC_TUNING"}
    if env_value is not None:
        env["ONEBIT_MALLOC_TUNING"] = env_value
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="the malloc thresholds are glibc's")
def test_thresholds_are_set_on_glibc_once():
    assert _run(None) == "True True"


def test_disabled_by_the_environment():
    assert _run("0") == "False False"
