"""Hubness reduction (QB-Norm, DBNorm) and query expansion (AQE, alpha-QE): definitions, the CLIP gain, errors."""

import numpy as np
import pytest
from scipy.special import logsumexp

from xmrank import InputError
from xmrank.datasets import load_clip_pairs
from xmrank.retrieval import alpha_qe, aqe, db_norm, evaluate, qb_norm, query_expansion
from xmrank.retrieval import hubness


def unit(rng, n, d):
    X = rng.standard_normal((n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    return unit(rng, 30, 8), unit(rng, 40, 8), unit(rng, 25, 8)


def test_qb_norm_is_the_inverted_softmax(small, monkeypatch):
    Q, G, B = small
    monkeypatch.setattr(hubness, "_BLOCK_ENTRIES", 64)  # several bank blocks
    S, SB = Q @ G.T, (B @ G.T).astype(np.float64)
    lse = logsumexp(20 * SB, axis=0)
    full = -(20 * S - lse)
    np.testing.assert_allclose(qb_norm(Q, G, bank=B, beta=20, dynamic=False), full, rtol=1e-5, atol=1e-4)
    # dynamic: only queries whose best match is some bank query's best match are normalised
    activated = np.zeros(G.shape[0], bool)
    activated[np.argmax(SB, axis=1)] = True
    rows = activated[np.argmax(S, axis=1)]
    assert 0 < rows.sum() < len(rows)
    D = qb_norm(Q, G, bank=B, beta=20)
    np.testing.assert_allclose(D[rows], full[rows], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(D[~rows], -S[~rows], atol=1e-6)
    # k: the activation set grows with each bank query's top k
    assert np.isfinite(qb_norm(Q, G, bank=B, beta=20, k=3)).all()


def test_auto_beta_is_two_over_the_spread(small):
    Q, G, B = small
    sigma = (B @ G.T).astype(np.float64).std()
    assert hubness.auto_beta(B, G) == pytest.approx(2 / sigma, rel=1e-6)
    np.testing.assert_allclose(qb_norm(Q, G, bank=B), qb_norm(Q, G, bank=B, beta=2 / sigma), rtol=1e-5, atol=1e-4)


def test_db_norm_is_the_product_of_two_inverted_softmaxes(small):
    Q, G, B = small
    GB = G[:20]
    S = Q @ G.T
    c1 = logsumexp(5 * (B @ G.T).astype(np.float64), axis=0)
    c2 = logsumexp(3 * (GB @ G.T).astype(np.float64), axis=0)
    ref = -(8 * S - c1 - c2)
    D = db_norm(Q, G, query_bank=B, gallery_bank=GB, beta1=5, beta2=3)
    np.testing.assert_allclose(D, ref, rtol=1e-5, atol=1e-4)
    assert db_norm(Q, G, dynamic=True).shape == S.shape


def fastreid_alpha_qe(Q, G, k, alpha):
    """fast-reid's aqe, one round, restated: weighted mean of each row's k nearest rows of query + gallery."""
    A = np.vstack([Q, G]).astype(np.float64)
    S = A @ A.T
    out = []
    for row in S:
        top = np.argsort(-row, kind="stable")[:k]
        w = np.maximum(row[top], 0) ** alpha
        out.append((A[top] * w[:, None]).mean(axis=0))
    out = np.array(out)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out[:len(Q)], out[len(Q):]


@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_query_expansion_matches_fastreid(small, alpha):
    Q, G, _ = small
    q, g = query_expansion(Q, G, k=4, alpha=alpha)
    rq, rg = fastreid_alpha_qe(Q, G, 4, alpha)
    np.testing.assert_allclose(q, rq, atol=1e-5)
    np.testing.assert_allclose(g, rg, atol=1e-5)
    a = aqe(Q, G, k=4) if alpha == 0 else alpha_qe(Q, G, k=4)
    np.testing.assert_allclose(a[0], rq, atol=1e-5)


def test_balanced_query_expansion_weighs_each_modality_equally(small):
    Q, G, _ = small
    q, g = query_expansion(Q, G, k=2, alpha=0.0, query_modalities=1, gallery_modalities=0)
    # row 0 of the queries: the mean of its 2 nearest queries, averaged with the mean of its 2 nearest gallery rows
    sq, sg = Q @ Q[0], G @ Q[0]
    own = Q[np.argsort(-sq, kind="stable")[:2]].mean(0)
    other = G[np.argsort(-sg, kind="stable")[:2]].mean(0)
    ref = (own + other) / 2
    np.testing.assert_allclose(q[0], ref / np.linalg.norm(ref), atol=1e-5)
    assert np.allclose(np.linalg.norm(g, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("q_mod", [0, 1], ids=["images", "captions"])
def test_clip_rank1_gains(q_mod):
    """One image and one caption per id: QB-Norm (query bank = the queries) gains over a Rank-1 point
    in both directions, and the modality-balanced alpha-QE never loses."""
    X, ids, mods = load_clip_pairs()
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    q, g = mods == q_mod, mods != q_mod
    Q, G = X[q], X[g]
    cos = evaluate(-(Q @ G.T), ids[q], ids[g], protocol="regdb")["cmc"][0]
    qb = evaluate(qb_norm(Q, G), ids[q], ids[g], protocol="regdb")["cmc"][0]
    assert qb >= cos + 0.01
    qe, ge = alpha_qe(Q, G, k="auto", query_modalities=q_mod, gallery_modalities=1 - q_mod)
    assert evaluate(-(qe @ ge.T), ids[q], ids[g], protocol="regdb")["cmc"][0] >= cos


def test_errors(small):
    Q, G, B = small
    with pytest.raises(InputError, match="same number of features"):
        qb_norm(Q, G[:, :4])
    with pytest.raises(InputError, match="bank must have the gallery's 8 features"):
        qb_norm(Q, G, bank=B[:, :3])
    with pytest.raises(InputError, match="beta must be > 0"):
        qb_norm(Q, G, beta=0)
    with pytest.raises(InputError, match="beta must be a positive number or 'auto'; got 'hot'"):
        qb_norm(Q, G, beta="hot")
    with pytest.raises(InputError, match="beta must be a finite number"):
        qb_norm(Q, G, beta=float("nan"))
    with pytest.raises(InputError, match="dynamic must be True or False"):
        db_norm(Q, G, dynamic="yes")
    with pytest.raises(InputError, match="every bank x gallery similarity is the same"):
        qb_norm(Q, np.tile(G[:1], (5, 1)), bank=Q[:1])
    with pytest.raises(InputError, match="k=80 exceeds"):
        query_expansion(Q, G, k=80)
    with pytest.raises(InputError, match="at least two modalities"):
        query_expansion(Q, G, query_modalities=0, gallery_modalities=0)
    with pytest.raises(InputError, match="alpha must be >= 0"):
        alpha_qe(Q, G, alpha=-1)
