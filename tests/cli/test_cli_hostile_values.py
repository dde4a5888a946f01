"""Finite or refused, bounded up front, one line: hostile option values for the commands.

- ``rerank`` refuses hubness parameters that overflow; ``evaluate`` warns on SYSU-MM01 rules applied to cameras 0-3;
- sizes bounded before allocating: ``cluster --subset-ratio``, ``test --trial`` ranges, ``make-synthetic`` sizes,
  ``--height`` / ``--width``;
- decompression bombs (``visrank``; ``test``, here and in a DataLoader worker) and NaN weights (``embed``) are one
  line and write nothing.
"""

import numpy as np
import pytest

from conftest import cli, one_line_failure, unit_rows

Q, _ = unit_rows(20, 8, seed=1)

G, _ = unit_rows(30, 8, seed=2)


# --- finite or refused --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--reranker", "qb-norm", "--beta", "1e308"], "--beta"),
    (["--reranker", "db-norm", "--beta", "1e308"], "--beta"),
    (["--reranker", "alpha-qe", "--alpha", "1e308"], "--alpha"),
])
def test_rerank_refuses_overflowing_hubness_parameters(tmp_path, args, message):
    np.save(tmp_path / "q.npy", Q)
    np.save(tmp_path / "g.npy", G)
    res = cli("rerank", tmp_path / "q.npy", tmp_path / "g.npy", *args, "-o", tmp_path / "o.npy")
    one_line_failure(res, message)
    assert not (tmp_path / "o.npy").exists()


def test_cli_evaluate_refuses_sysu_rules_on_cameras_0_to_3(tmp_path):
    """The library warns (test above); the command refuses SYSU-MM01's rules on cameras that are not its own."""
    for name, arr in {"q": Q[:4], "g": G[:6], "qi": [0, 1, 2, 3], "gi": [0, 1, 2, 0, 1, 5], "qc": [0, 0, 3, 3],
                      "gc": [1, 1, 2, 2, 2, 2]}.items():
        np.save(tmp_path / f"{name}.npy", np.asarray(arr))
    args = ["evaluate", tmp_path / "q.npy", tmp_path / "g.npy", "--query-ids", tmp_path / "qi.npy",
            "--gallery-ids", tmp_path / "gi.npy", "--query-cameras", tmp_path / "qc.npy",
            "--gallery-cameras", tmp_path / "gc.npy"]
    one_line_failure(cli(*args, "--protocol", "sysu"), "--protocol sysu applies SYSU-MM01's rules", "include 0",
                     every=True)
    res = cli(*args, "--protocol", "market")  # the rules for cameras of any numbering
    assert res.exit_code == 0 and res.output.startswith("protocol market (Market-1501's rules"), res.output


# --- memory bounded up front --------------------------------------------------------------------------------

def test_cluster_subset_ratio_1e_9_on_480_rows_is_one_line(tmp_path):
    X, mods = unit_rows(480, 8, seed=0)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "m.npy", mods)
    res = cli("cluster", tmp_path / "x.npy", "-m", tmp_path / "m.npy", "--mode", "subset", "--subset-ratio", "1e-9",
              "-o", tmp_path / "o.npy")
    one_line_failure(res, "smallest ratio for")
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("trial,message", [
    ("1-2000000000", "'--trial': names more than 10000 trials"),
    ("1-5000,6000-12000", "'--trial': names more than 10000 trials"),
    ("0-3", "(1 or more)"), ("3-1", "such as 1, 1,2,5 or 1-10"), ("1,,2", "such as"), ("x", "such as"),
])
def test_regdb_trial_ranges_are_bounded_before_allocating(tmp_path, trial, message):
    res = cli("test", "--checkpoint", tmp_path / "m.pt", "--dataset", "regdb", "--root", tmp_path, "--trial", trial)
    one_line_failure(res, message)


@pytest.mark.parametrize("args,message", [
    (["--train-ids", "1000000000000"], "at most 9999"),
    (["--train-ids", "1e12"], "--train-ids"),
    (["--train-ids", "2000", "--images-per-camera", "100"], "at most 200000 are written"),
    (["--images-per-camera", "10000"], "images_per_camera must be <= 9999"),
    (["--images-per-camera", "100", "--height", "2048", "--width", "2048"], "at most 2000000000 are written"),
    (["--height", "100000"], "height must be <= 2048"),
])
def test_make_synthetic_sizes_are_bounded(tmp_path, args, message):
    res = cli("make-synthetic", tmp_path / "syn", *args)
    one_line_failure(res, message)
    assert not (tmp_path / "syn").exists()


@pytest.mark.parametrize("command", ["test", "embed"])
def test_image_size_options_are_bounded(tmp_path, command):
    extra = ["--dataset", "sysu"] if command == "test" else ["-o", tmp_path / "f.npz"]
    res = cli(command, "--checkpoint", tmp_path / "m.pt", "--root", tmp_path, *extra, "--input-height", "100000",
              "--input-width", "100000")
    one_line_failure(res, "--input-height")


# --- images, weights ----------------------------------------------------------------------------------------

def _bomb(path, side=20000):
    """A PNG whose header claims side x side pixels (a few KB on disk): Pillow refuses it on open."""
    from PIL import Image

    Image.new("1", (side, side)).save(path)


@pytest.mark.slow  # about 1-2 s: kept out of the fast suite (under a minute)
def test_visrank_with_a_bomb_image_is_one_line(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _bomb(images / "bomb.png")
    from PIL import Image

    Image.fromarray(np.zeros((8, 4, 3), np.uint8)).save(images / "ok.png")
    np.savez(tmp_path / "q.npz", features=Q[:2], ids=np.array([0, 1]), paths=np.array(["bomb.png", "ok.png"]))
    np.savez(tmp_path / "g.npz", features=G[:3], ids=np.array([0, 1, 2]), paths=np.array(["ok.png"] * 3))
    res = cli("visrank", tmp_path / "q.npz", tmp_path / "g.npz", "--images-root", images, "--queries", "2",
              "--top-k", "2", "-o", tmp_path / "o.png")
    one_line_failure(res, "bomb.png is too large to decode")
    assert not (tmp_path / "o.png").exists()


@pytest.fixture(scope="module")
def tiny_sysu(tmp_path_factory):
    from xmrank.datasets import make_synthetic

    root = tmp_path_factory.mktemp("tiny_sysu") / "syn"
    make_synthetic(root, n_train_ids=1, n_val_ids=1, n_test_ids=2, images_per_camera=1, height=32, width=16)
    return root


def _save_model(small_model, path, change=None):
    import torch

    model, cfg = small_model
    state = dict(model.state_dict())
    if change is not None:
        key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
        state[key] = change(state[key])
    cfg = cfg.to_dict() | {"height": 32, "width": 16}
    torch.save({"model": state, "config": cfg, "stage": 2}, path)


def test_embed_with_nan_weights_is_one_line_and_writes_nothing(small_model, tiny_sysu, tmp_path):
    import torch

    _save_model(small_model, tmp_path / "nan.pt", lambda w: torch.full_like(w, float("nan")))
    res = cli("embed", "--checkpoint", tmp_path / "nan.pt", "--root", tiny_sysu, "--split", "test",
              "-o", tmp_path / "f.npz", "--num-workers", "0")
    one_line_failure(res, "NaN or infinite value(s)")
    assert not (tmp_path / "f.npz").exists()


@pytest.mark.parametrize("workers", ["0", pytest.param("1", marks=pytest.mark.slow)])  # here, and in a worker
def test_test_with_a_decompression_bomb_is_one_line_naming_the_file(small_model, tiny_sysu, tmp_path, workers):
    import shutil

    root = tmp_path / "syn"
    shutil.copytree(tiny_sysu, root)
    test_id = int((root / "exp" / "test_id.txt").read_text().split(",")[0])
    victim = sorted((root / "cam3" / f"{test_id:04d}").glob("*.jpg"))[0]  # a query image
    _bomb(victim)  # a PNG under a .jpg name: Pillow reads by content
    _save_model(small_model, tmp_path / "m.pt")
    res = cli("test", "--checkpoint", tmp_path / "m.pt", "--dataset", "sysu", "--root", root, "--trials", "1",
              "--num-workers", workers, "--json", tmp_path / "r.json")
    one_line_failure(res, f"{victim.name} is too large to decode")
    assert not (tmp_path / "r.json").exists()
