"""xmrank's PyTorch trainer: the two-stage unsupervised visible-infrared ReID pipeline.

Needs the optional dependencies (``pip install 'xmrank[torch]'``). Importing
this package is cheap and works without torch; the names below load their
module on first use, and a missing torch then raises an ImportError naming
the install command. :func:`make_synthetic` and :func:`prepare_synthetic` need only numpy and pillow.

Modules (one job each):

- :mod:`.config`: :class:`TrainConfig`, the ``paper`` and ``smoke`` presets, YAML.
- :mod:`.model`: the dual-stream ResNet + AGW network.
- :mod:`.transforms`: channel augmentations and image pipelines.
- :mod:`.data`: image loading, datasets, :func:`folder_records`.
- :mod:`.sampler`: the pseudo-identity batch sampler.
- :mod:`.memory`, :mod:`.losses`: prototype memories and the two losses.
- :mod:`.features`: flip-averaged feature extraction.
- :mod:`.evaluation`: test-split scores through :mod:`xmrank.retrieval`.
- :mod:`.pseudo_labels`: an epoch's clustering, memories and batch streams.
- :mod:`.steps`: the intra-modality and global optimiser steps, Adam + StepLR, mixed precision.
- :mod:`.device`: :func:`~.device.torch_device`, the one reader of the ``device`` setting.
- :mod:`.trainer`: :class:`Trainer`, the engine: its steps and the stage loop.
- :mod:`.checkpoints`: a run's files and resume state (what is saved, checked and restored).
- :mod:`.runlog`: ``train.log``, the run lock and the JSON writer.
- :mod:`.pipeline`: :func:`train`, the entry point: checks, then one :class:`Trainer`.
- :mod:`.synthetic`: the procedural visible/infrared image set (re-exported from
  :mod:`xmrank.datasets.synthetic_images`) and :func:`prepare_synthetic`, which
  makes a run's set before :func:`train` reads it.

Example
-------
>>> from xmrank.torch import preset_config, train          # doctest: +SKIP
>>> from xmrank.torch import prepare_synthetic               # doctest: +SKIP
>>> cfg = preset_config("smoke")                            # doctest: +SKIP
>>> root = prepare_synthetic(cfg, "run")                    # doctest: +SKIP
>>> metrics = train(cfg, dataset="synthetic", root=root, output="run")  # doctest: +SKIP
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: public name -> submodule
_EXPORTS = {
    "make_synthetic": "synthetic",
    "prepare_synthetic": "synthetic",
    "TrainConfig": "config",
    "preset_config": "config",
    "build_config": "config",
    "PRESETS": "config",
    "train": "pipeline",
    "Trainer": "trainer",
    "load_trained_model": "checkpoints",
    "load_model": "loading",
    "DualStreamReID": "model",
    "build_model": "model",
    "ChannelExchange": "transforms",
    "ChannelAdapGray": "transforms",
    "ChannelRandomErasing": "transforms",
    "folder_records": "data",
    "training_records": "data",
    "RecordDataset": "data",
    "PseudoIdentitySampler": "sampler",
    "HybridMemory": "memory",
    "SplitContrastMemory": "memory",
    "intra_modality_loss": "losses",
    "split_contrast_loss": "losses",
    "multi_positive_nce": "losses",
    "extract_features": "features",
    "evaluate_model": "evaluation",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
