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


@pytest.fixture(scope="module")
def small_model():
    """The smoke preset's model (seeded) and its configuration, one per test module (the torch and CLI
    hostile-value tests)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from xmrank.torch.config import preset_config
    from xmrank.torch.model import build_model

    cfg = preset_config("smoke")
    torch.manual_seed(0)
    model = build_model(cfg.arch, non_local=cfg.non_local, non_local_width=cfg.non_local_width)
    return model, cfg


def cli(*args, check=False):
    """Run the ``xmrank`` command line in-process (click's CliRunner) with ``args`` (any objects, passed as text);
    returns click's ``Result``. ``check=True`` also asserts that the command succeeded (exit status 0)."""
    from click.testing import CliRunner

    from xmrank.cli.main import main

    res = CliRunner().invoke(main, [str(a) for a in args])
    if check:
        assert res.exit_code == 0, res.output
    return res


def invoke(args):
    """:func:`cli` with its arguments as one list."""
    return cli(*args)


def one_line_failure(res, *names, every=False, allow_stdout=False):
    """A command-line failure as its user sees it; returns the message line. All of:

    - exit status != 0, through click's ``SystemExit`` (CliRunner catches any other exception instead of letting
      it print a traceback: that would be a crash, not a refusal), and no "Traceback" in the output;
    - exactly one line on standard error (click prints errors there) and nothing on standard output -- unless
      ``allow_stdout=True``: a command that fails after it has shown its results (a write cut short);
    - that line holds one of ``names`` -- or, with ``every=True``, all of them.
    """
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    assert allow_stdout or not res.stdout.strip(), res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    found = [name in lines[0] for name in names]
    assert found and (all(found) if every else any(found)), (names, lines[0])
    return lines[0]


def one_line(exc_info, *words, name=None):
    """A library refusal's message (``exc_info`` from ``pytest.raises``); returns it. One non-empty line, holding
    every one of ``words``, beginning with ``name`` when given, and with numbers and strings printed plainly,
    never as numpy reprs (``np.int64(0)``, ``np.float64(2.5)``, ``np.str_('x')``)."""
    msg = str(exc_info.value)
    assert msg and "\n" not in msg, msg
    assert "np." not in msg, msg
    assert all(w in msg for w in words), msg
    if name is not None:
        assert msg.startswith(name), msg
    return msg


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
