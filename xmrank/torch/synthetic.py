"""The procedural visible/infrared image set, as the trainer's ``--dataset synthetic`` uses it.

The generator lives in :mod:`xmrank.datasets.synthetic_images` (numpy and
pillow only, no torch); this module re-exports it for the trainer and for
code written against ``xmrank.torch.synthetic``, and adds
:func:`prepare_synthetic`: the set a new run reads, generated from the
run's configuration where it is missing. :func:`xmrank.torch.train` never
generates data; ``xmrank train --dataset synthetic`` calls
:func:`prepare_synthetic` before it.
"""

from __future__ import annotations

import logging
import os

from ..datasets import synthetic_images as _images
from ..datasets.synthetic_images import *  # noqa: F401,F403  (the re-export: its public names)
from ..datasets.synthetic_images import is_synthetic_root, make_synthetic

logger = logging.getLogger(__name__)

__all__ = list(_images.__all__) + ["synthetic_root", "needs_synthetic", "prepare_synthetic"]


def synthetic_root(output, root=None) -> str:
    """The synthetic set's folder of a run: ``root``, or ``output/synthetic`` when None."""
    return os.path.join(os.fspath(output), "synthetic") if root is None else os.fspath(root)


def needs_synthetic(root) -> bool:
    """Whether ``root`` is to be generated: no synthetic set there, and the folder is missing or empty."""
    return not is_synthetic_root(root) and not (os.path.isdir(root) and os.listdir(root))


def prepare_synthetic(config, output, root=None, *, progress=None) -> str:
    """Generate the synthetic training set of a new run where it is missing; return its folder.

    Parameters
    ----------
    config : TrainConfig
        Its ``synthetic_*`` fields (identities, images per camera, image
        size) and ``seed`` shape the set.
    output : str or path-like
        The run folder (the default set lies in ``output/synthetic``).
    root : str or path-like, default=None
        Where the set lies; None: ``output/synthetic``.
    progress : bool, default=None
        Progress bar; None shows it only on a terminal.

    Returns
    -------
    root : str
        The folder to give :func:`xmrank.torch.train` as ``root``. A folder
        that already holds files is left as it is (the trainer reads it).
    """
    root = synthetic_root(output, root)
    if needs_synthetic(root):
        logger.info("generating the synthetic data set in %s", root)
        make_synthetic(root, n_train_ids=config.synthetic_train_ids, n_test_ids=config.synthetic_test_ids,
                       images_per_camera=config.synthetic_images_per_camera, height=config.synthetic_height,
                       width=config.synthetic_width, seed=config.seed, progress=progress)
    return root
