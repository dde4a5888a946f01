"""Hubness reduction and query expansion for cross-modal retrieval.

Where every identity has one item per modality (an image and its caption),
k-reciprocal re-ranking has nothing to work with; what helps there is
correcting *hubs*, gallery items that are the nearest neighbour of many
queries, and query expansion. All functions take L2-normalised features
(cosine similarity ``s = q·g``) and work block by block: nothing of size
bank x gallery or (query + gallery)² is held.

- :func:`qb_norm`: QB-Norm's dynamic inverted softmax (Bogolin et al.,
  "Cross Modal Retrieval with Querybank Normalisation", CVPR 2022).
- :func:`db_norm`: DBNorm, dual (query and gallery) bank normalisation
  (Wang, Jian and Xue, "Balance Act: Mitigating Hubness in Cross-Modal
  Retrieval with Query and Gallery Banks", EMNLP 2023).
- :func:`query_expansion`, :func:`aqe`, :func:`alpha_qe`: average and
  α-weighted query expansion as fast-reid offers them (Chum et al. 2007;
  Radenović et al. 2018), with a modality-balanced form when modalities
  are given.
"""

from __future__ import annotations

import logging

import numpy as np

from .._params import BETA_MAX, PARAMS
from .._params import DEFAULTS as _D
from .._validation import InputError, check_features, check_int, plain
from ..knn import knn_search

logger = logging.getLogger(__name__)

__all__ = ["qb_norm", "db_norm", "query_expansion", "aqe", "alpha_qe", "auto_beta"]

#: Entries of a bank x gallery block held at once.
_BLOCK_ENTRIES = 1 << 22
#: ``beta="auto"``: ``AUTO_SPREAD / std(similarities)``.
AUTO_SPREAD = 2.0


def _pair(query, gallery):
    Q = check_features(query, "query", min_rows=1)
    G = check_features(gallery, "gallery", min_rows=1)
    if Q.shape[1] != G.shape[1]:
        raise InputError(f"query and gallery must have the same number of features; got {Q.shape[1]} and {G.shape[1]}.")
    return Q, G


def _bank(bank, name, default, width):
    if bank is None:
        return default
    B = check_features(bank, name, min_rows=1)
    if B.shape[1] != width:
        raise InputError(f"{name} must have the gallery's {width} features per row; got {B.shape[1]}.")
    return B


class _BankStats:
    """Per gallery column, over the bank rows: log-sum-exp of ``beta · s``, the bank's top-k columns, and
    the spread of the similarities, in one or two passes over blocks of bank rows."""

    def __init__(self, B, G):
        self.B, self.G = B, G
        self.rows = max(1, _BLOCK_ENTRIES // G.shape[0])

    def blocks(self):
        for lo in range(0, self.B.shape[0], self.rows):
            yield (self.B[lo:lo + self.rows] @ self.G.T).astype(np.float64)

    def spread(self) -> float:
        """Standard deviation of all bank x gallery similarities (two passes: mean, then deviations)."""
        total, count = 0.0, 0
        for S in self.blocks():
            total += S.sum()
            count += S.size
        mean = total / count
        dev = sum(float(np.square(S - mean).sum()) for S in self.blocks())
        return float(np.sqrt(dev / count))

    def logsumexp(self, beta: float) -> np.ndarray:
        top = np.full(self.G.shape[0], -np.inf)
        acc = np.zeros(self.G.shape[0])
        for S in self.blocks():
            S *= beta
            new_top = np.maximum(top, S.max(axis=0))
            acc = acc * np.exp(top - new_top) + np.exp(S - new_top).sum(axis=0)
            top = new_top
        return top + np.log(acc)

    def activated(self, k: int) -> np.ndarray:
        """Gallery columns among the top ``k`` of some bank row (QB-Norm's activation set)."""
        hit = np.zeros(self.G.shape[0], dtype=bool)
        for S in self.blocks():
            kk = min(k, S.shape[1])
            top = np.argpartition(-S, kk - 1, axis=1)[:, :kk] if kk < S.shape[1] else np.arange(S.shape[1])[None]
            hit[top.ravel()] = True
        return hit


def auto_beta(bank, gallery) -> float:
    """``beta="auto"``: ``2 / σ``, σ the standard deviation of the bank x gallery cosine similarities.

    The inverted softmax compares ``exp(β s)`` across bank rows, so β only
    means something relative to how spread the similarities are: CLIP's
    cross-modal cosines span about ±0.05 (σ ≈ 0.05, β ≈ 40, close to CLIP's
    own logit scale of 100), a ReID model's much more. QB-Norm's published
    β = 20 was set on its models' similarity scale.
    """
    B = check_features(bank, "bank", min_rows=1)
    G = check_features(gallery, "gallery", min_rows=1)
    return _auto_beta(_BankStats(B, G))


def _auto_beta(stats) -> float:
    sigma = stats.spread()
    if not sigma >= AUTO_SPREAD / BETA_MAX:
        raise InputError("beta='auto' needs similarities that vary; every bank x gallery similarity is the same "
                         f"(standard deviation {sigma:.3g}, below {AUTO_SPREAD / BETA_MAX:.3g}).")
    return AUTO_SPREAD / sigma


def _beta(beta, name, stats):
    beta = PARAMS["beta"](beta, name)
    return _auto_beta(stats) if beta == "auto" else beta


def _finite(out, what):
    """``out`` when every entry is finite; features far from unit norm can still overflow float32."""
    if not np.isfinite(out).all():
        raise InputError(f"{what} gives {int((~np.isfinite(out)).sum())} non-finite distance(s): pass L2-normalised "
                         "features (cosine similarities in [-1, 1]) or a smaller beta.")
    return out


def qb_norm(query, gallery, *, bank=None, beta=_D["beta"], k: int = 1, dynamic: bool = True) -> np.ndarray:
    """Querybank normalisation with the dynamic inverted softmax: hubs lose their pull.

    Parameters
    ----------
    query : array-like of shape (n_query, n_features)
    gallery : array-like of shape (n_gallery, n_features)
        L2-normalised features (cosine similarity).
    bank : array-like of shape (n_bank, n_features), default=None
        The query bank: queries of the query modality, ideally from the
        training split (QB-Norm's setting). None uses the test queries
        themselves (transductive; then every query's own best match is
        activated and ``dynamic`` changes nothing).
    beta : float in (0, 1e6] or "auto", default="auto"
        Inverse temperature. "auto" is :func:`auto_beta` (``2 / σ`` of the
        bank x gallery similarities); QB-Norm's published default is 20.
        The bound (:data:`xmrank._params.BETA_MAX`) keeps ``β s`` finite in
        float32.
    k : int, default=1
        A gallery item is *activated* when it is among the ``k`` best matches
        of some bank query.
    dynamic : bool, default=True
        Normalise only the queries whose best match is activated (the
        dynamic inverted softmax); False normalises every query (the plain
        inverted softmax).

    Returns
    -------
    distance : ndarray of float32, shape (n_query, n_gallery)
        Smaller is closer: ``-(β s(q, g) - log Σ_b exp(β s(b, g)))`` on the
        normalised rows, ``-s(q, g)`` on the others. Compare within a row
        (ranking, CMC, mAP); rows on the two scales are not comparable with
        one threshold.

    Notes
    -----
    ``exp(β s(q, g)) / Σ_b exp(β s(b, g))`` divides each gallery item's score
    by how strongly the whole bank is drawn to it; computed in log space,
    block by block of bank rows.
    """
    Q, G = _pair(query, gallery)
    B = _bank(bank, "bank", Q, G.shape[1])
    k = check_int(k, "k", minimum=1)
    if not isinstance(dynamic, (bool, np.bool_)):
        raise InputError(f"dynamic must be True or False; got {plain(dynamic)}.")
    stats = _BankStats(B, G)
    b = _beta(beta, "beta", stats)
    lse = stats.logsumexp(b)
    S = Q @ G.T
    rows = np.ones(Q.shape[0], dtype=bool)
    if dynamic:
        rows = stats.activated(k)[np.argmax(S, axis=1)]
    out = -S
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by _finite below, in one line
        out[rows] = -(b * S[rows].astype(np.float64) - lse[None, :]).astype(np.float32)
    logger.info("qb_norm: beta %.3g, %d of %d queries normalised", b, int(rows.sum()), len(rows))
    return _finite(out.astype(np.float32, copy=False), f"qb_norm with beta={b:.6g}")


def db_norm(query, gallery, *, query_bank=None, gallery_bank=None, beta1=_D["beta"], beta2=_D["beta"], k: int = 1,
            dynamic: bool = False) -> np.ndarray:
    """Dual bank normalisation (DBNorm): inverted softmax over a query bank *and* a gallery bank.

    Parameters
    ----------
    query, gallery : array-like
        L2-normalised features.
    query_bank : array-like, default=None
        Items of the query modality (None: the test queries).
    gallery_bank : array-like, default=None
        Items of the gallery modality (None: the gallery itself).
    beta1, beta2 : float or "auto", default="auto"
        Inverse temperatures of the query-bank and gallery-bank terms; "auto"
        is :func:`auto_beta` of each bank against the gallery.
    k : int, default=1
    dynamic : bool, default=False
        As in :func:`qb_norm`: normalise only queries whose best match is
        activated by either bank (the dual dynamic inverted softmax).

    Returns
    -------
    distance : ndarray of float32, shape (n_query, n_gallery)
        ``-log`` of ``exp(β1 s(q,g)) / Σ_{b ∈ query bank} exp(β1 s(b,g))``
        times ``exp(β2 s(q,g)) / Σ_{b ∈ gallery bank} exp(β2 s(b,g))``.

    Notes
    -----
    The paper's product of the two inverted softmaxes, as it states it;
    the gallery bank shows which gallery items sit in dense regions of their
    own modality. (The authors' released ``db_norm`` passes the gallery bank's
    similarities as the second argument of both calls; this follows the
    paper.)
    """
    Q, G = _pair(query, gallery)
    QB = _bank(query_bank, "query_bank", Q, G.shape[1])
    GB = _bank(gallery_bank, "gallery_bank", G, G.shape[1])
    k = check_int(k, "k", minimum=1)
    if not isinstance(dynamic, (bool, np.bool_)):
        raise InputError(f"dynamic must be True or False; got {plain(dynamic)}.")
    sq, sg = _BankStats(QB, G), _BankStats(GB, G)
    b1, b2 = _beta(beta1, "beta1", sq), _beta(beta2, "beta2", sg)
    correction = sq.logsumexp(b1) + sg.logsumexp(b2)
    S = Q @ G.T
    rows = np.ones(Q.shape[0], dtype=bool)
    if dynamic:
        rows = (sq.activated(k) | sg.activated(k))[np.argmax(S, axis=1)]
    out = -S
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by _finite below, in one line
        out[rows] = -((b1 + b2) * S[rows].astype(np.float64) - correction[None, :]).astype(np.float32)
    logger.info("db_norm: beta1 %.3g, beta2 %.3g, %d of %d queries normalised", b1, b2, int(rows.sum()), len(rows))
    return _finite(out.astype(np.float32, copy=False), f"db_norm with beta1={b1:.6g}, beta2={b2:.6g}")


def query_expansion(query, gallery, *, k: int | str = _D["qe_k"], alpha: float = _D["alpha"], times: int = 1, query_modalities=None,
                    gallery_modalities=None):
    """Query expansion over query ∪ gallery: each row becomes the weighted mean of its nearest rows.

    Parameters
    ----------
    query, gallery : array-like
        Features (L2-normalised for the similarities; the means are of the
        features as given, as in fast-reid).
    k : int or "auto", default=5
        Rows averaged, the row itself included (fast-reid's ``qe_k``). With
        modalities: per modality. "auto": one more than the estimated number
        of items per identity and modality (the estimate of
        :func:`xmrank.retrieval.auto_k`): 2 where identities have one item
        per modality.
    alpha : float in [0, 100], default=3.0
        Weight ``max(s, 0) ** alpha`` of each neighbour (fast-reid's
        default 3; similarities above 1 by rounding count as 1). 0 gives the
        plain average (AQE); beyond 100 (:data:`xmrank._params.ALPHA_MAX`)
        every neighbour but the row itself weighs nothing in float64.
    times : int, default=1
        Rounds of expansion (fast-reid's ``qe_times``).
    query_modalities, gallery_modalities : int or array-like, default=None
        Give both for the **modality-balanced** form: ``k`` nearest rows from
        *each* modality, each modality's weighted mean (weights summing to
        one) counting equally. Across a modality gap the plain form averages
        own-modality rows only and pulls queries away from the gallery.

    Returns
    -------
    query, gallery : ndarray of float32
        The expanded features, L2-normalised. Score with ``-q @ g.T``.

    Notes
    -----
    fast-reid's ``aqe`` raises the similarities to ``alpha`` as they are (a
    negative similarity with an even ``alpha`` counts as positive); here
    negative similarities weigh 0. Neighbours come from an exact kNN search
    (:func:`xmrank.knn.knn_search`); memory is O((n_query + n_gallery) · k).
    """
    Q, G = _pair(query, gallery)
    k = PARAMS["qe_k"](k)
    alpha = PARAMS["alpha"](alpha)
    times = check_int(times, "times", minimum=1)
    nq = Q.shape[0]
    A = np.concatenate([Q, G], axis=0)
    codes = _modality_codes(query_modalities, gallery_modalities, nq, G.shape[0])
    groups = [np.arange(A.shape[0])] if codes is None else [np.flatnonzero(codes == c) for c in np.unique(codes)]
    if k == "auto":
        from ._auto import group_size as _group_size

        source = _Rows(A)
        k = 1 + min(_group_size(source, rows) for rows in groups)
        k = min(k, min(g.size for g in groups))
        logger.info("query_expansion: k='auto' -> %d", k)
    for g in groups:
        if k > g.size:
            raise InputError(f"k={k} exceeds the {g.size} rows of {'query + gallery' if codes is None else 'a modality'}.")
    for _ in range(times):
        U = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
        out = np.zeros_like(A, dtype=np.float64)
        for g in groups:
            sims, local = knn_search(U, np.ascontiguousarray(U[g]), k)
            w = np.clip(sims.astype(np.float64), 0.0, 1.0) ** alpha  # cosines: 1 + rounding is 1
            if codes is None:
                w /= k  # fast-reid: the mean of the weighted rows
            else:
                total = w.sum(axis=1, keepdims=True)
                w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / k) / len(groups)
            for c in range(k):
                out += w[:, c:c + 1] * A[g[local[:, c]]]
        A = out.astype(np.float32)
    A /= np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    if not np.isfinite(A).all():
        raise InputError("query_expansion gives non-finite features: the features' norms overflow float32.")
    return A[:nq], A[nq:]


class _Rows:
    """The ``within`` lookup :func:`xmrank.retrieval._auto.group_size` needs, over plain feature rows."""

    def __init__(self, A):
        self.A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)

    def within(self, rows, k):
        X = np.ascontiguousarray(self.A[rows])
        return knn_search(X, X, k)[1]


def aqe(query, gallery, *, k: int | str = _D["qe_k"], times: int = 1, query_modalities=None, gallery_modalities=None):
    """Average query expansion: :func:`query_expansion` with ``alpha=0``."""
    return query_expansion(query, gallery, k=k, alpha=0.0, times=times, query_modalities=query_modalities,
                           gallery_modalities=gallery_modalities)


def alpha_qe(query, gallery, *, k: int | str = _D["qe_k"], alpha: float = _D["alpha"], times: int = 1, query_modalities=None,
             gallery_modalities=None):
    """α-weighted query expansion (α-QE): :func:`query_expansion` with ``alpha=3`` by default."""
    return query_expansion(query, gallery, k=k, alpha=alpha, times=times, query_modalities=query_modalities,
                           gallery_modalities=gallery_modalities)


def _modality_codes(q_mod, g_mod, nq, ng):
    if q_mod is None and g_mod is None:
        return None
    from .rerank import _stack_labels

    labels = _stack_labels(q_mod, g_mod, nq, ng, "modalities")
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    if codes.max() < 1:
        raise InputError("the modality-balanced query expansion needs at least two modalities; query_modalities and "
                         "gallery_modalities hold one.")
    return codes
