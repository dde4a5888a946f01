"""Small data sets shipped with xmrank: real CLIP image/caption features and a synthetic biased set.

load_clip_pairs
    500 COCO val2017 images and their captions embedded by CLIP ViT-B/16
    (1000 x 512), from the "Mind the Gap" repository (MIT, see
    ``LICENSE-Modality-Gap.txt`` and ``README.md`` next to this file).
make_biased
    A synthetic multi-modality set whose nearest neighbours are all of the
    row's own modality: the bias the modality-aware Jaccard distance fixes.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .._validation import check_int, check_real

__all__ = ["load_clip_pairs", "make_biased"]

_CLIP_FILE = "clip_coco_pairs.npz"


def load_clip_pairs():
    """Real cross-modal features: CLIP ViT-B/16 embeddings of 500 COCO images and 500 captions.

    Every image and its caption share an id; the modality gap of CLIP is large
    enough that every row's 20 nearest neighbours are of its own modality.

    Returns
    -------
    features : ndarray of float32, shape (1000, 512)
        Unit-norm embeddings (images first, then captions).
    ids : ndarray of int64, shape (1000,)
        Pair index: image ``i`` and caption ``i`` share id ``i``.
    modalities : ndarray of int64, shape (1000,)
        0 for an image, 1 for a caption.

    Notes
    -----
    From github.com/Weixin-Liang/Modality-Gap (commit 8e20cb2, MIT licence),
    W. Liang et al., "Mind the Gap: Understanding the Modality Gap in
    Multi-modal Contrastive Representation Learning", NeurIPS 2022.
    """
    ref = resources.files(__name__).joinpath(_CLIP_FILE)
    with resources.as_file(ref) as path, np.load(path) as npz:
        features = np.ascontiguousarray(npz["features"], dtype=np.float32)
        ids = npz["ids"].astype(np.int64)
        modalities = npz["modalities"].astype(np.int64)
    return features, ids, modalities


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
    modalities : ndarray of int64, shape (n_rows,)
    cameras : ndarray of int64, shape (n_rows,)
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

    centres = rng.standard_normal((n_ids, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Orthonormal offset directions: modalities first, then cameras.
    basis, _ = np.linalg.qr(rng.standard_normal((dim, n_offsets)))
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
