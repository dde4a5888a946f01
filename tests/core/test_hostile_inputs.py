"""Hostile input, faults and untrusted files: every public entry point answers with one InputError line.

- data set readers stay inside their root (RegDB list paths, SYSU-MM01 links and non-image files);
- ``eps >= 1`` means what DBSCAN means on the dense matrix;
- features whose norms overflow float32 products are refused everywhere features come in;
- one label checker: missing values, fractional / >64-bit floats, complex, datetime are refused;
- messages print plain numbers (never ``np.int64(0)``) and name the method asked for;
- warnings meant for users go through ``warnings.warn`` and point at the caller's line;
- the set expansion's memory follows its output (large k1 equals the previous algorithm).
"""

import os
import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN

import xmrank
import xmrank.compat as compat
from conftest import unit_rows
from reference_jaccard import reference_jaccard
from xmrank import InputError
from xmrank._validation import check_label_values, check_labels
from xmrank.clustering import auto_eps, kth_neighbor_distance
from xmrank.datasets import regdb_records, sysu_ids, sysu_query_gallery, sysu_test_records
from xmrank.jaccard import kernels

X, M = unit_rows(40, 8, seed=0)
M = np.repeat([0, 1], 20)
HERE = os.path.abspath(__file__)


def one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    assert "np." not in msg, msg  # numbers printed plainly, never np.int64(0) / np.float64(2.5) / np.str_('x')
    return msg


# --- 1. data set readers stay inside their root ---------------------------------------------

@pytest.fixture
def regdb_tree(tmp_path):
    root = tmp_path / "RegDB"
    (root / "idx").mkdir(parents=True)
    (root / "Visible" / "1").mkdir(parents=True)
    (root / "Visible" / "1" / "a.bmp").write_bytes(b"")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bmp").write_bytes(b"")
    os.symlink(outside / "secret.bmp", root / "Visible" / "1" / "evil.bmp")
    os.symlink(root / "Visible" / "1" / "a.bmp", root / "Visible" / "1" / "alias.bmp")  # a link inside: fine
    return root, outside


def write_list(root, line, name="train_visible_1.txt"):
    (root / "idx" / name).write_text(f"Visible/1/a.bmp 0\n{line}\n")


@pytest.mark.parametrize(
    "line,match",
    [
        ("/etc/passwd 0", r"line 2 of .* names '/etc/passwd', outside the root"),
        ("../outside/secret.bmp 0", r"names '../outside/secret.bmp', outside the root"),
        ("Visible/../../outside/secret.bmp 0", r"outside the root"),
        ("Visible/1/evil.bmp 0", r"names 'Visible/1/evil.bmp', outside the root"),  # a link leading out
        ("\\\\server\\share\\x.bmp 0", r"outside the root"),
        ("Visible/1/a.bmp 18446744073709551616", r"line 2 of .* has label 18446744073709551616, beyond 64 bits"),
        ("Visible/1/a.bmp 9223372036854775808", r"beyond 64 bits"),
        ("Visible/1/a.bmp 1_000", r"line 2 of .* expected 'relative/path label' with an integer label"),
        ("Visible/1/a.bmp 1.0", r"with an integer label"),
    ],
)
def test_regdb_list_lines_stay_inside_the_root(regdb_tree, line, match):
    root, _ = regdb_tree
    write_list(root, line)
    with pytest.raises(InputError, match=match) as e:
        regdb_records(str(root), split="train", modality="visible")
    one_line(e)


def test_regdb_links_inside_the_root_and_64_bit_labels_are_fine(regdb_tree):
    root, _ = regdb_tree
    write_list(root, "Visible/1/alias.bmp 9223372036854775807")
    recs = regdb_records(str(root), split="train", modality="visible")
    assert [r.pid for r in recs] == [0, 2**63 - 1]
    assert recs[1].path == os.path.join(str(root), "Visible/1/alias.bmp")


@pytest.fixture
def sysu_tree(tmp_path):
    root = tmp_path / "SYSU"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.jpg").write_bytes(b"")
    for cam in (1, 3):
        folder = root / f"cam{cam}" / "0001"
        folder.mkdir(parents=True)
        (folder / "0001.jpg").write_bytes(b"")
        (folder / "0002.PNG").write_bytes(b"")  # any case
    (root / "cam3" / "0001" / "Thumbs.db").write_bytes(b"")
    (root / "cam3" / "0001" / "notes.txt").write_bytes(b"")
    os.symlink(outside / "private.jpg", root / "cam3" / "0001" / "0003.jpg")
    os.symlink(root / "cam1" / "0001" / "0001.jpg", root / "cam3" / "0001" / "0004.jpg")  # inside: kept
    os.symlink(outside, root / "cam1" / "0002")  # an identity folder leading out
    (root / "exp").mkdir()
    for split in ("train", "val", "test"):
        (root / "exp" / f"{split}_id.txt").write_text("1,2\n")
    return root


def test_sysu_lists_only_images_inside_the_root_and_says_what_it_skipped(sysu_tree):
    with pytest.warns(UserWarning) as rec:
        query, gallery = sysu_query_gallery(str(sysu_tree))
    assert sorted(os.path.basename(r.path) for r in query) == ["0001.jpg", "0002.PNG", "0004.jpg"]
    assert all("elsewhere" not in os.path.realpath(r.path) for r in query + gallery)
    assert [r.pid for r in gallery] == [1]
    msgs = [str(w.message) for w in rec if "SYSU-MM01" in str(w.message)]
    assert len(msgs) == 1 and "\n" not in msgs[0]
    assert "skipped 2 non-image file(s)" in msgs[0] and "2 link(s) pointing outside the root" in msgs[0]
    assert all(w.filename == HERE for w in rec)  # attributed to the caller, not to xmrank
    with pytest.warns(UserWarning, match="SYSU-MM01: skipped"):
        recs = sysu_test_records(str(sysu_tree))
    assert all(os.path.realpath(r.path).startswith(os.path.realpath(sysu_tree)) for r in recs)


@pytest.mark.parametrize(
    "text,match",
    [
        ("1,--1\n", r"holds '--1'; expected comma-separated integer ids"),
        ("1,-3\n", r"holds a negative id \(-3\)"),
        ("1,18446744073709551616\n", r"holds id 18446744073709551616, beyond 64 bits"),
        ("1,1e3\n", r"holds '1e3'"),
        ("1,٣\n", r"holds '٣'"),  # not an ASCII digit
        ("1,+2\n", r"holds '\+2'"),
    ],
)
def test_sysu_ids_rejects_malformed_ids(tmp_path, text, match):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "test_id.txt").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=match) as e:
        sysu_ids(str(tmp_path), "test")
    one_line(e)


@pytest.mark.parametrize("trial", [-1, 2**64, 1.5, "0"])
def test_sysu_trial_is_a_64_bit_seed(sysu_tree, trial):
    with pytest.raises(InputError) as e:
        sysu_query_gallery(str(sysu_tree), trial=trial)
    one_line(e)


def test_dataset_roots_that_are_not_paths():
    for root in (None, 5, "a\x00b"):
        with pytest.raises(InputError) as e:
            sysu_ids(root, "test")
        one_line(e)


# --- 2. eps >= 1 is DBSCAN's eps -------------------------------------------------------------

@pytest.fixture(scope="module")
def small_set():
    X, mods = unit_rows(120, 16, seed=3, gap=0.8, n_ids=12)
    D = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3, dense=True)
    return X, mods, D


@pytest.mark.parametrize("eps", [0.3, 0.6, 0.95, 0.999, 1.0, 1.5, 2**70])
@pytest.mark.parametrize("min_samples", [4, 119, 121])
def test_eps_at_and_above_one_matches_dbscan_on_the_dense_matrix(small_set, eps, min_samples):
    X, mods, D = small_set
    ref = DBSCAN(eps=float(eps), min_samples=min_samples, metric="precomputed").fit_predict(D)
    got = xmrank.cluster(X, modalities=mods, k1=10, k2=3, eps=eps, min_samples=min_samples)
    assert np.array_equal(got, ref)
    sparse = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3)
    assert np.array_equal(xmrank.cluster_distance(sparse, eps=eps, min_samples=min_samples), ref)
    est = xmrank.XMCluster(k1=10, k2=3, eps=eps, min_samples=min_samples).fit(X, modalities=mods)
    assert np.array_equal(est.labels_, ref)
    if eps >= 1 and min_samples <= 120:
        assert set(ref.tolist()) == {0}  # every pair is a neighbour: one cluster


def test_eps_at_one_on_a_sparse_matrix_with_distances_above_one_is_refused():
    D = sp.csr_matrix(np.array([[0, 3.0], [3.0, 0]]))
    with pytest.raises(InputError, match=r"eps=1 >= 1 reads every unstored pair .* the largest is 3: pass a dense"):
        xmrank.cluster_distance(D, eps=1.0)


def test_diagnose_accepts_eps_one(small_set):
    X, mods, _ = small_set
    rep = xmrank.diagnose(X, mods, labels=mods, k1=10, k2=3, eps=1.0, methods=["vanilla"])
    assert rep["clustering"]["vanilla"]["n_clusters"] == 1


# --- 3. features whose norms overflow float32 products ---------------------------------------

def _regdb_pair(tmp_path):
    root = tmp_path / "R"
    (root / "idx").mkdir(parents=True)
    for mod, folder in (("visible", "Visible"), ("thermal", "Thermal")):
        lines = [f"{folder}/{p}/{k}.bmp {p}" for p in range(5) for k in range(4)]
        (root / "idx" / f"test_{mod}_1.txt").write_text("\n".join(lines))
    q = regdb_records(str(root), split="test", modality="visible")
    g = regdb_records(str(root), split="test", modality="thermal")
    return str(root), q + g


HUGE = X * np.float32(1e20)
FEATURE_CALLS = {
    "jaccard_distance": lambda F: xmrank.jaccard_distance(F, k1=10, k2=3),
    "cluster": lambda F: xmrank.cluster(F, k1=10, k2=3),
    "cluster_per_modality": lambda F: xmrank.cluster_per_modality(F, M, k1=5, k2=2),
    "subset_cluster": lambda F: xmrank.subset_cluster(F, M, k1=3, k2=2),
    "XMCluster": lambda F: xmrank.XMCluster(k1=10, k2=3).fit(F),
    "diagnose": lambda F: xmrank.diagnose(F, M, k1=6, k2=2),
    "neighbor_makeup": lambda F: xmrank.neighbor_makeup(F, M, k1=6),
    "rerank(query)": lambda F: xmrank.rerank(F, X, k1=10, k2=3),
    "rerank(gallery)": lambda F: xmrank.rerank(X, F, k1=10, k2=3),
    "rerank(lambda 1)": lambda F: xmrank.rerank(X, F, lambda_value=1.0),
    "original_distance": lambda F: xmrank.original_distance(F, X),
    "compat": lambda F: compat.compute_jaccard_distance(F, k1=10, k2=3),
    "compat_xmodal": lambda F: compat.compute_jaccard_distance_xmodal(F, k1=10, k2=3, search_option=4, rgbNum=20),
}


@pytest.mark.parametrize("call", list(FEATURE_CALLS), ids=list(FEATURE_CALLS))
@pytest.mark.parametrize(
    "features,match",
    [
        (HUGE, r"row \d+ has squared norm 1e\+40: similarity products overflow float32"),
        (X.astype(np.float64) * 1e300, r"\[0, 0\] = .* does not fit in float32|too large for dtype\('float32'\)"),
        (np.full((40, 8), 5e18, np.float32), r"squared norm 2e\+38"),
    ],
)
def test_overflowing_norms_are_refused_everywhere(call, features, match):
    with pytest.raises(InputError, match=match) as e:
        FEATURE_CALLS[call](features)
    one_line(e)


def test_norms_just_below_the_limit_give_finite_distances():
    F = X * np.float32(1e18)  # squared norm 1e36 < 8.5e37
    D = xmrank.jaccard_distance(F, k1=10, k2=3)
    assert np.isfinite(D.data).all()
    assert np.isfinite(xmrank.rerank(F, F, k1=10, k2=3)).all()


def test_evaluation_helpers_refuse_overflowing_features(tmp_path):
    root, recs = _regdb_pair(tmp_path)
    feats = np.random.default_rng(0).normal(size=(len(recs), 8)).astype(np.float32) * np.float32(1e20)
    with pytest.raises(InputError, match=r"features row \d+ has squared norm"):
        xmrank.regdb_evaluation((recs, feats), root, trials=[1])
    with pytest.raises(InputError, match=r"embed\(records\) row \d+ has squared norm"):
        xmrank.regdb_evaluation(lambda r: feats[: len(r)], root, trials=[1])


# --- 4. one label checker ---------------------------------------------------------------------

BAD_LABELS = [
    (np.array([0] * 39 + [None], dtype=object), r"contains None \(a missing label\) at position 39"),
    (["a"] * 39 + [None], r"contains None \(a missing label\) at position 39"),
    (np.r_[np.zeros(39), np.nan], r"contains NaN \(a missing label\) at position 39"),
    (np.array([0.0] * 39 + [float("nan")], dtype=object), r"contains NaN"),
    (np.r_[np.full(20, 1e19), np.full(20, 2e19)], r"\[0\] = 1e\+19 does not fit in a 64-bit integer label"),
    (np.array([2**70] * 20 + [1] * 20, dtype=object), r"\[0\] = 1180591620717411303424 does not fit in a 64-bit"),
    (np.r_[np.zeros(39), 0.5], r"\[39\] = 0.5 is not an integer"),
    (np.r_[np.zeros(39), np.inf], r"contains an infinite value at position 39"),
    (M.astype(np.complex128), r"must hold integer or string labels; got complex values"),
    (np.arange(40).astype("datetime64[D]"), r"got datetime values"),
    (np.arange(40).astype("timedelta64[s]"), r"got timedelta values"),
    ([0] * 20 + ["a"] * 20, r"mixes numbers and strings"),
    (np.array([object()] * 40, dtype=object), r"\[0\] is a object; labels must be integers or strings"),
    (M[:-1], r"must have one label per row of features \(40\); got 39"),
    (M.reshape(4, 10), r"must be a 1-D array .* got shape 4x10"),
]


def label_calls(L):
    return {
        "jaccard_distance(modalities)": lambda: xmrank.jaccard_distance(X, modalities=L, k1=10, k2=3),
        "jaccard_distance(cameras)": lambda: xmrank.jaccard_distance(X, cameras=L, method="camera"),
        "cluster": lambda: xmrank.cluster(X, modalities=L, k1=10, k2=3),
        "cluster_per_modality": lambda: xmrank.cluster_per_modality(X, L, k1=5, k2=2),
        "subset_cluster": lambda: xmrank.subset_cluster(X, L, k1=3, k2=2),
        "XMCluster": lambda: xmrank.XMCluster(k1=10, k2=3).fit(X, modalities=L),
        "diagnose(modalities)": lambda: xmrank.diagnose(X, L, k1=6, k2=2),
        "diagnose(labels)": lambda: xmrank.diagnose(X, M, labels=L, k1=6, k2=2),
        "neighbor_makeup": lambda: xmrank.neighbor_makeup(X, L, k1=6),
        "cluster_scores(true)": lambda: xmrank.cluster_scores(L, M),
        "cluster_scores(modalities)": lambda: xmrank.cluster_scores(M, M, modalities=L),
        "cluster_summary(modalities)": lambda: xmrank.cluster_summary(M, L),
        "rerank": lambda: xmrank.rerank(X, X, query_modalities=L, gallery_modalities=M, k1=10, k2=3),
        "evaluate": lambda: xmrank.evaluate(np.zeros((40, 40)), L, M, protocol="regdb"),
    }


@pytest.mark.parametrize("labels,match", BAD_LABELS, ids=[m[:30] for _, m in BAD_LABELS])
def test_bad_labels_are_refused_by_every_entry_point(labels, match):
    for name, call in label_calls(labels).items():
        with pytest.raises(InputError) as e:
            call()
        msg = one_line(e)
        # shapes and mixes are worded per entry point (query/gallery sides, distmat rows); the rest alike
        if not name.startswith(("rerank", "evaluate", "cluster_scores")) or "one label per" not in match and \
                "1-D" not in match and "mixes" not in match:
            assert re.search(match, msg), (name, msg)


def test_good_labels_are_encoded_alike():
    ints = check_labels([3, 1, 3], 3, "m")[0]
    for same in ([3.0, 1.0, 3.0], np.array([3, 1, 3], dtype=np.uint64), np.array([3, 1, 3], dtype=object),
                 ["b", "a", "b"], [b"b", b"a", b"b"], np.array([[3], [1], [3]])):
        assert np.array_equal(check_labels(same, 3, "m")[0], ints)
    assert check_labels([True, False], 2, "m")[0].tolist() == [1, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=12))
def test_float_labels_are_exact_integers_or_refused(values):
    arr = np.array(values, dtype=np.float64)
    try:
        out = check_label_values(arr, "m", len(values))
    except InputError as e:
        assert "\n" not in str(e)
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) >= 2.0**63)
        assert bad.any()
        return
    assert out.dtype == np.int64 and np.array_equal(out.astype(np.float64), arr)


# --- 5. plain numbers, the method asked for ---------------------------------------------------

def test_messages_print_plain_numbers():
    with pytest.raises(InputError) as e:
        xmrank.cluster_per_modality(X, np.r_[np.zeros(35, np.int64), np.ones(5, np.int64)], k1=5, k2=2)
    assert "modality 1 (5)" in one_line(e)
    with pytest.raises(InputError, match=r"k1 must be an integer; got 2.5\.") as e:
        xmrank.jaccard_distance(X, k1=np.float64(2.5))
    one_line(e)
    with pytest.raises(InputError, match=r"Unknown method 'nope'") as e:
        xmrank.jaccard_distance(X, method=np.str_("nope"))
    one_line(e)
    with pytest.raises(InputError) as e:
        xmrank.XMCluster(k1=np.float64(2.5)).fit(X)
    assert "Got 2.5 instead" in one_line(e)


@pytest.mark.parametrize("method", ["modality", "modality-qe", "modality-camera"])
def test_missing_modalities_name_the_method_asked_for(method):
    with pytest.raises(InputError, match=rf"method='{method}' needs modalities") as e:
        xmrank.jaccard_distance(X, method=method, cameras=M, k1=10, k2=3)
    one_line(e)


# --- 6. the API's other arguments -------------------------------------------------------------

API_ERRORS = [
    (lambda: xmrank.subset_cluster(X, M, k1=3, k2=2, seed=-1), r"seed must be >= 0; got -1"),
    (lambda: xmrank.subset_cluster(X, M, k1=3, k2=2, seed=1.5), r"seed must be None, a non-negative integer or a numpy Generator; got 1.5"),
    (lambda: xmrank.subset_cluster(X, M, k1=3, k2=2, seed="abc"), r"got 'abc'"),
    (lambda: xmrank.subset_cluster(X, M, k1=3, k2=2, seed=2**64), r"seed must be <= 18446744073709551615"),
    (lambda: xmrank.subset_split(10, seed=2**70), r"seed must be <= 18446744073709551615"),
    (lambda: xmrank.subset_cluster(X, M, k1=3, k2=2, subset_modality="abc"), r"subset_modality='abc' is not among the modalities \(0, 1\)"),
    (lambda: xmrank.subset_cluster(X, M, k1=3, k2=2, subset_modality=7), r"subset_modality=7 is not among"),
    (lambda: xmrank.subset_cluster(X, M, k1=3, k2=2, subset_modality=[0]), r"subset_modality must be one modality label"),
    (lambda: xmrank.cluster_summary(M, M[:-1]), r"modalities must have one label per row of features \(40\); got 39"),
    (lambda: xmrank.cluster_summary(M.reshape(4, 10)), r"labels must be a 1-D array"),
    (lambda: xmrank.cluster_summary(["a", "b"]), r"labels must hold integer cluster labels \(-1 for noise\); got strings"),
    (lambda: xmrank.cluster_summary([-2, 0]), r"labels must be >= -1"),
    (lambda: xmrank.cluster_distance(np.zeros((0, 0))), r"distance must have at least one row; got shape 0x0"),
    (lambda: xmrank.cluster_distance(sp.csr_matrix((0, 0))), r"at least one row"),
    (lambda: xmrank.cluster_distance(None), r"distance is required"),
    (lambda: xmrank.cluster_distance([[0], [1, 0]]), r"distance could not be converted to an array"),
    (lambda: auto_eps(sp.csr_matrix((5, 5))), r"distance stores no pair \(every distance is 1\)"),
    (lambda: kth_neighbor_distance(np.zeros((3, 3)), 4), r"k=4 exceeds the 3 columns of distance"),
    (lambda: compat.compute_jaccard_distance_xmodal(X, search_option=None), r"search_option must be an integer; got None"),
    (lambda: compat.compute_jaccard_distance_xmodal(X, search_option="5"), r"search_option must be an integer; got '5'"),
    (lambda: compat.compute_jaccard_distance(X, search_option=-1), r"search_option must be >= 0"),
    (lambda: compat.compute_jaccard_distance_xmodal(X, all_file_name="abc"), r"all_file_name must list one file name per row"),
    (lambda: compat.compute_jaccard_distance_xmodal(X, all_file_name=[None] * 40), r"all_file_name contains None"),
    (lambda: xmrank.mean_results([{}]), r"results\[0\] has no 'mAP', 'mINP', 'cmc'"),
    (lambda: xmrank.mean_results([{"mAP": 1.0, "mINP": 1.0}]), r"has no 'cmc'"),
    (lambda: xmrank.mean_results([None]), r"results\[0\] must be a dict"),
    (lambda: xmrank.mean_results(None), r"results must be a list"),
    (lambda: xmrank.mean_results({"mAP": 1, "mINP": 1, "cmc": [1]}), r"results must be a list"),
    (lambda: xmrank.mean_results([{"mAP": "x", "mINP": 1, "cmc": [1]}]), r"must hold numbers in mAP and mINP"),
    (lambda: xmrank.rerank(X, X, lambda_value=1.0, k1=0), r"k1 must be >= 1; got 0"),
    (lambda: xmrank.rerank(X, X, lambda_value=1.0, k1="abc"), r"k1 must be an integer; got 'abc'"),
    (lambda: xmrank.rerank(X, X, lambda_value=1.0, k1=80), r"k1=80 must be smaller than the number of rows \(80\)"),
    (lambda: xmrank.rerank(X, X, lambda_value=1.0, method="bmil"), r"Unknown method 'bmil'"),
    (lambda: xmrank.rerank(X, X, lambda_value=1.0, method="camera"), r"method='camera' needs cameras"),
    (lambda: xmrank.rerank(X, X, lambda_value=1.0, knn="annoy"), r"Unknown knn backend 'annoy'"),
    (lambda: xmrank.diagnose(X, M, k1=6, k2=2, seed=2**64), r"seed must be <= 18446744073709551615"),
    (lambda: xmrank.diagnose(X, M, k1=6, k2=2, seed=-1), r"seed must be >= 0"),
    (lambda: xmrank.diagnose(X, M, k1=6, k2=2, methods=5), r"methods must be a method name or a list of them; got 5"),
    (lambda: xmrank.diagnose(X, M, k1=6, k2=2, bins=2**62), r"bins must be <= 1000000"),
    (lambda: xmrank.jaccard_distance(X, k1=2**64), r"k1 must fit in a 64-bit integer"),
    (lambda: xmrank.jaccard_distance(X, k1=10, k2=3, dense="yes"), r"dense must be True or False; got 'yes'"),
    (lambda: xmrank.jaccard_distance(X, k1=10, k2=3, max_distance=10**400), r"max_distance must be a finite number"),
    (lambda: xmrank.cluster(X, k1=10, k2=3, algorithm="optics"), r"Unknown algorithm 'optics'"),
    (lambda: xmrank.cluster(X, k1=10, k2=3, eps="big"), r"eps must be a positive number or 'auto'; got 'big'"),
]


@pytest.mark.parametrize("call,match", API_ERRORS, ids=[m[:40] for _, m in API_ERRORS])
def test_api_errors_are_one_line_input_errors(call, match):
    with pytest.raises(InputError, match=match) as e:
        call()
    one_line(e)


def test_ann_seed_fits_faiss():
    pytest.importorskip("faiss")
    from xmrank.knn import ann

    for seed in (-1, 2**31, 2**70, 1.5):
        with pytest.raises(InputError, match="seed must be"):
            ann.search(X, X, 3, seed=seed)


def test_torch_bfloat16_and_float16_features_are_widened():
    torch = pytest.importorskip("torch")
    for dtype in (torch.bfloat16, torch.float16):
        t = torch.tensor(X).to(dtype)
        D = xmrank.jaccard_distance(t, k1=10, k2=3, dense=True)
        ref = xmrank.jaccard_distance(t.float().numpy(), k1=10, k2=3, dense=True)
        np.testing.assert_array_equal(D, ref)
    with pytest.raises(InputError, match="features must be real-valued|could not be converted"):
        xmrank.jaccard_distance(torch.tensor(X).to(torch.complex64), k1=10, k2=3)


def test_degenerate_distances_cluster_as_dbscan_reads_them():
    empty = sp.csr_matrix((5, 5))
    assert xmrank.cluster_distance(empty).tolist() == [-1] * 5  # nothing stored: no row has a neighbour
    assert xmrank.cluster_distance(empty, eps=1.0, min_samples=5).tolist() == [0] * 5  # unstored = 1 <= eps
    assert xmrank.cluster_distance(np.zeros((1, 1)), min_samples=1).tolist() == [0]
    assert np.array_equal(kth_neighbor_distance(empty, 2), np.ones(5))


# --- 7. warnings reach users ------------------------------------------------------------------

def test_ann_recall_below_target_is_a_warning_at_the_callers_line():
    pytest.importorskip("faiss")
    from xmrank.knn import ann

    rng = np.random.default_rng(0)
    D = rng.normal(size=(3000, 16)).astype(np.float32)
    with pytest.warns(ann.RecallWarning, match=r"recall@10 = 0\.\d+, below its target 1\.00") as rec:
        ann.search(D[:200], D, 10, min_rows=0, nlist=64, nprobe=1, target_recall=1.0)
    assert len(rec) == 1 and rec[0].filename == HERE


def test_auto_eps_fallback_is_a_warning():
    D = sp.csr_matrix(np.eye(6))
    with pytest.warns(UserWarning, match=r"auto_eps: only 0 row\(s\) have 4 neighbours closer than distance 1") as rec:
        assert auto_eps(D) == 0.5
    assert rec[0].filename == HERE


# --- 8. set expansion: memory follows the output, results unchanged at large k1 ---------------

def _previous_reciprocal_mask(rank, k):
    """The previous kernel's rule, vectorised: i among the first k+1 columns of rank[rank[i, c]]."""
    n, ncol = rank.shape
    kk = min(k + 1, ncol)
    mask = np.zeros((n, ncol), dtype=bool)
    rows = np.arange(n)
    for c in range(kk):
        mask[:, c] = (rank[rank[:, c], :kk] == rows[:, None]).any(axis=1)
    return mask


def _previous_expand(rank, r_mask, h_rank, h_mask):
    """The previous kernel's expansion, row by row: R_i plus every H_c sharing > 2/3 of its members with R_i."""
    n = rank.shape[0]
    indptr, out = [0], []
    for i in range(n):
        R = rank[i][r_mask[i]]
        H = h_rank[R]
        Hm = h_mask[R]
        inter = (np.isin(H, R) & Hm).sum(axis=1)
        grow = inter > (2.0 / 3.0) * Hm.sum(axis=1)
        E = np.unique(np.concatenate([R, H[grow][Hm[grow]]]))
        out.append(E)
        indptr.append(indptr[-1] + E.size)
    return np.array(indptr), np.concatenate(out)


@pytest.mark.slow
def test_large_k1_sets_equal_the_previous_algorithm():
    Xl, _ = unit_rows(1500, 16, seed=5, n_ids=60)
    k1 = 300
    sims, rank = xmrank.jaccard.neighbors.global_lists(Xl, k1)
    half = int(np.around(k1 / 2))
    r_mask, h_mask = kernels.reciprocal_mask(rank, k1), kernels.reciprocal_mask(rank, half)
    assert np.array_equal(r_mask, _previous_reciprocal_mask(rank, k1))
    assert np.array_equal(h_mask, _previous_reciprocal_mask(rank, half))
    indptr, indices = kernels.expand_lists(rank, r_mask, rank, h_mask)
    ref_ptr, ref_idx = _previous_expand(rank, r_mask, rank, h_mask)
    assert np.array_equal(indptr, ref_ptr) and np.array_equal(indices, ref_idx)
    assert np.diff(indptr).max() > k1  # the expansion did grow sets beyond k1
    # softmax weights: the reused search similarities and the dot products, as the previous kernel had them
    w = kernels.softmax_weights(Xl, indptr, indices, rank, sims)
    rows = np.repeat(np.arange(1500), np.diff(indptr))
    d = (2.0 - 2.0 * np.einsum("ij,ij->i", Xl[rows], Xl[indices], dtype=np.float64))
    assert np.allclose(w.sum(dtype=np.float64), 1500, atol=1e-2)
    top = np.zeros(1500)
    np.maximum.at(top, rows, -d)
    e = np.exp(-d - top[rows])
    np.testing.assert_allclose(w, e / np.bincount(rows, weights=e, minlength=1500)[rows], rtol=2e-4, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["vanilla", "modality"])
def test_k1_at_half_of_n_matches_the_dense_reference(method):
    Xs, mods = unit_rows(240, 12, seed=7, gap=0.6, n_ids=20)
    D = xmrank.jaccard_distance(Xs, modalities=mods, method=method, k1=110, k2=6, dense=True)
    ref = reference_jaccard(Xs, method=method, k1=110, k2=6, modalities=mods)
    np.testing.assert_allclose(D, ref, atol=2e-5)


def test_expand_lists_without_expansion_and_duplicates():
    rank = np.array([[0, 1, 1], [1, 0, 2], [2, 1, 0]])
    mask = np.ones((3, 3), bool)
    ptr, idx = kernels.expand_lists(rank, mask)
    assert ptr.tolist() == [0, 2, 5, 8] and idx.tolist() == [0, 1, 0, 1, 2, 0, 1, 2]
    ptr, idx = kernels.expand_lists(rank, np.zeros((3, 3), bool), rank, mask)
    assert ptr.tolist() == [0, 0, 0, 0] and idx.size == 0
