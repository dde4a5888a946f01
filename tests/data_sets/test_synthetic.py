"""The synthetic visible/infrared image set: layout, counts, determinism, errors (no torch needed)."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("PIL")

from xmrank import InputError
from xmrank.cli.main import main
from xmrank.datasets import sysu_query_gallery, sysu_test_records, sysu_train_records
from xmrank.datasets.synthetic_images import (
    INFRARED_CAMERAS,
    VISIBLE_CAMERAS,
    make_synthetic,
    random_identity,
    render_person,
)

TINY = dict(n_train_ids=3, n_val_ids=1, n_test_ids=2, images_per_camera=2, height=32, width=16)


def _read(path):
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic(root, **TINY)
    return root


def test_layout_is_read_by_the_sysu_readers(tiny_root):
    train = sysu_train_records(tiny_root)
    # 4 training ids (train + val) x 6 cameras x 2 images
    assert len(train) == 48
    assert sum(r.modality == 0 for r in train) == 32
    assert {r.cam for r in train if r.modality == 1} == set(INFRARED_CAMERAS)
    assert {r.cam for r in train if r.modality == 0} == set(VISIBLE_CAMERAS)
    assert {r.pid for r in train} == {1, 2, 3, 4}
    test = sysu_test_records(tiny_root)
    assert {r.pid for r in test} == {5, 6} and len(test) == 24
    query, gallery = sysu_query_gallery(tiny_root, mode="all", trial=0)
    assert len(query) == 8 and all(r.modality == 1 for r in query)
    assert len(gallery) == 8 and all(r.modality == 0 for r in gallery)
    _, indoor = sysu_query_gallery(tiny_root, mode="indoor", trial=0)
    assert len(indoor) == 4
    with open(os.path.join(tiny_root, "exp", "val_id.txt")) as fh:
        assert fh.read().strip() == "4"


def test_images_have_the_asked_size_and_modality(tiny_root):
    vis = _read(os.path.join(tiny_root, "cam1", "0001", "0001.jpg"))
    ir = _read(os.path.join(tiny_root, "cam3", "0001", "0001.jpg"))
    assert vis.shape == ir.shape == (32, 16, 3)
    # infrared is grayscale (JPEG keeps equal channels within a level or two), visible is coloured
    assert np.abs(ir[..., 0].astype(int) - ir[..., 2].astype(int)).max() <= 3
    assert np.abs(vis[..., 0].astype(int) - vis[..., 2].astype(int)).max() > 20


def test_deterministic_by_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    make_synthetic(a, **TINY, seed=3)
    make_synthetic(b, **TINY, seed=3)
    make_synthetic(c, **TINY, seed=4)
    rel = os.path.join("cam2", "0002", "0002.jpg")
    assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert (a / rel).read_bytes() != (c / rel).read_bytes()


def test_infrared_shares_the_shapes_but_not_the_look():
    ident = random_identity(np.random.default_rng(0))
    vis = render_person(ident, 0, np.random.default_rng(5), height=64, width=32, camera=1).astype(float)
    ir = render_person(ident, 1, np.random.default_rng(5), height=64, width=32, camera=3).astype(float)
    assert vis.shape == ir.shape == (64, 32, 3)
    assert np.array_equal(ir[..., 0], ir[..., 1])
    gray = vis.mean(axis=2)
    # same pose draw, different rendering: the images differ clearly pixel-wise
    assert np.abs(gray - ir[..., 0]).mean() > 10


def test_refuses_a_foreign_or_existing_root(tmp_path, tiny_root):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        make_synthetic(other, **TINY)
    with pytest.raises(InputError, match="overwrite=True"):
        make_synthetic(tiny_root, **TINY)
    with pytest.raises(InputError, match="n_test_ids"):
        make_synthetic(tmp_path / "x", n_test_ids=0)


def test_overwrite_replaces_the_set(tmp_path):
    root = tmp_path / "s"
    make_synthetic(root, **TINY)
    make_synthetic(root, **{**TINY, "n_train_ids": 2}, overwrite=True)
    assert len(sysu_train_records(root)) == 36


def test_cli_make_synthetic(tmp_path):
    runner = CliRunner()
    root = tmp_path / "cli"
    res = runner.invoke(main, ["make-synthetic", str(root), "--train-ids", "2", "--val-ids", "1", "--test-ids", "1",
                               "--images-per-camera", "1", "--height", "32", "--width", "16"])
    assert res.exit_code == 0, res.output
    assert "wrote 16 visible and 8 infrared images" in res.output
    res = runner.invoke(main, ["make-synthetic", str(root)])
    assert res.exit_code == 1
    assert "--overwrite" in res.output or "overwrite" in res.output
    assert "Traceback" not in res.output
    afile = tmp_path / "file"
    afile.write_text("x")
    res = runner.invoke(main, ["make-synthetic", str(afile)])
    assert res.exit_code != 0 and "Traceback" not in res.output


def test_works_without_torch_and_names_the_extra():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import xmrank, xmrank.torch\n"
        "from xmrank.torch import make_synthetic\n"
        "from xmrank.torch.synthetic import render_person\n"
        "try:\n"
        "    from xmrank.torch import train\n"
        "except ImportError as exc:\n"
        "    print('IMPORT-ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR" in out.stdout and "pip install 'xmrank[torch]'" in out.stdout


def test_import_xmrank_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, xmrank, xmrank.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
