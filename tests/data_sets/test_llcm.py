"""LLCM reader and protocol on a fake folder tree: counts, the authors' draws, both directions, errors."""

import os
import random

import numpy as np
import pytest

from xmrank import InputError
from xmrank.datasets import (
    LLCM_INFRARED_CAMERAS,
    LLCM_VISIBLE_CAMERAS,
    llcm_ids,
    llcm_query_gallery,
    llcm_test_records,
    llcm_train_records,
    records_to_arrays,
)
from xmrank.retrieval import evaluate, llcm_evaluation

TEST = [7, 3, 12]  # not in ascending order in the file


def n_files(pid, cam, mod):
    """Images of (pid, cam, modality) in the fake tree; 0 = no folder."""
    if mod == "nir" and cam in (5, 9) and pid == 12:
        return 0
    return (pid * 3 + cam * 5 + (mod == "nir")) % 4


@pytest.fixture(scope="module")
def llcm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("LLCM")
    for mod in ("vis", "nir"):
        for pid in TEST + [99]:  # id 99 is in no list: never read
            for cam in range(1, 10):  # NIR cam3 exists on disk but is not an LLCM test camera
                k = n_files(pid, cam, mod) if pid != 99 else 2
                if k == 0:
                    continue
                folder = root / f"test_{mod}" / f"cam{cam}" / f"{pid:04d}"
                folder.mkdir(parents=True)
                for i in range(k):
                    (folder / f"{pid:04d}_c{cam:02d}_{mod}_{i:03d}.jpg").write_bytes(b"")
    (root / "test_vis" / "cam1" / "0007" / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "test_vis" / "cam1" / "0007" / ".hidden.jpg").write_bytes(b"")
    idx = root / "idx"
    idx.mkdir()
    (idx / "test_id.txt").write_text(",".join(map(str, TEST)) + "\n")
    (idx / "train_vis.txt").write_text("train_vis/cam2/0001/a.jpg 0\ntrain_vis/cam4/0002/b.jpg 1\n")
    (idx / "train_nir.txt").write_text("train_nir/cam1/0001/c.jpg 0\n\nnocam/0002/d.jpg 1\n")
    return str(root)


def count(mod, cams):
    return sum(n_files(p, c, mod) for p in TEST for c in cams)


def published_draw(root, mod, trial):
    """The authors' gallery sampler (data_manager.process_gallery_llcm), restated."""
    cams = [f"test_{mod}/cam{c}" for c in (LLCM_VISIBLE_CAMERAS if mod == "vis" else LLCM_INFRARED_CAMERAS)]
    random.seed(trial)
    out = []
    for pid in sorted("%04d" % x for x in TEST):
        for cam in cams:
            d = os.path.join(root, cam, pid)
            if os.path.isdir(d):
                files = sorted(os.path.join(d, f) for f in os.listdir(d) if not f.startswith("."))
                out.append(random.choice(files))
    return out


def test_ids_and_counts(llcm_root):
    assert llcm_ids(llcm_root) == TEST
    recs = llcm_test_records(llcm_root)
    n_vis, n_nir = count("vis", LLCM_VISIBLE_CAMERAS), count("nir", LLCM_INFRARED_CAMERAS)
    assert len(recs) == n_vis + n_nir
    arr = records_to_arrays(recs)
    np.testing.assert_array_equal(arr["modalities"], np.repeat([0, 1], [n_vis, n_nir]))
    assert 3 not in set(arr["cams"][n_vis:])  # the NIR cam3 folder is not read
    assert set(arr["pids"]) == set(TEST)
    keys = [(r.pid, r.cam, os.path.basename(r.path)) for r in recs[:n_vis]]
    assert keys == sorted(keys)  # identities ascending, then camera, then file name


@pytest.mark.parametrize("trial", range(10))
def test_ir2vis_is_the_authors_draw(llcm_root, trial):
    query, gallery = llcm_query_gallery(llcm_root, direction="ir2vis", trial=trial)
    assert len(query) == count("nir", LLCM_INFRARED_CAMERAS) and all(r.modality == 1 for r in query)
    assert [r.path for r in gallery] == published_draw(llcm_root, "vis", trial)
    pairs = [(r.pid, r.cam) for r in gallery]
    assert len(pairs) == len(set(pairs)) == sum(n_files(p, c, "vis") > 0 for p in TEST for c in LLCM_VISIBLE_CAMERAS)


@pytest.mark.parametrize("trial", [0, 3])
def test_vis2ir_rows_are_the_drawn_infrared_images(llcm_root, trial):
    rows, cols = llcm_query_gallery(llcm_root, direction="vis2ir", trial=trial)
    assert [r.path for r in rows] == published_draw(llcm_root, "nir", trial)
    assert len(cols) == count("vis", LLCM_VISIBLE_CAMERAS) and all(r.modality == 0 for r in cols)


def test_draw_leaves_global_random_alone(llcm_root):
    random.seed(5)
    expected = random.random()
    random.seed(5)
    llcm_query_gallery(llcm_root, trial=2)
    assert random.random() == expected


def identity_embed(records, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    arr = records_to_arrays(records)
    X = np.zeros((len(records), 16), np.float32)
    X[np.arange(len(records)), arr["pids"] % 15] = 1.0
    X[:, 15] = 0.5 * arr["modalities"]
    X += rng.normal(scale=noise, size=X.shape).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("direction", ["ir2vis", "vis2ir"])
def test_evaluation_scores_the_authors_orientation(llcm_root, direction):
    recs = llcm_test_records(llcm_root)
    feats = identity_embed(recs, noise=0.4, seed=1)
    res = llcm_evaluation((recs, feats), llcm_root, direction=direction, trials=range(3), max_rank=5)
    assert len(res["trials"]) == 3 and res["direction"] == direction
    row = {r.path: i for i, r in enumerate(recs)}
    for t, got in zip(range(3), res["trials"]):
        rows, cols = llcm_query_gallery(llcm_root, direction=direction, trial=t)
        a, b = records_to_arrays(rows), records_to_arrays(cols)
        D = -(feats[[row[r.path] for r in rows]] @ feats[[row[r.path] for r in cols]].T)
        ref = evaluate(D, a["pids"], b["pids"], a["cams"], b["cams"], protocol="llcm", max_rank=5)
        assert got["mAP"] == pytest.approx(ref["mAP"]) and np.allclose(got["cmc"], ref["cmc"])
    assert res["mean"]["mAP"] == pytest.approx(np.mean([t["mAP"] for t in res["trials"]]))


def test_evaluation_calls_embed_twice_and_reranks(llcm_root):
    calls = []

    def embed(records):
        calls.append(len(records))
        return identity_embed(records)

    res = llcm_evaluation(embed, llcm_root, trials=range(4), max_rank=3)
    assert len(calls) == 2 and calls[0] == count("nir", LLCM_INFRARED_CAMERAS)
    assert res["mean"]["mAP"] == pytest.approx(1.0)
    rr = llcm_evaluation(embed, llcm_root, trials=[0], max_rank=3, rerank={"k1": 2, "k2": 1})
    assert 0 < rr["mean"]["mAP"] <= 1


def test_train_lists(llcm_root):
    recs = llcm_train_records(llcm_root)
    assert [(r.pid, r.cam, r.modality) for r in recs] == [(0, 2, 0), (1, 4, 0), (0, 1, 1), (1, 0, 1)]
    assert recs[0].path == os.path.join(llcm_root, "train_vis/cam2/0001/a.jpg")


def test_errors(tmp_path, llcm_root):
    with pytest.raises(InputError, match="LLCM root .* is not a directory"):
        llcm_query_gallery(str(tmp_path / "nope"))
    (tmp_path / "idx").mkdir()
    with pytest.raises(InputError, match="test_id.txt not found"):
        llcm_test_records(str(tmp_path))
    (tmp_path / "idx" / "test_id.txt").write_text("1,-2\n")
    with pytest.raises(InputError, match="holds '-2'"):
        llcm_ids(str(tmp_path))
    (tmp_path / "idx" / "test_id.txt").write_text("1,2\n")
    with pytest.raises(InputError, match="found no near-infrared test images"):
        llcm_query_gallery(str(tmp_path))
    with pytest.raises(InputError, match="Unknown direction 'v2t'"):
        llcm_query_gallery(llcm_root, direction="v2t")
    with pytest.raises(InputError, match="trial must be >= 0"):
        llcm_query_gallery(llcm_root, trial=-1)
    (tmp_path / "idx" / "train_vis.txt").write_text("../outside.jpg 3\n")
    with pytest.raises(InputError, match="outside the root"):
        llcm_train_records(str(tmp_path))
    (tmp_path / "idx" / "train_vis.txt").write_text("a.jpg three\n")
    with pytest.raises(InputError, match="line 1 of .*train_vis.txt"):
        llcm_train_records(str(tmp_path))


# --- the reader never leaves its root (#25) -------------------------------------------------

@pytest.mark.parametrize("name", ["test_id.txt", "train_vis.txt"])
def test_list_file_linked_outside_is_refused_without_showing_it(tmp_path, name):
    root, outside = tmp_path / "LLCM", tmp_path / "outside"
    (root / "idx").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    os.symlink(outside / "passwd", root / "idx" / name)
    with pytest.raises(InputError, match=r"LLCM: list file .* leads outside the data set root") as err:
        llcm_test_records(str(root)) if name == "test_id.txt" else llcm_train_records(str(root))
    assert "root:x" not in str(err.value)


def test_camera_folder_linked_outside_is_not_read(tmp_path, llcm_root):
    import shutil

    root = tmp_path / "LLCM"
    shutil.copytree(llcm_root, root)
    outside = tmp_path / "outside"
    shutil.move(root / "test_vis" / "cam1", outside)
    os.symlink(outside, root / "test_vis" / "cam1")
    with pytest.warns(UserWarning, match=r"LLCM: skipped .*link\(s\) pointing outside the root"):
        recs = llcm_test_records(str(root))
    assert recs and all("outside" not in os.path.realpath(r.path) for r in recs)
    assert not any(r.cam == 1 and r.modality == 0 for r in recs)
