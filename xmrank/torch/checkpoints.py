"""A run's files: the resumable checkpoint and the saved networks.

``RUN/checkpoint.pt`` holds the network, the optimiser and scheduler state,
the configuration (:meth:`TrainConfig.to_dict`), the metrics so far and the
position (stage, epoch), all as tensors and plain Python containers, numbers
and strings. It is written after every epoch and at every stage boundary,
through a temporary file beside it and ``os.replace`` (:mod:`xmrank._atomic`), so an interrupted
write never leaves a broken checkpoint. ``RUN/stage1_model.pt`` and
``RUN/model.pt`` hold the network and the configuration at the end of each
stage.

Every file is read with ``torch.load(..., weights_only=True)``: nothing but
tensors and plain containers is ever unpickled, and a file holding anything
else is refused with an :class:`~xmrank.InputError`.
"""

from __future__ import annotations

import os

from .._atomic import atomic_write
from .._validation import InputError
from ._require import torch
from .runlog import plain

__all__ = ["CHECKPOINT", "STAGE_MODELS", "FORMAT", "save", "checkpoint_payload", "model_payload",
           "read_run_checkpoint", "load_trained_model"]

CHECKPOINT = "checkpoint.pt"
#: the network saved at the end of each stage
STAGE_MODELS = {1: "stage1_model.pt", 2: "model.pt"}
#: version of the checkpoint layout (1: before configs and metrics were stored as plain types)
FORMAT = 2
_REQUIRED = {"format": int, "stage": int, "epoch": int, "model": dict, "metrics": dict, "config": dict,
             "dataset": str, "root": str}


def save(path, payload):
    """``torch.save`` to a temporary file beside ``path``, flushed to disk, then ``os.replace``.

    Raises
    ------
    OSError
        When the file cannot be written whole (a file-size limit, a full
        disk: see :func:`xmrank._atomic.atomic_write`); ``path`` is untouched.
    """
    atomic_write(path, lambda fh: torch.save(payload, fh))


def checkpoint_payload(*, stage: int, epoch: int, model, metrics: dict, cfg, dataset: str, root,
                       optimizer=None, scheduler=None, scaler=None) -> dict:
    """The checkpoint of a run after ``epoch`` epochs of ``stage`` (3 = finished), in plain types.

    ``optimizer`` and ``scheduler`` (mid-stage) and ``scaler`` (float16
    mixed precision's ``GradScaler``) are stored when given.
    """
    out = {"format": FORMAT, "stage": int(stage), "epoch": int(epoch), "model": model.state_dict(),
           "metrics": plain(metrics), "config": plain(cfg.to_dict()), "dataset": str(dataset),
           "root": os.fspath(root)}
    if optimizer is not None:
        out["optimizer"] = optimizer.state_dict()
        out["scheduler"] = plain(scheduler.state_dict())
    if scaler is not None:
        out["scaler"] = plain(scaler.state_dict())
    return out


def model_payload(model, cfg, stage: int) -> dict:
    """What ``stage1_model.pt`` / ``model.pt`` hold: weights, configuration, stage."""
    return {"model": model.state_dict(), "config": plain(cfg.to_dict()), "stage": int(stage)}


def read_run_checkpoint(path) -> dict:
    """Read ``RUN/checkpoint.pt`` with ``weights_only=True`` and check its layout.

    Raises
    ------
    xmrank.InputError
        When the file is missing, cannot be read with ``weights_only=True``,
        or is not an xmrank training checkpoint.
    """
    from .loading import read_checkpoint

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"cannot resume: {path} not found.")
    state = read_checkpoint(path, what="checkpoint")
    if not isinstance(state, dict):
        raise InputError(f"checkpoint {path} holds a {type(state).__name__}, not an xmrank training checkpoint.")
    for key, kind in _REQUIRED.items():
        if not isinstance(state.get(key), kind):
            raise InputError(f"checkpoint {path} is not an xmrank training checkpoint: no {kind.__name__} {key!r}.")
    if state["format"] != FORMAT:
        raise InputError(f"checkpoint {path} has format {state['format']}: a run from an earlier xmrank, trained with "
                         f"another recipe, cannot be resumed by this one (format {FORMAT}); its network still loads "
                         f"with xmrank.torch.load_model.")
    return state


def load_trained_model(path, *, device="cpu"):
    """Rebuild the network saved in ``model.pt`` / ``stage1_model.pt`` / ``checkpoint.pt`` (evaluation mode).

    Reads the file with ``weights_only=True`` through
    :func:`xmrank.torch.loading.load_model`, which also reads checkpoints of
    the published code.

    Returns
    -------
    model : DualStreamReID
    config : TrainConfig
    """
    from .loading import load_model

    return load_model(path, device=device, return_config=True)
