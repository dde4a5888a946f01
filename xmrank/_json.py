"""JSON for xmrank's outputs: numpy scalars and arrays written as plain numbers and lists."""

from __future__ import annotations

import numpy as np

__all__ = ["json_default"]


def json_default(obj):
    """``json.dump(..., default=json_default)``: numpy scalars -> numbers, arrays -> lists."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
