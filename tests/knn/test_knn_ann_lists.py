"""knn="ann" for the Jaccard methods: calibration on reciprocal pairs and leading columns, the cost choice."""

import logging

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import xmrank
from xmrank import InputError
from xmrank.knn import ann, ann_lists
from xmrank.knn.exact_faiss import search as exact_search

from conftest import unit_rows


def _clustered(n, d=32, *, seed=0, rows_per_id=25):
    return unit_rows(n, d, seed=seed, n_ids=max(2, n // rows_per_id), gap=0.3)


def _groups(mods):
    return [np.flatnonzero(mods == g) for g in range(int(mods.max()) + 1)]


def _exact_lists(X, groups, k):
    out = []
    for g in groups:
        s, i = exact_search(X, np.ascontiguousarray(X[g]), k)
        out.append((s, g[i]))
    return out


def _reciprocal_pairs(lists, owner):
    """Set of (i, j), i != j, with j in i's list of j's group and i in j's list of i's group."""
    members = [[set(row) for row in idx.tolist()] for _, idx in lists]
    pairs = set()
    for g, (_, idx) in enumerate(lists):
        for i, row in enumerate(idx.tolist()):
            for j in row:
                if j != i and i in members[owner[i]][j]:
                    pairs.add((i, j))
    return pairs


@pytest.fixture
def slow_exact(monkeypatch):
    """Price exact search 30 times higher in the cost model, so that the calibrated index is the cheaper one."""
    monkeypatch.setattr(ann_lists, "EXACT_COST", {k: 30 * v for k, v in ann_lists.EXACT_COST.items()})


@pytest.fixture(scope="module")
def data():
    return _clustered(12_000)


@pytest.mark.slow
def test_calibrated_lists_keep_what_the_jaccard_reads(data, slow_exact):
    X, mods = data
    groups = _groups(mods)
    k = 15
    lists, reports = ann_lists.search_groups(X, groups, k, k_read=6, min_rows=0, return_report=True)
    assert [r.choice for r in reports] == ["ann", "ann"]
    for r in reports:
        assert r.pair_recall >= ann_lists.TARGET_PAIRS and r.read_recall >= ann_lists.TARGET_READ
        assert 1 <= r.nprobe < r.nlist and r.n_pairs > 100
    exact = _exact_lists(X, groups, k)
    owner = mods.astype(np.int64)
    truth, found = _reciprocal_pairs(exact, owner), _reciprocal_pairs(lists, owner)
    assert len(truth & found) / len(truth) >= 0.97  # over every row, not only the sample
    for (s, i), (_, ti), g in zip(lists, exact, groups):
        assert s.dtype == np.float32 and i.dtype == np.int64 and i.shape == (X.shape[0], k)
        assert np.isin(i, g).all()  # indices are rows of X, inside the group
        assert (np.diff(s, axis=1) <= 1e-6).all()
        np.testing.assert_allclose(s[:40], np.einsum("id,ikd->ik", X[:40], X[i[:40]]), atol=1e-5)
        assert (ti[:, :6, None] == i[:, None, :6]).any(axis=2).mean() >= 0.97  # leading columns


@pytest.mark.slow
def test_exact_search_is_chosen_when_it_is_cheaper():
    # unstructured rows: every list's tail is near-random, an index must probe most cells, one matrix
    # product is cheaper
    X, mods = unit_rows(12_000, 64, seed=5)
    groups = _groups(mods)
    lists, reports = ann_lists.search_groups(X, groups, 10, k_read=3, min_rows=0, return_report=True)
    assert [r.choice for r in reports] == ["exact", "exact"]
    assert all(r.reason for r in reports)
    for (s, i), (ts, ti) in zip(lists, _exact_lists(X, groups, 10)):
        np.testing.assert_array_equal(i, ti)
        np.testing.assert_array_equal(s, ts)


@pytest.mark.slow  # about 1-2 s: kept out of the fast suite (under a minute)
def test_the_choice_is_a_function_of_the_input(data, slow_exact):
    X, mods = data
    groups = _groups(mods)
    a, ra = ann_lists.search_groups(X[:9000], [g[g < 9000] for g in groups], 10, k_read=3, min_rows=0,
                                    return_report=True)
    b, rb = ann_lists.search_groups(X[:9000], [g[g < 9000] for g in groups], 10, k_read=3, min_rows=0,
                                    return_report=True)
    assert [(r.choice, r.nprobe) for r in ra] == [(r.choice, r.nprobe) for r in rb]
    for (sa, ia), (sb, ib) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(sa, sb)


def test_cost_model_prefers_exact_search_for_small_or_fully_probed_databases():
    assert ann_lists.ivf_cost(1000, 50_000, 1000, 1000) > ann_lists.exact_cost(1000, 50_000, "faiss")
    assert ann_lists.ivf_cost(1000, 1_000_000, 8000, 8) < ann_lists.exact_cost(1000, 1_000_000, "bf16")
    assert ann_lists.exact_cost(10, 100, "bf16") < ann_lists.exact_cost(10, 100, "faiss")


def test_small_groups_are_searched_exactly(data):
    X, mods = data
    groups = _groups(mods)
    lists, reports = ann_lists.search_groups(X[:3000], [g[g < 3000] for g in groups], 8, return_report=True)
    assert all(r.choice == "exact" and "min_rows" in r.reason for r in reports)


@pytest.mark.slow
def test_choice_and_measurements_are_logged(data, slow_exact, caplog):
    X, mods = data
    with caplog.at_level(logging.INFO, logger="xmrank"):
        ann_lists.search_groups(X, _groups(mods), 10, k_read=3, min_rows=0)
    recs = [r for r in caplog.records if hasattr(r, "ann")]
    assert len(recs) == 2
    assert all("reciprocal pairs kept" in r.getMessage() for r in recs)
    assert all(r.ann["probes_tried"] and r.ann["exact_cost"] > r.ann["ann_cost"] > 0 for r in recs)


@pytest.mark.slow
def test_modality_jaccard_with_ann_clusters_like_exact(slow_exact, monkeypatch):
    X, mods = _clustered(8000, seed=3, rows_per_id=30)
    monkeypatch.setattr(ann, "MIN_ROWS", 0)
    D_ann = xmrank.jaccard_distance(X, modalities=mods, knn="ann", max_distance=0.6)
    D_ex = xmrank.jaccard_distance(X, modalities=mods, knn="faiss", max_distance=0.6)
    la = xmrank.cluster_distance(D_ann, eps=0.6, min_samples=4)
    le = xmrank.cluster_distance(D_ex, eps=0.6, min_samples=4)
    singletons = lambda a: np.where(a < 0, a.size + np.arange(a.size), a)  # noqa: E731
    assert len(set(le)) > 20
    assert adjusted_rand_score(singletons(le), singletons(la)) >= 0.98


@pytest.mark.slow
def test_vanilla_lists_go_through_the_same_calibration(data, slow_exact, monkeypatch, caplog):
    X, _ = data
    monkeypatch.setattr(ann, "MIN_ROWS", 0)
    with caplog.at_level(logging.INFO, logger="xmrank"):
        xmrank.jaccard_distance(X[:6000], method="vanilla", knn="ann", k1=20, k2=6, max_distance=0.6)
    recs = [r for r in caplog.records if hasattr(r, "ann") and "group" in r.ann]
    assert len(recs) == 1 and recs[0].ann["k_read"] == 6 and recs[0].ann["k"] == 20


@pytest.mark.parametrize("kwargs, match", [
    ({"k_read": 0}, "k_read"),
    ({"target_pairs": 1.5}, "target_pairs"),
    ({"target_read": float("nan")}, "target_read"),
    ({"n_sample": 0}, "n_sample"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_are_input_errors(data, kwargs, match):
    X, mods = data
    with pytest.raises(InputError, match=match):
        ann_lists.search_groups(X[:500], _groups(mods[:500]), 5, **kwargs)


@pytest.mark.slow
def test_duplicate_rows_are_ordered_as_exact_search_orders_them(slow_exact):
    # every row twice: exact lists break the ties by the smaller index, and so do the re-scored index candidates
    X, mods = _clustered(5000, seed=4)
    X2, m2 = np.concatenate([X, X]), np.concatenate([mods, mods])
    groups = _groups(m2)
    lists, reports = ann_lists.search_groups(X2, groups, 10, k_read=4, min_rows=0, target_pairs=1.0,
                                             target_read=1.0, return_report=True)
    assert [r.choice for r in reports] == ["ann", "ann"]
    assert all(r.read_recall == 1.0 and r.pair_recall == 1.0 for r in reports)


@pytest.mark.slow  # about 1-2 s: kept out of the fast suite (under a minute)
def test_each_group_is_calibrated_on_its_own_side(data, slow_exact):
    X, mods = data
    groups = _groups(mods[:8000])
    _, ra = ann_lists.search_groups(X[:8000], groups, 10, k_read=3, min_rows=0, return_report=True)
    _, rb = ann_lists.search_groups(X[:8000], groups[::-1], 10, k_read=3, min_rows=0, return_report=True)
    assert [(r.nprobe, r.pair_recall) for r in ra] == [(r.nprobe, r.pair_recall) for r in rb[::-1]]


@pytest.mark.slow  # about 1-2 s: kept out of the fast suite (under a minute)
def test_returned_lists_are_measured_together(data, slow_exact, caplog):
    X, mods = data
    with caplog.at_level(logging.INFO, logger="xmrank"):
        ann_lists.search_groups(X[:8000], _groups(mods[:8000]), 10, k_read=3, min_rows=0)
    joint = [r.ann_joint for r in caplog.records if hasattr(r, "ann_joint")]
    assert len(joint) == 1 and joint[0]["pairs"] >= 0.97 and joint[0]["read"] >= 0.98


@pytest.mark.parametrize("groups, k, match", [
    ([np.arange(3)], 5, "exceeds the 3 rows"),
    ([np.arange(10), np.arange(5, 20)], 2, "disjoint"),
    ([np.array([], dtype=int)], 1, "non-empty"),
    ([np.array([0, 600])], 1, "outside"),
    ([], 1, "at least one group"),
])
def test_malformed_groups_are_input_errors(data, groups, k, match):
    X, _ = data
    with pytest.raises(InputError, match=match):
        ann_lists.search_groups(X[:500], groups, k)


@pytest.mark.slow
def test_loose_data_stops_after_the_seeds_lists(monkeypatch):
    # issue 23's hard regime (about 10 rows per identity, noise 0.9 against centres of norm 1): the seeds' lists
    # share few rows, so the calibration sample alone would cost more than an index can save; the search must
    # see that from the seeds' lists (a small share of exact search) and build no index, probe nothing
    rng = np.random.default_rng(3)
    n, d = 20_000, 128
    C = rng.standard_normal((n // 10, d))
    ids = rng.integers(0, n // 10, n)
    mods = (rng.random(n) < 0.35).astype(np.int64)
    X = C[ids] + rng.standard_normal((2, d))[mods] * 0.8 + rng.standard_normal((n, d)) * 0.9
    X = np.ascontiguousarray((X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32))
    groups = _groups(mods)

    def no_index(*args, **kwargs):
        raise AssertionError("an index was built although the calibration sample alone could not pay")

    monkeypatch.setattr(ann_lists, "build_index", no_index)
    searched = []
    real = ann_lists._exact_engine

    def counting(*args, **kwargs):
        name, search = real(*args, **kwargs)

        def wrapped(Q, db, k):
            searched.append(Q.shape[0])
            return search(Q, db, k)

        return name, wrapped

    monkeypatch.setattr(ann_lists, "_exact_engine", counting)
    lists, reports = ann_lists.search_groups(X, groups, 15, k_read=3, return_report=True)
    assert [r.choice for r in reports] == ["exact", "exact"]
    assert "calibration sample holds" in reports[0].reason and "min_rows" in reports[1].reason
    # the seeds, then every other row once: exact search reuses the seeds' lists
    assert sorted(searched) == [ann_lists.N_SEEDS, ann_lists.N_SEEDS, n - ann_lists.N_SEEDS, n - ann_lists.N_SEEDS]
    for (s, i), (ts, ti) in zip(lists, _exact_lists(X, groups, 15)):
        np.testing.assert_array_equal(i, ti)


def test_cell_recall_bounds_what_the_probed_cells_hold():
    # tight identities: the seeds' leading neighbours share their cells; random rows: they do not
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((100, 32))
    tight = centres[rng.integers(0, 100, 6000)] + 0.05 * rng.standard_normal((6000, 32))
    loose = rng.standard_normal((6000, 32))
    out = []
    for X in (tight, loose):
        X = np.ascontiguousarray((X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32))
        seeds = np.arange(0, 6000, 30)
        _, lists = exact_search(X[seeds], X, 5)
        out.append(ann_lists._cell_recall(X, X[seeds], lists, nlist=64, nprobe=2, k_read=5, seed=0))
    assert out[0] > 0.95 and out[1] < 0.5
