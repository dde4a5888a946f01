"""Training configuration: one dataclass, the ``paper`` and ``smoke`` presets, YAML files and overrides.

Every hyper-parameter of the recipe is a field of :class:`TrainConfig`.
A run's configuration is built in this order, later steps overriding earlier:

1. the preset (:func:`preset_config`, ``paper`` by default; the ``paper``
   preset adapts to RegDB: eps 0.3, 100 iterations per epoch, no subset
   clustering, visible batches of 64);
2. a YAML file of ``field: value`` pairs (:func:`load_yaml`);
3. ``--set field=value`` pairs from the command line (:func:`apply_overrides`).

The ``paper`` preset holds the published code's values (``docs/trainer.md``):
dual-stream ResNet-50 + AGW from ImageNet weights, 288x144 inputs, Adam
(lr 3.5e-4, weight decay 5e-4), StepLR(20, 0.1), 50 + 50 epochs of 200
iterations, batches of 128 images per modality with 16 per pseudo-identity
(``-b 128 --num-instances 16`` in the published scripts; the visible images
in two views each), in stage 2 also for the global step's separate infrared
and visible batches, temperature 0.05,
momentum 0.1, DBSCAN eps 0.6 (SYSU-MM01; RegDB 0.3), min_samples 4, k1 30,
k2 6, subset ratio 0.5.

The ``smoke`` preset is a CPU-sized version for the synthetic set: ResNet-18
from scratch (no non-local blocks) at 64x32, 3 + 9 epochs of 12 iterations,
32 images per modality per batch with 8 per pseudo-identity, and k1 12 / k2 3
because the synthetic identities have far fewer images than SYSU-MM01's.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields

from .._params import DEFAULTS as _D
from .._params import METHODS, PARAMS
from .._validation import InputError

__all__ = [
    "TrainConfig",
    "PRESETS",
    "preset_config",
    "build_config",
    "load_yaml",
    "apply_overrides",
    "parse_overrides",
    "validate",
    "config_from_dict",
]


@dataclass
class TrainConfig:
    """All settings of a training run (see the module docstring for the presets)."""

    # --- network
    arch: str = "resnet50"                 #: resnet18 | resnet34 | resnet50
    pretrained: str = "imagenet"           #: imagenet | none | PATH to a torchvision .pth state dict
    non_local: tuple = (0, 2, 3, 0)        #: non-local blocks per ResNet layer (AGW: 0, 2, 3, 0)
    non_local_width: str = "one"           #: one (inter_channels 1, the published code) | half (C/2) | full (C): departures
    gem_p: float = 3.0                     #: GeM exponent (0 = average pooling), at most 10
    gem_learnable: bool = False            #: train the GeM exponent (a departure: the published code fixes p = 3)
    last_stride: int = 1
    # --- input and augmentation
    height: int = 288
    width: int = 144
    erasing: float = 0.5                   #: ChannelRandomErasing probability
    gray_probability: float = 0.5          #: ChannelAdapGray probability (infrared)
    ir_color_jitter_stage1: bool = True    #: ColorJitter on infrared images in stage 1 (published SYSU-MM01 recipe; RegDB: false)
    # --- optimisation
    lr: float = 3.5e-4                     #: Adam's learning rate, in (0, 1]
    weight_decay: float = 5e-4
    step_size: int = 20                    #: StepLR period in epochs
    gamma: float = 0.1                     #: StepLR's decay, in (0, 1]
    epochs_stage1: int = 50
    epochs_stage2: int = 50
    iters: int = 200                       #: iterations per epoch
    batch_size_ir: int = 128               #: infrared images per intra-modality batch
    batch_size_rgb: int = 128              #: visible images per intra-modality batch (each in 2 views; RegDB: 64)
    num_instances: int = 16                #: images per pseudo-identity in a batch
    global_batch_size_ir: int = 128        #: infrared images per stage-2 global batch (drawn by global cluster)
    global_batch_size_rgb: int = 128       #: visible images per stage-2 global batch (each in 2 views; RegDB: 64)
    # --- memories and losses
    temperature: float = 0.05
    momentum: float = 0.1
    intra_margin: float = 0.2              #: margin of the mean-row term of the intra-modality loss
    n_candidates: int = 50                 #: softmax size of the multi-positive loss
    # --- clustering
    # (the defaults of xmrank.cluster, declared once in xmrank._params, are the published recipe's)
    eps_intra: float = _D["eps"]           #: or "auto": chosen at each clustering round (xmrank.cluster's eps="auto")
    eps_global: float = _D["eps"]          #: or "auto"
    min_samples: int = _D["min_samples"]
    k1: int = _D["k1"]                     #: or "auto": chosen at each clustering round (xmrank.cluster's k1="auto")
    k2: int = _D["k2"]                     #: or "auto": ceil(k1 / 5)
    subset_ratio: float = _D["ratio"]      #: 1.0 disables subset clustering of the larger modality
    global_method: str = "modality"        #: Jaccard of stage-2 global clustering: modality | vanilla | modality-qe
    global_labels: str = "jaccard"         #: stage-2 global labels: jaccard (global clustering, published) | hungarian | ot | ot-instance (per-modality clusters matched, xmrank.match_clusters)
    split_contrast: bool = True            #: one global prototype per modality of a cluster (False: one per cluster, ablation)
    cluster_knn: str = _D["knn"]           #: kNN engine of the clustering: auto | faiss | numpy | ann | bf16
    cluster_device: str = _D["device"]     #: where the Jaccard distance runs: cpu | cuda | cuda:N (needs cupy)
    # --- evaluation (reporting only, never used to pick weights)
    eval_mode: str = "all"                 #: SYSU-MM01 search mode: all | indoor
    eval_trials: int = 10
    eval_every: int = 0                    #: also evaluate every N epochs (0 = only untrained, end of stage 1, final)
    regdb_trial: int = 1
    regdb_direction: str = "v2t"
    # --- run
    seed: int = _D["seed"]
    device: str = _D["run_device"]         #: auto | cpu | cuda | cuda:N
    threads: int = 0                       #: torch CPU threads (0 = all cores)
    num_workers: int = _D["num_workers"]   #: DataLoader workers per loader (-1: min(4, CPU cores); 0: main process)
    amp: bool = False                      #: mixed precision on CUDA (bf16 where supported, else fp16); CPU: no-op
    feature_batch_size: int = 128
    cache_images: bool = False             #: keep decoded, resized images in memory
    # --- synthetic data set (dataset=synthetic, generated when missing)
    synthetic_train_ids: int = 32
    synthetic_test_ids: int = 16
    synthetic_images_per_camera: int = 4
    synthetic_height: int = 128
    synthetic_width: int = 64

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["non_local"] = list(self.non_local)
        return out


PRESETS = ("paper", "smoke")

#: Jaccard methods of stage 2's global clustering (``global_method``): the explicit rules over modalities.
GLOBAL_METHODS = tuple(m for m in METHODS if m in ("modality", "vanilla", "modality-qe"))

#: How stage 2 makes its global pseudo labels: global clustering on the Jaccard of ``global_method``
#: (the published method), or the stage's per-modality clusters joined by :func:`xmrank.match_clusters`.
GLOBAL_LABELS = ("jaccard", "hungarian", "ot", "ot-instance")

_SMOKE = dict(
    arch="resnet18",
    pretrained="none",
    non_local=(0, 0, 0, 0),
    height=64,
    width=32,
    epochs_stage1=3,
    epochs_stage2=9,
    iters=12,
    batch_size_ir=32,
    batch_size_rgb=32,
    num_instances=8,
    global_batch_size_ir=32,
    global_batch_size_rgb=32,
    k1=12,  # the synthetic set has 8 clustered images per identity and modality, SYSU-MM01 about 28
    k2=3,
    feature_batch_size=256,
    cache_images=True,
    num_workers=0,  # tiny images held in memory: worker processes cost more than they save
)

#: The published RegDB recipe (train_regdb.py): eps 0.3, 100 iterations, no subset clustering,
#: visible batches of 64 images (``batch_size // 2``) in the intra and the global loaders.
_REGDB = dict(
    eps_intra=0.3,
    eps_global=0.3,
    iters=100,
    subset_ratio=1.0,
    batch_size_rgb=64,
    global_batch_size_rgb=64,
)


def preset_config(name: str = "paper", *, dataset: str = "sysu") -> TrainConfig:
    """The configuration of a preset, adapted to the data set.

    RegDB (``paper``): eps 0.3, 100 iterations per epoch, no subset
    clustering (``subset_ratio`` 1.0), visible batches of 64 images (infrared
    128), no infrared ColorJitter; both stages run (the published
    ``train_regdb.py`` ships with stage 1 commented out and starts stage 2
    from an earlier stage-1 run).
    """
    if name not in PRESETS:
        raise InputError(f"Unknown preset {name!r}: expected one of {', '.join(map(repr, PRESETS))}.")
    cfg = TrainConfig()
    if name == "smoke":
        cfg = dataclasses.replace(cfg, **_SMOKE)
    elif dataset == "regdb":
        cfg = dataclasses.replace(cfg, **_REGDB)
    if dataset == "regdb":  # the published RegDB recipe has no ColorJitter on infrared images
        cfg = dataclasses.replace(cfg, ir_color_jitter_stage1=False)
    return cfg


_FIELDS = {f.name: f for f in fields(TrainConfig)}


#: Fields that also take the word "auto" (chosen from the data at each clustering round).
AUTO_FIELDS = ("k1", "k2", "eps_intra", "eps_global")
def _whole(v) -> int:
    """One entry of an integer list: an int, or text / a float holding a whole number; never 2.5 -> 2 or True -> 1."""
    if isinstance(v, str):
        v = v.strip()
        try:
            return int(v)
        except ValueError:
            v = float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError(v)
    return int(v)


def _short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message stays one short line whatever was given."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _coerce(name: str, value):
    """Convert ``value`` to the type of field ``name`` or raise InputError."""
    default = _FIELDS[name].default
    kind = type(default)
    if name in AUTO_FIELDS and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    auto = " or 'auto'" if name in AUTO_FIELDS else ""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise InputError(f"config {name} must be true or false; got {_short(value)}.")
    if isinstance(value, str) and kind in (int, float):
        try:  # PyYAML reads "1e-3" (no dot) as a string
            value = float(value) if kind is float else int(value)
        except ValueError:
            pass
    if kind is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise InputError(f"config {name} must be an integer{auto}; got {_short(value)}.")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"config {name} must be a number{auto}; got {_short(value)}.")
        return float(value)
    if kind is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").replace("[", "").replace("]", "").split(",") if v.strip()]
        try:
            out = tuple(_whole(v) for v in value)
        except (TypeError, ValueError):
            raise InputError(f"config {name} must be a list of {len(default)} integers; got {_short(value)}.") from None
        if len(out) != len(default):
            raise InputError(f"config {name} must be a list of {len(default)} integers; got {_short(value)}.")
        return out
    if value is None:
        return "none"
    return str(value)


#: Shorthands accepted by :func:`apply_overrides`: one value for both modalities' fields
#: (``batch_size`` and ``global_batch_size`` were single fields before the visible and
#: infrared batch sizes were separated; configs and checkpoints that use them still load).
SHORTHANDS = {
    "batch_size": ("batch_size_ir", "batch_size_rgb"),
    "global_batch_size": ("global_batch_size_ir", "global_batch_size_rgb"),
}


def apply_overrides(cfg: TrainConfig, overrides: dict, *, check_backends: bool = True) -> TrainConfig:
    """A copy of ``cfg`` with ``{field: value}`` applied (values converted to the field's type).

    A key of :data:`SHORTHANDS` sets each of its fields (a field named in the
    same mapping wins over the shorthand).
    """
    changes = {}
    items = [(str(k).replace("-", "_"), k, v) for k, v in overrides.items()]
    for name, key, value in sorted(items, key=lambda item: item[0] not in SHORTHANDS):
        if name in SHORTHANDS:
            for field in SHORTHANDS[name]:
                changes[field] = _coerce(field, value)
            continue
        if name not in _FIELDS:
            raise InputError(f"Unknown config field {key!r}; fields are: {', '.join(sorted(_FIELDS))}.")
        changes[name] = _coerce(name, value)
    return validate(dataclasses.replace(cfg, **changes), check_backends=check_backends)


#: Largest configuration file read (bytes): a flat mapping of a few dozen fields is a few kilobytes.
MAX_CONFIG_BYTES = 1 << 20


def _safe_yaml(text):
    """``yaml.safe_load`` that refuses anchors and aliases (``&a`` / ``*a``): a configuration never needs them,
    and nested aliases expand a 1 KB file into billions of entries ("billion laughs")."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed in a configuration, "
                                     f"line {event.start_mark.line + 1}")
            return super().compose_node(parent, index)

    loader = _NoAliases(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml(path) -> dict:
    """Read a YAML file of ``field: value`` pairs (a flat mapping; no aliases, at most 1 MB)."""
    import yaml

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"config file {path} not found.")
    try:
        with open(path) as fh:
            text = fh.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise InputError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes; a configuration is a "
                             "flat mapping of field: value pairs.")
        data = _safe_yaml(text)
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read config file {path} as text ({exc.reason}).") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read config file {path} as YAML ({str(exc).splitlines()[0]}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of field: value pairs; got a {type(data).__name__}.")
    return data


def parse_overrides(pairs) -> dict:
    """``["lr=1e-4", "non_local=0,2,3,0"]`` -> ``{"lr": 0.0001, "non_local": "0,2,3,0"}`` (values read as YAML scalars)."""
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--set expects FIELD=VALUE; got {pair!r}.")
        key, text = pair.split("=", 1)
        try:
            value = _safe_yaml(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, (dict,)):
            value = text
        out[key.strip()] = value
    return out


def validate(cfg: TrainConfig, *, check_backends: bool = True) -> TrainConfig:
    """Check value ranges; raise InputError naming the first bad field.

    ``check_backends=False`` skips checking that the clustering's kNN engine
    and device can run on this machine (a saved run's network can be loaded,
    and a resumed run re-pointed at another device, where they cannot).
    """
    from .._params import MAX_IMAGE_SIDE
    from .._validation import SEED_MAX, check_int, check_option, check_real

    check_option(cfg.arch, "arch", ("resnet18", "resnet34", "resnet50"))
    check_option(cfg.non_local_width, "non_local_width", ("one", "half", "full"))
    check_option(cfg.global_method, "global_method", GLOBAL_METHODS)
    check_option(cfg.global_labels, "global_labels", GLOBAL_LABELS)
    check_option(cfg.eval_mode, "eval_mode", ("all", "indoor"))
    check_option(cfg.regdb_direction, "regdb_direction", ("v2t", "t2v"))
    if cfg.last_stride not in (1, 2):
        raise InputError(f"last_stride must be 1 or 2; got {cfg.last_stride}.")
    for name in ("height", "width"):
        check_int(getattr(cfg, name), name, minimum=16, maximum=MAX_IMAGE_SIDE)
    for name in ("step_size", "iters", "batch_size_ir", "batch_size_rgb", "num_instances", "global_batch_size_ir",
                 "global_batch_size_rgb", "n_candidates",
                 "eval_trials", "feature_batch_size", "synthetic_train_ids",
                 "synthetic_test_ids", "synthetic_images_per_camera", "regdb_trial"):
        check_int(getattr(cfg, name), name, minimum=1)
    # the clustering's and the run's settings: the declarations xmrank.cluster and the command line read
    check_int(cfg.seed, "seed", minimum=0, maximum=SEED_MAX)  # an integer (saved in the run), no Generator
    for name, param in (("min_samples", "min_samples"), ("k1", "k1"), ("k2", "k2"),
                        ("eps_intra", "eps"), ("eps_global", "eps"), ("subset_ratio", "ratio"),
                        ("num_workers", "num_workers"), ("device", "run_device")):
        PARAMS[param](getattr(cfg, name), name)
    for name in ("epochs_stage1", "epochs_stage2", "eval_every", "threads"):
        check_int(getattr(cfg, name), name, minimum=0)
    check_int(cfg.synthetic_height, "synthetic_height", minimum=16, maximum=MAX_IMAGE_SIDE)
    check_int(cfg.synthetic_width, "synthetic_width", minimum=8, maximum=MAX_IMAGE_SIDE)
    from ..datasets.synthetic_images import check_size

    # the synthetic set a run generates (4 validation identities, make_synthetic's default): bounded before the run
    check_size(cfg.synthetic_train_ids + 4 + cfg.synthetic_test_ids, cfg.synthetic_images_per_camera,
               cfg.synthetic_height, cfg.synthetic_width, ids_name="synthetic_train_ids + 4 + synthetic_test_ids")
    for name in ("batch_size_ir", "batch_size_rgb", "global_batch_size_ir", "global_batch_size_rgb"):
        if getattr(cfg, name) < cfg.num_instances:
            raise InputError(f"{name} ({getattr(cfg, name)}) must be at least num_instances ({cfg.num_instances}).")
    if cfg.k1 != "auto" and cfg.k2 != "auto" and cfg.k2 > cfg.k1:
        raise InputError(f"k2 ({cfg.k2}) must not exceed k1 ({cfg.k1}).")
    # bounds that keep training finite: larger values overflow the losses or the pooling (NaN weights)
    check_real(cfg.lr, "lr", low=0.0, low_open=True, high=1.0)
    check_real(cfg.weight_decay, "weight_decay", low=0.0, high=1.0)
    check_real(cfg.gamma, "gamma", low=0.0, low_open=True, high=1.0)
    check_real(cfg.temperature, "temperature", low=1e-3, high=100.0)
    check_real(cfg.momentum, "momentum", low=0.0, high=1.0)
    check_real(cfg.intra_margin, "intra_margin", low=0.0)
    check_real(cfg.erasing, "erasing", low=0.0, high=1.0)
    check_real(cfg.gray_probability, "gray_probability", low=0.0, high=1.0)
    check_real(cfg.gem_p, "gem_p", low=0.0, high=10.0)
    from .._params import KNN_ENGINES, parse_device
    from ..backend import resolve_knn

    check_option(cfg.cluster_knn, "cluster_knn", tuple(k for k in KNN_ENGINES if k != "dask"))
    try:
        kind, _ = parse_device(cfg.cluster_device)
    except InputError:
        raise InputError(f"cluster_device must be cpu, cuda or cuda:N; got {cfg.cluster_device!r}.") from None
    if check_backends:
        resolve_knn(cfg.cluster_knn, kind)  # a missing package (faiss, cupy) fails here, not epochs later
    if any(n < 0 for n in cfg.non_local):
        raise InputError(f"non_local must hold non-negative counts; got {cfg.non_local}.")
    return cfg


def build_config(preset: str = "paper", *, dataset: str = "sysu", yaml_path=None, overrides=None) -> TrainConfig:
    """Preset, then YAML file, then overrides (see the module docstring)."""
    cfg = preset_config(preset, dataset=dataset)
    if yaml_path is not None:
        cfg = apply_overrides(cfg, load_yaml(yaml_path))
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return validate(cfg)


def config_from_dict(data: dict, *, check_backends: bool = True) -> TrainConfig:
    """Rebuild a config saved with :meth:`TrainConfig.to_dict` (e.g. from a checkpoint).

    ``check_backends=False``: see :func:`validate`.
    """
    return apply_overrides(TrainConfig(), {k: v for k, v in data.items() if k in _FIELDS or k in SHORTHANDS},
                           check_backends=check_backends)
