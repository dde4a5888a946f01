"""xmrank.rerank(distances=(q_g, q_q, g_g)): the same neighbour rules as from features."""

import numpy as np
import pytest

import xmrank
from xmrank import InputError
from xmrank.retrieval import original_distance, rerank
from xmrank.retrieval._distances import DistanceBlocks, original_from_blocks


def euclid(A, B):
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T
    return np.sqrt(np.maximum(sq, 0)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n_ids, per_id, dim = 40, 3, 24
    centres = rng.standard_normal((n_ids, dim))
    offsets = rng.standard_normal((2, dim)) * 1.2
    ids = np.tile(np.repeat(np.arange(n_ids), per_id), 2)
    mods = np.repeat([0, 1], n_ids * per_id)
    X = centres[ids] + offsets[mods] + rng.standard_normal((len(ids), dim)) * 0.8
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    Q, G = X[mods == 1], X[mods == 0]
    nq = len(Q)
    cams = np.concatenate([np.arange(nq) % 2 + 3, np.arange(len(G)) % 2 + 1])
    return dict(Q=Q, G=G, D=(euclid(Q, G), euclid(Q, Q), euclid(G, G)), cams=cams, nq=nq)


@pytest.mark.parametrize("method", ["vanilla", "modality", "modality-qe", "camera", "modality-camera"])
@pytest.mark.parametrize("lam, normalize, self_in_k1", [(0.3, "gallery", True), (0.0, "union", False)])
def test_distances_give_the_feature_result(data, method, lam, normalize, self_in_k1):
    nq = data["nq"]
    kw = dict(query_modalities=1, gallery_modalities=0, query_cameras=data["cams"][:nq],
              gallery_cameras=data["cams"][nq:], method=method, k1=12, k2=3, lambda_value=lam, normalize=normalize,
              self_in_k1=self_in_k1)
    a = rerank(data["Q"], data["G"], **kw)
    b = rerank(distances=data["D"], **kw)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.abs(a - b).max() <= 1e-5


def test_lambda_one_is_the_original_distance(data):
    D = rerank(distances=data["D"], query_modalities=1, gallery_modalities=0, lambda_value=1.0)
    np.testing.assert_allclose(D, original_distance(data["Q"], data["G"]), atol=1e-5)
    U = original_from_blocks(DistanceBlocks(*data["D"]), normalize="union")
    np.testing.assert_allclose(U, original_distance(data["Q"], data["G"], normalize="union"), atol=1e-5)


def test_torch_tensors_and_float64(data):
    torch = pytest.importorskip("torch")
    ref = rerank(distances=data["D"], query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    as64 = tuple(d.astype(np.float64) for d in data["D"])
    np.testing.assert_allclose(rerank(distances=as64, query_modalities=1, gallery_modalities=0, k1=10, k2=3), ref,
                               atol=1e-5)
    tens = tuple(torch.from_numpy(d) for d in data["D"])
    np.testing.assert_allclose(rerank(distances=tens, query_modalities=1, gallery_modalities=0, k1=10, k2=3), ref,
                               atol=1e-6)


def test_top_level_name(data):
    assert xmrank.rerank is rerank


@pytest.mark.parametrize("kwargs, message", [
    (dict(query="Q", gallery="G", distances="D"), "not both"),
    (dict(), "give query and gallery features"),
    (dict(distances="D2"), "a tuple"),
    (dict(distances="D", knn="numpy"), "knn and device"),
    (dict(distances="D", device="cuda"), "knn and device"),
    (dict(distances="neg"), "non-negative"),
    (dict(distances="nonsquare"), "must be square"),
    (dict(distances="D", k1=10**6), "k1=1000000 must be smaller"),
    (dict(distances="D", query_modalities=1), "given together"),
    (dict(distances="D", method="camera"), "needs cameras"),
])
def test_bad_input(data, kwargs, message):
    qg, qq, gg = data["D"]
    values = {"Q": data["Q"], "G": data["G"], "D": data["D"], "D2": (qg, qq), "neg": (-qg, qq, gg),
              "nonsquare": (qg, qq[:, :-2], gg)}
    kwargs = {k: values.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(InputError, match=message):
        rerank(**kwargs)
