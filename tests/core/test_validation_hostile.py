"""The shared validation, one behaviour across every entry point: each answers with one InputError line.

- features whose norms overflow float32 products are refused everywhere features come in (the evaluation
  helpers included); norms just below the limit give finite distances;
- one label checker: missing values, fractional / >64-bit floats, complex, datetime are refused, good labels are
  encoded alike;
- messages print plain numbers (never ``np.int64(0)``);
- the API's other arguments (seeds, subset modalities, cluster labels, distances, compat options, results, k1,
  methods, backends, bins...) are refused in one line.
"""

import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import xmrank
import xmrank.compat as compat
from conftest import one_line, unit_rows
from xmrank import InputError
from xmrank._validation import check_label_values, check_labels
from xmrank.clustering import auto_eps, kth_neighbor_distance
from xmrank.datasets import regdb_records

X, M = unit_rows(40, 8, seed=0)
M = np.repeat([0, 1], 20)


# --- features whose norms overflow float32 products ---------------------------------------------------------

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


# --- one label checker --------------------------------------------------------------------------------------

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


# --- plain numbers ------------------------------------------------------------------------------------------

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


# --- the API's other arguments ------------------------------------------------------------------------------

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
