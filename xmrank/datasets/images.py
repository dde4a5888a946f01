"""Opening an image file with one-line errors: :func:`open_image`.

Every reader of image pixels (the trainer's loaders, ``xmrank visrank``)
opens files through it, so that a missing file, a file that is not an
image, a truncated one and a *decompression bomb* (an image whose pixel
count passes Pillow's ``Image.MAX_IMAGE_PIXELS``, about 89 Mpx, where
Pillow only warns up to twice that) are each one :class:`~xmrank.InputError`
naming the file, never a traceback or a process killed for memory.
"""

from __future__ import annotations

import contextlib
import warnings

from .._validation import InputError

__all__ = ["open_image"]


@contextlib.contextmanager
def open_image(path):
    """``PIL.Image.open(path)`` as a context manager whose failures are one InputError line naming ``path``.

    Decoding (``.load()``, ``.convert()``) inside the ``with`` block is
    covered too. Images above ``PIL.Image.MAX_IMAGE_PIXELS`` are refused.

    Raises
    ------
    xmrank.InputError
        When the file is missing, is not a readable image, or is larger
        than Pillow's decompression-bomb limit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                yield img
    except FileNotFoundError:
        raise InputError(f"image file {path} not found.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = str(exc).split(" exceeds", 1)[0].replace("Image size ", "")
        raise InputError(f"image {path} is too large to decode ({size}; Pillow's limit is "
                         f"{Image.MAX_IMAGE_PIXELS} pixels): a decompression bomb or not a person crop.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        detail = f": {detail[:160]}" if detail else ""
        raise InputError(f"cannot read image {path} ({exc.__class__.__name__}{detail}).") from None
