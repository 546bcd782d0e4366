"""Deployment targets beyond the Python runtime (microcontroller C, QONNX for FINN).

Each target lives in its own module and imports its heavy dependencies inside the
functions that need them, so ``import onebit.deploy`` stays cheap.
"""

from onebit.deploy.c import CExport, to_c

__all__ = ["CExport", "to_c", "to_qonnx"]


def __getattr__(name: str) -> object:
    # to_qonnx needs torch and onnx: onebit.deploy.qonnx is imported on first use only.
    if name == "to_qonnx":
        from onebit.deploy.qonnx import to_qonnx

        return to_qonnx
    raise AttributeError(f"module 'onebit.deploy' has no attribute {name!r}")
