"""SYSU-MM01 and RegDB readers on tiny fake folder trees, and the multi-trial protocol runners."""

import os
import random

import numpy as np
import pytest
from conftest import small_sysu

from xmrank import InputError
from xmrank.datasets import (
    ImageRecord,
    records_to_arrays,
    regdb_query_gallery,
    regdb_records,
    sysu_ids,
    sysu_query_gallery,
    sysu_test_records,
    sysu_train_records,
)
from xmrank.retrieval import regdb_evaluation, sysu_evaluation

TRAIN, VAL, TEST = [3, 1, 2], [4], [12, 5, 10]  # test ids deliberately not in ascending file order


def n_files(pid, cam):
    """Images of (pid, cam) in the fake tree; 0 = no folder. Id 12 has visible images only in camera 2."""
    if pid == 12 and cam in (1, 4, 5):
        return 0
    if (pid, cam) == (5, 4):
        return 0
    return 1 + (pid * 7 + cam * 3) % 5


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("SYSU-MM01")
    for pid in TRAIN + VAL + TEST:
        for cam in range(1, 7):
            k = n_files(pid, cam)
            if k == 0:
                continue
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for i in range(k):
                (folder / f"{i + 1:04d}.jpg").write_bytes(b"")
    (root / "cam1" / "0005" / ".DS_Store").write_bytes(b"")  # hidden files are ignored
    (root / "cam1" / "0005" / "sub").mkdir()  # and so are folders
    (root / "cam4" / "0005").mkdir()  # an empty identity folder: skipped, draws nothing
    (root / "cam3" / "0099").mkdir(parents=True)  # an id in no list: never read
    (root / "cam3" / "0099" / "0001.jpg").write_bytes(b"")
    exp = root / "exp"
    exp.mkdir()
    for name, ids in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        (exp / f"{name}_id.txt").write_text(",".join(str(i) for i in ids) + "\n")
    return str(root)


def expected_count(ids, cams):
    return sum(n_files(p, c) for p in ids for c in cams)


def published_gallery(root, mode, trial):
    """The published sampler, spelled out: global random.seed, sorted ids, cameras in order, sorted files."""
    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    ids = ["%04d" % x for x in TEST]
    random.seed(trial)
    out = []
    for pid in sorted(ids):
        for cam in cams:
            d = os.path.join(root, cam, pid)
            if os.path.isdir(d):
                files = sorted(os.path.join(d, f) for f in os.listdir(d) if not f.startswith(".") and os.path.isfile(os.path.join(d, f)))
                if files:
                    out.append(random.choice(files))
    return out


# --- SYSU-MM01 -----------------------------------------------------------------------------

def test_sysu_ids_reads_one_comma_separated_line(sysu_root):
    assert sysu_ids(sysu_root, "test") == TEST
    assert sysu_ids(sysu_root, "val") == VAL


def test_sysu_train_records_counts_order_and_labels(sysu_root):
    recs = sysu_train_records(sysu_root)
    ids = TRAIN + VAL
    n_vis, n_ir = expected_count(ids, (1, 2, 4, 5)), expected_count(ids, (3, 6))
    assert len(recs) == n_vis + n_ir
    arr = records_to_arrays(recs)
    np.testing.assert_array_equal(arr["modalities"], np.repeat([0, 1], [n_vis, n_ir]))  # visible first
    assert set(arr["pids"]) == {1, 2, 3, 4}  # original ids, not relabelled
    assert set(arr["cams"][:n_vis]) == {1, 2, 4, 5} and set(arr["cams"][n_vis:]) == {3, 6}
    assert np.all(np.diff(arr["pids"][:n_vis]) >= 0)  # identity-major order
    r = recs[0]
    assert isinstance(r, ImageRecord) and r.path == os.path.join(sysu_root, "cam1", "0001", "0001.jpg")
    with pytest.raises(Exception):
        r.pid = 3  # frozen


def test_sysu_test_records_cover_every_test_image(sysu_root):
    recs = sysu_test_records(sysu_root)
    assert len(recs) == expected_count(TEST, range(1, 7))
    assert {r.pid for r in recs} == set(TEST)
    assert all(".DS_Store" not in r.path and not r.path.endswith("sub") for r in recs)


@pytest.mark.parametrize("mode, cams", [("all", (1, 2, 4, 5)), ("indoor", (1, 2))])
def test_sysu_query_gallery_counts(sysu_root, mode, cams):
    query, gallery = sysu_query_gallery(sysu_root, mode=mode, trial=0)
    assert len(query) == expected_count(TEST, (3, 6))
    assert {(r.cam, r.modality) for r in query} <= {(3, 1), (6, 1)}
    # one image per (test id, gallery camera) that has images
    pairs = [(r.pid, r.cam) for r in gallery]
    assert len(pairs) == len(set(pairs)) == sum(n_files(p, c) > 0 for p in TEST for c in cams)
    assert {r.cam for r in gallery} <= set(cams) and all(r.modality == 0 for r in gallery)
    # query order: ids ascending, then camera, then file name
    keys = [(r.pid, r.cam, os.path.basename(r.path)) for r in query]
    assert keys == sorted(keys)


@pytest.mark.parametrize("mode", ["all", "indoor"])
@pytest.mark.parametrize("trial", range(10))
def test_sysu_gallery_is_the_published_draw(sysu_root, mode, trial):
    _, gallery = sysu_query_gallery(sysu_root, mode=mode, trial=trial)
    assert [r.path for r in gallery] == published_gallery(sysu_root, mode, trial)


def test_sysu_gallery_draw_is_seeded_and_leaves_global_random_alone(sysu_root):
    random.seed(1234)
    expected_next = random.random()
    random.seed(1234)
    a = [r.path for r in sysu_query_gallery(sysu_root, trial=3)[1]]
    assert random.random() == expected_next
    assert a == [r.path for r in sysu_query_gallery(sysu_root, trial=3)[1]]
    draws = {tuple(r.path for r in sysu_query_gallery(sysu_root, trial=t)[1]) for t in range(10)}
    assert len(draws) > 1


def test_sysu_errors_name_the_file(tmp_path, sysu_root):
    with pytest.raises(InputError, match="SYSU-MM01 root .* is not a directory"):
        sysu_query_gallery(str(tmp_path / "nope"))
    (tmp_path / "exp").mkdir()
    with pytest.raises(InputError, match="test_id.txt not found"):
        sysu_query_gallery(str(tmp_path))
    (tmp_path / "exp" / "test_id.txt").write_text("1,2,x3\n")
    with pytest.raises(InputError, match=r"test_id.txt holds 'x3'"):
        sysu_query_gallery(str(tmp_path))
    (tmp_path / "exp" / "test_id.txt").write_text("\n")
    with pytest.raises(InputError, match="test_id.txt is empty"):
        sysu_test_records(str(tmp_path))
    (tmp_path / "exp" / "test_id.txt").write_text("7,8")
    with pytest.raises(InputError, match="found no infrared test \\(query\\) images"):
        sysu_query_gallery(str(tmp_path))
    with pytest.raises(InputError, match="Unknown mode 'outdoor'"):
        sysu_query_gallery(sysu_root, mode="outdoor")
    with pytest.raises(InputError, match="trial must be >= 0"):
        sysu_query_gallery(sysu_root, trial=-1)


# --- RegDB ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def regdb_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("RegDB")
    idx = root / "idx"
    idx.mkdir()
    for trial in (1, 2):
        for split, ids in (("train", range(0, 4)), ("test", range(4, 7))):
            for mod, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                lines = [f"{folder}/{pid + 100 * trial}/img_{k}.bmp {pid}" for pid in ids for k in range(3)]
                (idx / f"{split}_{mod}_{trial}.txt").write_text("\n".join(lines) + "\n\n")
    return str(root)


def test_regdb_records(regdb_root):
    recs = regdb_records(regdb_root, split="test", trial=2, modality="thermal")
    assert len(recs) == 9
    assert recs[0] == ImageRecord(os.path.join(regdb_root, "Thermal/204/img_0.bmp"), 4, 2, 1)
    vis = regdb_records(regdb_root, split="train", trial=1, modality="visible")
    assert len(vis) == 12 and {(r.cam, r.modality) for r in vis} == {(1, 0)}
    assert [r.pid for r in vis] == [p for p in range(4) for _ in range(3)]  # file order


def test_regdb_directions_swap_the_lists(regdb_root):
    q, g = regdb_query_gallery(regdb_root, trial=1, direction="v2t")
    q2, g2 = regdb_query_gallery(regdb_root, trial=1, direction="t2v")
    assert q == g2 and g == q2
    assert all(r.modality == 0 for r in q) and all(r.modality == 1 for r in g)


def test_regdb_errors_name_the_file(tmp_path, regdb_root):
    with pytest.raises(InputError, match="test_visible_3.txt not found"):
        regdb_query_gallery(regdb_root, trial=3)
    bad = tmp_path / "idx"
    bad.mkdir()
    (bad / "test_visible_1.txt").write_text("Visible/1/a.bmp 0\nVisible/1/b.bmp zero\n")
    with pytest.raises(InputError, match="line 2 of .*test_visible_1.txt"):
        regdb_records(str(tmp_path), split="test", modality="visible")
    (bad / "test_thermal_1.txt").write_text("\n")
    with pytest.raises(InputError, match="test_thermal_1.txt lists no images"):
        regdb_records(str(tmp_path), split="test", modality="thermal")
    with pytest.raises(InputError, match="Unknown direction 'v2v'"):
        regdb_query_gallery(regdb_root, direction="v2v")
    with pytest.raises(InputError, match="trial must be >= 1"):
        regdb_records(regdb_root, trial=0)


# --- protocol runners ----------------------------------------------------------------------

def identity_embed(records, noise=0.0, seed=0):
    """Features that encode the identity (plus a modality offset and optional noise)."""
    rng = np.random.default_rng(seed)
    arr = records_to_arrays(records)
    X = np.zeros((len(records), 32), np.float32)
    X[np.arange(len(records)), arr["pids"] % 30] = 1.0
    X[:, 31] = arr["modalities"] * 0.5
    X += rng.normal(scale=noise, size=X.shape).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_sysu_evaluation_trials_and_exclusion(sysu_root):
    calls = []

    def embed(records):
        calls.append(len(records))
        return identity_embed(records)

    res = sysu_evaluation(embed, sysu_root, mode="all", trials=range(10))
    assert len(calls) == 2  # the query once, the pool of every trial's gallery once
    assert len(res["trials"]) == 10 and res["mean"]["n_trials"] == 10
    assert res["n_query"] == expected_count(TEST, (3, 6))
    # id 12 has visible images only in camera 2: its camera-3 queries have no valid match
    for t in res["trials"]:
        assert t["n_skipped"] == n_files(12, 3)
        assert t["mAP"] == pytest.approx(1.0) and t["cmc"][0] == 1.0
    assert res["mean"]["mAP"] == pytest.approx(np.mean([t["mAP"] for t in res["trials"]]))


def test_sysu_evaluation_precomputed_equals_callable(sysu_root):
    emb = lambda recs: identity_embed(recs, noise=0.3, seed=len(recs))  # noqa: E731
    recs = sysu_test_records(sysu_root)
    feats = emb(recs)
    lookup = {r.path: i for i, r in enumerate(recs)}
    a = sysu_evaluation((recs, feats), sysu_root, mode="indoor", trials=[0, 1, 2])
    b = sysu_evaluation(lambda rs: feats[[lookup[r.path] for r in rs]], sysu_root, mode="indoor", trials=[0, 1, 2])
    assert a["mean"]["mAP"] == pytest.approx(b["mean"]["mAP"])
    assert a["mean"]["mAP"] < 1.0  # the noise makes it a real ranking
    np.testing.assert_allclose(a["mean"]["cmc"], b["mean"]["cmc"])
    with pytest.raises(InputError, match="no row for image"):
        sysu_evaluation((recs[:3], feats[:3]), sysu_root, trials=[0])


def test_sysu_evaluation_with_rerank(sysu_root):
    res = sysu_evaluation(identity_embed, sysu_root, trials=[0], rerank={"k1": 4, "k2": 1})
    assert 0.0 < res["mean"]["mAP"] <= 1.0


def test_regdb_evaluation_per_trial_models(regdb_root):
    models = {1: identity_embed, 2: lambda recs: identity_embed(recs, noise=2.0, seed=1)}
    res = regdb_evaluation(models, regdb_root, trials=[1, 2], direction="t2v")
    first, second = res["trials"]
    assert first["trial"] == 1 and first["n_query"] == first["n_gallery"] == 9
    assert first["mAP"] == pytest.approx(1.0) and second["mAP"] < 1.0
    assert res["mean"]["mAP"] == pytest.approx((first["mAP"] + second["mAP"]) / 2)
    with pytest.raises(InputError, match="embed has no entry for RegDB trial 2"):
        regdb_evaluation({1: identity_embed}, regdb_root, trials=[1, 2])


def test_embed_must_return_one_row_per_record(regdb_root):
    with pytest.raises(InputError, match="one row per record"):
        regdb_evaluation(lambda recs: np.ones((2, 4), np.float32), regdb_root, trials=[1])


# --- readers never leave their root (#25) ---------------------------------------------------

SECRET = "root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def outside(tmp_path):
    """A folder outside every data set root, holding a file no reader may read or quote."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_text(SECRET)
    (folder / "test_id.txt").write_text("1\n")
    (folder / "0001.jpg").write_bytes(b"private")
    return folder


@pytest.mark.parametrize("reader", [sysu_test_records, sysu_train_records, sysu_query_gallery])
def test_sysu_list_file_linked_outside_is_refused_without_showing_it(tmp_path, outside, reader):
    root = small_sysu(tmp_path / "SYSU")
    for split in ("train", "test"):
        os.remove(root / "exp" / f"{split}_id.txt")
        os.symlink(outside / "passwd", root / "exp" / f"{split}_id.txt")
    with pytest.raises(InputError, match=r"list file .*_id.txt leads outside the data set root") as err:
        reader(str(root))
    assert "root:x" not in str(err.value) and "passwd" not in str(err.value)
    assert "\n" not in str(err.value)


def test_sysu_list_folder_linked_outside_is_refused(tmp_path, outside):
    root = small_sysu(tmp_path / "SYSU")
    import shutil

    shutil.rmtree(root / "exp")
    os.symlink(outside, root / "exp")
    with pytest.raises(InputError, match=r"SYSU-MM01: list folder .*exp leads outside the data set root"):
        sysu_ids(str(root), "test")


def test_sysu_camera_folder_linked_outside_is_not_read(tmp_path, outside):
    root = small_sysu(tmp_path / "SYSU")
    (outside / "0001").mkdir()
    (outside / "0001" / "0009.jpg").write_bytes(b"private")
    os.symlink(outside, root / "cam4")  # a camera folder leading out: cam4/0001/0009.jpg lies outside
    with pytest.warns(UserWarning, match="1 link"):
        recs = sysu_test_records(str(root))
    assert all("outside" not in os.path.realpath(r.path) for r in recs)
    assert all(r.cam != 4 for r in recs)


def test_sysu_id_errors_quote_at_most_a_short_token(tmp_path):
    root = small_sysu(tmp_path / "SYSU")
    (root / "exp" / "test_id.txt").write_text("1," + "A" * 500 + "\n")
    with pytest.raises(InputError, match=r"holds 'AAAA.*\.\.\.'; expected") as err:
        sysu_ids(str(root), "test")
    assert len(str(err.value)) < 200


@pytest.mark.parametrize("link", ["file", "folder"])
def test_regdb_list_linked_outside_is_refused_without_showing_it(tmp_path, outside, link):
    root = tmp_path / "RegDB"
    (root / "Visible").mkdir(parents=True)
    (root / "Visible" / "a.bmp").write_bytes(b"")
    if link == "file":
        (root / "idx").mkdir()
        os.symlink(outside / "passwd", root / "idx" / "train_visible_1.txt")
    else:
        (outside / "train_visible_1.txt").write_text(SECRET)
        os.symlink(outside, root / "idx")
    with pytest.raises(InputError, match=rf"RegDB: list {link} .* leads outside the data set root") as err:
        regdb_records(str(root), split="train", modality="visible")
    assert "root:x" not in str(err.value)


def test_regdb_line_errors_quote_at_most_a_short_token(tmp_path):
    root = tmp_path / "RegDB"
    (root / "idx").mkdir(parents=True)
    (root / "idx" / "train_visible_1.txt").write_text("x" * 300 + "\n")
    with pytest.raises(InputError, match=r"line 1 of .* is 'xxx.*\.\.\.'; expected") as err:
        regdb_records(str(root), split="train", modality="visible")
    assert len(str(err.value)) < 300


@pytest.fixture
def folder_set(tmp_path, outside):
    root = tmp_path / "mine"
    for name in ("visible", "infrared"):
        (root / name / "a").mkdir(parents=True)
        (root / name / "a" / "1.jpg").write_bytes(b"")
    return root


def test_folder_set_skips_images_and_folders_linked_outside(folder_set, outside):
    from xmrank.torch.data import folder_records

    os.symlink(outside / "0001.jpg", folder_set / "visible" / "a" / "evil.jpg")
    os.symlink(outside, folder_set / "infrared" / "b")
    os.symlink(folder_set / "visible", folder_set / "visible" / "a" / "loop")  # a link inside (a cycle): fine
    with pytest.warns(UserWarning, match=r"folder data set: skipped 2 link\(s\) pointing outside the root"):
        recs = folder_records(str(folder_set))
    assert sorted(os.path.relpath(r.path, folder_set) for r in recs) == ["infrared/a/1.jpg", "visible/a/1.jpg"]


def test_folder_set_modality_folder_linked_outside_is_refused(folder_set, outside):
    import shutil

    from xmrank.torch.data import folder_records

    shutil.rmtree(folder_set / "infrared")
    os.symlink(outside, folder_set / "infrared")
    with pytest.raises(InputError, match=r"folder data set: sub-folder .*infrared leads outside the data set root"):
        folder_records(str(folder_set))
