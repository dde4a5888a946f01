"""Shared plumbing of the commands that run a trained network (``xmrank test``, ``xmrank embed``).

The torch dependency check and checkpoint loading through
:func:`xmrank.torch.load_model`, with one-line errors. Outputs are checked and
written with :func:`._io.check_output` and :func:`._io.write_atomic`.
"""

from __future__ import annotations

import os
import warnings

from ._io import fail
from ._options import options

#: the options of every command that runs a network over images (device, batching, loading, input size)
network_options = options("device", "batch_size", "num_workers", "height", "width", "progress")


def require_torch():
    """Import the trainer's torch dependencies, or fail with one line naming ``pip install 'xmrank[torch]'``."""
    try:
        import xmrank.torch._require  # noqa: F401
    except ImportError as exc:
        fail(str(exc).splitlines()[0])


def check_checkpoint(path: str, option: str = "--checkpoint"):
    """Fail unless ``path`` is an existing file."""
    if not os.path.exists(path):
        fail(f"{option} {path}: file not found.")
    if not os.path.isfile(path):
        fail(f"{option} {path}: not a file (give the model file, e.g. RUN/model.pt).")


def resolve_device_option(device: str):
    """``--device`` as a torch device (:func:`xmrank.torch.device.torch_device`); errors are one line naming --device."""
    from xmrank._validation import InputError
    from xmrank.torch.device import torch_device as _resolve

    try:
        return _resolve(device)
    except InputError as exc:
        fail(f"--device: {exc}")


def load_network(path: str, device, option: str = "--checkpoint"):
    """The network of a checkpoint (an xmrank run file or a published BMIL checkpoint), and its configuration.

    Returns ``(model, config)`` (:func:`xmrank.torch.load_model` with
    ``return_config=True``): the model in evaluation mode on ``device``. Any
    failure to read or fit the file is one line naming ``option``.
    """
    from xmrank._validation import InputError
    from xmrank.torch.loading import load_model

    check_checkpoint(path, option)
    try:
        with warnings.catch_warnings():
            # torch's weights-only reader warns about pickle protocols before it accepts or refuses a file
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            model, cfg = load_model(path, device=device, return_config=True)
    except InputError as exc:
        fail(f"{option}: {exc}")
    except MemoryError:
        fail(f"{option} {path}: out of memory while loading the model.")
    except Exception as exc:  # pragma: no cover - load_model turns read and fit errors into InputError
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"{option} {path}: cannot load a model from it ({exc.__class__.__name__}: {first}).")
    return model.eval(), cfg
