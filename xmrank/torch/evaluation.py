"""Glue between a trained network and xmrank's retrieval protocols (:mod:`xmrank.retrieval.protocols`).

:func:`evaluate_model` embeds the test images with flip-averaged features and
runs the SYSU-MM01 multi-trial protocol (also for the synthetic set, which
has SYSU-MM01's layout) or the RegDB protocol of the trained trial. The
result is used for reporting only: the trainer never picks weights with it.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_option
from ..retrieval.protocols import regdb_evaluation, sysu_evaluation
from .features import extract_features

__all__ = ["evaluate_model", "summarise"]


def summarise(result: dict) -> dict:
    """Flatten a protocol result's mean into ``mAP``, ``mINP``, ``rank1/5/10/20`` (fractions in [0, 1])."""
    mean = result["mean"]
    cmc = np.asarray(mean["cmc"], dtype=float)
    out = {"mAP": float(mean["mAP"]), "mINP": float(mean["mINP"])}
    for k in (1, 5, 10, 20):
        if k <= len(cmc):
            out[f"rank{k}"] = float(cmc[k - 1])
    out["n_trials"] = int(mean["n_trials"])
    return out


def evaluate_model(model, dataset: str, root, *, height: int, width: int, device="cpu", batch_size: int = 128,
                   loader=None, sysu_mode: str = "all", trials: int = 10, regdb_trial: int = 1,
                   regdb_direction: str = "v2t", progress=None, num_workers: int = -1, rerank=None,
                   feature_cache=None, details: bool = False, interpolation: str = "lanczos"):
    """Cross-modal retrieval scores of ``model`` on a data set's test split.

    Parameters
    ----------
    model : DualStreamReID
    dataset : {"sysu", "synthetic", "regdb", "folder"}
        ``"folder"`` has no labels: the result is None.
    root : str or path-like
    height, width : int
        Input size.
    device, batch_size, loader
        See :func:`xmrank.torch.features.extract_features`.
    sysu_mode : {"all", "indoor"}, default="all"
    trials : int, default=10
        SYSU-MM01 gallery draws (trials ``0..trials-1``).
    regdb_trial : int, default=1
        The RegDB split the model was trained on (its test lists are used).
    regdb_direction : {"v2t", "t2v"}, default="v2t"
    progress : bool, default=None
    num_workers : int, default=-1
        DataLoader workers of the feature extraction (-1: ``min(4, CPU cores)``).
    rerank : dict, default=None
        Keyword arguments of :func:`xmrank.rerank`: score re-ranked
        distances (see :func:`xmrank.retrieval.sysu_evaluation`).
    feature_cache : dict, default=None
        ``image path -> feature row``, read and filled: a second call with
        the same dict and the same model (say, with ``rerank``) embeds no
        image twice.
    details : bool, default=False
        Also return the protocol's full result (every trial).
    interpolation : {"lanczos", "bicubic", "bilinear"}, default="lanczos"
        Resize of the test images: Lanczos, as the published test code
        (PIL's ``Image.ANTIALIAS``).

    Returns
    -------
    summary : dict or None
        ``mAP``, ``mINP``, ``rank1``, ``rank5``, ``rank10``, ``rank20`` (means
        over trials, fractions in [0, 1]), ``n_trials``, ``protocol``.
    result : dict
        Only with ``details=True``: the result of
        :func:`~xmrank.retrieval.sysu_evaluation` or
        :func:`~xmrank.retrieval.regdb_evaluation`.
    """
    check_option(dataset, "dataset", ("sysu", "synthetic", "regdb", "folder"))
    if dataset == "folder":
        return (None, None) if details else None

    def extract(records):
        return extract_features(model, records, height=height, width=width, batch_size=batch_size, device=device,
                                loader=loader, num_workers=num_workers, progress=progress, desc="test features",
                                interpolation=interpolation)

    def embed(records):
        if feature_cache is None:
            return extract(records)
        missing = list({r.path: r for r in records if r.path not in feature_cache}.values())
        if missing:
            feature_cache.update(zip((r.path for r in missing), extract(missing)))
        return np.stack([feature_cache[r.path] for r in records])

    if dataset == "regdb":
        result = regdb_evaluation(embed, root, trials=[regdb_trial], direction=regdb_direction, rerank=rerank,
                                  progress=progress)
        out = summarise(result)
        out["protocol"] = f"regdb-{regdb_direction}-trial{regdb_trial}"
    else:
        result = sysu_evaluation(embed, root, mode=sysu_mode, trials=range(trials), rerank=rerank, progress=progress)
        out = summarise(result)
        out["protocol"] = f"sysu-{sysu_mode}-search"
    return (out, result) if details else out
