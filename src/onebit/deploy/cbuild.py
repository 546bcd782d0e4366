"""Compiling and running the C that :func:`onebit.deploy.to_c` writes: on the host, and on an
emulated Cortex-M (``arm-none-eabi-gcc`` with newlib, ``qemu-system-arm`` with semihosting).

The boards are QEMU's MPS2 FPGA images: ``mps2-an386`` (Cortex-M4F, FPv4-SP) and
``mps2-an500`` (Cortex-M7, FPv5). A minimal start-up file and linker script (4 MiB of code
memory at 0, 4 MiB of RAM at 0x20000000) are written beside the model; newlib's
``rdimon`` specs route ``printf`` and ``exit`` through semihosting, so the example
``main.c`` prints its predictions on the host's terminal.

Counting: under ``qemu-system-arm -icount shift=0`` each guest instruction advances the
virtual clock by 1 ns; the MPS2 SysTick runs on the 25 MHz processor clock, so one tick is
40 instructions (measured by :func:`instructions_per_tick` on a loop of known length). The
numbers are instruction counts, not cycles: QEMU models no pipeline, caches or wait states.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onebit.errors import ConfigError, unknown_choice

__all__ = ["BOARDS", "HOST_FLAGS", "CortexMBuild", "build_cortex_m", "build_host", "instructions_per_tick",
           "missing_cortex_m_tools", "read_main_output", "run_qemu"]

# board -> (-mcpu, -mfpu): the hard-float ABI on each.
BOARDS = {"mps2-an386": ("cortex-m4", "fpv4-sp-d16"), "mps2-an500": ("cortex-m7", "fpv5-d16")}
HOST_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
_HERE = Path(__file__).parent


@dataclass
class CortexMBuild:
    """A cross-compiled model: the ELF, and the model's own flash and RAM (``arm-none-eabi-size`` of model.o)."""

    elf: Path
    board: str
    flash_bytes: int  # model.o text + data: code and const weights
    ram_bytes: int  # model.o data + bss: the activation arena and the logits buffer
    stack_bytes: int  # at most this much stack (-fstack-usage: the run's frame plus every kernel's)


def missing_cortex_m_tools() -> str | None:
    """Why the Cortex-M build cannot run here (a missing tool, named with its Debian package), or None."""
    for tool, package in (("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                          ("arm-none-eabi-size", "binutils-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install {package})"
    return None


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def build_host(c_dir: str | Path, *, samples: bool = True, compiler: str = "gcc", extra: tuple[str, ...] = ()) -> Path:
    """Compile model.c + main.c in ``c_dir`` for this machine with :data:`HOST_FLAGS`; returns the executable."""
    c_dir = Path(c_dir)
    exe = c_dir / "model_host"
    defines = ["-DONEBIT_SAMPLES"] if samples else []
    _run([compiler, *HOST_FLAGS, *extra, *defines, "model.c", "main.c", "-lm", "-o", exe.name], c_dir)
    return exe


def _flags(board: str) -> list[str]:
    if board not in BOARDS:
        raise unknown_choice("board", board, BOARDS)
    cpu, fpu = BOARDS[board]
    return [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=hard", f"-mfpu={fpu}", "-O2", "-ffunction-sections",
            "-fdata-sections"]


def build_cortex_m(c_dir: str | Path, board: str = "mps2-an386", *, samples: bool = True,
                   systick: bool = False) -> CortexMBuild:
    """Cross-compile ``c_dir``'s model for ``board``: model.c with ``-std=c99 -Wall -Wextra -Werror
    -pedantic``, main.c (with samples.h, SysTick counts where ``systick``), the start-up file, linked
    against newlib with semihosting. Returns the ELF and the model's flash/RAM/stack."""
    reason = missing_cortex_m_tools()
    if reason is not None:
        raise ConfigError(f"cannot build for {board}: {reason}")
    c_dir, flags = Path(c_dir), _flags(board)
    shutil.copyfile(_HERE / "cortex_m_startup.c.in", c_dir / "startup.c")
    shutil.copyfile(_HERE / "mps2.ld.in", c_dir / "mps2.ld")
    _run(["arm-none-eabi-gcc", *flags, *HOST_FLAGS[:-1], "-fstack-usage", "-c", "model.c", "-o", "model.o"], c_dir)
    defines = (["-DONEBIT_SAMPLES"] if samples else []) + (["-DONEBIT_SYSTICK"] if systick else [])
    _run(["arm-none-eabi-gcc", *flags, "-std=c99", *defines, "-c", "main.c", "-o", "main.o"], c_dir)
    _run(["arm-none-eabi-gcc", *flags, "-c", "startup.c", "-o", "startup.o"], c_dir)
    elf = c_dir / f"model-{board}.elf"
    _run(["arm-none-eabi-gcc", *flags, "--specs=rdimon.specs", "-T", "mps2.ld", "-Wl,--gc-sections", "startup.o",
          "main.o", "model.o", "-lm", "-o", elf.name], c_dir)
    text, data, bss = (int(v) for v in _run(["arm-none-eabi-size", "model.o"], c_dir).splitlines()[1].split()[:3])
    frames = {}
    for line in (c_dir / "model.su").read_text().splitlines():
        parts = line.split("\t")
        frames[parts[0].rsplit(":", 1)[-1]] = int(parts[1])
    # An upper bound of the deepest chain: _run's frame plus every kernel's (the kernels nest at most
    # three deep: conv -> pooled -> tap sum; the rest is inlined).
    stack = sum(v for k, v in frames.items() if not k.endswith("_predict"))
    return CortexMBuild(elf=elf, board=board, flash_bytes=text + data, ram_bytes=data + bss, stack_bytes=stack)


def run_qemu(elf: str | Path, board: str = "mps2-an386", *, timeout: float = 600) -> str:
    """Run ``elf`` on QEMU's ``board`` with semihosting and ``-icount shift=0``; returns what it printed."""
    _flags(board)
    cmd = ["qemu-system-arm", "-M", board, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr}")
    return proc.stdout


def read_main_output(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predictions, float32 logits (N, classes), SysTick ticks per inference or empty) from main.c's output."""
    preds, logits, ticks = [], [], []
    for line in text.splitlines():
        if line.startswith("ticks "):
            ticks.append(int(line.split()[1]))
        elif line.startswith("sample "):
            parts = line.split()
            preds.append(int(parts[3]))
            logits.append([int(h, 16) for h in parts[4:]])
    return (np.array(preds, np.int64), np.array(logits, np.uint32).view(np.float32),
            np.array(ticks, np.int64))


_CALIBRATE = r"""#include <stdint.h>
#include <stdio.h>
int main(void) {
  uint32_t t0, t1, n = 1000000u;
  *(volatile uint32_t *)0xE000E014u = 0xFFFFFFu;
  *(volatile uint32_t *)0xE000E018u = 0u;
  *(volatile uint32_t *)0xE000E010u = 5u;
  t0 = *(volatile uint32_t *)0xE000E018u;
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
  t1 = *(volatile uint32_t *)0xE000E018u;
  printf("ticks %lu\n", (unsigned long)((t0 - t1) & 0xFFFFFFu));
  return 0;
}
"""


def instructions_per_tick(work_dir: str | Path, board: str = "mps2-an386") -> float:
    """Guest instructions per SysTick tick under ``-icount shift=0``: a loop of 2,000,000
    instructions (subs + bne, 10⁶ times) timed by SysTick."""
    work, flags = Path(work_dir), _flags(board)
    work.mkdir(parents=True, exist_ok=True)
    (work / "calibrate.c").write_text(_CALIBRATE)
    shutil.copyfile(_HERE / "cortex_m_startup.c.in", work / "startup.c")
    shutil.copyfile(_HERE / "mps2.ld.in", work / "mps2.ld")
    _run(["arm-none-eabi-gcc", *flags, "--specs=rdimon.specs", "-T", "mps2.ld", "startup.c", "calibrate.c",
          "-o", "calibrate.elf"], work)
    ticks = int(re.search(r"ticks (\d+)", run_qemu(work / "calibrate.elf", board)).group(1))
    return 2_000_000 / ticks
