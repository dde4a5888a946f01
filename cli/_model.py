"""Shared plumbing of the commands that run a trained network (``xmrank test``, ``xmrank embed``).

The torch dependency check and checkpoint loading through
:func:`xmrank.torch.load_model`, with one-line errors. Outputs are checked and
written with :func:`._io.check_output` and :func:`._io.write_atomic`.
"""

from __future__ import annotations

import os
import warnings

import click

from xmrank._params import MAX_IMAGE_SIDE

from ._io import fail

#: the options of every command that runs a network over images (device, batching, loading, input size)
_NETWORK_OPTIONS = (
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
                 help="Images per forward pass."),
    click.option("--num-workers", type=click.IntRange(min=-1), default=-1, show_default=True,
                 help="DataLoader worker processes decoding images (-1: min(4, CPU cores); 0: in this process)."),
    click.option("--height", type=click.IntRange(min=8, max=MAX_IMAGE_SIDE), default=None,
                 help=f"Input height, 8 to {MAX_IMAGE_SIDE} (default: the run's, 288 for a published checkpoint)."),
    click.option("--width", type=click.IntRange(min=8, max=MAX_IMAGE_SIDE), default=None,
                 help=f"Input width, 8 to {MAX_IMAGE_SIDE} (default: the run's, 144 for a published checkpoint)."),
    click.option("--progress/--no-progress", default=None, help="Progress bars (default: only on a terminal)."),
)


def network_options(command):
    """Add :data:`_NETWORK_OPTIONS` to a click command (declared once for ``test`` and ``embed``)."""
    for option in reversed(_NETWORK_OPTIONS):
        command = option(command)
    return command


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


def torch_device(device: str):
    """``auto`` -> cuda when available, else cpu; errors are one line naming --device."""
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
