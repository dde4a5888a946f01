"""Drop-in replacements for the Jaccard functions that ReID trainers paste in.

Swap one import line and get the same matrix, faster and without the dense
intermediates::

    # from utils.faiss_rerank import compute_jaccard_distance
    from xmrank.compat import compute_jaccard_distance

Both functions accept numpy arrays and torch tensors (CPU or CUDA; torch is
never imported unless a tensor is passed) and return a dense N x N numpy
array, as the originals do. The search-engine arguments of the originals
(``search_option`` 0-3: faiss GPU/CPU variants) only choose where the exact
search runs; xmrank always runs an exact search, so they give the same result.
"""

from __future__ import annotations

import logging

import numpy as np

from ._validation import InputError, check_features, check_int, check_label_values, plain
from .jaccard import jaccard_distance

logger = logging.getLogger("xmrank")

__all__ = ["compute_jaccard_distance", "compute_jaccard_distance_xmodal"]


def _finish(D: np.ndarray, use_float16: bool) -> np.ndarray:
    return D.astype(np.float16) if use_float16 else D


def compute_jaccard_distance(target_features, k1=20, k2=6, print_flag=True, search_option=0, use_float16=False):
    """cluster-contrast's ``compute_jaccard_distance``, same signature and result.

    Parameters
    ----------
    target_features : ndarray or torch.Tensor, shape (N, d)
    k1, k2 : int, default=20, 6
    print_flag : bool, default=True
        Logged at INFO level instead of printed.
    search_option : int, default=0
        Accepted for compatibility; the search is always exact.
    use_float16 : bool, default=False
        Return float16, as the original's matrices are then.

    Returns
    -------
    jaccard_dist : ndarray of shape (N, N)
    """
    check_int(search_option, "search_option", minimum=0)
    D = jaccard_distance(target_features, method="vanilla", k1=k1, k2=k2, dense=True, progress=False)
    D = _finish(D, use_float16)
    if print_flag:
        logger.info("Jaccard distance computed for %d rows (xmrank, vanilla)", D.shape[0])
    return D


def compute_jaccard_distance_xmodal(target_features, k1=20, k2=6, print_flag=True, search_option=0,
                                    use_float16=False, all_file_name=None, rgbNum=0):
    """BMIL's ``compute_jaccard_distance_xmodal``, same signature and result.

    Parameters
    ----------
    target_features : ndarray or torch.Tensor, shape (N, d)
        The first ``rgbNum`` rows are visible, the rest infrared.
    k1, k2 : int, default=20, 6
    print_flag : bool, default=True
    search_option : int, default=0
        ``>= 4``: the modality-aware Jaccard (``k1 // 2`` neighbours per
        modality, balanced expansion), modalities from ``rgbNum``.
        ``0-3``: global neighbour lists with modality-balanced query
        expansion only, modalities read from ``all_file_name`` (names
        containing ``"ir_modify"`` are infrared, ``"rgb_modify"`` visible).
    use_float16 : bool, default=False
    all_file_name : sequence of str, default=None
        Needed when ``search_option < 4``.
    rgbNum : int, default=0
        Number of visible rows (they come first); needed when ``search_option >= 4``.

    Returns
    -------
    jaccard_dist : ndarray of shape (N, N)
    """
    X = check_features(target_features, "target_features")
    n = X.shape[0]
    search_option = check_int(search_option, "search_option", minimum=0)
    if search_option >= 4:
        rgb = check_int(rgbNum, "rgbNum", minimum=1, maximum=n - 1)
        modalities = np.repeat([0, 1], [rgb, n - rgb])
        D = jaccard_distance(X, modalities=modalities, method="modality", k1=k1, k2=k2, dense=True, progress=False)
    else:
        if all_file_name is None or isinstance(all_file_name, (str, bytes)) or np.ndim(all_file_name) != 1:
            raise InputError(
                f"all_file_name must list one file name per row ({n}) when search_option < 4; "
                f"got {'None' if all_file_name is None else type(all_file_name).__name__}."
            )
        names = check_label_values(all_file_name, "all_file_name", n, what="row", word="file name")
        if names.dtype.kind != "U":
            raise InputError(f"all_file_name must hold file names (strings); got dtype {names.dtype}.")
        is_ir = np.char.find(names, "ir_modify") >= 0
        is_rgb = np.char.find(names, "rgb_modify") >= 0
        if not np.all(is_ir ^ is_rgb):
            bad = int(np.flatnonzero(~(is_ir ^ is_rgb))[0])
            raise InputError(
                f"all_file_name[{bad}] = {plain(names[bad])} contains neither 'ir_modify' nor 'rgb_modify' (or both)."
            )
        D = jaccard_distance(X, modalities=is_ir.astype(np.int64), method="modality-qe", k1=k1, k2=k2, dense=True,
                             progress=False)
    if print_flag:
        logger.info("Jaccard distance computed for %d rows (xmrank, cross-modal)", n)
    return _finish(D, use_float16)
