"""``import onebit.runtime`` works where torch cannot be imported (a deployment without torch)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this test (import of {name})")
            return None

    sys.meta_path.insert(0, BlockTorch())
    """
)


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_runtime_imports_and_runs_without_torch():
    proc = run_without_torch(
        """
        import numpy as np
        import onebit
        import onebit.runtime as rt
        x = np.array([[-1.0, 0.0, -0.0, 2.0]], dtype=np.float32)
        packed = rt.pack_bits(x)
        assert packed.tolist() == [[1]], packed
        assert rt.unpack_bits(packed, 4).tolist() == [[-1.0, 1.0, 1.0, 1.0]]
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_the_block_really_blocks_torch():
    proc = run_without_torch("import onebit.nn")
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr


def test_top_level_names_are_the_public_api_and_load_torch_free():
    """``onebit.export_model`` (the exporter; ``onebit.export`` is its subpackage) and ``onebit.load`` (the
    runtime) are top-level names; ``onebit.load`` works without torch."""
    import onebit
    import onebit.export
    import onebit.runtime

    assert {"export_model", "load", "create_model", "fit", "summary", "binarize"} <= set(onebit.__all__)
    assert onebit.export_model is onebit.export.export and onebit.load is onebit.runtime.load
    proc = run_without_torch(
        """
        import onebit
        assert onebit.load.__module__ == "onebit.runtime.model", onebit.load.__module__
        assert "torch" not in sys.modules
        """
    )
    assert proc.returncode == 0, proc.stderr
