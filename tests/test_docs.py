"""The docs site (mkdocs.yml) builds offline in strict mode, with the API reference.

A docstring that mkdocstrings cannot render cleanly (a Google-style ``Args:`` entry naming
no parameter, a broken cross-reference, ...) is a warning, which ``--strict`` turns into
a failed build. Takes about a second.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    assert "WARNING" not in log, log
    return out


def test_runtime_api_page_documents_load(site: Path) -> None:
    page = (site / "api" / "runtime" / "index.html").read_text(encoding="utf-8")
    assert 'id="onebit.runtime.load"' in page
    signature = re.sub(r"<[^>]+>", "", page)  # the signature is split into highlighted spans
    # mkdocstrings-python may break a long signature over lines: compare without whitespace
    assert "load(path:str|PathLike,num_threads:int|None=None" in re.sub(r"\s+", "", signature)


def test_every_module_has_its_page(site: Path) -> None:
    for name in ["onebit", "nn", "optim", "models", "data", "train", "recipes", "model_summary",
                 "checkpoint", "export", "runtime", "bench", "errors", "augment", "distill"]:
        page = (site / "api" / name / "index.html").read_text(encoding="utf-8")
        assert "doc doc-object" in page, f"api/{name}: nothing rendered"


def test_rst_roles_become_links(site: Path) -> None:
    """docs/griffe_rst_roles.py rewrites :class:`x`-style roles: none reaches a page."""
    for page in (site / "api").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        leftover = re.findall(r":(?:class|func|meth|mod|attr|data|exc|obj):", text)
        assert not leftover, f"{page.relative_to(site)}: {leftover[:5]}"
        assert "<autoref" not in text, f"{page.relative_to(site)}: an autoref was not processed"
    runtime = (site / "api" / "runtime" / "index.html").read_text(encoding="utf-8")
    # load's docstring says a bad file raises :class:`ModelFileError` (imported from onebit.errors)
    assert 'href="../errors/#onebit.errors.ModelFileError"' in runtime
