"""Load a trained network: an xmrank run file or a checkpoint of the published BMIL code.

:func:`load_model` reads either

- an xmrank run file (``model.pt``, ``stage1_model.pt``, ``checkpoint.pt``):
  a dict with the network's state dict under ``"model"`` and the run's
  :class:`~xmrank.torch.config.TrainConfig` under ``"config"``; or
- a checkpoint saved by the published BMIL code (``model_best.pth.tar``,
  ``checkpoint.pth.tar``): ``{"state_dict": ..., "epoch": ..., ...}`` or a bare
  state dict, with or without DataParallel's ``module.`` prefixes. Its 394
  tensors that the forward uses map 1:1 by name onto
  :class:`~xmrank.torch.model.DualStreamReID` (see :func:`bmil_key_map`); the
  other keys (the unused layer1-4 copies inside ``visible_module`` /
  ``thermal_module``, ``base_resnet.base.conv1/bn1``, ``classifier.weight``)
  are ignored.

Files are always read with ``torch.load(..., weights_only=True)``: tensors,
plain containers and numeric numpy scalars only, never arbitrary pickled
objects.
"""

from __future__ import annotations

import logging
import os
import re

from .._validation import InputError
from ._require import torch
from .config import TrainConfig, config_from_dict
from .device import torch_device
from .model import NON_LOCAL_WIDTHS, DualStreamReID, NonLocal

logger = logging.getLogger(__name__)

__all__ = ["load_model", "load_weights", "bmil_key_map", "read_checkpoint"]

#: BMIL checkpoint keys that its forward never uses.
_BMIL_UNUSED = re.compile(
    r"^(?:(?:visible_module\.visible|thermal_module\.thermal)\.(?:layer[1-4]|fc)\."
    r"|base_resnet\.base\.(?:conv1|bn1|fc)\."
    r"|classifier\.)"
)
#: Inside a non-local block: BMIL name -> xmrank name.
_NL_NAMES = {"g.0.": "g.", "theta.": "theta.", "phi.": "phi.", "W.0.": "out.0.", "W.1.": "out.1."}
_STEM_NAMES = {"0.": "conv1.", "1.": "bn1."}
#: TrainConfig fields that shape the network.
_NETWORK_FIELDS = ("arch", "non_local", "non_local_width", "gem_p", "gem_learnable", "last_stride")


def _numpy_safe_globals():
    """Numeric numpy scalars and their dtypes (BMIL stores ``best_mAP`` as a numpy float64)."""
    import numpy as np

    try:
        scalar = np._core.multiarray.scalar
    except AttributeError:  # numpy < 2
        scalar = np.core.multiarray.scalar
    out = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
    for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "Int16DType",
                 "Int8DType", "UInt8DType", "BoolDType"):
        kind = getattr(getattr(np, "dtypes", None), name, None)
        if kind is not None:
            out.append(kind)
    return out


def _path(path, what: str = "model file") -> str:
    """``path`` as a string, or an InputError naming what was given instead (None, a number, a NUL byte)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise InputError(f"the {what} path must be a str or path-like; got {type(path).__name__}.") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path or "\0" in path:
        raise InputError(f"the {what} path must name a file; got {path!r}.")
    return path


def read_checkpoint(path, *, what: str = "model file"):
    """Read a ``torch.save`` file with ``weights_only=True`` (no arbitrary objects).

    Parameters
    ----------
    path : str or path-like
    what : str, default="model file"
        How error messages name the file.

    Returns
    -------
    state : object
        What the file holds: tensors, plain containers, numbers, strings.

    Raises
    ------
    xmrank.InputError
        When the file is missing, or cannot be read that way (not a torch
        file, or it holds other pickled objects, which are never loaded).
    """
    path = _path(path, what)
    if not os.path.isfile(path):
        raise InputError(f"{what} {path} not found.")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip / pickle), EOFError...
        detail = ""
        for line in str(exc).splitlines():
            if "Unsupported global" in line or "Unsupported operand" in line:
                detail = line.strip()
                break
        if not detail:  # torch's own advice (re-run with weights_only=False) is exactly what must not be done
            detail = next((ln.strip() for ln in str(exc).splitlines()
                           if ln.strip() and "weights_only" not in ln), exc.__class__.__name__)
        raise InputError(
            f"{what} {path} cannot be loaded: it is read with weights_only=True, as data only (tensors, plain "
            f"containers, numbers), and it holds something else ({detail[:200]})."
        ) from None


def bmil_key_map(model: DualStreamReID) -> dict:
    """The published checkpoint's key of every tensor in ``model``'s state dict.

    Parameters
    ----------
    model : DualStreamReID

    Returns
    -------
    mapping : dict
        ``{xmrank key: BMIL key}``, e.g. ``"stems.0.0.weight" ->
        "visible_module.visible.conv1.weight"``, ``"body.1.3.g.weight" ->
        "NL_2.0.g.0.weight"``, ``"neck.weight" -> "bottleneck.weight"``. The
        GeM exponent (``pool.p``) has no BMIL key (its p is the constant 3).
    """
    prefixes = {}
    for m, name in ((0, "visible_module.visible."), (1, "thermal_module.thermal.")):
        for pos, bmil in _STEM_NAMES.items():
            prefixes[f"stems.{m}.{pos}"] = name + bmil
    for layer_index, layer in enumerate(model.body):
        n_block = n_nl = 0
        for pos, child in enumerate(layer.children()):
            if isinstance(child, NonLocal):
                prefixes[f"body.{layer_index}.{pos}."] = f"NL_{layer_index + 1}.{n_nl}."
                n_nl += 1
            else:
                prefixes[f"body.{layer_index}.{pos}."] = f"base_resnet.base.layer{layer_index + 1}.{n_block}."
                n_block += 1
    mapping = {}
    for key in model.state_dict():
        if key == "pool.p":
            continue
        if key.startswith("neck."):
            mapping[key] = "bottleneck." + key[len("neck."):]
            continue
        for prefix in sorted((p for p in prefixes if key.startswith(p)), key=len, reverse=True)[:1]:
            rest = key[len(prefix):]
            if prefixes[prefix].startswith("NL_"):
                inner = next(x for x in _NL_NAMES.values() if rest.startswith(x))
                bmil_inner = next(b for b, x in _NL_NAMES.items() if x == inner)
                rest = bmil_inner + rest[len(inner):]
            mapping[key] = prefixes[prefix] + rest
        if key not in mapping:  # pragma: no cover - every module of DualStreamReID is covered above
            raise InputError(f"no published-checkpoint name for model key {key}.")
    return mapping


def _bmil_config(state: dict, path: str) -> TrainConfig:
    """The network settings of a published checkpoint, read from its keys and shapes."""
    nl = [0, 0, 0, 0]
    for key in state:
        m = re.match(r"^NL_([1-4])\.(\d+)\.", key)
        if m:
            nl[int(m.group(1)) - 1] = max(nl[int(m.group(1)) - 1], int(m.group(2)) + 1)
    width = "one"
    g = state.get("NL_2.0.g.0.weight", state.get("NL_3.0.g.0.weight"))
    if g is not None and getattr(g, "ndim", 0) == 4:
        inter, channels = int(g.shape[0]), int(g.shape[1])
        width = next((w for w, f in NON_LOCAL_WIDTHS.items() if f(channels) == inter), None)
        if width is None:
            raise InputError(
                f"model file {path}: non-local embedding width {inter} for {channels} channels is not 1, C/2 or C."
            )
    if "base_resnet.base.layer1.0.conv3.weight" not in state:
        raise InputError(
            f"model file {path} lacks base_resnet.base.layer1.0.conv3.weight: not a published ResNet-50 checkpoint."
        )
    return config_from_dict({"arch": "resnet50", "non_local": nl, "non_local_width": width, "gem_p": 3.0,
                             "gem_learnable": False, "last_stride": 1})


def _is_bmil(state: dict) -> bool:
    return any(isinstance(k, str) and k.startswith(("base_resnet.", "visible_module.", "thermal_module."))
               for k in state)


def _bmil_state(model: DualStreamReID, state: dict, path: str) -> dict:
    """Rename a published state dict to ``model``'s keys; InputError on a missing or unexpected key."""
    mapping = bmil_key_map(model)
    wanted = set(mapping.values())
    for key in state:
        if key not in wanted and not _BMIL_UNUSED.match(key):
            raise InputError(f"model file {path} holds an unexpected key {key!r} for a published BMIL network.")
    out = {}
    for ours, theirs in mapping.items():
        if theirs not in state:
            raise InputError(f"model file {path} lacks the key {theirs!r} of a published BMIL network.")
        out[ours] = state[theirs]
    if "pool.p" in model.state_dict():
        out["pool.p"] = model.state_dict()["pool.p"].clone()
    ignored = len(state) - len(mapping)
    if ignored:
        logger.info("%s: ignored %d keys the forward does not use", path, ignored)
    return out


def load_weights(model, state: dict, path: str):
    """``model.load_state_dict(state)`` with one-line InputErrors: the first missing or unexpected key, the first
    bad shape, and weights that are not dense finite real tensors of the network's kind (NaN, complex, sparse,
    float8 and quantised weights are refused, never cast)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise InputError(f"model file {path} lacks the key {missing[0]!r} ({len(missing)} missing in all).")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise InputError(f"model file {path} holds an unexpected key {unexpected[0]!r} ({len(unexpected)} in all).")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"model file {path}: {key} is a {type(value).__name__}, not a tensor.")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise InputError(
                f"model file {path}: {key} has shape {tuple(value.shape)}, "
                f"the network expects {tuple(expected[key].shape)}."
            )
        _check_weight(value, expected[key], key, path)
    model.load_state_dict(state)


def _check_weight(value, like, key, path):
    """A weight load_state_dict copies without loss: a dense tensor of a real kind, finite where floating."""
    if value.layout != torch.strided:
        raise InputError(f"model file {path}: {key} is a {str(value.layout).replace('torch.', '')} tensor; "
                         "the network takes dense weights.")
    if value.is_complex():
        raise InputError(f"model file {path}: {key} holds complex numbers ({str(value.dtype).replace('torch.', '')}); "
                         "the network's weights are real.")
    if value.is_quantized or (value.is_floating_point() and value.element_size() == 1):
        raise InputError(f"model file {path}: {key} is a {str(value.dtype).replace('torch.', '')} tensor; "
                         "the network takes float32 weights.")
    if value.is_floating_point() != like.is_floating_point() and value.dtype != torch.bool:
        raise InputError(f"model file {path}: {key} is a {str(value.dtype).replace('torch.', '')} tensor, "
                         f"the network expects {str(like.dtype).replace('torch.', '')}.")
    if value.is_floating_point():
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise InputError(f"model file {path}: {key} holds {bad} NaN or infinite value(s); "
                             "the network's features would not be numbers.")


def load_model(path, *, device="cpu", return_config: bool = False):
    """Load a trained network from an xmrank run file or a published BMIL checkpoint.

    Parameters
    ----------
    path : str or path-like
        An xmrank ``model.pt`` / ``stage1_model.pt`` / ``checkpoint.pt``, or
        a checkpoint of the published code (``{"state_dict": ...}`` or a bare
        state dict, ``module.`` prefixes allowed).
    device : str or torch.device, default="cpu"
    return_config : bool, default=False
        Also return the configuration: the run's for an xmrank file; for a
        published checkpoint, the defaults (the ``paper`` preset) with the
        network settings read from the file (ResNet-50, the non-local
        layout and width of its keys, GeM p = 3 fixed, last stride 1).

    Returns
    -------
    model : DualStreamReID
        In evaluation mode on ``device``. ``model(images, modality)`` with a
        normalised float batch ``(n, 3, H, W)`` and modality 0 (visible) or 1
        (infrared) returns L2-normalised embeddings.
    config : TrainConfig
        Only with ``return_config=True``.

    Raises
    ------
    xmrank.InputError
        When the file is missing, is not loadable with
        ``torch.load(weights_only=True)`` (it is then never unpickled), or
        its keys or shapes do not fit the network (the message names the
        first missing or unexpected key).
    """
    path = _path(path)
    dev = torch_device(device)
    if not isinstance(return_config, bool):
        raise InputError(f"return_config must be True or False; got {return_config!r}.")
    state = read_checkpoint(path)
    if not isinstance(state, dict):
        raise InputError(f"model file {path} holds a {type(state).__name__}, not a dict of tensors.")
    if isinstance(state.get("model"), dict) and "config" in state:
        if not isinstance(state["config"], dict):
            kind = type(state["config"]).__name__
            raise InputError(f"model file {path}: its 'config' entry is a {kind}, not a dict.")
        # the network from its own fields: a run's other settings (e.g. cluster_knn=faiss) need not fit this machine
        net_cfg = config_from_dict({k: v for k, v in state["config"].items() if k in _NETWORK_FIELDS})
        # the run's clustering backend (a GPU, faiss) need not exist where its network is loaded
        cfg = config_from_dict(state["config"], check_backends=False) if return_config else net_cfg
        weights = state["model"]
        kind = "xmrank"
    else:
        weights = state.get("state_dict", state)
        if not isinstance(weights, dict):
            raise InputError(f"model file {path}: its 'state_dict' entry is a {type(weights).__name__}, not a dict.")
        weights = {(k[len("module."):] if isinstance(k, str) and k.startswith("module.") else k): v
                   for k, v in weights.items()}
        if not _is_bmil(weights):
            first = next(iter(weights), None)
            raise InputError(
                f"model file {path} is neither an xmrank run file (with 'model' and 'config') nor a published BMIL "
                f"checkpoint (first key: {first!r})."
            )
        cfg = _bmil_config(weights, path)
        kind = "BMIL"
        net_cfg = cfg
    model = DualStreamReID(net_cfg.arch, non_local=net_cfg.non_local, non_local_width=net_cfg.non_local_width,
                           gem_p=net_cfg.gem_p, gem_learnable=net_cfg.gem_learnable, last_stride=net_cfg.last_stride)
    if kind == "BMIL":
        weights = _bmil_state(model, weights, path)
    load_weights(model, weights, path)
    model = model.to(dev).eval()
    logger.info("loaded %s network from %s (%s, non_local %s, width %s)", kind, path, cfg.arch,
                tuple(cfg.non_local), cfg.non_local_width)
    return (model, cfg) if return_config else model
