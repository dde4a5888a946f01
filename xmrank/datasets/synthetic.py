"""Synthetic feature sets with a modality gap (numpy only; nothing is stored on disk).

make_biased
    Several modalities and cameras: every row's nearest neighbours are of its
    own modality, the bias the modality-aware Jaccard distance corrects.
make_cross_modal
    Two modalities, no cameras: the query/gallery sets of the re-ranking
    tests and of ``benchmarks/bench_rerank.py``.

Both draw identity centres on the unit sphere, add one orthogonal offset per
modality and isotropic Gaussian noise, and L2-normalise the rows; the same
arguments and seed give the same arrays.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int, check_real

__all__ = ["make_biased", "make_cross_modal"]


def _centres_and_directions(rng: np.random.Generator, n_ids: int, dim: int, n_directions: int):
    """Unit identity centres, shape (n_ids, dim), then an orthonormal basis, shape (dim, n_directions).

    Both generators draw these first and in this order, so a change here
    changes every synthetic set.
    """
    centres = rng.standard_normal((n_ids, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, n_directions)))
    return centres, basis


def make_biased(
    n_ids: int = 50,
    per_id: int = 8,
    *,
    n_modalities: int = 2,
    gap: float = 1.5,
    noise: float = 0.3,
    n_cameras_per_modality: int = 2,
    camera_gap: float = 0.0,
    dim: int = 64,
    seed=0,
):
    """A synthetic multi-modality data set with a strong modality gap.

    Each identity has a random unit centre; each modality adds one offset of
    norm ``gap`` (the offsets of different modalities are orthogonal, so two
    modality centres lie ``gap * sqrt(2)`` apart); each row adds isotropic
    Gaussian noise of expected norm about ``noise``; rows are then
    L2-normalised. With ``gap`` above about 1, a row's nearest neighbours are
    other identities of its own modality rather than its own identity in the
    other modality, which is what defeats the vanilla k-reciprocal Jaccard
    distance.

    Parameters
    ----------
    n_ids : int, default=50
        Number of identities.
    per_id : int, default=8
        Rows per identity *in each modality* (so ``n_ids * n_modalities *
        per_id`` rows in all).
    n_modalities : int, default=2
        Number of modalities.
    gap : float, default=1.5
        Norm of each modality's offset (0 means no modality gap).
    noise : float, default=0.3
        Expected norm of the per-row Gaussian noise.
    n_cameras_per_modality : int, default=2
        Cameras per modality; camera ids are unique across modalities
        (modality ``m`` owns cameras ``m * n_cameras_per_modality ...``).
        The rows of an identity in a modality cycle through its cameras.
    camera_gap : float, default=0.0
        Norm of an extra per-camera offset (a camera bias within a modality).
    dim : int, default=64
        Feature dimension; must exceed ``n_modalities`` (plus the number of
        cameras when ``camera_gap > 0``) so the offsets can be orthogonal.
    seed : int or numpy Generator, default=0
        The same seed gives the same arrays.

    Returns
    -------
    features : ndarray of float32, shape (n_rows, dim)
        Unit-norm rows, ordered by modality, then identity, then repeat.
    ids : ndarray of int64, shape (n_rows,)
        Identity of each row.
    modalities : ndarray of int64, shape (n_rows,)
        Modality of each row.
    cameras : ndarray of int64, shape (n_rows,)
        Camera of each row.

    Raises
    ------
    InputError
        A count below 1, a negative or non-finite ``gap``, ``noise`` or
        ``camera_gap``, or ``dim`` too small for orthogonal offsets.

    See Also
    --------
    make_cross_modal : two modalities without cameras.

    Examples
    --------
    >>> from xmrank.datasets import make_biased
    >>> X, ids, modalities, cameras = make_biased(n_ids=4, per_id=3, dim=16)
    >>> X.shape, sorted(set(cameras.tolist()))
    ((24, 16), [0, 1, 2, 3])
    """
    n_ids = check_int(n_ids, "n_ids", minimum=1)
    per_id = check_int(per_id, "per_id", minimum=1)
    n_modalities = check_int(n_modalities, "n_modalities", minimum=1)
    gap = check_real(gap, "gap", low=0.0)
    noise = check_real(noise, "noise", low=0.0)
    n_cam = check_int(n_cameras_per_modality, "n_cameras_per_modality", minimum=1)
    camera_gap = check_real(camera_gap, "camera_gap", low=0.0)
    n_offsets = n_modalities + (n_modalities * n_cam if camera_gap > 0 else 0)
    dim = check_int(dim, "dim", minimum=n_offsets + 1)
    rng = np.random.default_rng(seed)

    # Orthonormal offset directions: modalities first, then cameras.
    centres, basis = _centres_and_directions(rng, n_ids, dim, n_offsets)
    mod_offsets = gap * basis[:, :n_modalities].T
    cam_offsets = (camera_gap * basis[:, n_modalities:].T) if camera_gap > 0 else np.zeros((n_modalities * n_cam, dim))

    modalities = np.repeat(np.arange(n_modalities, dtype=np.int64), n_ids * per_id)
    ids = np.tile(np.repeat(np.arange(n_ids, dtype=np.int64), per_id), n_modalities)
    repeat = np.tile(np.arange(per_id, dtype=np.int64), n_ids * n_modalities)
    cameras = modalities * n_cam + repeat % n_cam

    X = centres[ids] + mod_offsets[modalities] + cam_offsets[cameras]
    X += rng.standard_normal(X.shape) * (noise / np.sqrt(dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), ids, modalities, cameras


def make_cross_modal(n_ids: int, per_id: int, *, gap: float = 1.5, noise: float = 1.4, dim: int = 128, seed=0):
    """Two modalities of ``per_id`` rows per identity: a query/gallery set for re-ranking.

    Identity centres on the unit sphere, plus ``gap`` times one of two
    orthonormal modality directions, plus Gaussian noise of expected norm
    about ``noise``; rows L2-normalised. Split it by modality into queries and
    gallery (``modalities == 1`` against ``modalities == 0``, say). The
    default ``noise`` puts the best fixed re-ranking (k1=20, k2=6) at mAP
    about 0.96 for 200 identities of 5 rows.

    Parameters
    ----------
    n_ids : int
        Number of identities.
    per_id : int
        Rows per identity in each modality (``2 * n_ids * per_id`` rows in all).
    gap : float, default=1.5
        Norm of the modality offset.
    noise : float, default=1.4
        Expected norm of the per-row Gaussian noise.
    dim : int, default=128
        Feature dimension (at least 3).
    seed : int or numpy Generator, default=0
        The same seed gives the same arrays.

    Returns
    -------
    features : ndarray of float32, shape (2 * n_ids * per_id, dim)
        Unit-norm rows, ordered by modality, then identity, then repeat.
    ids : ndarray of int64, shape (2 * n_ids * per_id,)
        Identity of each row.
    modalities : ndarray of int64, shape (2 * n_ids * per_id,)
        0 for the first half of the rows, 1 for the second.

    Raises
    ------
    InputError
        A count below 1, a negative or non-finite ``gap`` or ``noise``, or
        ``dim`` below 3.

    See Also
    --------
    make_biased : more modalities, cameras and a camera bias.

    Notes
    -----
    The draws (and the order of the floating-point operations) are those of
    the generator that ``benchmarks/bench_rerank.py`` and
    ``tests/retrieval/test_retrieval_auto.py`` used before it moved here, so their
    numbers are unchanged. :func:`make_biased` with the same arguments draws
    the same random numbers but scales the noise in another order, so its
    arrays may differ from these in the last bit.

    Examples
    --------
    >>> from xmrank.datasets import make_cross_modal
    >>> X, ids, modalities = make_cross_modal(20, 2, dim=16)
    >>> X.shape, int(modalities.sum())
    ((80, 16), 40)
    """
    n_ids = check_int(n_ids, "n_ids", minimum=1)
    per_id = check_int(per_id, "per_id", minimum=1)
    gap = check_real(gap, "gap", low=0.0)
    noise = check_real(noise, "noise", low=0.0)
    dim = check_int(dim, "dim", minimum=3)
    rng = np.random.default_rng(seed)

    centres, offsets = _centres_and_directions(rng, n_ids, dim, 2)
    ids = np.tile(np.repeat(np.arange(n_ids, dtype=np.int64), per_id), 2)
    mods = np.repeat(np.array([0, 1], dtype=np.int64), n_ids * per_id)
    X = centres[ids] + gap * offsets.T[mods] + rng.standard_normal((len(ids), dim)) * noise / np.sqrt(dim)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), ids, mods
