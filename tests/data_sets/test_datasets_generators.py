"""The data helpers in one place: ``xmrank.datasets`` loads and makes every data set (readers,
CLIP pairs, synthetic features, synthetic images), lazily and without torch."""

import subprocess
import sys

import numpy as np
import pytest

import xmrank.datasets as datasets
from xmrank import InputError
from xmrank.datasets import load_clip_pairs, make_biased, make_cross_modal


def _bench_rerank_synthetic(n_ids, per_id, *, gap=1.5, noise=1.4, dim=128, seed=0):
    """The generator as benchmarks/bench_rerank.py and tests/retrieval/test_retrieval_auto.py wrote it before it
    moved into xmrank.datasets (kept here verbatim: the moved one must draw the same arrays)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    offsets, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    ids = np.tile(np.repeat(np.arange(n_ids), per_id), 2)
    mods = np.repeat([0, 1], n_ids * per_id)
    X = centres[ids] + gap * offsets.T[mods] + rng.standard_normal((len(ids), dim)) * noise / np.sqrt(dim)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), ids, mods


@pytest.mark.parametrize("args, kwargs", [
    ((200, 5), {}),
    ((60, 4), {"noise": 1.0, "dim": 32}),
    ((20, 2), {"dim": 16}),
    ((40, 10), {"dim": 512, "noise": 1.0, "seed": 1}),
    ((7, 3), {"gap": 0.0, "noise": 0.0, "dim": 8, "seed": 5}),
])
def test_make_cross_modal_draws_what_the_benchmark_drew(args, kwargs):
    new = make_cross_modal(*args, **kwargs)
    old = _bench_rerank_synthetic(*args, **kwargs)
    for a, b in zip(new, old):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)


def test_make_cross_modal_takes_a_generator():
    a = make_cross_modal(5, 2, dim=8, seed=np.random.default_rng(3))
    b = _bench_rerank_synthetic(5, 2, dim=8, seed=np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_make_cross_modal_layout():
    X, ids, mods = make_cross_modal(6, 3, dim=10, seed=2)
    assert X.shape == (36, 10) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(mods, np.repeat([0, 1], 18))
    assert np.array_equal(ids[:18], ids[18:]) and np.array_equal(np.bincount(ids), [6] * 6)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_ids": 0, "per_id": 2}, "n_ids"),
    ({"n_ids": 2, "per_id": 0}, "per_id"),
    ({"n_ids": 2, "per_id": 2, "gap": -1.0}, "gap"),
    ({"n_ids": 2, "per_id": 2, "noise": float("inf")}, "noise"),
    ({"n_ids": 2, "per_id": 2, "dim": 2}, "dim"),
])
def test_make_cross_modal_rejects_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        make_cross_modal(**kwargs)


def test_old_locations_are_the_same_functions():
    import xmrank.data
    import xmrank.torch
    import xmrank.torch.synthetic
    from xmrank.datasets import synthetic_images

    assert xmrank.data.load_clip_pairs is load_clip_pairs
    assert xmrank.data.make_biased is make_biased
    assert xmrank.torch.synthetic.make_synthetic is datasets.make_synthetic is synthetic_images.make_synthetic
    assert xmrank.torch.make_synthetic is datasets.make_synthetic
    assert xmrank.torch.synthetic.render_person is synthetic_images.render_person


def test_synthetic_cameras_are_the_sysu_cameras():
    from xmrank.datasets import sysu, synthetic_images

    assert synthetic_images.VISIBLE_CAMERAS == sysu.VISIBLE_CAMERAS == datasets.VISIBLE_CAMERAS
    assert synthetic_images.INFRARED_CAMERAS == sysu.INFRARED_CAMERAS


def test_public_names_resolve_and_are_listed():
    for name in ("load_clip_pairs", "make_biased", "make_cross_modal", "make_synthetic"):
        assert name in datasets.__all__ and name in dir(datasets)
        assert callable(getattr(datasets, name))
    with pytest.raises(AttributeError, match="no_such_loader"):
        datasets.no_such_loader  # noqa: B018


def test_load_clip_pairs_reads_the_bundled_file():
    X, ids, mods = load_clip_pairs()
    assert X.shape == (1000, 512) and X.flags.c_contiguous
    assert ids.dtype == mods.dtype == np.int64


def test_importing_datasets_loads_no_generator_and_no_heavy_module():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import xmrank.datasets as d\n"
        "lazy = [m for m in ('clip', 'synthetic', 'synthetic_images') if 'xmrank.datasets.' + m in sys.modules]\n"
        "heavy = [m for m in ('numba', 'sklearn', 'scipy', 'torch', 'PIL') if m in sys.modules]\n"
        "print('before', lazy, heavy)\n"
        "d.make_synthetic, d.make_biased, d.load_clip_pairs\n"
        "heavy = [m for m in ('numba', 'sklearn', 'scipy', 'torch') if m in sys.modules]\n"
        "print('after', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["before [] []", "after []"]


def test_make_synthetic_from_datasets_needs_no_torch(tmp_path):
    pytest.importorskip("PIL")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from xmrank.datasets import make_synthetic, sysu_train_records\n"
        f"make_synthetic({str(tmp_path / 'set')!r}, n_train_ids=2, n_val_ids=1, n_test_ids=1,\n"
        "               images_per_camera=1, height=16, width=8, progress=False)\n"
        f"print(len(sysu_train_records({str(tmp_path / 'set')!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(3 * 6)
