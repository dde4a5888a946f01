"""Import torch and torchvision, or fail with one line telling how to install them."""

from __future__ import annotations

_HINT = "xmrank's trainer needs PyTorch and torchvision: pip install 'xmrank[torch]'"

try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(f"{_HINT} ({exc}).") from exc

__all__ = ["torch", "torchvision"]
