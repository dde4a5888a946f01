import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"

os.environ.setdefault("MPLBACKEND", "Agg")
# knn="ann"'s cost model keeps its fixed constants: choices must not depend on the machine (or on how busy it is);
# tests/knn/test_knn_cost_model.py measures them
os.environ.setdefault("XMRANK_COST_MODEL", "fixed")


def unit_rows(n, d, *, seed=0, n_modalities=2, gap=0.0, n_ids=None):
    """Random unit rows; with ``gap`` > 0, a per-modality offset (a biased set)."""
    rng = np.random.default_rng(seed)
    mods = rng.integers(0, n_modalities, size=n)
    X = rng.normal(size=(n, d))
    if n_ids:
        ids = rng.integers(0, n_ids, size=n)
        X = 0.7 * X / np.sqrt(d) + rng.normal(size=(n_ids, d))[ids] / np.sqrt(d)
    if gap:
        offsets = rng.normal(size=(n_modalities, d))
        offsets *= gap / np.linalg.norm(offsets, axis=1, keepdims=True)
        X = X / np.linalg.norm(X, axis=1, keepdims=True) + offsets[mods]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), mods


def assert_same_sparse(A, B, atol=1e-6):
    """The same stored pattern (sorted) and values within ``atol``: two sparse (or dense) distance matrices."""
    import scipy.sparse as sp

    A, B = sp.csr_matrix(A), sp.csr_matrix(B)
    A.sort_indices()
    B.sort_indices()
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    np.testing.assert_allclose(A.data, B.data, atol=atol, rtol=0)


@pytest.fixture(scope="session", params=["golden_n300_d128_k20.npz", "golden_n800_d512_k30.npz"])
def golden(request):
    with np.load(DATA / request.param) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled():
    """Compile xmrank's kernels once before any test (a no-op when the cache is warm), so that no
    command's output in a test carries the one-time "compiling xmrank's kernels" notice."""
    from xmrank import _warmup

    _warmup.ensure_compiled()


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors: one thread is as fast and does not fight other jobs for the cores (torch test modules
    use it through ``pytestmark``)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def invoke(args):
    """Run the ``xmrank`` command line in-process (click's CliRunner) with ``args`` (any objects, as text)."""
    from click.testing import CliRunner

    from xmrank.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_failure(res, *names):
    """Exit != 0, no traceback, exactly one stderr line naming one of ``names``; returns that line."""
    assert res.exit_code != 0, res.output
    # CliRunner catches exceptions instead of printing them: an uncaught one is a traceback.
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert any(name in lines[0] for name in names), lines[0]
    return lines[0]


def small_sysu(root, image: bytes = b""):
    """A minimal SYSU-MM01 layout under ``root``: identity 0001 in cameras 1 (visible) and 3 (infrared), one
    image each, and ``exp/{train,val,test}_id.txt`` listing it."""
    for cam in (1, 3):
        (root / f"cam{cam}" / "0001").mkdir(parents=True)
        (root / f"cam{cam}" / "0001" / "0001.jpg").write_bytes(image)
    (root / "exp").mkdir()
    for split in ("train", "val", "test"):
        (root / "exp" / f"{split}_id.txt").write_text("1\n")
    return root


#: The smallest training recipe the trainer's end-to-end tests run (on :func:`data_root`).
TINY_TRAIN = dict(height=32, width=16, iters=2, epochs_stage1=2, epochs_stage2=2, batch_size=8, num_instances=4,
                  global_batch_size=8, k1=6, k2=2, eval_trials=2, feature_batch_size=128, threads=1, device="cpu")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A tiny synthetic visible/infrared set (5 training identities), one per test module."""
    from xmrank.datasets import make_synthetic

    root = tmp_path_factory.mktemp("tiny_synthetic")
    make_synthetic(root, n_train_ids=5, n_val_ids=1, n_test_ids=3, images_per_camera=3, height=32, width=16)
    return str(root)
