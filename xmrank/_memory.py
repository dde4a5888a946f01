"""Memory the process may still use, and the one refusal for a result that would not fit.

A computation whose output size is known (or estimated) before it allocates
asks :func:`check_fits` first: where the bytes exceed what the machine (or
the container's memory limit) has available, it raises
:class:`OutputTooLarge` with one sentence naming what would be built, its
size, what is available and the argument that makes it smaller, instead of
being killed by the kernel's out-of-memory killer half-way.

``XMRANK_MEMORY_LIMIT`` (bytes, or a number with a K/M/G/T suffix) caps the
budget below what the machine reports, e.g. on a shared machine.
"""

from __future__ import annotations

import logging
import os

from ._validation import InputError

__all__ = ["OutputTooLarge", "available_bytes", "budget_bytes", "check_fits", "format_bytes"]

logger = logging.getLogger(__name__)

#: Share of the available memory a single result may take (the rest is the
#: inputs' and the interpreter's working room).
_BUDGET_SHARE = 0.8
_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class OutputTooLarge(InputError, MemoryError):
    """The requested result would not fit in the memory available; raised before it is allocated.

    An :class:`~xmrank._validation.InputError` (so the command line reports it
    in one line) and a :class:`MemoryError`.
    """


def _parse_size(text: str) -> int | None:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _SUFFIX and text[-1:] != "" else ""
    number = text[: len(text) - len(unit)] if unit else text
    try:
        value = float(number) * _SUFFIX[unit]
    except ValueError:
        return None
    return int(value) if value > 0 and value < 2**63 else None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """What the cgroup (v2, else v1) still allows this process, where a limit is set."""
    limit = _read_int("/sys/fs/cgroup/memory.max")
    used = _read_int("/sys/fs/cgroup/memory.current")
    if limit is None:
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        used = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if limit is None or limit >= 2**60:
        return None
    return max(0, limit - (used or 0))


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_bytes() -> int | None:
    """Bytes this process may still allocate: the least of the machine's, the container's and ``XMRANK_MEMORY_LIMIT``.

    Returns
    -------
    nbytes : int or None
        None where nothing can be read (no check is made then).
    """
    candidates = [_meminfo_available(), _cgroup_room()]
    if candidates[0] is None:
        try:
            import psutil  # optional: other platforms

            candidates[0] = int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - psutil absent or unsupported: no machine figure
            pass
    env = os.environ.get("XMRANK_MEMORY_LIMIT")
    if env:
        parsed = _parse_size(env)
        if parsed is None:
            logger.warning("XMRANK_MEMORY_LIMIT=%r is not a size (bytes, or a number with K/M/G/T); ignored", env)
        else:
            candidates.append(parsed)
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def format_bytes(nbytes: float) -> str:
    """``1.5 GB``-style text (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(nbytes) < 1024 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024.0
    return f"{nbytes:.1f} TB"  # pragma: no cover


def budget_bytes() -> float | None:
    """What one result may take: 80 % of :func:`available_bytes` (None where nothing can be read)."""
    room = available_bytes()
    return None if room is None else _BUDGET_SHARE * room


def check_fits(nbytes: float, what: str, hint: str) -> None:
    """Refuse, before allocating, a result of ``nbytes`` that does not fit.

    Parameters
    ----------
    nbytes : float
        Estimated peak bytes of the result.
    what : str
        What would be built, e.g. ``"the Jaccard distances (641 M stored pairs)"``.
    hint : str
        What makes it smaller, naming the argument, e.g. ``"pass max_distance=0.6"``.

    Raises
    ------
    OutputTooLarge
        Where ``nbytes`` exceeds 80 % of :func:`available_bytes`.
    """
    room = available_bytes()
    if room is None:
        return
    budget = _BUDGET_SHARE * room
    logger.debug("memory check: %s needs about %s, budget %s", what, format_bytes(nbytes), format_bytes(budget))
    if nbytes > budget:
        raise OutputTooLarge(
            f"{what} would need about {format_bytes(nbytes)}, more than the {format_bytes(budget)} this process may "
            f"use ({format_bytes(room)} available); {hint}."
        )
