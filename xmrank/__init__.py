"""xmrank: modality-aware k-reciprocal Jaccard distances, clustering and re-ranking."""

import logging

from ._validation import InputError
from .jaccard import jaccard_distance

logging.getLogger("xmrank").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = ["InputError", "jaccard_distance", "__version__"]
