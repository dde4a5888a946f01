"""Lazy public names: a package's ``__getattr__``/``__dir__`` that import a submodule on first use."""

from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, namespace: dict, exports: dict, submodules=()):
    """``(__getattr__, __dir__)`` for ``package`` whose public ``name`` lives in submodule ``exports[name]``.

    The value is imported on first access and cached in ``namespace`` (the
    package's globals), so ``import package`` loads none of the submodules.
    Each name of ``submodules`` is a subpackage itself, imported the same way
    (``xmrank.io`` without ``import xmrank.io``).
    """
    submodules = frozenset(submodules)

    def __getattr__(name):
        if name in submodules:
            value = importlib.import_module(f".{name}", package)
            namespace[name] = value
            return value
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports) | submodules)

    return __getattr__, __dir__
