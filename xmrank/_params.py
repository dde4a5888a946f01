"""The parameters shared by the clustering and re-ranking functions, declared once.

Each :class:`Param` holds a parameter's name, default, check, the words that
say what it accepts and its help text. The functions
(:func:`xmrank.cluster`, :func:`xmrank.rerank`, ...), the estimator
:class:`xmrank.XMCluster` and the command line (``xmrank.cli._options``) all
read :data:`PARAMS`: a bound or a default changes here, and everywhere at once.

:func:`parse_eps` is the one reader of ``eps`` (a number > 0 or ``"auto"``),
for keyword arguments and command-line text alike.

Layer: the declaration is read by the clustering, retrieval and diagnostics
layers and the command line; it reads the Jaccard layer's method names
(:data:`xmrank.jaccard.METHODS`, imported when first needed) and the
backend's kNN engines, and nothing above them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ._validation import InputError, check_int, check_n_jobs, check_option, check_real, check_seed, plain

__all__ = ["ALGORITHMS", "ALPHA_MAX", "BETA_MAX", "DEFAULTS", "MAX_IMAGE_SIDE", "MAX_SYNTHETIC_IMAGES",
           "MAX_SYNTHETIC_PIXELS", "MAX_TRIALS", "PARAMS", "Param", "RERANK_ALGORITHMS", "RERANK_GRID", "check_params",
           "parse_eps", "parse_int_or_auto"]

#: Density clusterings of :func:`xmrank.cluster_distance`.
ALGORITHMS = ("dbscan", "hdbscan")
#: Re-ranking algorithms of :func:`xmrank.rerank`: k-reciprocal (Zhong et al.) and GNN (Zhang et al.).
RERANK_ALGORITHMS = ("k-reciprocal", "gnn")

# Bounds that keep a result finite and its memory known before any work: refused at the boundary.
#: Largest inverse temperature of ``qb_norm`` / ``db_norm`` (QB-Norm publishes 20; ``beta="auto"`` gives
#: ``2 / σ``, σ >= 2e-6): ``beta · s`` stays far inside float32 for similarities of any sensible scale.
BETA_MAX = 1e6
#: Largest weight exponent of ``alpha_qe`` / ``query_expansion`` (fast-reid uses 3): beyond it every weight
#: below the row itself underflows and the expansion is the identity.
ALPHA_MAX = 100.0
#: Largest image side (pixels) of a network input or a synthetic image: the published inputs are 288 x 144.
MAX_IMAGE_SIDE = 2048
#: Most trials (gallery draws, RegDB trials) one evaluation takes, checked before anything is allocated.
MAX_TRIALS = 10_000
#: Most images :func:`xmrank.datasets.make_synthetic` writes (identities x 6 cameras x images per camera);
#: its SYSU-MM01 layout numbers identities and images with four digits (at most 9999 of each).
MAX_SYNTHETIC_IMAGES = 200_000
#: ... and at most this many pixels in all (200,000 images of the default 128 x 64 are 1.6e9).
MAX_SYNTHETIC_PIXELS = 2_000_000_000


def parse_eps(value, name: str = "eps", *, text: bool = False):
    """``eps``: a finite number > 0, or ``"auto"`` (chosen from the data).

    Parameters
    ----------
    value : float, int or str
    name : str, default="eps"
        The argument's name in messages (``"--eps"`` on the command line).
    text : bool, default=False
        ``value`` comes from the command line: a string holding a number is
        read as that number, and ``"auto"`` is matched ignoring case and
        surrounding spaces. Without it only the exact string ``"auto"``
        is accepted.

    Returns
    -------
    eps : float or "auto"

    Raises
    ------
    xmrank.InputError
        For anything else (a word, NaN, infinity, a number <= 0).
    """
    if isinstance(value, (str, bytes)):
        word = value.strip().lower() if text and isinstance(value, str) else value
        if word == "auto":
            return "auto"
        try:
            if not text or isinstance(value, bytes):
                raise ValueError
            value = float(value)
        except ValueError:
            raise InputError(f"{name} must be a positive number or 'auto'; got {plain(value)}.") from None
    return check_real(value, name, low=0.0, low_open=True)


def parse_int_or_auto(value, name: str, *, text: bool = False):
    """A list length: an integer >= 1, or ``"auto"`` (chosen from the data).

    ``text=True`` reads command-line text: ``"auto"`` ignoring case and
    surrounding spaces, else the text as an integer.
    """
    if isinstance(value, str):
        word = value.strip().lower() if text else value
        if word == "auto":
            return "auto"
        if text:
            try:
                value = int(value.strip())
            except ValueError:
                raise InputError(f"{name} must be an integer or 'auto'; got {plain(value)}.") from None
        else:
            raise InputError(f"{name} must be an integer or 'auto'; got {plain(value)}.")
    return check_int(value, name, minimum=1)


def _methods():
    from .jaccard.distance import METHODS  # the one tuple of Jaccard method names

    return METHODS


def _knn_engines():
    from .backend import KNN_ENGINES

    return KNN_ENGINES


def _camera_weight(value, name):
    if value is None:
        return None
    return check_real(value, name, low=0.0, high=1.0, low_open=True)


def _positive_int(value, name):
    return check_int(value, name, minimum=1)


def _check_device(value, name):
    from .backend import parse_device

    parse_device(value)
    return value


def _check_progress(value, name):
    if value is not None and not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise InputError(f"{name} must be True, False or None; got {plain(value)}.")
    return None if value is None else bool(value)


@dataclass(frozen=True)
class Param:
    """One parameter: its name, default, check and help text.

    Attributes
    ----------
    name : str
        The keyword argument (``"min_samples"``); the command-line option is
        ``--`` and the name with dashes (``--min-samples``).
    default : object
        The default of the functions, the estimator and the command line.
    check : callable
        ``check(value, name)`` returns the value as used (``n_jobs``: the
        number of threads) or raises :class:`xmrank.InputError`.
    expects : str
        What is accepted, in words ("an int in the range [1, inf)"); the
        estimator's messages read "The 'k1' parameter of XMCluster must be
        <expects>". Empty for a choice (:meth:`expected` lists the choices).
    help : str
        The help text of the command-line option.
    choices : callable, default=None
        For a parameter that takes one of a few words: returns them.
    kind : {"int", "int_auto", "float", "eps", "choice", "device", "n_jobs", "seed", "flag"}
        How the command line reads the text.
    """

    name: str
    default: Any
    check: Callable[[Any, str], Any]
    expects: str
    help: str
    choices: Callable[[], tuple] | None = None
    kind: str = "int"

    def __call__(self, value, name: str | None = None):
        """``value`` checked (and resolved) by :attr:`check`; ``name`` replaces :attr:`name` in messages."""
        return self.check(value, self.name if name is None else name)

    def expected(self) -> str:
        """What is accepted, in words: :attr:`expects`, or the choices (read when first needed)."""
        if self.choices is not None:
            return "a str among {" + ", ".join(repr(c) for c in self.choices()) + "}"
        return self.expects

    @property
    def option(self) -> str:
        """The command-line option: ``--min-samples`` for ``min_samples``."""
        return "--" + self.name.replace("_", "-")


def _choice(name, default, choices, help):
    def check(value, arg):
        return check_option(value, arg, choices())

    return Param(name, default, check, "", help, choices=choices, kind="choice")


_CA_JACCARD = "CA-Jaccard's {} (method 'camera' and 'modality-camera'), >= 1."

PARAMS: dict[str, Param] = {p.name: p for p in (
    _choice("method", "auto", _methods,
            "Jaccard method; 'auto' is 'modality' when modalities are given, else 'camera' with cameras, "
            "else 'vanilla'."),
    _choice("rerank_algorithm", "k-reciprocal", lambda: RERANK_ALGORITHMS,
            "Re-ranking algorithm: 'k-reciprocal' (Zhong et al.'s Jaccard re-ranking) or 'gnn' (Zhang et al.'s GNN "
            "re-ranking, sparse); --method chooses the neighbour rule of either."),
    Param("camera_weight", None, _camera_weight, "None or a float in (0, 1]",
          "GNN re-ranking only: CEIL's camera weights, same-camera edges of the initial graph weigh this value "
          "and other-camera edges its inverse (CEIL uses 0.5); needs cameras. Default: off (all edges 1).",
          kind="float"),
    Param("eps", 0.6, parse_eps, "a float > 0 or 'auto'",
          "DBSCAN radius (0.6 on SYSU-MM01, 0.3 on RegDB), > 0, or 'auto': the eps of the best label-free "
          "quality (modularity + silhouette) over 0.05-0.95.", kind="eps"),
    Param("min_samples", 4, _positive_int, "an int in the range [1, inf)",
          "Rows (self included) that make a core point, >= 1."),
    _choice("algorithm", "dbscan", lambda: ALGORITHMS, "Density clustering of the Jaccard distance."),
    Param("k1", 30, parse_int_or_auto, "an int in the range [1, inf) or 'auto'",
          "Neighbour-list length, >= 1, or 'auto': clustering tries 5, 10, 20 and 30 and keeps the best label-free "
          "quality on the mean of their distances.", kind="int_auto"),
    Param("k2", 6, parse_int_or_auto, "an int in the range [1, inf) or 'auto'",
          "Query-expansion length (per modality for 'modality'), >= 1, or 'auto': ceil(k1 / 5), the published "
          "30 / 6.", kind="int_auto"),
    Param("k1_intra", 5, _positive_int, "an int in the range [1, inf)", _CA_JACCARD.format("same-camera list length")),
    Param("k1_inter", 20, _positive_int, "an int in the range [1, inf)",
          _CA_JACCARD.format("other-camera list length")),
    Param("k2_intra", 2, _positive_int, "an int in the range [1, inf)",
          _CA_JACCARD.format("same-camera expansion length")),
    Param("k2_inter", 4, _positive_int, "an int in the range [1, inf)",
          _CA_JACCARD.format("other-camera expansion length")),
    _choice("knn", "auto", _knn_engines, "kNN engine, see xmrank.backend.resolve_knn."),
    Param("device", "cpu", _check_device, "'cpu', 'cuda' or 'cuda:N'",
          "cuda (or cuda:N, a GPU by index): kNN and Jaccard on the GPU (needs the gpu extra).", kind="device"),
    Param("n_jobs", -1, check_n_jobs, "an int other than 0 (-1: all cores, -k: all but k - 1) or None",
          "Threads, as scikit-learn counts them: -1 (the default) uses all cores, -k all but k - 1, "
          "a positive number that many.", kind="n_jobs"),
    Param("eps_gap", 0.02, lambda v, n: check_real(v, n, low=0.0, low_open=True), "a float > 0",
          "Radius step of the refinement (clusterings at eps - gap, eps, eps + gap), > 0.", kind="float"),
    Param("ratio", 0.5, lambda v, n: check_real(v, n, low=0.0, high=1.0, low_open=True), "a float in (0, 1]",
          "Share of the rows of the subset modality in each subset, in (0, 1].", kind="float"),
    Param("seed", 0, check_seed, "None, an int in [0, 2**64 - 1] or a numpy Generator",
          "Random seed (0 to 2**64 - 1).", kind="seed"),
    Param("progress", None, _check_progress, "True, False or None",
          "Progress: a bar on a terminal; elsewhere (nohup, a scheduler) a line per stage with its time. "
          "Default: the bar on a terminal, the lines only with -v.", kind="flag"),
)}

#: ``{name: default}`` of every declared parameter: the defaults of the signatures.
DEFAULTS: dict[str, Any] = {name: p.default for name, p in PARAMS.items()}


def check_params(**values) -> dict:
    """Each keyword checked by its declaration in :data:`PARAMS`.

    Returns
    -------
    checked : dict
        ``{name: value as used}``, in the order given (``n_jobs`` resolved to
        a number of threads, ``eps`` a float or ``"auto"``).

    Raises
    ------
    xmrank.InputError
        At the first value its declaration refuses.
    """
    return {name: PARAMS[name](value) for name, value in values.items()}


#: The default grid of :func:`xmrank.select_rerank` and ``xmrank tune rerank`` (method x k1 x k2 x λ; the
#: methods default to the rules the labels given allow). Around the published k1=20, k2=6, λ=0.3.
RERANK_GRID: dict[str, tuple] = {"k1s": (10, 20, 30), "k2s": (1, 3, 6), "lambdas": (0.1, 0.3, 0.5)}
