"""Every ```python block of README.md and of the documentation pages (docs/*.md) runs as written,
in a fresh interpreter, from an empty folder.

A block whose first line is ``# requires: WHAT`` states what it needs. It is
run anyway when WHAT names only Python packages that are installed here
(``# requires: pillow``); otherwise (a GPU, a cluster address, a checkpoint
file) it is skipped, with WHAT as the reason.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: the documentation pages written in Markdown: what moved out of the README runs here too
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))

#: requirement word -> module it stands for (a block needing only these runs where they are installed)
PACKAGES = {"pillow": "PIL", "torch": "torch", "torchvision": "torchvision", "matplotlib": "matplotlib",
            "faiss": "faiss", "hdbscan": "hdbscan", "dask": "distributed", "pyyaml": "yaml"}

_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


def python_blocks(text: str):
    """``(line number, code)`` of every ```python block, indented fences (inside list items) included."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2), i + 1
        i += 1
        while i < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[i]):
            i += 1
        if lang == "python":
            blocks.append((start, textwrap.dedent("\n".join(lines[start:i])) + "\n"))
        i += 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
DOC_BLOCKS = [(page.relative_to(ROOT).as_posix(), line, code)
              for page in DOC_PAGES for line, code in python_blocks(page.read_text(encoding="utf-8"))]


def requirement(code: str) -> str | None:
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    m = re.match(r"#\s*requires:\s*(.*)$", first)
    return m.group(1).strip() if m else None


def missing(needs: str) -> str | None:
    """Why the block cannot run here, or None when every requirement is an installed package."""
    words = [w.strip().lower() for w in re.split(r",| and ", needs.split("(")[0]) if w.strip()]
    if not words or any(w not in PACKAGES for w in words):
        return f"requires: {needs}"
    absent = [w for w in words if importlib.util.find_spec(PACKAGES[w]) is None]
    return f"requires: {', '.join(absent)} (not installed)" if absent else None


def test_the_readme_has_python_blocks_and_most_run():
    assert len(BLOCKS) >= 6
    runnable = [b for b in BLOCKS if requirement(b[1]) is None]
    assert len(runnable) >= 4
    for line, code in BLOCKS:
        needs = requirement(code)
        assert needs is None or needs, f"README.md line {line}: '# requires:' names nothing"


def test_the_docs_pages_have_python_blocks_and_most_run():
    # guide, retrieval, performance, association, trainer and gnn hold the blocks that left the README
    pages = {page for page, _, _ in DOC_BLOCKS}
    for name in ("guide", "retrieval", "performance", "association", "trainer", "gnn"):
        assert f"docs/{name}.md" in pages, f"docs/{name}.md has no python block"
    runnable = [b for b in DOC_BLOCKS if requirement(b[2]) is None]
    assert len(runnable) >= 10
    for page, line, code in DOC_BLOCKS:
        needs = requirement(code)
        assert needs is None or needs, f"{page} line {line}: '# requires:' names nothing"


def test_block_extraction_handles_indented_fences():
    text = "a\n\n  ```python\n  x = 1\n  if x:\n      y = 2\n  ```\n\n```bash\nls\n```\n```python\nz = 3\n```\n"
    assert python_blocks(text) == [(3, "x = 1\nif x:\n    y = 2\n"), (12, "z = 3\n")]


def _run_block(where: str, code: str, tmp_path) -> None:
    needs = requirement(code)
    if needs is not None:
        reason = missing(needs)
        if reason:
            pytest.skip(reason)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)  # xmrank as installed, not from the checkout's folder
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"{where} failed:\n{code}\n--- stderr ---\n{res.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs_from_an_empty_folder(block, tmp_path):
    line, code = block
    _run_block(f"README.md block at line {line}", code, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("block", DOC_BLOCKS, ids=[f"{page}:line{line}" for page, line, _ in DOC_BLOCKS])
def test_docs_python_block_runs_from_an_empty_folder(block, tmp_path):
    page, line, code = block
    _run_block(f"{page} block at line {line}", code, tmp_path)
