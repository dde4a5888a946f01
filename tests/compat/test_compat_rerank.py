"""xmrank.compat.re_ranking: torchreid's re_ranking on distance matrices, to 1e-5, sparse inside."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from reference_rerank import dense_re_ranking
from xmrank import InputError
from xmrank.compat import re_ranking
from xmrank.retrieval import _distances

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "torchreid_rerank_n420.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


def euclid(A, B):
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T
    return np.sqrt(np.maximum(sq, 0)).astype(np.float32)


def blocks_of(rng, nq, ng, d=16, n_ids=None):
    n_ids = n_ids or max(2, (nq + ng) // 8)
    centres = rng.standard_normal((n_ids, d))
    X = centres[rng.integers(0, n_ids, nq + ng)] + rng.standard_normal((nq + ng, d))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    Q, G = X[:nq], X[nq:]
    return euclid(Q, G), euclid(Q, Q), euclid(G, G)


@pytest.mark.parametrize("k2, key", [(6, "final_dist"), (1, "final_dist_k2_1")])
def test_matches_torchreids_output(golden, k2, key):
    D = re_ranking(golden["q_g_dist"], golden["q_q_dist"], golden["g_g_dist"], k1=int(golden["k1"]), k2=k2,
                   lambda_value=float(golden["lambda_value"]))
    assert D.dtype == np.float32 and D.shape == golden[key].shape
    assert np.abs(D - golden[key]).max() <= 1e-5


def test_defaults_are_torchreids(golden):
    D = re_ranking(golden["q_g_dist"], golden["q_q_dist"], golden["g_g_dist"])
    assert np.abs(D - golden["final_dist"]).max() <= 1e-5


def test_the_dense_restatement_is_torchreids(golden):
    """The benchmark's dense baseline reproduces torchreid's output exactly."""
    D = dense_re_ranking(golden["q_g_dist"], golden["q_q_dist"], golden["g_g_dist"])
    assert np.abs(D - golden["final_dist"]).max() <= 1e-6


@pytest.mark.parametrize("k1, k2, lam", [(7, 3, 0.0), (11, 14, 0.8), (4, 1, 1.0), (20, 6, 0.3)])
def test_asymmetric_inputs_follow_torchreids_column_convention(k1, k2, lam):
    """torchreid divides each *column* of the assembled matrix by its max and transposes: with
    non-symmetric q_q / g_g (a learned distance) the rows it ranks are the columns."""
    rng = np.random.default_rng(k1)
    qg, qq, gg = blocks_of(rng, 37, 55)
    qq = qq * (1 + 0.1 * rng.random(qq.shape)).astype(np.float32)
    gg = gg * (1 + 0.1 * rng.random(gg.shape)).astype(np.float32)
    ref = dense_re_ranking(qg, qq, gg, k1, k2, lam)
    assert np.abs(re_ranking(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam) - ref).max() <= 1e-5


@pytest.mark.slow
def test_float64_torch_and_strided_inputs(golden):
    torch = pytest.importorskip("torch")
    args = [golden[k] for k in ("q_g_dist", "q_q_dist", "g_g_dist")]
    ref = golden["final_dist"]
    np.testing.assert_allclose(re_ranking(*[a.astype(np.float64) for a in args]), ref, atol=1e-5)
    np.testing.assert_allclose(re_ranking(*[torch.from_numpy(a) for a in args]), ref, atol=1e-5)
    qg = np.asfortranarray(args[0])  # any memory layout
    np.testing.assert_allclose(re_ranking(qg, args[1].T.copy().T, args[2]), ref, atol=1e-5)


@pytest.mark.slow
def test_memory_grows_with_the_lists_not_with_the_assembled_matrix(monkeypatch):
    """With small row blocks, what the call allocates beyond its output grows linearly with
    q + g (lists, sets, weights), not with (q + g)² as torchreid's five dense arrays do."""
    monkeypatch.setattr(_distances, "_BLOCK_ENTRIES", 1 << 15)
    rng = np.random.default_rng(0)
    extra = []
    for nq, ng in ((300, 600), (600, 1200)):
        qg, qq, gg = blocks_of(rng, nq, ng, d=32)
        re_ranking(qg[:40, :50], qq[:40, :40], gg[:50, :50], k1=10, k2=3)  # compile outside the measurement
        tracemalloc.start()
        out = re_ranking(qg, qq, gg)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        extra.append(peak - out.nbytes)
        assert peak - out.nbytes < (nq + ng) ** 2 * 4, "more than one assembled float32 matrix"
    assert extra[1] / extra[0] < 2.8, extra  # doubling q + g: ~2x for lists, 4x for an assembled matrix


BAD = [
    (lambda qg, qq, gg: (qg, qq[:, :-1], gg), "q_q_dist must be square"),
    (lambda qg, qq, gg: (qg, qq, gg[:-1]), "g_g_dist must be square"),
    (lambda qg, qq, gg: (qg[:, :-1], qq, gg), "the shapes disagree"),
    (lambda qg, qq, gg: (qg[:-1], qq, gg), "the shapes disagree"),
    (lambda qg, qq, gg: (-qg, qq, gg), "non-negative"),
    (lambda qg, qq, gg: (qg, np.where(np.eye(len(qq), dtype=bool), np.nan, qq), gg), "NaN or infinite"),
    (lambda qg, qq, gg: (qg, qq, np.full_like(gg, np.inf)), "NaN or infinite"),
    (lambda qg, qq, gg: (qg[0], qq, gg), "2-D"),
    (lambda qg, qq, gg: (None, qq, gg), "q_g_dist is required"),
    (lambda qg, qq, gg: (qg.astype(str), qq, gg), "real numbers"),
    (lambda qg, qq, gg: (np.zeros((0, 5)), qq, gg), "must not be empty"),
]


@pytest.mark.parametrize("make, message", BAD)
def test_bad_input_is_one_line(make, message):
    qg, qq, gg = blocks_of(np.random.default_rng(1), 6, 9)
    with pytest.raises(InputError, match=message) as err:
        re_ranking(*make(qg, qq, gg), k1=3, k2=2)
    assert "\n" not in str(err.value)


def test_bad_parameters():
    qg, qq, gg = blocks_of(np.random.default_rng(1), 6, 9)
    with pytest.raises(InputError, match=r"k1=15 must be smaller than n_query \+ n_gallery = 15"):
        re_ranking(qg, qq, gg, k1=15)
    with pytest.raises(InputError, match="k1 must be >= 1"):
        re_ranking(qg, qq, gg, k1=0)
    with pytest.raises(InputError, match="k2 must be <= 15"):
        re_ranking(qg, qq, gg, k1=3, k2=16)
    with pytest.raises(InputError, match="lambda_value must be <= 1"):
        re_ranking(qg, qq, gg, k1=3, lambda_value=1.5)
    with pytest.raises(InputError, match="k1 must be an integer"):
        re_ranking(qg, qq, gg, k1=2.5)
    zeros = (np.zeros_like(qg), np.zeros_like(qq), np.zeros_like(gg))
    with pytest.raises(InputError, match="every distance in row 0"):
        re_ranking(*zeros, k1=3)


def test_sparse_input_is_refused():
    sp = pytest.importorskip("scipy.sparse")
    qg, qq, gg = blocks_of(np.random.default_rng(1), 6, 9)
    with pytest.raises(InputError, match="dense array"):
        re_ranking(sp.csr_matrix(qg), qq, gg, k1=3)
