"""``cluster(k1="auto")`` at scale: one neighbour search shared by every candidate, the same result as computing
each candidate on its own, and the memory check before anything is allocated."""

import warnings

import numpy as np
import pytest

import xmrank
from xmrank.clustering import api, auto
from xmrank.jaccard import neighbors
from xmrank.datasets import make_biased

from conftest import assert_same_sparse


@pytest.fixture(scope="module")
def biased():
    X, ids, mods, _ = make_biased(n_ids=30, per_id=8, gap=1.5, seed=0)
    return X, ids, mods


def _count_searches(monkeypatch):
    calls = []
    ranked, ranked_groups = neighbors.FeatureNeighbours.ranked, neighbors.FeatureNeighbours.ranked_groups

    def counted_ranked(self, k, **kw):
        calls.append(("ranked", k))
        return ranked(self, k, **kw)

    def counted_groups(self, codes, n_groups, k, **kw):
        calls.append(("groups", k))
        return ranked_groups(self, codes, n_groups, k, **kw)

    monkeypatch.setattr(neighbors.FeatureNeighbours, "ranked", counted_ranked)
    monkeypatch.setattr(neighbors.FeatureNeighbours, "ranked_groups", counted_groups)
    return calls


@pytest.mark.parametrize("method, kind, k", [("modality", "groups", 15), ("vanilla", "ranked", 30)])
def test_one_search_serves_every_candidate(biased, monkeypatch, method, kind, k):
    X, _, mods = biased
    calls = _count_searches(monkeypatch)
    _, info = xmrank.cluster(X, modalities=mods, method=method, k1="auto", k2="auto", eps="auto", return_info=True)
    measurement = info["chosen"]["k1"]["measurement"]
    assert [c["k1"] for c in measurement["candidates"]] == [5, 10, 20, 30]
    assert calls == [(kind, k)]  # one search, at the longest candidate's lists
    assert measurement["searches"] == 1 and measurement["max_distance"] is None


def test_shared_search_gives_what_each_candidate_computes_on_its_own(biased, monkeypatch):
    X, _, mods = biased
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = xmrank.cluster(X, modalities=mods, k1="auto", k2="auto", eps="auto", return_distance=True,
                                return_info=True)
        monkeypatch.setattr(api, "shared_source", lambda *a, **kw: None)  # each candidate: jaccard_distance
        alone = xmrank.cluster(X, modalities=mods, k1="auto", k2="auto", eps="auto", return_distance=True,
                               return_info=True)
    np.testing.assert_array_equal(shared[0], alone[0])
    assert_same_sparse(shared[1], alone[1], atol=0)
    assert shared[2]["chosen"]["k1"]["measurement"]["candidates"] == alone[2]["chosen"]["k1"]["measurement"]["candidates"]
    assert "searches" not in alone[2]["chosen"]["k1"]["measurement"]


@pytest.mark.parametrize("method", ["vanilla", "modality", "modality-qe"])
def test_source_distance_equals_jaccard_distance(biased, method):
    X, _, mods = biased
    source = auto.shared_source(X)
    for k1 in (30, 20, 10, 5):  # longest first: the later ones are prefixes
        k2 = -(-k1 // 5)
        expected = xmrank.jaccard_distance(X, modalities=mods, method=method, k1=k1, k2=k2)
        got = auto.source_distance(source, X, modalities=mods, cameras=None, method=method, k1=k1, k2=k2,
                                   k1_intra=5, k1_inter=20, k2_intra=2, k2_inter=4, max_distance=None, knn="auto",
                                   device="cpu", n_jobs=1, progress=False)
        assert_same_sparse(got, expected, atol=0)
    assert source.searches == 1


def test_shared_neighbours_serves_prefixes_and_searches_again_for_longer_lists(biased):
    X, _, mods = biased
    plain = neighbors.FeatureNeighbours(X)
    shared = neighbors.SharedNeighbours(neighbors.FeatureNeighbours(X))
    for k in (12, 4):
        np.testing.assert_array_equal(shared.ranked(k)[1], plain.ranked(k)[1])
        for (s, i), (ps, pi) in zip(shared.ranked_groups(mods, 2, k), plain.ranked_groups(mods, 2, k)):
            np.testing.assert_array_equal(i, pi)
            np.testing.assert_array_equal(s, ps)
    assert shared.searches == 2
    assert shared.ranked(20)[1].shape == (X.shape[0], 20) and shared.searches == 3
    rows = np.arange(5)
    np.testing.assert_array_equal(shared.ranked(3, rows=rows)[1], plain.ranked(3, rows=rows)[1])


def test_candidates_store_close_pairs_where_the_full_distances_do_not_fit(biased, monkeypatch):
    X, _, mods = biased
    # the longest candidate's full distance fits, the four of them with their scoring do not
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "20M")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, D, info = xmrank.cluster(X, modalities=mods, k1="auto", k2="auto", eps="auto",
                                         return_distance=True, return_info=True)
    measurement = info["chosen"]["k1"]["measurement"]
    assert measurement["max_distance"] == auto.STORE_CUT
    assert D.data.max() <= auto.STORE_CUT
    assert info["eps"] <= auto.STORE_CUT and labels.shape == (X.shape[0],)


def test_refused_before_allocating_where_nothing_fits(biased, monkeypatch):
    from xmrank.jaccard import blocks

    X, _, mods = biased
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "2K")

    def never(*a, **kw):
        raise AssertionError("the min-sum ran: the check did not come first")

    monkeypatch.setattr(blocks, "minsum_rows", never)
    with pytest.raises(xmrank.OutputTooLarge) as err:
        xmrank.cluster(X, modalities=mods, method="modality", k1="auto", k2="auto", eps="auto")
    text = str(err.value)
    assert "\n" not in text and "max_distance" in text and "k1='auto'" in text


def test_eps_auto_refuses_a_scan_that_would_not_fit_before_it_runs(biased, monkeypatch):
    X, _, mods = biased
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "15M")  # the full distance fits, its eps scan does not

    def never(*a, **kw):
        raise AssertionError("auto_eps ran: the check did not come first")

    monkeypatch.setattr(api, "auto_eps", never)
    with pytest.raises(xmrank.OutputTooLarge) as err:
        xmrank.cluster(X, modalities=mods, method="modality", k1=30, k2=6, eps="auto")
    assert "\n" not in str(err.value) and "max_distance" in str(err.value)
