"""The ``device`` setting of the trainer, ``load_model`` and the commands as a torch device."""

from __future__ import annotations

from .._validation import InputError
from ..backend import parse_device
from ._require import torch

__all__ = ["torch_device"]


def torch_device(device):
    """The trainer's ``device`` as a ``torch.device``: ``"auto"``, a library device string, or a torch.device.

    ``"auto"`` is cuda when PyTorch sees a GPU, else cpu; ``"cpu"``, ``"cuda"``
    and ``"cuda:N"`` are parsed by :func:`xmrank.backend.parse_device`, the
    one parser of the library's ``device=`` strings (the library's own
    :func:`xmrank.backend.resolve_device` then checks cupy; the trainer needs
    PyTorch's view of the GPUs instead).

    Raises
    ------
    xmrank.InputError
        For another spelling, a CUDA device where PyTorch sees no GPU, or a
        GPU index that does not exist.
    """
    if isinstance(device, torch.device):
        dev = device
    else:
        if not isinstance(device, str):
            raise InputError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'cuda:0'; got {device!r}.")
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            kind, index = parse_device(device)
        except InputError:
            raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}.") from None
        dev = torch.device(kind if index is None else f"{kind}:{index}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(dev)!r} asked for, but PyTorch sees no CUDA GPU; use device 'cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(dev)!r} asked for, but PyTorch sees {torch.cuda.device_count()} GPU(s).")
    elif dev.type != "cpu":
        raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {str(dev)!r}.")
    return dev
