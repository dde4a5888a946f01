"""The ``device`` setting of the trainer, ``load_model`` and the commands as a torch device."""

from __future__ import annotations

from .._validation import InputError
from ._require import torch

__all__ = ["resolve_device"]


def resolve_device(device):
    """``"auto"`` -> cuda when available, else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device.

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
        kind, sep, index = device.partition(":")
        if kind not in ("cpu", "cuda") or (sep and not (kind == "cuda" and index.isascii() and index.isdigit())):
            raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}.")
        dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(dev)!r} asked for, but PyTorch sees no CUDA GPU; use device 'cpu'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(dev)!r} asked for, but PyTorch sees {torch.cuda.device_count()} GPU(s).")
    elif dev.type != "cpu":
        raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {str(dev)!r}.")
    return dev
