"""Progress bars: tqdm, silent when stderr is not a terminal."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(*, total=None, desc=None, show=None, **kwargs):
    """A tqdm bar following xmrank's ``progress`` argument.

    ``show=True`` always shows it, ``False`` never, ``None`` only on a terminal.
    """
    disable = None if show is None else (not show)
    return tqdm(total=total, desc=desc, disable=disable, leave=False, **kwargs)
