"""The test tree's layout: folders that mirror the packages, unique file names, and no folder that shadows a module.

The folders are not packages (no ``__init__.py``) and ``tests/`` is on ``sys.path`` (through the root
conftest), so a folder named like an importable module becomes a namespace package wherever that module
is not installed: ``pytest.importorskip("torch")`` in the light install (no torch) would import
``tests/torch/`` and fail instead of skipping. Hence ``tests/torch_trainer/``,
``tests/distributed_dask/`` and ``tests/data_sets/``.
"""

import importlib.util
import pathlib
import sys

TESTS = pathlib.Path(__file__).resolve().parents[1]

#: Modules the suite or xmrank imports, optionally or not (importorskip, lazy imports): no folder may
#: bear one of these names.
IMPORTED = {"torch", "torchvision", "distributed", "dask", "cupy", "cupyx", "ot", "h5py", "pyarrow", "hdbscan",
            "matplotlib", "faiss", "numba", "sklearn", "scipy", "numpy", "PIL", "yaml", "click", "tqdm",
            "nbclient", "nbformat", "hypothesis", "pandas", "datasets", "io", "xmrank", "conftest", "pytest"}


def _folders():
    return sorted(p for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def test_no_test_folder_shadows_a_module():
    names = {p.name for p in _folders()} - {"data"}
    # a built-in or frozen module (io) is found before any folder on sys.path; every other name is not
    shadowing = sorted(n for n in names & (IMPORTED | set(sys.stdlib_module_names))
                       if getattr(importlib.util.find_spec(n), "origin", None) not in ("built-in", "frozen"))
    assert not shadowing, f"test folders named like importable modules: {shadowing}"


def test_test_file_names_are_unique():
    names = [p.name for p in TESTS.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
