"""A run's files and its resume state: what is saved, validated and restored.

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

Resume, in the order :func:`xmrank.torch.train` runs it, before anything
under ``RUN/`` is written:

- :func:`read_run_checkpoint`: the file's layout;
- :func:`resume_settings`: the run's configuration, data set and root
  against the ones given (only :data:`RUN_FIELDS` may change), and its
  bookkeeping (:func:`check_bookkeeping`);
- :func:`check_resume_state`: its weights, optimiser and scheduler state
  loaded into a fresh network and optimiser (shapes, numbers).

Then :class:`RunState` holds the run's position and metrics while the
trainer runs: it writes ``checkpoint.pt`` and ``metrics.json`` after every
epoch and stage, the stage models, and restores the optimiser, scheduler and
gradient scaler state of a resumed stage (:meth:`RunState.restore`).
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import time

from .._atomic import atomic_write
from .._validation import InputError
from ._require import torch
from .config import TrainConfig, config_from_dict
from .runlog import atomic_json, plain
from .steps import build_optimizer

logger = logging.getLogger(__name__)

__all__ = ["CHECKPOINT", "STAGE_MODELS", "METRICS", "MODEL_SELECTION", "RUN_FIELDS", "FORMAT", "save",
           "checkpoint_payload", "model_payload", "check_new_run", "read_run_checkpoint", "resume_settings",
           "check_bookkeeping", "check_resume_state", "check_optimizer_state", "restore_state", "RunState", "load_trained_model"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
#: the network saved at the end of each stage
STAGE_MODELS = {1: "stage1_model.pt", 2: "model.pt"}
#: the evaluation made at the end of each stage
STAGE_EVALUATIONS = {1: "stage1", 2: "final"}
MODEL_SELECTION = (
    "last epoch of each stage (stage 2 starts from stage 1's last epoch); "
    "test-set scores are reported only and never used to choose weights"
)
#: Config fields a resumed run may change. They do not change what is trained, up to float rounding
#: (augmentations are seeded per image, whatever the number of workers; the exact kNN engines give identical
#: lists on any device), with one exception: ``cache_images`` keeps images resized bicubic in memory, so
#: turning it on or off changes the test images' resize (Lanczos without it) and so the reported scores.
RUN_FIELDS = ("device", "threads", "num_workers", "cache_images", "feature_batch_size", "cluster_device")
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


def check_new_run(output, name: str = "output") -> None:
    """Refuse a new run in ``output`` where a run already lies (its ``checkpoint.pt``); ``name`` is the argument.

    Raises
    ------
    xmrank.InputError
        Naming ``name`` and pointing to ``resume``.
    """
    if os.path.isfile(os.path.join(os.fspath(output), CHECKPOINT)):
        raise InputError(f"{name} {output} already holds a run ({CHECKPOINT}); pass --resume or choose another "
                         "folder.")


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


def resume_settings(checkpoint: dict, path, *, config=None, dataset=None, root=None, overrides=None):
    """The configuration, data set and root a resumed run continues with, checked against the ones given.

    Parameters
    ----------
    checkpoint : dict
        What :func:`read_run_checkpoint` returned.
    path : str
        The checkpoint, for messages.
    config : TrainConfig, default=None
        None, or one that agrees with the saved configuration outside
        :data:`RUN_FIELDS`.
    dataset, root : default=None
        None (the checkpoint's), or the checkpoint's own.
    overrides : dict, default=None
        Only :data:`RUN_FIELDS` may be named (applied by the caller).

    Returns
    -------
    config : TrainConfig
        The saved configuration (not yet validated: the overrides come first).
    dataset : str
    root : str

    Raises
    ------
    xmrank.InputError
        Naming the first field, data set or folder that differs, or the
        first bad bookkeeping field (:func:`check_bookkeeping`).
    """
    fixed = sorted(k for k in (overrides or {}) if str(k).replace("-", "_") not in RUN_FIELDS)
    if fixed:
        raise InputError(f"cannot change {fixed[0]} when resuming: a resumed run keeps its configuration "
                         f"(only {', '.join(RUN_FIELDS)} may change).")
    saved = config_from_dict(checkpoint["config"], check_backends=False)  # checked after the overrides
    if isinstance(config, TrainConfig):
        # the recipe is the run's: a config given with resume=True must agree with it outside RUN_FIELDS
        mine, theirs = config.to_dict(), saved.to_dict()
        differ = [k for k in theirs if k not in RUN_FIELDS and mine.get(k) != theirs[k]]
        if differ:
            raise InputError(f"cannot resume: config {differ[0]} is {mine.get(differ[0])!r}, the run was trained "
                             f"with {theirs[differ[0]]!r} (a resumed run keeps its recipe; only "
                             f"{', '.join(RUN_FIELDS)} may change).")
    elif config is not None:
        raise InputError("config must be a TrainConfig or None with resume=True (the run keeps its own).")
    if dataset is not None and dataset != checkpoint["dataset"]:
        raise InputError(f"cannot resume: dataset is {dataset!r}, the run was trained on {checkpoint['dataset']!r}.")
    check_bookkeeping(checkpoint, path, {1: saved.epochs_stage1, 2: saved.epochs_stage2})
    if root is None:
        root = checkpoint["root"]
    elif os.path.realpath(os.fspath(root)) != os.path.realpath(checkpoint["root"]):
        raise InputError(f"cannot resume: root is {os.fspath(root)}, the run was trained on the data set in "
                         f"{checkpoint['root']} (a resumed run reads the same data; leave --root out).")
    return saved, checkpoint["dataset"], root


def check_resume_state(model, cfg, checkpoint: dict, path) -> None:
    """Load the checkpoint's weights into ``model`` and its optimiser and scheduler state into fresh ones.

    Everything is checked (keys, shapes, finite numbers), so that a
    checkpoint that cannot continue is refused before the run folder is
    touched. ``model`` keeps the weights; the optimiser built here is
    dropped (:meth:`RunState.restore` loads the state again into the
    stage's own).
    """
    from .loading import load_weights

    load_weights(model, checkpoint["model"], path)  # keys, shapes, and dense finite real weights
    if checkpoint["stage"] in (1, 2) and "optimizer" in checkpoint:
        opt, sched = build_optimizer(model, cfg)
        restore_state(opt.load_state_dict, checkpoint, "optimizer", path)
        restore_state(sched.load_state_dict, checkpoint, "scheduler", path)
        check_optimizer_state(opt, sched, path)


class RunState:
    """Where a run stands (stage, epoch), its metrics, and the files that record them.

    Parameters
    ----------
    output : str
        The run folder.
    cfg : TrainConfig
    dataset : str
    root : str
    checkpoint : dict, default=None
        A resumed run's checkpoint (checked: :func:`resume_settings`,
        :func:`check_resume_state`); None starts a new run at stage 1,
        epoch 0 with empty metrics.

    Attributes
    ----------
    stage : int
        1, 2, or 3 once both stages finished.
    epoch : int
        Epochs of ``stage`` done.
    metrics : dict
        What ``metrics.json`` holds (see :func:`xmrank.torch.train`).
    """

    def __init__(self, output, cfg, dataset: str, root, checkpoint: dict | None = None):
        self.output = os.fspath(output)
        self.cfg, self.dataset, self.root = cfg, dataset, os.fspath(root)
        self.checkpoint_path = os.path.join(self.output, CHECKPOINT)
        self.metrics_path = os.path.join(self.output, METRICS)
        self._resume = checkpoint
        if checkpoint is None:
            self.metrics = {"dataset": dataset, "root": self.root, "config": cfg.to_dict(),
                            "model_selection": MODEL_SELECTION, "untrained": None, "stage1": None, "final": None,
                            "epochs": [], "complete": False}
            self.stage, self.epoch = 1, 0
        else:
            self.metrics = checkpoint["metrics"]
            self.stage, self.epoch = checkpoint["stage"], checkpoint["epoch"]
        self._t_start = time.perf_counter()
        self._base_time = self.metrics.get("time_s", 0.0)

    def log_start(self) -> None:
        """Say in ``train.log`` what starts: the configuration of a new run, or where a resumed one continues."""
        if self._resume is None:
            logging.getLogger("xmrank").info("config: %s", json.dumps(self.cfg.to_dict()))
        elif self.stage > 2:
            logger.info("%s holds a finished run; nothing to resume", self.checkpoint_path)
        else:
            logger.info("resuming from %s: stage %d, %d epochs done", self.checkpoint_path, self.stage, self.epoch)

    def evaluated(self, name: str) -> bool:
        """Whether the evaluation ``name`` (``"untrained"``, ``"stage1"``, ``"final"``) was made."""
        return name in self.metrics.get("evaluated", [])

    def add_evaluation(self, name: str, result) -> None:
        """Record an evaluation (None for a data set without test labels)."""
        self.metrics[name] = result
        self.metrics.setdefault("evaluated", []).append(name)

    def restore(self, opt, sched, scaler=None) -> None:
        """Load a resumed stage's optimiser, scheduler and scaler state into this stage's fresh ones (once)."""
        state, self._resume = self._resume, None
        if state is None or state["stage"] != self.stage or "optimizer" not in state:
            return
        restore_state(opt.load_state_dict, state, "optimizer", self.checkpoint_path)
        restore_state(sched.load_state_dict, state, "scheduler", self.checkpoint_path)
        if scaler is not None and "scaler" in state:
            restore_state(scaler.load_state_dict, state, "scaler", self.checkpoint_path)

    def write_metrics(self, *, stamp: bool = True) -> None:
        """Write ``metrics.json``; ``stamp`` first sets its ``time_s`` (this call's time plus earlier calls')."""
        if stamp:
            self._stamp()
        atomic_json(self.metrics_path, self.metrics)

    def _stamp(self) -> None:
        self.metrics["time_s"] = round(self._base_time + time.perf_counter() - self._t_start, 1)

    def save_checkpoint(self, model, opt=None, sched=None, scaler=None) -> None:
        """Write ``checkpoint.pt`` at the current position (optimiser and scheduler: mid-stage only)."""
        save(self.checkpoint_path, checkpoint_payload(stage=self.stage, epoch=self.epoch, model=model,
                                                      metrics=self.metrics, cfg=self.cfg, dataset=self.dataset,
                                                      root=self.root, optimizer=opt, scheduler=sched, scaler=scaler))

    def end_epoch(self, record: dict, model, opt, sched, scaler=None) -> None:
        """One more epoch done: its record into the metrics, then ``checkpoint.pt`` and ``metrics.json``."""
        self.metrics["epochs"].append(record)
        self._stamp()
        self.epoch += 1
        self.save_checkpoint(model, opt, sched, scaler)
        self.write_metrics(stamp=False)

    def save_stage_model(self, model) -> None:
        """Write this stage's network (``stage1_model.pt`` or ``model.pt``)."""
        save(os.path.join(self.output, STAGE_MODELS[self.stage]), model_payload(model, self.cfg, self.stage))

    def next_stage(self, model, scaler=None) -> None:
        """Move to the next stage's epoch 0 (3: finished) and record it, so a resume starts there."""
        self.stage, self.epoch = self.stage + 1, 0
        if self.stage > 2:
            self.metrics["complete"] = True
            self.write_metrics()
            self.save_checkpoint(model, scaler=scaler)
        else:  # the next stage begins with a fresh optimiser: no optimiser state in this checkpoint
            self.save_checkpoint(model, scaler=scaler)
            self.write_metrics(stamp=False)


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
