"""Finite or refused, bounded up front, one line for every kind of input (issue 25, the values half).

Library and command-line cases: hubness parameters that overflow, subset ratios and trial ranges bounded before
allocating, billion-laughs YAML, strict integer lists, SYSU-MM01 camera numbers, torchreid's cosine distances,
masked / sparse / quantised / float8 inputs, weights that are NaN or complex, decompression bombs and
DataLoader worker errors.
"""

import os

import numpy as np
import pytest
from click.testing import CliRunner

import xmrank
from conftest import unit_rows
from xmrank import InputError
from xmrank.cli.main import main
from xmrank.retrieval import hubness

Q, _ = unit_rows(20, 8, seed=1)
G, _ = unit_rows(30, 8, seed=2)


def one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def cli_error(res, *patterns):
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and all(p in lines[0] for p in patterns), res.output


# --- finite or refused ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: hubness.qb_norm(Q, G, beta=1e308), r"beta must be <= 1000000.0"),
    (lambda: hubness.db_norm(Q, G, beta1=1e308), r"beta1 must be <= 1000000.0"),
    (lambda: hubness.db_norm(Q, G, beta2=float("inf")), r"beta2 must be a finite number"),
    (lambda: hubness.alpha_qe(Q, G, alpha=1e308), r"alpha must be <= 100.0"),
    (lambda: hubness.query_expansion(Q, G, alpha=-1), r"alpha must be >= 0.0"),
    (lambda: hubness.qb_norm(Q * 1e17, G * 1e17, beta=1e6), r"non-finite distance"),
])
def test_hubness_parameters_that_overflow_are_refused(call, match):
    with pytest.raises(InputError, match=match) as e:
        call()
    one_line(e)


@pytest.mark.parametrize("call", [
    lambda: hubness.qb_norm(Q, G, beta=1e6), lambda: hubness.db_norm(Q, G, beta1=1e6, beta2=1e6),
    lambda: hubness.alpha_qe(Q, G, alpha=100.0)[0], lambda: hubness.alpha_qe(Q * (1 + 1e-7), G, alpha=100.0)[0],
])
def test_hubness_at_the_bounds_is_finite(call):
    assert np.isfinite(call()).all()


@pytest.mark.parametrize("args,message", [
    (["--reranker", "qb-norm", "--beta", "1e308"], "--beta"),
    (["--reranker", "db-norm", "--beta", "1e308"], "--beta"),
    (["--reranker", "alpha-qe", "--alpha", "1e308"], "--alpha"),
])
def test_rerank_refuses_overflowing_hubness_parameters(tmp_path, args, message):
    np.save(tmp_path / "q.npy", Q)
    np.save(tmp_path / "g.npy", G)
    res = cli("rerank", tmp_path / "q.npy", tmp_path / "g.npy", *args, "-o", tmp_path / "o.npy")
    cli_error(res, message)
    assert not (tmp_path / "o.npy").exists()


# --- SYSU-MM01 rules on camera numbers that are not SYSU-MM01's ---------------------------------------------

def test_sysu_rules_on_cameras_0_to_3_say_so():
    D = np.random.default_rng(0).random((4, 6))
    q_ids, g_ids = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0, 1, 5])
    with pytest.warns(UserWarning) as rec:
        res = xmrank.evaluate(D, q_ids, g_ids, np.array([0, 0, 3, 3]), np.array([1, 1, 2, 2, 2, 2]), protocol="sysu")
    msgs = [str(w.message) for w in rec]
    assert any("outside SYSU-MM01's 1-6" in m and "2 camera number(s)" in m for m in msgs), msgs
    assert any("2 of 4 queries have no valid match" in m for m in msgs), msgs  # query 2 (gallery cam 2 removed), 3
    assert res["n_skipped"] == 2
    with pytest.raises(InputError, match=r"No query has a valid match in the gallery under protocol 'sysu' \(2"):
        xmrank.evaluate(D[:2, 2:], q_ids[2:], g_ids[2:], np.array([3, 3]), np.array([2, 2, 2, 2]), protocol="sysu")


def test_cli_evaluate_refuses_sysu_rules_on_cameras_0_to_3(tmp_path):
    """The library warns (test above); the command refuses SYSU-MM01's rules on cameras that are not its own."""
    for name, arr in {"q": Q[:4], "g": G[:6], "qi": [0, 1, 2, 3], "gi": [0, 1, 2, 0, 1, 5], "qc": [0, 0, 3, 3],
                      "gc": [1, 1, 2, 2, 2, 2]}.items():
        np.save(tmp_path / f"{name}.npy", np.asarray(arr))
    args = ["evaluate", tmp_path / "q.npy", tmp_path / "g.npy", "--query-ids", tmp_path / "qi.npy",
            "--gallery-ids", tmp_path / "gi.npy", "--query-cameras", tmp_path / "qc.npy",
            "--gallery-cameras", tmp_path / "gc.npy"]
    cli_error(cli(*args, "--protocol", "sysu"), "--protocol sysu applies SYSU-MM01's rules", "include 0")
    res = cli(*args, "--protocol", "market")  # the rules for cameras of any numbering
    assert res.exit_code == 0 and res.output.startswith("protocol market (Market-1501's rules"), res.output


# --- memory bounded up front ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [1e-9, 5e-324, 1 / 241])
def test_subset_ratio_is_bounded_by_the_rows(ratio):
    with pytest.raises(InputError, match=r"splits 240 rows into subsets of fewer than 1 row\(s\); the smallest "
                                         r"ratio for 240 rows is 0.00417") as e:
        xmrank.subset_split(240, ratio=ratio)
    one_line(e)
    assert len(xmrank.subset_split(240, ratio=1 / 240)) == 240
    with pytest.raises(InputError, match="fewer than 4 row"):
        xmrank.subset_split(10, ratio=0.25, min_size=4)


def test_cluster_subset_ratio_1e_9_on_480_rows_is_one_line(tmp_path):
    X, mods = unit_rows(480, 8, seed=0)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "m.npy", mods)
    res = cli("cluster", tmp_path / "x.npy", "-m", tmp_path / "m.npy", "--mode", "subset", "--subset-ratio", "1e-9",
              "-o", tmp_path / "o.npy")
    cli_error(res, "smallest ratio for")
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("trial,message", [
    ("1-2000000000", "'--trial': names more than 10000 trials"),
    ("1-5000,6000-12000", "'--trial': names more than 10000 trials"),
    ("0-3", "(1 or more)"), ("3-1", "such as 1, 1,2,5 or 1-10"), ("1,,2", "such as"), ("x", "such as"),
])
def test_regdb_trial_ranges_are_bounded_before_allocating(tmp_path, trial, message):
    res = cli("test", "--checkpoint", tmp_path / "m.pt", "--dataset", "regdb", "--root", tmp_path, "--trial", trial)
    cli_error(res, message)


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
    cli_error(res, message)
    assert not (tmp_path / "syn").exists()


@pytest.mark.parametrize("command", ["test", "embed"])
def test_image_size_options_are_bounded(tmp_path, command):
    extra = ["--dataset", "sysu"] if command == "test" else ["-o", tmp_path / "f.npz"]
    res = cli(command, "--checkpoint", tmp_path / "m.pt", "--root", tmp_path, *extra, "--input-height", "100000",
              "--input-width", "100000")
    cli_error(res, "--input-height")


def test_diagnose_histograms_hold_no_n_squared_arrays():
    import tracemalloc

    from xmrank.diagnostics.distances import jaccard_histogram, original_histogram

    rng = np.random.default_rng(0)
    n = 3000
    D = rng.random((n, n))
    codes = np.arange(n) % 2
    tracemalloc.start()
    h = jaccard_histogram(D, codes, bins=10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6  # the dense path used to build N² / 2 index pairs (~110 MB here)
    i, j = np.triu_indices(n, k=1)
    same = codes[i] == codes[j]
    ref = np.histogram(np.clip(D[i, j][same], 0, 1), bins=h["edges"])[0]
    np.testing.assert_array_equal(h["intra"], ref)
    X = rng.normal(size=(400, 4096)).astype(np.float32)
    tracemalloc.start()
    original_histogram(X, np.arange(400) % 2, max_pairs=50_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6  # the sampled pairs' rows are gathered a block at a time (was 2 x 50,000 x 4096 x 4 bytes)


# --- YAML and --set ------------------------------------------------------------------------------------------

LAUGHS = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else '1, 1, 1, 1, 1, 1, 1, 1, 1'}]\n"
                 for p, c in zip([""] + list("abcdefg"), "abcdefgh")) + "lr: *h\n"


def test_billion_laughs_yaml_is_refused(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "bomb.yaml").write_text(LAUGHS)
    res = cli("train", "--preset", "smoke", "--show-config", "--config", tmp_path / "bomb.yaml")
    cli_error(res, "aliases (*a) are not allowed in a configuration")


@pytest.mark.parametrize("value", ["[0,2.5,0,0]", "[0,true,0,0]", "0,2.5,0,0", "[0,1e400,0,0]"])
def test_non_local_entries_must_be_whole_numbers(value):
    pytest.importorskip("yaml")
    res = cli("train", "--preset", "smoke", "--show-config", "--set", f"non_local={value}")
    cli_error(res, "config non_local must be a list of 4 integers")


def test_non_local_whole_floats_are_read_as_integers():
    pytest.importorskip("yaml")
    res = cli("train", "--preset", "smoke", "--show-config", "--set", "non_local=0,2.0,3,0")
    assert res.exit_code == 0 and "non_local: [0, 2, 3, 0]" in res.output


@pytest.mark.parametrize("field,value,message", [
    ("lr", "1e308", "lr must be <= 1.0"), ("gamma", "1.5", "gamma must be <= 1.0"),
    ("gem_p", "1e308", "gem_p must be <= 10.0"), ("temperature", "1e-300", "temperature must be >= 0.001"),
    ("height", "100000", "height must be <= 2048"),
    ("synthetic_train_ids", "100000", "synthetic_train_ids + 4 + synthetic_test_ids must be at most 9999"),
    ("synthetic_images_per_camera", "1000", "at most 200000 are written"),
])
def test_training_settings_that_overflow_are_refused(field, value, message):
    pytest.importorskip("yaml")
    cli_error(cli("train", "--preset", "smoke", "--show-config", "--set", f"{field}={value}"), message)


# --- reader coercions ----------------------------------------------------------------------------------------

def test_k1_equal_to_n_is_refused_for_every_method():
    X, _ = unit_rows(10, 4, seed=0)
    mods = np.repeat([0, 1], 5)
    for kwargs in ({}, {"modalities": mods, "method": "modality"}, {"modalities": mods, "method": "modality-qe"}):
        with pytest.raises(InputError, match=r"k1=10 must be smaller than the number of rows \(10\)"):
            xmrank.jaccard_distance(X, k1=10, k2=2, **kwargs)
    xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=9, k2=2)  # k1 = N - 1 stays valid
    xmrank.jaccard_distance(X, k1=9, k2=2)


def test_masked_arrays_are_refused_not_unmasked():
    X, mods = unit_rows(20, 4, seed=0)
    masked = np.ma.masked_array(X, mask=np.eye(20, 4, dtype=bool))
    with pytest.raises(InputError, match="masked array with 4 masked entries") as e:
        xmrank.jaccard_distance(masked, k1=5, k2=2)
    one_line(e)
    full = np.ma.masked_array(X, mask=False)  # nothing masked: read as its data
    np.testing.assert_array_equal(xmrank.jaccard_distance(full, k1=5, k2=2).toarray(),
                                  xmrank.jaccard_distance(X, k1=5, k2=2).toarray())


def test_pt_labels_mixing_strings_and_numbers_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    X, mods = unit_rows(20, 4, seed=0)
    torch.save({"features": torch.from_numpy(X), "modalities": ["a", 1] + [0] * 18}, tmp_path / "f.pt")
    res = cli("cluster", tmp_path / "f.pt", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy")
    cli_error(res, "mixes strings and other values")


def test_parquet_string_feature_column_is_refused_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X, mods = unit_rows(20, 2, seed=0)
    pq.write_table(pa.table({"x1": X[:, 0], "x2": X[:, 1], "x3": [str(v) for v in range(20)]}), tmp_path / "f.parquet")
    res = cli("cluster", tmp_path / "f.parquet", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy")
    cli_error(res, "column 'x3' holds values that are not numbers")
    with open(tmp_path / "f.csv", "w") as fh:
        fh.write("x1,x2,x3\n" + "".join(f"{a},{b},{i}x\n" for i, (a, b) in enumerate(X)))
    cli_error(cli("cluster", tmp_path / "f.csv", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy"),
              "column 'x3' holds values that are not numbers")


@pytest.mark.parametrize("kind", ["sparse", "qint8", "float8", "complex"])
def test_unusual_tensors_in_pt_feature_files(tmp_path, kind):
    torch = pytest.importorskip("torch")
    X, mods = unit_rows(20, 4, seed=0)
    t = torch.from_numpy(X)
    with np.errstate(all="ignore"):
        t = {"sparse": lambda: t.to_sparse(), "qint8": lambda: torch.quantize_per_tensor(t, 0.01, 0, torch.qint8),
             "float8": lambda: t.to(torch.float8_e4m3fn), "complex": lambda: t.to(torch.complex64)}[kind]()
    torch.save({"features": t, "modalities": torch.from_numpy(mods)}, tmp_path / "f.pt")
    res = cli("cluster", tmp_path / "f.pt", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy")
    if kind in ("qint8", "float8"):  # converted (dequantised / widened to float32), as documented
        assert res.exit_code == 0, res.output
        assert (tmp_path / "o.npy").exists()
    else:
        cli_error(res, {"sparse": "sparse) tensor; store it dense", "complex": "must be real-valued"}[kind])


# --- weights, images, workers --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_model():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from xmrank.torch.config import preset_config
    from xmrank.torch.model import build_model

    cfg = preset_config("smoke")
    torch.manual_seed(0)
    model = build_model(cfg.arch, non_local=cfg.non_local, non_local_width=cfg.non_local_width)
    return model, cfg


@pytest.mark.parametrize("kind,match", [
    ("nan", r"holds \d+ NaN or infinite value"), ("complex", "holds complex numbers"),
    ("sparse", "is a sparse_coo tensor"), ("float8", "is a float8_e4m3fn tensor"),
])
def test_load_model_refuses_weights_that_are_not_real_finite_numbers(tmp_path, small_model, kind, match):
    import torch

    from xmrank.torch.loading import load_model

    model, cfg = small_model
    state = dict(model.state_dict())
    key = "base.layer1.0.conv1.weight" if "base.layer1.0.conv1.weight" in state else \
        next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    w = state[key]
    state[key] = {"nan": lambda: torch.full_like(w, float("nan")), "complex": lambda: w.to(torch.complex64),
                  "sparse": lambda: w.to_sparse(), "float8": lambda: w.to(torch.float8_e4m3fn)}[kind]()
    torch.save({"model": state, "config": cfg.to_dict(), "stage": 2}, tmp_path / "m.pt")
    import contextlib

    # a complex weight used to be cast with numpy's ComplexWarning: no warning may escape (sparse tensors make
    # torch.load warn about their invariants: not checked there)
    with _no_warning() if kind in ("nan", "complex") else contextlib.nullcontext():
        with pytest.raises(InputError, match=match) as e:
            load_model(tmp_path / "m.pt")
    one_line(e)


class _no_warning:
    """Every warning raised as an error inside the block."""

    def __enter__(self):
        import warnings

        self.ctx = warnings.catch_warnings()
        self.ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


@pytest.mark.parametrize("path", [None, 3, "", b"a\x00b"])
def test_load_model_of_no_path_is_one_line(path):
    pytest.importorskip("torch")
    from xmrank.torch.loading import load_model

    with pytest.raises(InputError, match="path") as e:
        load_model(path)
    one_line(e)


def test_extract_features_refuses_non_finite_features(small_model, tmp_path):
    import torch
    from PIL import Image

    from xmrank.datasets import ImageRecord
    from xmrank.torch.features import extract_features

    model, _ = small_model
    Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(tmp_path / "a.jpg")
    bad = model
    saved = {k: v.clone() for k, v in bad.state_dict().items()}
    try:
        with torch.no_grad():
            next(p for p in bad.parameters() if p.dim() == 4).fill_(float("nan"))
        with pytest.raises(InputError, match="NaN or infinite features for 1 of 1 image") as e:
            extract_features(bad, [ImageRecord(str(tmp_path / "a.jpg"), 0, 1, 0)], height=32, width=16,
                             num_workers=0)
        one_line(e)
    finally:
        bad.load_state_dict(saved)


def _bomb(path, side=20000):
    """A PNG whose header claims side x side pixels (a few KB on disk): Pillow refuses it on open."""
    from PIL import Image

    Image.new("1", (side, side)).save(path)


def test_decompression_bomb_is_one_line_naming_the_file(tmp_path):
    from xmrank.datasets.images import open_image

    _bomb(tmp_path / "bomb.png")
    with pytest.raises(InputError, match=r"image .*bomb.png is too large to decode") as e:
        with open_image(tmp_path / "bomb.png") as img:
            img.load()
    one_line(e)
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"cannot read image .*junk.jpg \(UnidentifiedImageError"):
        with open_image(tmp_path / "junk.jpg"):
            pass


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
    cli_error(res, "bomb.png is too large to decode")
    assert not (tmp_path / "o.png").exists()


def test_a_corrupt_image_read_by_a_dataloader_worker_is_the_workers_message(small_model, tmp_path):
    from PIL import Image

    from xmrank.datasets import ImageRecord
    from xmrank.torch.features import extract_features

    model, _ = small_model
    Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    records = [ImageRecord(str(tmp_path / n), 0, 1, 0) for n in ("a.jpg", "b.jpg")]
    with pytest.raises(InputError, match=r"^cannot read image .*b.jpg") as e:
        extract_features(model, records, height=32, width=16, num_workers=1, batch_size=1)
    one_line(e)
    assert "DataLoader" not in str(e.value) and "Traceback" not in str(e.value)


# --- torchreid's own cosine distances ------------------------------------------------------------------------

def test_compat_re_ranking_accepts_one_minus_cosine_in_float32():
    from xmrank.compat import re_ranking

    q, g = Q, G
    qq, gg, qg = 1 - q @ q.T, 1 - g @ g.T, 1 - q @ g.T
    assert min(qq.min(), gg.min()) < 0  # float32 rounding: 1 - cos(x, x) is a little below 0
    out = re_ranking(qg, qq, gg, k1=5, k2=3)
    ref = re_ranking(qg, np.maximum(qq, 0), np.maximum(gg, 0), k1=5, k2=3)
    np.testing.assert_array_equal(out, ref)
    assert min(qq.min(), gg.min()) < 0  # the caller's arrays are not modified
    bad = qq.copy()
    bad[0, 1] = -1e-3
    with pytest.raises(InputError, match=r"q_q_dist must hold non-negative distances; q_q_dist\[0, 1\]") as e:
        re_ranking(qg, bad, gg, k1=5, k2=3)
    one_line(e)


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
    cli_error(res, "NaN or infinite value(s)")
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
    cli_error(res, f"{victim.name} is too large to decode")
    assert not (tmp_path / "r.json").exists()
