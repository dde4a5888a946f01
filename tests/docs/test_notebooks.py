"""Every notebook in notebooks/ is stored executed (small PNG figures included) and still runs top to bottom."""

import base64
import struct
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

MAX_PNG_BYTES = 150_000
MAX_PNG_WIDTH = 1400  # pixels: figures are drawn at 80 dpi
MAX_NOTEBOOK_BYTES = 1_000_000


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


def _pngs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            for out in cell.outputs:
                if out.output_type in ("display_data", "execute_result") and "image/png" in out.get("data", {}):
                    yield base64.b64decode(out.data["image/png"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_with_small_figures(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # executed once, top to bottom, in one kernel
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), f"{path.name}: re-run it top to bottom"
    errors = [o for c in code for o in c.outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert not errors, f"{path.name}: stored outputs hold an error or stderr text"
    pngs = list(_pngs(nb))
    assert pngs, f"{path.name}: expected its figures among the outputs"
    for png in pngs:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, _height = struct.unpack(">II", png[16:24])
        assert len(png) <= MAX_PNG_BYTES and width <= MAX_PNG_WIDTH, f"{path.name}: figure too large ({len(png)} bytes, {width} px)"
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: figures become PNG outputs
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # run from the source alone
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # the kernel must be this interpreter (the one xmrank is installed in)
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys\nassert sys.executable == {sys.executable!r}, sys.executable"))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - start
    # about half a minute each on a 2-core machine; the bound catches runaway work, not a busy machine
    assert elapsed < 150, f"{path.name} took {elapsed:.0f}s; notebooks must stay quick"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert list(_pngs(nb)), f"{path.name}: no figure came out"
