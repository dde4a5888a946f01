"""The one place where xmrank chooses its compute backends.

Every other module receives plain arrays and a resolved backend name; none of
them probes for optional libraries. Optional libraries are detected without
importing them until they are needed.
"""

from __future__ import annotations

import importlib.util
import logging

from ._validation import InputError, check_option

logger = logging.getLogger("xmrank")

#: kNN engines accepted by ``knn=``. "auto" resolves to the best exact engine.
KNN_ENGINES = ("auto", "faiss", "numpy")
#: Devices accepted by ``device=``.
DEVICES = ("cpu",)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def have_faiss() -> bool:
    """Whether the ``faiss`` module (faiss-cpu or faiss-gpu) is importable."""
    return _installed("faiss")


def resolve_knn(knn: str = "auto", device: str = "cpu") -> str:
    """Resolve a ``knn=`` option to a concrete engine name.

    Parameters
    ----------
    knn : {"auto", "faiss", "numpy"}, default="auto"
        "auto" picks exact faiss search when faiss is installed and blocked
        numpy matrix products otherwise. A named engine that is not installed
        raises :class:`~xmrank.InputError` instead of falling back silently.
    device : {"cpu"}, default="cpu"
        Where the search runs.

    Returns
    -------
    engine : str
    """
    check_option(knn, "knn backend", KNN_ENGINES)
    check_option(device, "device", DEVICES)
    if knn == "auto":
        engine = "faiss" if have_faiss() else "numpy"
        logger.debug("knn='auto' resolved to %r", engine)
        return engine
    if knn == "faiss" and not have_faiss():
        raise InputError(
            "knn='faiss' needs the faiss package, which is not installed: "
            "pip install 'xmrank[faiss]' (or use knn='numpy')."
        )
    return knn
