"""k1="auto", k2="auto": never below cosine with one item per identity, near the best fixed setting with several."""

import numpy as np
import pytest

from xmrank import InputError
from xmrank.datasets import load_clip_pairs
from xmrank.datasets import make_cross_modal as synthetic  # the benchmark's set (benchmarks/bench_rerank.py)
from xmrank.retrieval import auto_k, evaluate, rerank


def split(X, ids, mods, q_mod):
    q, g = mods == q_mod, mods != q_mod
    return X[q], X[g], ids[q], ids[g]


def unit_clip():
    """The bundled CLIP pairs with rows normalised exactly (stored norms are 1 ± 6e-4, enough to
    reorder a query's ranking between the inner product and the squared Euclidean distance)."""
    X, ids, mods = load_clip_pairs()
    return X / np.linalg.norm(X, axis=1, keepdims=True), ids, mods


@pytest.fixture(scope="module")
def clip():
    return unit_clip()


@pytest.mark.parametrize("q_mod", [0, 1], ids=["images", "captions"])
def test_one_item_per_identity_never_below_cosine(clip, q_mod):
    Q, G, qi, gi = split(*clip, q_mod)
    side = dict(query_modalities=q_mod, gallery_modalities=1 - q_mod)
    chosen = auto_k(Q, G, **side)
    assert chosen["group_size"] == 1 and (chosen["k1"], chosen["k2"]) == (2, 1)
    # the pairing test is what shows one item per identity, and the returned measurement says so
    assert chosen["pairing"]["paired"] and chosen["pairing"]["cross_mutual"] > chosen["pairing"]["within_mutual"]
    assert chosen["method"] == "modality" and chosen["bias"]["biased"]
    cos = evaluate(-(Q @ G.T), qi, gi, protocol="regdb")
    auto = evaluate(rerank(Q, G, k1="auto", k2="auto", **side), qi, gi, protocol="regdb")
    assert auto["cmc"][0] >= cos["cmc"][0]
    # the default lists (k1=20) cost about 20 Rank-1 points here
    fixed = evaluate(rerank(Q, G, **side), qi, gi, protocol="regdb")
    assert fixed["cmc"][0] < cos["cmc"][0] - 0.1


@pytest.mark.slow
def test_several_items_per_identity_near_the_best_fixed_setting():
    X, ids, mods = synthetic(200, 5)
    Q, G, qi, gi = split(X, ids, mods, 1)
    side = dict(query_modalities=1, gallery_modalities=0)
    chosen = auto_k(Q, G, **side)
    assert chosen["group_size"] == 5 and chosen["per_modality"] == {"0": 5, "1": 5}
    auto = evaluate(rerank(Q, G, k1="auto", k2="auto", **side), qi, gi, protocol="regdb")
    # the best of the benchmark's grid (k1 2-30, k2 1-6) is 20/6 at mAP 0.960
    best = evaluate(rerank(Q, G, k1=20, k2=6, **side), qi, gi, protocol="regdb")["mAP"]
    assert auto["mAP"] >= best - 0.02


def test_distances_give_the_same_choice():
    X, ids, mods = synthetic(60, 4, noise=1.0, dim=32)
    Q, G, _, _ = split(X, ids, mods, 1)

    def d(A, B):
        return np.sqrt(np.maximum(2 - 2 * A @ B.T, 0)).astype(np.float32)

    side = dict(query_modalities=1, gallery_modalities=0)
    a = auto_k(Q, G, **side)
    b = auto_k(distances=(d(Q, G), d(Q, Q), d(G, G)), **side)
    assert a == b and a["group_size"] == 4


def test_vanilla_without_modalities_and_explicit_k2():
    X, ids, mods = synthetic(60, 4, noise=1.0, dim=32)
    Q, G, _, _ = split(X, ids, mods, 1)
    chosen = auto_k(Q, G)
    assert chosen["per_modality"].keys() == {"0"}
    side = dict(query_modalities=1, gallery_modalities=0)
    # an explicit k2 beside k1="auto" is kept, and k1 grows to fit it
    D = rerank(Q, G, k1="auto", k2=2, **side)
    assert D.shape == (len(Q), len(G))
    Qc, Gc, _, _ = split(*unit_clip(), 0)
    assert auto_k(Qc, Gc, query_modalities=0, gallery_modalities=1)["k1"] == 2
    D = rerank(Qc, Gc, query_modalities=0, gallery_modalities=1, k1="auto", k2=3)  # k1 becomes 6
    np.testing.assert_allclose(D, rerank(Qc, Gc, query_modalities=0, gallery_modalities=1, k1=6, k2=3))


def test_auto_errors():
    X, ids, mods = synthetic(20, 2, dim=16)
    Q, G, _, _ = split(X, ids, mods, 1)
    with pytest.raises(InputError, match="k1 must be an integer; got 'automatic' \\(or 'auto'"):
        rerank(Q, G, k1="automatic")
    with pytest.raises(InputError, match="needs modalities"):
        auto_k(Q, G, method="modality")


def test_auto_method_follows_the_measured_bias():
    # biased: the modality offset keeps plain lists inside their modality
    X, ids, mods = synthetic(40, 4, dim=32)
    Q, G, _, _ = split(X, ids, mods, 1)
    side = dict(query_modalities=1, gallery_modalities=0)
    _, chosen = rerank(Q, G, k1=10, k2=3, return_chosen=True, **side)
    assert chosen["method"] == "modality" and chosen["bias"]["ratio"] < 0.5
    assert (chosen["k1"], chosen["k2"], chosen["lambda_value"]) == (10, 3, 0.3)  # explicit lengths kept
    # unbiased: no modality offset, so the lists mix the modalities as chance does
    X, ids, mods = synthetic(40, 4, dim=32, gap=0.0)
    Q, G, _, _ = split(X, ids, mods, 1)
    D, chosen = rerank(Q, G, k1=10, k2=3, return_chosen=True, **side)
    assert chosen["method"] == "vanilla" and chosen["bias"]["ratio"] > 0.9
    assert "ratio" in chosen["method_reason"]
    np.testing.assert_allclose(D, rerank(Q, G, method="vanilla", k1=10, k2=3))
    # the same choice from distances (plain lists built from the blocks)
    d = lambda A, B: np.sqrt(np.maximum(2 - 2 * A @ B.T, 0)).astype(np.float32)  # noqa: E731
    _, from_d = rerank(distances=(d(Q, G), d(Q, Q), d(G, G)), k1=10, k2=3, return_chosen=True, **side)
    assert from_d["method"] == "vanilla"


def test_chosen_settings_repeat_the_result():
    X, ids, mods = synthetic(30, 3, dim=32)
    Q, G, _, _ = split(X, ids, mods, 1)
    side = dict(query_modalities=1, gallery_modalities=0)
    D, chosen = rerank(Q, G, k1="auto", k2="auto", return_chosen=True, **side)
    again = rerank(Q, G, **side, **{k: chosen[k] for k in ("method", "k1", "k2", "lambda_value")})
    np.testing.assert_array_equal(D, again)
    assert chosen["requested"] == {"method": "auto", "k1": "auto", "k2": "auto"} and chosen["k_reason"]


@pytest.mark.parametrize("case", ["few rows", "one modality", "all equal"])
def test_auto_falls_back_with_a_warning(case):
    X, ids, mods = synthetic(20, 2, dim=16)
    Q, G, _, _ = split(X, ids, mods, 1)
    side = dict(query_modalities=1, gallery_modalities=0)
    if case == "few rows":
        Q, G = Q[:3], G[:4]
    elif case == "one modality":
        side = dict(query_modalities=0, gallery_modalities=0)
    else:
        Q, G = np.ones_like(Q), np.ones_like(G)
    with pytest.warns(UserWarning, match="auto"):
        D, chosen = rerank(Q, G, method="auto", k1="auto", k2="auto", return_chosen=True, **side)
    assert D.shape == (len(Q), len(G)) and np.isfinite(D).all()
    assert chosen["fallbacks"]
    if case == "one modality":
        assert chosen["method"] == "vanilla"


def test_camera_rule_with_auto_keeps_the_defaults():
    X, ids, mods = synthetic(20, 2, dim=16)
    Q, G, _, _ = split(X, ids, mods, 1)
    cams = dict(query_cameras=np.arange(len(Q)) % 2, gallery_cameras=2 + np.arange(len(G)) % 2)
    D, chosen = rerank(Q, G, method="camera", k1="auto", k2="auto", return_chosen=True, **cams)
    assert chosen["method"] == "camera" and (chosen["k1"], chosen["k2"]) == (20, 6)
    assert "k1_intra" in chosen["k_reason"]
    np.testing.assert_array_equal(D, rerank(Q, G, method="camera", **cams))
