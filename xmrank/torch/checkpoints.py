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

import numbers
import os

from .._atomic import atomic_write
from .._validation import InputError
from ._require import torch
from .runlog import plain

__all__ = ["CHECKPOINT", "STAGE_MODELS", "FORMAT", "save", "checkpoint_payload", "model_payload",
           "read_run_checkpoint", "check_bookkeeping", "restore_state", "load_trained_model"]

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


#: The evaluations a run's metrics may hold, in the order they are made.
_EVALUATIONS = ("untrained", "stage1", "final")
#: Scores of one evaluation (fractions) and per-epoch numbers: each a real number (or None where unknown).
_SCORES = ("mAP", "mINP", "rank1", "rank5", "rank10", "rank20", "time_s")
_EPOCH_NUMBERS = ("lr", "loss_intra", "loss_global", "time_features_s", "time_s")


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_bookkeeping(state: dict, path, epochs: dict) -> None:
    """Check a training checkpoint's position and metrics before a resume touches anything.

    Parameters
    ----------
    state : dict
        What :func:`read_run_checkpoint` returned.
    path : str
        The checkpoint, for messages.
    epochs : dict
        ``{1: epochs_stage1, 2: epochs_stage2}`` of the run's configuration.

    Raises
    ------
    xmrank.InputError
        One line naming the first bad field: a stage that is not 1, 2 or 3
        (3: finished; a bool is no stage), an epoch outside 0 to that
        stage's epochs, optimiser or scheduler state that is not a dict,
        metrics whose scores, epochs or evaluation list are not what a run
        writes (numbers where numbers belong).
    """
    stage, epoch = state["stage"], state["epoch"]
    if isinstance(stage, bool) or stage not in (1, 2, 3):
        raise InputError(f"checkpoint {path}: stage {stage!r} is not 1, 2 or 3 (3: a finished run).")
    limit = epochs.get(stage, 0)
    if isinstance(epoch, bool) or not 0 <= epoch <= limit:
        raise InputError(f"checkpoint {path}: epoch {epoch!r} is outside 0 to {limit}, the epochs of stage {stage}.")
    for key in ("optimizer", "scheduler", "scaler"):
        if key in state and not isinstance(state[key], dict):
            raise InputError(f"checkpoint {path}: its {key} state is a {type(state[key]).__name__}, not a dict.")
    if "optimizer" in state and "scheduler" not in state:
        raise InputError(f"checkpoint {path}: it holds optimizer state without scheduler state.")
    metrics = state["metrics"]
    where = f"checkpoint {path}: its metrics"
    if not isinstance(metrics.get("epochs"), list):
        raise InputError(f"{where} hold no list of epochs; not an xmrank training checkpoint.")
    for i, rec in enumerate(metrics["epochs"]):
        if not isinstance(rec, dict):
            raise InputError(f"{where}: epoch record {i} is a {type(rec).__name__}, not a dict.")
        for key in ("stage", "epoch"):
            if key in rec and (isinstance(rec[key], bool) or not isinstance(rec[key], int)):
                raise InputError(f"{where}: epoch record {i} has {key} {rec[key]!r}, not an integer.")
        for key in _EPOCH_NUMBERS:
            if rec.get(key) is not None and not _number(rec[key]):
                raise InputError(f"{where}: epoch record {i} has {key} {rec[key]!r}, not a number.")
    for name in _EVALUATIONS:
        res = metrics.get(name)
        if res is None:
            continue
        if not isinstance(res, dict):
            raise InputError(f"{where}: {name!r} is a {type(res).__name__}, not a dict of scores.")
        for key in _SCORES:
            if res.get(key) is not None and not _number(res[key]):
                raise InputError(f"{where}: {name} {key} is {res[key]!r}, not a number.")
    if "time_s" in metrics and not _number(metrics["time_s"]):
        raise InputError(f"{where}: time_s is {metrics['time_s']!r}, not a number.")
    evaluated = metrics.get("evaluated", [])
    if not isinstance(evaluated, list) or any(e not in _EVALUATIONS for e in evaluated):
        raise InputError(f"{where}: 'evaluated' must list some of {', '.join(_EVALUATIONS)}; got {evaluated!r:.80}.")


def restore_state(load, state: dict, key: str, path) -> None:
    """``load(state[key])`` (a ``load_state_dict``); a state that does not fit this run is one InputError line."""
    try:
        load(state[key])
    except Exception as exc:  # torch raises RuntimeError, ValueError, KeyError, TypeError, IndexError, ...
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), exc.__class__.__name__)
        raise InputError(f"checkpoint {path}: its {key} state does not fit this run ({first[:160]}).") from None


def check_optimizer_state(opt, sched, path) -> None:
    """After loading: every per-parameter tensor has its parameter's shape, the step counts and the
    scheduler's position are numbers (a state that loads can still fail at the first step)."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    if value.dim() > 0 and tuple(value.shape) != tuple(p.shape):
                        raise InputError(f"checkpoint {path}: its optimizer state {key!r} has shape "
                                         f"{tuple(value.shape)} for a parameter of shape {tuple(p.shape)}.")
                    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                        raise InputError(f"checkpoint {path}: its optimizer state {key!r} holds NaN or infinity.")
                elif not _number(value):
                    raise InputError(f"checkpoint {path}: its optimizer state {key!r} is {value!r:.60}, not a number.")
        for key in ("lr", "weight_decay"):
            if key in group and not (_number(group[key]) and group[key] >= 0):
                raise InputError(f"checkpoint {path}: its optimizer {key} is {group[key]!r:.60}, not a number >= 0.")
    last = getattr(sched, "last_epoch", 0)
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise InputError(f"checkpoint {path}: its scheduler position (last_epoch) is {last!r:.60}, not an epoch.")
    for key in ("step_size", "gamma"):
        if hasattr(sched, key) and not _number(getattr(sched, key)):
            raise InputError(f"checkpoint {path}: its scheduler {key} is {getattr(sched, key)!r:.60}, not a number.")


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
