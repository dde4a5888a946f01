"""Every parameter of xmrank, declared once, below everything that reads it.

Each :class:`Param` holds a parameter's name, default, bounds, help text and
command-line spelling. The Jaccard distance (:mod:`xmrank.jaccard`), the
clustering (:func:`xmrank.cluster`, :class:`xmrank.XMCluster`), the
retrieval functions (:func:`xmrank.rerank`, :func:`xmrank.evaluate`,
:func:`xmrank.select_rerank`), the diagnostics, the trainer's
:class:`~xmrank.torch.config.TrainConfig` and the command line
(``xmrank.cli._options``) all read :data:`PARAMS`: a name, a bound or a
default changes here, and everywhere at once.

Bounds write their own messages, in the manner of scikit-learn's
``_parameter_constraints``: a :class:`Param` lists its constraints
(:class:`Interval`, :class:`Options`, :data:`AUTO`, ...); the same objects
check a value (one line naming the argument, :class:`xmrank.InputError`)
and say in words what is accepted (the estimator's "The 'k1' parameter of
XMCluster must be an int in the range [1, inf) or 'auto'" and the command
line's help). Nothing else writes a bound of a declared parameter.

The few names of choices (:data:`METHODS`, :data:`KNN_ENGINES`,
:data:`PROTOCOLS`, ...) are declared here too, and :func:`parse_device`, the
one reader of ``device=`` strings.

Layer: the bottom floor with :mod:`xmrank._validation`, which it reads; it
imports nothing else of xmrank.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable

from ._validation import (InputError, check_int, check_n_jobs, check_option, check_real, check_seed, is_auto,
                          plain)

__all__ = ["ALGORITHMS", "ALPHA_MAX", "ASSOCIATIONS", "AUTO", "BETA_MAX", "CLUSTER_GRID", "Constraint", "DEFAULTS", "DEVICES",
           "Interval", "KNN_ENGINES", "MAX_BINS", "MAX_IMAGE_SIDE", "MAX_SYNTHETIC_IMAGES", "MAX_SYNTHETIC_PIXELS", "MAX_TRIALS",
           "METHODS", "NOISE", "NORMALIZE", "Options", "PARAMS", "PROTOCOLS", "Param", "RERANKERS",
           "RERANK_ALGORITHMS", "RERANK_GRID", "check_params", "parse_device", "parse_eps", "parse_int_or_auto",
           "resolve_protocol"]

# --- names of choices --------------------------------------------------------------------------------------------

#: Jaccard methods (neighbour rules) of :func:`xmrank.jaccard_distance`, :func:`xmrank.cluster` and
#: :func:`xmrank.rerank`; "auto" measures the modality bias first.
METHODS = ("auto", "vanilla", "modality", "modality-qe", "camera", "modality-camera")
#: kNN engines, see :func:`xmrank.backend.resolve_knn`.
KNN_ENGINES = ("auto", "faiss", "numpy", "ann", "dask", "bf16")
#: Kinds of ``device=`` (``"cuda:N"`` names a GPU by index).
DEVICES = ("cpu", "cuda")
#: Density clusterings of :func:`xmrank.cluster_distance`.
ALGORITHMS = ("dbscan", "hdbscan")
#: Re-ranking algorithms of :func:`xmrank.rerank`: k-reciprocal (Zhong et al.) and GNN (Zhang et al.).
RERANK_ALGORITHMS = ("k-reciprocal", "gnn")
#: Every re-ranking ``xmrank rerank`` runs: :data:`RERANK_ALGORITHMS` over a neighbour rule, torchreid's
#: ``re_ranking`` (:func:`xmrank.compat.re_ranking`), hubness reduction (:func:`xmrank.retrieval.qb_norm`,
#: :func:`~xmrank.retrieval.db_norm`) and query expansion (:func:`~xmrank.retrieval.query_expansion`).
RERANKERS = RERANK_ALGORITHMS + ("torchreid", "qb-norm", "db-norm", "aqe", "alpha-qe")
#: Evaluation protocols of :func:`xmrank.evaluate`, each with the rule it applies (said by ``xmrank evaluate``).
PROTOCOLS = {
    "sysu": "SYSU-MM01's rules: camera-2 gallery items dropped for camera-3 queries, CMC over distinct identities",
    "regdb": "RegDB's rules: nothing dropped (queries and gallery come from different cameras)",
    "market": "Market-1501's rules: same-identity gallery items of the query's camera dropped",
    "llcm": "LLCM's rules (eval_llcm): same-identity same-camera gallery items dropped, CMC over distinct identities",
}
#: How :func:`xmrank.match_clusters` joins clusters across modalities (``xmrank cluster --association``).
ASSOCIATIONS = ("hungarian", "ot", "ot-instance")
#: How noise rows (-1) are scored against identities: each alone, or all together as one cluster.
NOISE = ("singletons", "cluster")
#: What each query's squared distances are divided by before re-ranking (:func:`xmrank.rerank`).
NORMALIZE = ("gallery", "union")

# --- bounds that keep a result finite and its memory known before any work: refused at the boundary ---------------
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
#: Most histogram bins of :func:`xmrank.diagnose`.
MAX_BINS = 1_000_000


def parse_device(device) -> tuple[str, int | None]:
    """Split a ``device=`` string into its kind and GPU index, checking only its spelling.

    ``"cpu"`` -> ``("cpu", None)``, ``"cuda"`` -> ``("cuda", None)`` (the
    current GPU), ``"cuda:1"`` -> ``("cuda", 1)``. Whether the device can run
    here is :func:`xmrank.backend.resolve_device`'s question (or PyTorch's,
    for a network).

    Raises
    ------
    xmrank.InputError
        For anything else.
    """
    if isinstance(device, str):
        kind, sep, index = device.partition(":")
        if kind in DEVICES and not sep:
            return kind, None
        if kind == "cuda" and index.isascii() and index.isdigit():
            return "cuda", int(index)
    raise InputError(f"Unknown device {plain(device)}: expected 'cpu', 'cuda' or 'cuda:N' (a GPU index).")


# --- constraints: each checks a value and says in words what it accepts ----------------------------------------------

class Constraint:
    """One kind of accepted value of a :class:`Param`.

    ``matches(value)`` says whether the value is of this constraint's kind
    (a number for :class:`Interval`, a string for :class:`Options`);
    ``check(value, name)`` returns it as used or raises
    :class:`xmrank.InputError` naming ``name``; ``str()`` is the
    scikit-learn wording ("an int in the range [1, inf)") and :attr:`plain`
    the short one of the functions' messages ("an integer").
    """

    plain = ""

    def matches(self, value) -> bool:
        raise NotImplementedError

    def check(self, value, name: str):
        raise NotImplementedError


def _is_bool(value) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


@dataclass(frozen=True)
class Interval(Constraint):
    """A number in ``[low, high]``; ``closed`` says which ends belong ("both", "left", "right", "neither").

    ``kind`` is ``int`` (an integer; checked by
    :func:`xmrank._validation.check_int`) or ``float`` (a finite real;
    :func:`~xmrank._validation.check_real`). ``None`` ends are unbounded.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def matches(self, value) -> bool:
        if _is_bool(value):
            return False
        return isinstance(value, Integral) if self.kind is int else isinstance(value, Real)

    def check(self, value, name):
        if self.kind is int:
            return check_int(value, name, minimum=self.low, maximum=self.high)
        return check_real(value, name, low=self.low, high=self.high, low_open=self.closed in ("right", "neither"),
                          high_open=self.closed in ("left", "neither"))

    def __str__(self):
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else _number(self.low)
        high = "inf" if self.high is None else _number(self.high)
        return f"{'an int' if self.kind is int else 'a float'} in the range {left}{low}, {high}{right}"

    @property
    def plain(self):
        if self.kind is int:
            return "an integer"
        return "a positive number" if self.low == 0 and self.closed in ("right", "neither") else "a number"


def _number(x) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class Options(Constraint):
    """One of a few words (``words``: a tuple, or a callable returning it)."""

    words: Any

    def choices(self) -> tuple:
        return tuple(self.words() if callable(self.words) else self.words)

    def matches(self, value) -> bool:
        return isinstance(value, str)

    def check(self, value, name):
        return check_option(value, name, self.choices())

    def __str__(self):
        return "a str among {" + ", ".join(repr(c) for c in self.choices()) + "}"

    @property
    def plain(self):
        return "one of " + ", ".join(repr(c) for c in self.choices())


class _Auto(Constraint):
    """The word ``"auto"``: the value is chosen from the data."""

    plain = "'auto'"

    def matches(self, value) -> bool:
        return is_auto(value)

    def check(self, value, name):
        return "auto"

    def __str__(self):
        return "'auto'"


class _NoneOk(Constraint):
    """``None`` (the parameter's "off" or "not given")."""

    plain = "None"

    def matches(self, value) -> bool:
        return value is None

    def check(self, value, name):
        return None

    def __str__(self):
        return "None"


#: The constraint of a parameter that also takes ``"auto"``.
AUTO = _Auto()
#: The constraint of a parameter that also takes ``None``.
NONE = _NoneOk()


@dataclass(frozen=True)
class Custom(Constraint):
    """A kind checked by a function of its own (devices, seeds, thread counts, flags)."""

    test: Callable[[Any], bool]
    checker: Callable[[Any, str], Any]
    words: str

    def matches(self, value) -> bool:
        return self.test(value)

    def check(self, value, name):
        return self.checker(value, name)

    def __str__(self):
        return self.words

    @property
    def plain(self):
        return self.words


def _check_device(value, name):
    parse_device(value)
    return value


def _check_run_device(value, name):
    if value == "auto":
        return value
    try:
        parse_device(value)
    except InputError:
        raise InputError(f"{name} must be auto, cpu, cuda or cuda:N; got {plain(value)}.") from None
    return value


DEVICE = Custom(lambda v: True, _check_device, "'cpu', 'cuda' or 'cuda:N'")
RUN_DEVICE = Custom(lambda v: isinstance(v, str), _check_run_device, "'auto', 'cpu', 'cuda' or 'cuda:N'")
THREADS = Custom(lambda v: v is None or not isinstance(v, str), check_n_jobs,
                 "an int other than 0 (-1: all cores, -k: all but k - 1) or None")
SEED = Custom(lambda v: not isinstance(v, str), check_seed, "None, an int in [0, 2**64 - 1] or a numpy Generator")
FLAG = Custom(lambda v: not isinstance(v, str), lambda v, n: _flag(v, n), "True, False or None")


def _flag(value, name):
    if value is not None and not _is_bool(value):
        raise InputError(f"{name} must be True, False or None; got {plain(value)}.")
    return None if value is None else bool(value)


# --- the declaration -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One parameter: its name, default, constraints, help text and command-line spelling.

    Attributes
    ----------
    name : str
        Its key in :data:`PARAMS`.
    default : object
        The default of the functions, the estimator, ``TrainConfig`` and the
        command line.
    constraints : tuple of Constraint
        The kinds of value accepted, in the order tried; the first whose
        ``matches`` holds checks the value. A value none matches is checked
        by the first number's (its message: "must be an integer") or refused
        with :meth:`plain_expected`.
    help : str
        The help text of the command-line option.
    keyword : str, default=None
        The functions' keyword argument (``"k1"`` for ``rerank_k1``); None: ``name``.
    option : str, default=None
        The long command-line option; None: ``--`` and the keyword with dashes.
    short : tuple of str, default=()
        Short spellings (``("-j",)``).
    family : str, default=None
        Parameters of one family are one concept with a default per task
        (``k1``: 30 to cluster, cluster-contrast's; 20 to re-rank, Zhong et
        al.'s): they share a keyword, a command-line option and a type, and
        only their defaults and help may differ. None: ``name`` (a family of
        one).
    metavar : str, default=None
        The command line's name of the value ("INTEGER|auto"); None: click's.
    """

    name: str
    default: Any
    constraints: tuple
    help: str
    keyword: str | None = None
    option: str | None = None
    short: tuple = ()
    family: str | None = None
    metavar: str | None = None

    def __post_init__(self):
        if self.keyword is None:
            object.__setattr__(self, "keyword", self.name)
        if self.option is None:
            object.__setattr__(self, "option", "--" + self.keyword.replace("_", "-"))
        if self.family is None:
            object.__setattr__(self, "family", self.name)

    def __call__(self, value, name: str | None = None):
        """``value`` checked (and resolved); ``name`` replaces :attr:`keyword` in messages."""
        name = self.keyword if name is None else name
        for c in self.constraints:
            if c.matches(value):
                return c.check(value, name)
        number = self.number
        if number is not None and not isinstance(value, (str, bytes)):
            return number.check(value, name)  # its own message: "must be an integer" / "a finite number"
        raise InputError(f"{name} must be {self.plain_expected()}; got {plain(value)}.")

    def expected(self) -> str:
        """What is accepted, in scikit-learn's words ("an int in the range [1, inf) or 'auto'")."""
        return " or ".join(str(c) for c in self.constraints)

    def plain_expected(self) -> str:
        """What is accepted, in the functions' short words ("an integer or 'auto'")."""
        return " or ".join(c.plain for c in self.constraints)

    @property
    def number(self) -> Interval | None:
        """The parameter's numeric bound (its :class:`Interval`), for grids of its values; None if it has none."""
        return next((c for c in self.constraints if isinstance(c, Interval)), None)

    def choices(self) -> tuple | None:
        """The words of a parameter that takes one of a few words, else None."""
        for c in self.constraints:
            if isinstance(c, Options):
                return c.choices()
        return None

    @property
    def kind(self) -> str:
        """How text is read: "choice", "int", "int_auto", "float", "float_auto", "device", "n_jobs", "seed" or "flag"."""
        first = self.constraints[0]
        if isinstance(first, Options):
            return "choice"
        if first is DEVICE or first is RUN_DEVICE:
            return "device"
        if first is THREADS:
            return "n_jobs"
        if first is SEED:
            return "seed"
        if first is FLAG:
            return "flag"
        number = self.number
        if number is None:
            return "float"
        auto = "_auto" if AUTO in self.constraints else ""
        return ("int" if number.kind is int else "float") + auto

    def parse_text(self, text: str, name: str | None = None):
        """A command-line value: ``"auto"`` in any case with spaces around, else a number of the declared kind.

        Returns the value checked by the declaration; raises
        :class:`xmrank.InputError` as the functions do.
        """
        name = self.keyword if name is None else name
        if not isinstance(text, str):
            return self(text, name)
        word = text.strip()
        if AUTO in self.constraints and word.lower() == "auto":
            return "auto"
        kind = self.kind
        if kind in ("int", "int_auto", "n_jobs", "seed"):
            try:
                value = int(word)
            except ValueError:
                raise InputError(f"{name} must be {self.plain_expected()}; got {plain(text)}.") from None
        elif kind in ("float", "float_auto"):
            try:
                value = float(word)
            except ValueError:
                raise InputError(f"{name} must be {self.plain_expected()}; got {plain(text)}.") from None
        else:
            value = word
        return self(value, name)


def _positive_int():
    return (Interval(int, 1, None),)


_CA_JACCARD = "CA-Jaccard's {} (method 'camera' and 'modality-camera'), >= 1."
_METHOD_HELP = ("Jaccard neighbour rule. 'auto' measures the modality bias of plain kNN lists: 'modality' where "
                "they keep to their own modality, else 'vanilla' ('camera' with cameras and no modalities).")

PARAMS: dict[str, Param] = {p.name: p for p in (
    # --- the Jaccard distance and the clustering
    Param("method", "auto", (Options(METHODS),), _METHOD_HELP),
    Param("k1", 30, (Interval(int, 1, None), AUTO),
          "Neighbour-list length, >= 1, or 'auto': clustering tries 5, 10, 20 and 30 and keeps the best label-free "
          "quality on the mean of their distances.", metavar="INTEGER|auto"),
    Param("k2", 6, (Interval(int, 1, None), AUTO),
          "Query-expansion length (per modality for 'modality'), >= 1, or 'auto': ceil(k1 / 5), the published "
          "30 / 6.", metavar="INTEGER|auto"),
    Param("k1_intra", 5, _positive_int(), _CA_JACCARD.format("same-camera list length")),
    Param("k1_inter", 20, _positive_int(), _CA_JACCARD.format("other-camera list length")),
    Param("k2_intra", 2, _positive_int(), _CA_JACCARD.format("same-camera expansion length")),
    Param("k2_inter", 4, _positive_int(), _CA_JACCARD.format("other-camera expansion length")),
    Param("eps", 0.6, (Interval(float, 0.0, None, closed="right"), AUTO),
          "DBSCAN radius (0.6 on SYSU-MM01, 0.3 on RegDB), > 0, or 'auto': the eps of the best label-free "
          "quality (modularity + silhouette) over 0.05-0.95.", metavar="FLOAT|auto"),
    Param("min_samples", 4, _positive_int(), "Rows (self included) that make a core point, >= 1."),
    Param("algorithm", "dbscan", (Options(ALGORITHMS),), "Density clustering of the Jaccard distance."),
    Param("eps_gap", 0.02, (Interval(float, 0.0, None, closed="right"),),
          "Radius step of the refinement (clusterings at eps - gap, eps, eps + gap), > 0."),
    Param("ratio", 0.5, (Interval(float, 0.0, 1.0, closed="right"),),
          "Share of the rows of the subset modality in each subset, in (0, 1].", option="--subset-ratio"),
    Param("bins", 50, (Interval(int, 1, MAX_BINS),), f"Histogram bins, 1 to {MAX_BINS:,}."),
    Param("max_pairs", 2_000_000, _positive_int(),
          "Original-distance histogram: all pairs up to this many, else a random sample of this many."),
    Param("noise", "singletons", (Options(NOISE),),
          "How noise rows (-1) are scored against identities: each alone (singletons: DBSCAN's noise belongs with "
          "nobody) or all together as one cluster, as scikit-learn's ARI reads -1."),
    # --- search and computation
    Param("knn", "auto", (Options(KNN_ENGINES),),
          "kNN engine. auto: exact, bf16 for large searches where torch and a bfloat16 CPU are there, else faiss "
          "when installed, else blocked numpy (all exact engines give identical lists). bf16: bfloat16 candidates "
          "re-scored exactly. ann: faiss IVF search calibrated on what the Jaccard distance reads, for hundreds of "
          "thousands of rows and more. dask: exact search in row blocks on a dask.distributed cluster."),
    Param("device", "cpu", (DEVICE,),
          "Where the kNN search and the Jaccard distance run: cpu, or cuda (cuda:N, a GPU by index; needs the gpu "
          "extra)."),
    Param("run_device", "auto", (RUN_DEVICE,),
          "Where the work runs: auto (a GPU where this work can use one: PyTorch's for a network, the gpu extra's "
          "for the Jaccard distance; else the CPU), cpu, cuda or cuda:N (a GPU by index).",
          keyword="device", family="device"),
    Param("n_jobs", -1, (THREADS,),
          "Threads, as scikit-learn counts them: -1 (the default) uses all cores, -k all but k - 1, "
          "a positive number that many.", option="--jobs", short=("-j",)),
    Param("num_workers", -1, (Interval(int, -1, None),),
          "DataLoader worker processes decoding images (-1: min(4, CPU cores); 0: in this process)."),
    Param("seed", 0, (SEED,), "Random seed (0 to 2**64 - 1)."),
    Param("progress", None, (FLAG,),
          "Progress: a bar on a terminal; elsewhere (nohup, a scheduler) a line per stage with its time. "
          "Default: the bar on a terminal, the lines only with -v."),
    # --- re-ranking
    Param("rerank_algorithm", "k-reciprocal", (Options(RERANK_ALGORITHMS),),
          "Re-ranking algorithm: 'k-reciprocal' (Zhong et al.'s Jaccard re-ranking) or 'gnn' (Zhang et al.'s GNN "
          "re-ranking, sparse); the method is the neighbour rule of either.", keyword="algorithm"),
    Param("rerank_k1", 20, (Interval(int, 1, None), AUTO),
          "Neighbour-list length, or 'auto': the published 20 unless the data show one item per identity and "
          "modality (then 1 per modality: the ranking is kept) or larger groups.", keyword="k1", family="k1",
          metavar="INTEGER|auto"),
    Param("rerank_k2", 6, (Interval(int, 1, None), AUTO),
          "Query-expansion length (per modality for 'modality'), or 'auto' (see xmrank.retrieval.auto_k).",
          keyword="k2", family="k2", metavar="INTEGER|auto"),
    Param("lambda_value", 0.3, (Interval(float, 0.0, 1.0),),
          "Weight of the original distance in the re-ranked one, in [0, 1] (1: the original ranking).",
          option="--lambda"),
    Param("normalize", "gallery", (Options(NORMALIZE),),
          "Divide each query's squared distances by their max over the gallery, or over query + gallery (Zhong "
          "et al.)."),
    Param("camera_weight", None, (Interval(float, 0.0, 1.0, closed="right"), NONE),
          "GNN re-ranking only: CEIL's camera weights, same-camera edges of the initial graph weigh this value "
          "and other-camera edges its inverse (CEIL uses 0.5); needs cameras. Default: off (all edges 1)."),
    Param("beta", "auto", (Interval(float, 0.0, BETA_MAX, closed="right"), AUTO),
          f"qb-norm/db-norm inverse temperature, > 0 and at most {BETA_MAX:g}, or 'auto' (2 / std of the bank "
          "similarities).", metavar="FLOAT|auto"),
    Param("alpha", 3.0, (Interval(float, 0.0, ALPHA_MAX),),
          f"alpha-qe: weight exponent, 0 to {ALPHA_MAX:g} (0: the plain average of aqe)."),
    Param("qe_k", 5, (Interval(int, 1, None), AUTO),
          "aqe/alpha-qe: rows averaged (per modality with modalities), or 'auto'.", keyword="k", option="--qe-k",
          metavar="INTEGER|auto"),
    # --- evaluation and selection
    Param("protocol", None, (Options(tuple(PROTOCOLS)), NONE),
          "Evaluation rules: " + "; ".join(f"{k}: {v}" for k, v in PROTOCOLS.items()) + ". Default: regdb for rows "
          "without cameras (the one rule that reads none); rows with cameras must say which rules apply. The "
          "report says which it applied."),
    Param("max_rank", 20, _positive_int(), "Length of the CMC curve, >= 1."),
    Param("n_splits", 3, _positive_int(), "Folds of identities of the cross-validation, >= 1 (clustering: >= 2).",
          option="--splits"),
)}

#: ``{name: default}`` of every declared parameter: the defaults of the signatures.
DEFAULTS: dict[str, Any] = {name: p.default for name, p in PARAMS.items()}


def parse_eps(value, name: str = "eps", *, text: bool = False):
    """``eps``: a finite number > 0, or ``"auto"`` (chosen from the data); :data:`PARAMS` ``["eps"]``.

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
    return _read(PARAMS["eps"], value, name, text)


def parse_int_or_auto(value, name: str, *, text: bool = False):
    """A list length: an integer >= 1, or ``"auto"`` (chosen from the data); :data:`PARAMS` ``["k1"]``'s bounds.

    ``text=True`` reads command-line text: ``"auto"`` ignoring case and
    surrounding spaces, else the text as an integer.
    """
    return _read(PARAMS["k1"], value, name, text)


def _read(param, value, name, text):
    if text and isinstance(value, str):
        return param.parse_text(value, name)
    if isinstance(value, bytes):
        raise InputError(f"{name} must be {param.plain_expected()}; got {plain(value)}.")
    return param(value, name)


def resolve_protocol(protocol, query_cameras, gallery_cameras, name: str = "protocol") -> str:
    """The evaluation rules to apply: ``protocol`` checked, or (None, the default) ``"regdb"`` for rows without cameras.

    Rows with cameras have no default: SYSU-MM01's, Market-1501's, LLCM's and
    RegDB's rules treat cameras differently, and guessing wrong changes the
    scores without a word, so ``protocol`` must be given.

    Raises
    ------
    xmrank.InputError
        For an unknown protocol, or None where cameras are given.
    """
    protocol = PARAMS["protocol"](protocol, name)
    if protocol is not None:
        return protocol
    if query_cameras is None and gallery_cameras is None:
        return "regdb"
    raise InputError(f"the rows carry cameras: give {name} ({', '.join(PROTOCOLS)}; the rules differ in what they "
                     "drop for a query's camera); without cameras the default is 'regdb' (nothing dropped).")


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
#: The default grid of :func:`xmrank.select_clustering` and ``xmrank tune cluster`` (method x k1 x eps; the
#: methods default to vanilla, and modality with two or more modalities): eps 0.1 to 0.9 by 0.05, and "auto".
CLUSTER_GRID: dict[str, tuple] = {
    "k1s": (5, 10, 20, 30),
    "eps": tuple(round(0.1 + 0.05 * i, 3) for i in range(17)) + ("auto",),
}
