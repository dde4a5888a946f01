"""xmrank.diagnostics: neighbour make-up, intra/inter histograms, cluster scores, diagnose, plots."""

import json
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import xmrank
from xmrank import InputError
from xmrank.datasets import make_biased
from xmrank.diagnostics import (
    cluster_scores,
    cross_modal_share,
    diagnose,
    histogram_summary,
    jaccard_histogram,
    neighbor_makeup,
    original_histogram,
    plot_diagnosis,
)
from xmrank.diagnostics.distances import _original_chunks, pair_counts


@pytest.fixture(scope="module")
def biased():
    return make_biased(n_ids=25, per_id=6, gap=1.5, noise=0.3, seed=0)


# --- neighbour make-up -------------------------------------------------------

def test_cross_modal_share_excludes_self():
    codes = np.array([0, 0, 1, 1])
    idx = np.array([[0, 1, 2], [1, 0, 0], [2, 3, 0], [3, 2, 2]])
    share = cross_modal_share(idx, codes)
    np.testing.assert_allclose(share, [0.5, 0.0, 0.5, 0.0])


def test_makeup_plain_lists_are_biased_modality_lists_balanced(biased):
    X, ids, mods, _ = biased
    k1 = 20
    out = neighbor_makeup(X, mods, k1=k1, labels=ids)
    assert out["knn"]["cross_modal_share_mean"] == 0.0
    assert out["knn"]["rows_without_cross_modal_neighbour"] == 1.0
    # k1/2 of each modality, self excluded from the share
    assert out["modality"]["cross_modal_share_mean"] == pytest.approx((k1 // 2) / (k1 - 1))
    assert out["modality"]["same_identity_share_mean"] > out["knn"]["same_identity_share_mean"]
    assert sum(out["knn"]["cross_modal_share_histogram"]["counts"]) == X.shape[0]


def test_makeup_without_gap_is_near_uniform():
    X, ids, mods, _ = make_biased(n_ids=25, per_id=6, gap=0.0, seed=0)
    out = neighbor_makeup(X, mods, k1=20)
    assert abs(out["knn"]["cross_modal_share_mean"] - out["uniform_cross_modal_share"]) < 0.1


def test_makeup_return_rows(biased):
    X, ids, mods, _ = biased
    out, rows = neighbor_makeup(X, mods, k1=10, return_rows=True)
    assert rows["knn"].shape == (X.shape[0],)
    assert rows["modality"].mean() == pytest.approx(out["modality"]["cross_modal_share_mean"])


@pytest.mark.parametrize("kwargs, match", [
    ({"modalities": np.zeros(300, int)}, "single modality"),
    ({"modalities": np.zeros(7, int)}, "modalities"),
    ({"k1": 1000}, "k1"),
])
def test_makeup_rejects_bad_input(biased, kwargs, match):
    X, ids, mods, _ = biased
    args = {"modalities": mods, **kwargs}
    with pytest.raises(InputError, match=match):
        neighbor_makeup(X, args.pop("modalities"), **args)


# --- distance histograms -----------------------------------------------------

def _brute_original(X, codes):
    G = 2.0 - 2.0 * X.astype(np.float64) @ X.T.astype(np.float64)
    i, j = np.triu_indices(X.shape[0], 1)
    same = codes[i] == codes[j]
    return G[i, j][same], G[i, j][~same]


def test_original_histogram_exact_matches_brute_force(biased):
    X, ids, mods, _ = biased
    h = original_histogram(X, mods, bins=20)
    intra, inter = _brute_original(X, mods)
    assert np.array_equal(h["intra"], np.histogram(intra, bins=h["edges"])[0])
    assert np.array_equal(h["inter"], np.histogram(inter, bins=h["edges"])[0])
    assert (h["intra_pairs"], h["inter_pairs"]) == pair_counts(mods) == (intra.size, inter.size)
    s = histogram_summary(h)
    assert s["intra_modality_mean"] == pytest.approx(intra.mean())
    assert s["inter_modality_mean"] == pytest.approx(inter.mean())
    assert not s["sampled"]


def test_original_chunks_cover_every_pair_once(biased):
    X, ids, mods, _ = biased
    chunks = list(_original_chunks(X, mods, False, 0, 0, chunk=1000))  # several row blocks
    assert len(chunks) > 1
    d = np.concatenate([c[0] for c in chunks])
    intra, inter = _brute_original(X, mods)
    assert d.size == intra.size + inter.size
    np.testing.assert_allclose(np.sort(d), np.sort(np.concatenate([intra, inter])), atol=1e-9)


def test_original_histogram_sampled_estimates_the_means(biased):
    X, ids, mods, _ = biased
    exact = histogram_summary(original_histogram(X, mods))
    sampled = histogram_summary(original_histogram(X, mods, max_pairs=20_000, seed=1))
    assert sampled["sampled"]
    assert sampled["intra_modality_pairs"] + sampled["inter_modality_pairs"] == 20_000
    for key in ("intra_modality_mean", "inter_modality_mean"):
        assert sampled[key] == pytest.approx(exact[key], abs=0.03)


@pytest.mark.parametrize("method", ["vanilla", "modality"])
def test_jaccard_histogram_sparse_equals_dense(biased, method):
    X, ids, mods, _ = biased
    kw = dict(modalities=mods, method=method, k1=20, k2=4)
    Ds = xmrank.jaccard_distance(X, **kw)
    Dd = xmrank.jaccard_distance(X, dense=True, **kw)
    hs, hd = jaccard_histogram(Ds, mods, bins=25), jaccard_histogram(Dd, mods, bins=25)
    assert np.array_equal(hs["intra"], hd["intra"]) and np.array_equal(hs["inter"], hd["inter"])
    assert hs["intra"].sum() == hs["intra_pairs"] and hs["inter"].sum() == hs["inter_pairs"]
    assert histogram_summary(hs)["inter_modality_mean"] == pytest.approx(histogram_summary(hd)["inter_modality_mean"])


def test_vanilla_puts_every_cross_modal_pair_at_one_modality_aware_does_not(biased):
    X, ids, mods, _ = biased
    van = jaccard_histogram(xmrank.jaccard_distance(X, modalities=mods, method="vanilla", k1=20), mods)
    mod = jaccard_histogram(xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=20), mods)
    assert van["inter"][-1] == van["inter_pairs"]  # all in the bin holding 1
    assert van["inter_below_one"] == 0 and histogram_summary(van)["inter_modality_share_below_one"] == 0.0
    assert histogram_summary(mod)["inter_modality_share_below_one"] > 0.01
    assert mod["inter"][:-1].sum() > 0
    assert histogram_summary(mod)["histogram_overlap"] > histogram_summary(van)["histogram_overlap"]


# --- cluster scores -----------------------------------------------------------

def _brute_scores(true, pred, mods, noise):
    pred = pred.copy()
    if noise == "singletons":
        noisy = np.flatnonzero(pred < 0)
        pred[noisy] = pred.max() + 1 + np.arange(noisy.size)
    i, j = np.triu_indices(true.size, 1)
    same_c, same_t, cross = pred[i] == pred[j], true[i] == true[j], mods[i] != mods[j]
    return {
        "pairwise_precision": (same_c & same_t).sum() / same_c.sum(),
        "pairwise_recall": (same_c & same_t).sum() / same_t.sum(),
        "cross_modal_pair_recall": (same_c & same_t & cross).sum() / (same_t & cross).sum(),
        "intra_modal_pair_recall": (same_c & same_t & ~cross).sum() / (same_t & ~cross).sum(),
        "ari": adjusted_rand_score(true, pred),
        "nmi": normalized_mutual_info_score(true, pred),
    }


@pytest.mark.parametrize("noise", ["singletons", "cluster"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_scores_match_pair_enumeration(noise, seed):
    rng = np.random.default_rng(seed)
    n = 300
    true = rng.integers(0, 20, n)
    mods = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.7, true // 2, rng.integers(-1, 15, n))
    got = cluster_scores(true, pred, modalities=mods, noise=noise)
    for key, value in _brute_scores(true, pred, mods, noise).items():
        assert got[key] == pytest.approx(value), key
    p, r = got["pairwise_precision"], got["pairwise_recall"]
    assert got["pairwise_f1"] == pytest.approx(2 * p * r / (p + r))
    assert got["noise_share"] == pytest.approx(np.mean(pred == -1))
    assert got["noise_scoring"] == noise


def test_noise_cluster_mode_is_sklearn_ari():
    rng = np.random.default_rng(5)
    true = rng.integers(0, 10, 200)
    pred = np.where(rng.random(200) < 0.4, -1, true)
    got = cluster_scores(true, pred, noise="cluster")
    assert got["ari"] == pytest.approx(adjusted_rand_score(true, pred))
    single = cluster_scores(true, pred)
    assert single["pairwise_precision"] == 1.0 and single["ari"] != pytest.approx(got["ari"])


def test_cluster_counts_and_modality_mixing():
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    mods = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 1])
    pred = np.array([5, 5, 5, 5, 7, 7, 8, 8, -1, -1])
    got = cluster_scores(true, pred, modalities=mods)
    assert got["n_clusters"] == 3 and got["n_identities"] == 3
    assert got["over_clustering_ratio"] == pytest.approx(1.0)
    assert got["mixed_modality_cluster_share"] == pytest.approx(1 / 3)
    # cross-modal same-id pairs: id0 4, id1 4, id2 1 -> hits 4
    assert got["cross_modal_identity_pairs"] == 9
    assert got["cross_modal_pair_recall"] == pytest.approx(4 / 9)
    assert got["intra_modal_pair_recall"] == pytest.approx(1.0)
    assert got["noise_share"] == pytest.approx(0.2)


def test_cluster_scores_accept_string_identities():
    true = np.array(["a", "a", "b", "b"])
    got = cluster_scores(true, np.array([0, 0, 1, 1]))
    assert got["ari"] == 1.0 and got["pairwise_f1"] == 1.0


@pytest.mark.parametrize("kwargs, match", [
    ({"labels_pred": np.zeros(5, int)}, "labels_true must have one label per row"),
    ({"labels_pred": np.full(6, 0.5)}, "labels_pred must hold integer"),
    ({"labels_pred": np.full(6, -2)}, "labels_pred must be >= -1"),
    ({"labels_pred": np.zeros((6, 2), int)}, "labels_pred must be a 1-D"),
    ({"noise": "ignore"}, "noise"),
])
def test_cluster_scores_reject_bad_input(kwargs, match):
    args = {"labels_true": np.arange(6) // 2, "labels_pred": np.zeros(6, int), **kwargs}
    with pytest.raises(InputError, match=match):
        cluster_scores(**args)


# --- diagnose -----------------------------------------------------------------

def test_diagnose_report_is_json_ready_and_shows_the_fix(biased):
    X, ids, mods, cams = biased
    report = diagnose(X, mods, labels=ids, cameras=cams, k1=20, k2=4, eps=0.6)
    json.dumps(report, allow_nan=False)
    assert set(report["distances"]) == {"original", "vanilla", "modality-qe", "modality", "camera"}
    assert set(report["clustering"]) == {"vanilla", "modality-qe", "modality", "camera"}
    van, mod = report["clustering"]["vanilla"], report["clustering"]["modality"]
    assert van["cross_modal_pair_recall"] == 0.0 and van["mixed_modality_cluster_share"] == 0.0
    assert mod["cross_modal_pair_recall"] > 0.9 and mod["ari"] > van["ari"] + 0.2
    assert report["neighbor_makeup"]["knn"]["cross_modal_share_mean"] == 0.0
    d = report["distances"]
    assert d["vanilla"]["inter_modality_mean"] == 1.0
    assert abs(d["modality"]["inter_minus_intra"]) < abs(d["vanilla"]["inter_minus_intra"])
    for h in report["histograms"].values():
        assert len(h["edges"]) == len(h["intra"]) + 1


def test_diagnose_without_labels_has_no_clustering_and_auto_eps(biased):
    X, ids, mods, _ = biased
    report = diagnose(X, mods, k1=20, methods=["modality"])
    assert "clustering" not in report and set(report["distances"]) == {"original", "modality"}
    report = diagnose(X, mods, labels=ids, k1=20, methods="modality", eps="auto")
    assert 0 < report["clustering"]["modality"]["eps"] < 1


@pytest.mark.parametrize("kwargs, match", [
    ({"modalities": None}, "modalities is required"),
    ({"modalities": np.zeros(300, int)}, "single modality"),
    ({"labels": np.arange(10)}, "labels must have one label per row"),
    ({"k1": 300}, "k1=300 must be smaller"),
    ({"eps": -0.5}, "eps must be > 0"),
    ({"eps": "big"}, "eps must be a positive number or 'auto'"),
    ({"methods": ["fancy"]}, "Unknown method 'fancy'"),
    ({"methods": ["camera"]}, "needs cameras"),
    ({"noise": "drop"}, "Unknown noise"),
    ({"knn": "annoy"}, "knn"),
])
def test_diagnose_rejects_bad_input(biased, kwargs, match):
    X, ids, mods, _ = biased
    args = {"modalities": mods, **kwargs}
    with pytest.raises(InputError, match=match):
        diagnose(X, args.pop("modalities"), **args)


def test_diagnose_rejects_nan_and_1d_features(biased):
    X, ids, mods, _ = biased
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        diagnose(bad, mods)
    with pytest.raises(InputError, match="2-D"):
        diagnose(X[:, 0], mods)


# --- plots ----------------------------------------------------------------------

@pytest.mark.slow
def test_plot_diagnosis_writes_a_png(biased, tmp_path):
    pytest.importorskip("matplotlib")
    X, ids, mods, _ = biased
    report = diagnose(X, mods, k1=20, methods=["vanilla", "modality"])
    out = tmp_path / "diag.png"
    fig = plot_diagnosis(report, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4


def test_plots_name_the_extra_when_matplotlib_is_missing(monkeypatch, biased):
    X, ids, mods, _ = biased
    report = diagnose(X, mods, k1=20, methods=["vanilla"])
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r"pip install 'xmrank\[plot\]'"):
        plot_diagnosis(report)
