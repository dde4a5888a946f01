"""The command line's vocabulary: every option that more than one command takes, declared once.

:data:`OPTIONS` maps a name to an :class:`OptionSpec`: the spellings (long
and short), the click type, the default and the help text. Options of a
library parameter are built from its declaration (:data:`xmrank._params.PARAMS`):
``--k1`` has the library's default, bounds and words, and the command line
refuses what the functions and :class:`xmrank.XMCluster` refuse, with the
same words, as a one-line usage error. A command adds an option with
:func:`option` (``@option("k1")``), which may append a sentence to the help
(``more=``) and mark the option required; the spelling, type, choices and
default cannot be changed there. ``tests/test_cli_vocabulary.py`` walks
every command's parameters and fails when one name has two meanings, types
or defaults.

The one intended difference is declared in :mod:`xmrank._params`: a *family*
of parameters shares an option and a type, with a default per task
(``--k1``: 30 to cluster, cluster-contrast's; 20 to re-rank, Zhong et al.'s).
Older spellings stay as hidden aliases (:data:`ALIASES`; ``--labels`` for
``--ids``, ``--query-cams`` for ``--query-cameras``) and options that were
renamed are named in the error a user gets for the old one (:data:`RENAMED`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import click

from xmrank._params import CLUSTER_GRID, MAX_IMAGE_SIDE, MAX_TRIALS, METHODS, PARAMS, RERANK_GRID, RERANKERS
from xmrank._validation import InputError

__all__ = ["ALIASES", "TASK_FAMILIES", "DEVICE", "DeclaredType", "FiniteFloat", "OPTIONS", "OptionSpec", "RENAMED", "SEED", "aliases",
           "jaccard_device", "label_or_path", "option", "options", "renamed_hint"]


# --- click types -------------------------------------------------------------------------------------------------

class DeclaredType(click.ParamType):
    """The click type of a declared library parameter: the text read by :meth:`xmrank._params.Param.parse_text`.

    Messages are the library's (``k1 must be an integer or 'auto'; got 'x'``),
    as a usage error naming the option.
    """

    def __init__(self, param):
        self.param = param
        self.name = param.metavar or {"float": "FLOAT", "float_auto": "FLOAT|auto", "int_auto": "INTEGER|auto",
                                      "device": "DEVICE"}.get(param.kind, "INTEGER")

    def convert(self, value, param, ctx):
        try:
            checked = self.param.parse_text(value) if isinstance(value, str) else self.param(value)
        except InputError as exc:
            self.fail(str(exc), param, ctx)
        if self.param.kind == "n_jobs":
            return value if not isinstance(value, str) else int(value.strip())  # the library resolves -1 there
        return checked

    def __repr__(self):
        return f"DeclaredType({self.param.name})"


class MethodChoice(click.Choice):
    """``--method``: a Jaccard neighbour rule; the re-rankers it once also named say where they went."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value in RERANKERS and value not in self.choices:
            self.fail(f"{value!r} is a re-ranker, not a neighbour rule: give --reranker {value} "
                      f"(--method is one of {', '.join(self.choices)}).", param, ctx)
        return super().convert(value, param, ctx)


class ListType(click.ParamType):
    """A comma-separated list, each item read by ``item`` (a callable raising ``InputError``/``ValueError``)."""

    def __init__(self, item, name):
        self.item, self.name = item, name

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if not parts:
            self.fail(f"give at least one value, comma-separated; got {value!r}.", param, ctx)
        out = []
        for part in parts:
            try:
                out.append(self.item(part))
            except InputError as exc:
                self.fail(f"{part!r}: {exc}", param, ctx)
        return out


class TrialsType(click.ParamType):
    """RegDB trials: ``"1"``, ``"1,3,5"`` or ``"1-10"`` (combined freely) -> sorted unique trial numbers."""

    name = "LIST"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        out = set()
        for part in str(value).split(","):
            part = part.strip()
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    if lo > hi:
                        raise ValueError
                else:
                    lo = hi = int(part)
            except ValueError:
                self.fail(f"expected RegDB trial numbers such as 1, 1,2,5 or 1-10; got {value!r}.", param, ctx)
            if lo < 1:
                self.fail(f"expected RegDB trial numbers (1 or more); got {value!r}.", param, ctx)
            # the count is bounded before any list is made: 1-2000000000 is refused, not allocated
            if hi - lo + 1 > MAX_TRIALS or len(out) + (hi - lo + 1) > MAX_TRIALS:
                self.fail(f"names more than {MAX_TRIALS} trials; got {value!r}.", param, ctx)
            out.update(range(lo, hi + 1))
        if not out:
            self.fail(f"expected RegDB trial numbers (1 or more); got {value!r}.", param, ctx)
        return sorted(out)


class FiniteFloat(click.ParamType):
    """A finite number (no nan or inf), optionally bounded below (``min``, strictly with ``min_open``)."""

    name = "float"

    def __init__(self, min=None, min_open=False, max=None):
        self.min, self.min_open, self.max = min, min_open, max

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite number; got {value!r}.", param, ctx)
        if self.min is not None and (number < self.min or (self.min_open and number == self.min)):
            self.fail(f"expected a number {'>' if self.min_open else '>='} {self.min}; got {value!r}.", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"expected a number <= {self.max}; got {value!r}.", param, ctx)
        return number


#: Every ``--seed``: 0 to 2**64 - 1 (the library's seeds).
SEED = click.IntRange(0, 2**64 - 1)
#: Every ``--device``: auto, cpu, cuda or cuda:N.
DEVICE = DeclaredType(PARAMS["run_device"])


def jaccard_device(device: str) -> str:
    """A command's ``--device`` for the Jaccard distance: "auto" is cuda where the gpu extra sees a GPU, else cpu."""
    if device != "auto":
        return device
    from xmrank.backend import cuda_available

    return "cuda" if cuda_available() else "cpu"


def label_or_path(ctx, param, value):
    """Click callback: an integer label for the whole side, or a path to an array file."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return value
    if not -(2**63) <= number < 2**63:
        raise click.BadParameter(f"one label for the whole side must fit in a 64-bit integer; got {value}.")
    return number


def _explicit_method(text):
    explicit = tuple(m for m in METHODS if m != "auto")
    if text not in explicit:
        raise InputError(f"expected Jaccard methods among {', '.join(explicit)}")
    return text


def _eps_item(text):
    return PARAMS["eps"].parse_text(text)


def _number(text, name, kind):
    try:
        return kind(text)
    except ValueError:
        raise InputError(f"{name} must be {'an integer' if kind is int else 'a number'}; got {text!r}.") from None


def _k_item(param, name):
    return lambda text: param.number.check(_number(text, name, int), name)


def _lambda_item(text):
    return PARAMS["lambda_value"](_number(text, "lambdas", float), "lambdas")


# --- the declaration ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OptionSpec:
    """One command-line option: spellings, click settings, and the library parameter it stands for.

    Attributes
    ----------
    decls : tuple of str
        The spellings, long first (``("--jobs", "-j")``), or a flag pair
        (``("--progress/--no-progress",)``).
    dest : str
        The callback's argument name.
    settings : dict
        Other ``click.option`` arguments (type, default, help, multiple,
        is_flag, callback, metavar, hidden).
    family : str
        Options of one family share spellings and type, and may differ in
        default (a library family, see :class:`xmrank._params.Param`).
    param : str or None
        The :data:`xmrank._params.PARAMS` key it is built from.
    alias_of : str or None
        For a hidden older spelling: the option it stands for.
    """

    decls: tuple
    dest: str
    settings: dict = field(default_factory=dict)
    family: str = ""
    param: str | None = None
    alias_of: str | None = None


def _declared(name: str, *, dest: str | None = None, help: str | None = None, **settings) -> OptionSpec:
    """The option of library parameter ``name``: its spelling, type, default and help from the declaration."""
    p = PARAMS[name]
    if p.kind == "choice":
        ptype = (MethodChoice if p.family == "method" else click.Choice)(p.choices())
    elif p.kind == "seed":
        ptype = SEED
    else:
        ptype = DeclaredType(p)
    base = dict(type=ptype, default=p.default, show_default=p.default is not None, help=help or p.help)
    if p.kind == "flag":
        base = dict(default=None, help=help or p.help)
        return OptionSpec((f"{p.option}/--no-{p.option[2:]}",), dest or p.keyword, {**base, **settings},
                          family=p.family, param=name)
    if p.metavar:
        base["metavar"] = p.metavar
    return OptionSpec((p.option, *p.short), dest or p.keyword, {**base, **settings}, family=p.family, param=name)


def _cli(decls, dest, family=None, **settings) -> OptionSpec:
    """A command-line-only option (files, outputs, switches of the commands)."""
    decls = (decls,) if isinstance(decls, str) else tuple(decls)
    return OptionSpec(decls, dest, settings, family=family or dest)


_PATH = click.Path(dir_okay=False)
_PER_ROW = "(a file of one array: .npy, .npz, .csv, .pt, ...; or PATH:KEY), one per row of FEATURES"
_SIDE = "Per-row {} of the {} rows (an array file), or one integer for the whole side"

OPTIONS: dict[str, OptionSpec] = {
    # --- library parameters
    **{n: _declared(n) for n in ("method", "k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter", "eps",
                                 "min_samples", "algorithm", "eps_gap", "noise", "bins", "max_pairs", "knn",
                                 "n_jobs", "seed", "progress", "num_workers", "lambda_value", "normalize",
                                 "camera_weight", "beta", "alpha", "protocol", "max_rank", "n_splits")},
    "qe_k": _declared("qe_k", dest="qe_k"),
    "ratio": _declared("ratio", dest="subset_ratio"),
    "rerank_k1": _declared("rerank_k1"),
    "rerank_k2": _declared("rerank_k2"),
    "device": _declared("run_device"),
    # --- per-row arrays of one table of features
    "modalities": _cli(("--modalities", "-m"), "modalities", type=_PATH, help=f"Modality labels {_PER_ROW}."),
    "cameras": _cli(("--cameras", "-c"), "cameras", type=_PATH, help=f"Camera labels {_PER_ROW}."),
    "ids": _cli("--ids", "ids", type=_PATH, help=f"Identity labels {_PER_ROW}."),
    "names": _cli("--names", "names", type=_PATH,
                  help="A name per row (image paths, ...); a 'names' or 'paths' array in FEATURES also works."),
    # --- per-row arrays of query and gallery
    "query_ids": _cli("--query-ids", "query_ids", type=_PATH, help="Identity of each query row (an array file)."),
    "gallery_ids": _cli("--gallery-ids", "gallery_ids", type=_PATH, help="Identity of each gallery row (an array file)."),
    "query_cameras": _cli("--query-cameras", "query_cameras", callback=label_or_path, help=_SIDE.format("cameras", "query") + "."),
    "gallery_cameras": _cli("--gallery-cameras", "gallery_cameras", callback=label_or_path,
                            help=_SIDE.format("cameras", "gallery") + "."),
    "query_modalities": _cli("--query-modalities", "query_modalities", callback=label_or_path,
                             help=_SIDE.format("modalities", "query") + "."),
    "gallery_modalities": _cli("--gallery-modalities", "gallery_modalities", callback=label_or_path,
                               help=_SIDE.format("modalities", "gallery") + "."),
    "distances": _cli("--distances", "distances", type=_PATH,
                      help="Query x gallery distance matrix (an array file, smaller = closer), instead of features."),
    "query_distances": _cli("--query-distances", "query_distances", type=_PATH,
                            help="Query x query distances (an array file), for re-ranking with --distances."),
    "gallery_distances": _cli("--gallery-distances", "gallery_distances", type=_PATH,
                              help="Gallery x gallery distances (an array file), for re-ranking with --distances."),
    # --- outputs
    "output": _cli(("--output", "-o"), "output", type=_PATH, help="Write the result here."),
    "output_folder": _cli(("--output", "-o"), "output", family="output", type=click.Path(file_okay=False),
                          help="The run folder RUN."),
    "json": _cli("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True),
                 help="Also write the results as JSON to this file ('-': standard output, the report then on "
                      "standard error)."),
    # --- scoring and re-ranking
    "metric": _cli("--metric", "metric", type=click.Choice(["inner", "cosine", "euclidean"]), default="inner",
                   show_default=True, help="Distance between features: -q.g (the published VI-ReID test scripts'), "
                                           "1 - cosine, or Euclidean."),
    "roc": _cli("--roc", "roc", is_flag=True, help="Also report the TPR at FPR 1e-4, 1e-3, 1e-2 and 1e-1."),
    "rerank": _cli("--rerank", "rerank", is_flag=True,
                   help="Also score re-ranked distances: a second row (xmrank.rerank, with --method, --k1, --k2, "
                        "--lambda and --reranker)."),
    "reranker": _cli("--reranker", "reranker", type=click.Choice(RERANKERS), multiple=True,
                     default=(PARAMS["rerank_algorithm"].default,), show_default=True,
                     help="Re-ranking: 'k-reciprocal' (Zhong et al.'s Jaccard) or 'gnn' (Zhang et al.'s GNN, "
                          "sparse) over the --method neighbour rule; 'torchreid' (torchreid's re_ranking exactly, "
                          "from distances), 'qb-norm', 'db-norm' (hubness reduction), 'aqe', 'alpha-qe' (query "
                          "expansion) on features. Repeat it for a row of each (evaluate, test)."),
    "methods": _cli("--methods", "methods", type=ListType(_explicit_method, "METHOD,..."), default=None,
                    help="Jaccard methods to compare, comma-separated (vanilla, modality, modality-qe, camera, "
                         "modality-camera). Default: those the labels given allow."),
    "k1s": _cli("--k1s", "k1s", family="k1s", type=ListType(_k_item(PARAMS["k1"], "k1s"), "INTEGER,..."),
                default=",".join(map(str, CLUSTER_GRID["k1s"])), show_default=True,
                help="List lengths to try, comma-separated (k2 = ceil(k1 / 5))."),
    "rerank_k1s": _cli("--k1s", "k1s", family="k1s", type=ListType(_k_item(PARAMS["rerank_k1"], "k1s"), "INTEGER,..."),
                       default=",".join(map(str, RERANK_GRID["k1s"])), show_default=True,
                       help="List lengths to try, comma-separated."),
    "k2s": _cli("--k2s", "k2s", type=ListType(_k_item(PARAMS["rerank_k2"], "k2s"), "INTEGER,..."),
                default=",".join(map(str, RERANK_GRID["k2s"])), show_default=True,
                help="Expansion lengths to try, comma-separated."),
    "lambdas": _cli("--lambdas", "lambdas", type=ListType(_lambda_item, "FLOAT,..."),
                    default=",".join(map(str, RERANK_GRID["lambdas"])), show_default=True,
                    help="Weights of the original distance to try, comma-separated (no re-ranking, 1.0, is always "
                         "scored)."),
    "eps_values": _cli("--eps-values", "eps_values", type=ListType(_eps_item, "FLOAT|auto,..."), default=None,
                       help="Radii to try, comma-separated, 'auto' allowed (default: 0.1 to 0.9 by 0.05, and auto)."),
    # --- networks and data sets (test, embed, train)
    "checkpoint": _cli("--checkpoint", "checkpoint", type=click.Path(), metavar="PATH",
                       help="Model file: an xmrank run's model.pt (stage1_model.pt, checkpoint.pt) or a published "
                            "BMIL checkpoint (model_best.pth.tar)."),
    "root": _cli("--root", "root", type=click.Path(), help="The data set folder."),
    "dataset": _cli("--dataset", "dataset", type=click.Choice(["sysu", "regdb", "folder", "synthetic"]),
                    default="sysu", show_default=True,
                    help="Layout of --root: SYSU-MM01 (raw layout), RegDB (idx/ lists), a folder of unlabelled "
                         "ROOT/visible/** and ROOT/infrared/** images, or the synthetic set (SYSU-MM01's layout)."),
    "trial": _cli("--trial", "trial", type=TrialsType(), default=None,
                  help="RegDB trials whose lists are read, e.g. 1, 1,2,5 or 1-10 (default 1)."),
    "batch_size": _cli("--batch-size", "batch_size", type=click.IntRange(min=1), default=64, show_default=True,
                       help="Images per forward pass."),
    "height": _cli("--input-height", "height", type=click.IntRange(min=8, max=MAX_IMAGE_SIDE), default=None,
                   help=f"Network input height, 8 to {MAX_IMAGE_SIDE} (default: the run's, 288 for a published "
                        "checkpoint)."),
    "width": _cli("--input-width", "width", type=click.IntRange(min=8, max=MAX_IMAGE_SIDE), default=None,
                  help=f"Network input width, 8 to {MAX_IMAGE_SIDE} (default: the run's, 144 for a published "
                       "checkpoint)."),
}

#: The families of options that share a spelling and type with a default (or a path kind) per task, each for a
#: reason: ``--k1`` / ``--k2`` (and the grid ``--k1s``) are 30 / 6 to cluster (cluster-contrast's recipe) and 20 /
#: 6 to re-rank (Zhong et al.'s), the published values of each task; ``-o/--output`` is a file, except ``train``'s
#: run folder. No other name may differ between commands (``tests/test_cli_vocabulary.py``).
TASK_FAMILIES = ("k1", "k2", "k1s", "output")

#: Hidden older spellings: ``{alias: (option it stands for, the alias's spelling)}``. A command that takes the
#: option takes its alias too (merged by :func:`aliases`); giving both is a usage error.
ALIASES = {
    "labels": ("ids", "--labels"),
    "query_cams": ("query_cameras", "--query-cams"),
    "gallery_cams": ("gallery_cameras", "--gallery-cams"),
}

#: Options renamed by issue 24's one vocabulary: ``{old spelling: {command: new spelling}}``, for the error a
#: user gets when typing the old one.
RENAMED = {
    "--algorithm": {"rerank": "--reranker", "evaluate": "--reranker", "test": "--reranker"},
    "--rerank-method": {"test": "--method"},
    "--mode": {"test": "--search-mode"},
    "--method": {"diagnose": "--methods (comma-separated)"},
    "--eps": {"tune cluster": "--eps-values"},
    "--height": {"test": "--input-height", "embed": "--input-height"},
    "--width": {"test": "--input-width", "embed": "--input-width"},
}


def renamed_hint(command_path: str, option_name: str) -> str:
    """The current spelling when ``option_name`` is an older one of an option of the command, else ""."""
    words = command_path.split()[1:]
    for n in range(len(words), 0, -1):
        new = RENAMED.get(option_name, {}).get(" ".join(words[:n]))
        if new:
            return new
    return ""


def option(name: str, *extra_decls, more: str = "", required: bool | None = None):
    """``click.option`` for the declared option ``name`` of :data:`OPTIONS`.

    Parameters
    ----------
    name : str
        A key of :data:`OPTIONS`.
    *extra_decls : str
        Must be empty: a spelling is declared once, in :data:`OPTIONS`.
    more : str, default=""
        A sentence appended to the declared help text (what the option does
        in this command).
    required : bool, default=None
        Make the option required in this command.
    """
    if extra_decls:
        raise TypeError(f"option {name!r}: spellings are declared in OPTIONS, not per command")
    spec = OPTIONS[name]
    settings = dict(spec.settings)
    settings["help"] = f"{settings.get('help', '')} {more}".strip()
    if required is not None:
        settings["required"] = required

    def decorate(func):
        func = click.option(*spec.decls, spec.dest, **settings)(func)
        added = func.__click_params__[-1]
        added.declaration, added.family = name, spec.family
        return func

    return decorate


def options(*names: str):
    """Several :func:`option` at once, in the order given (as they show in ``--help``)."""
    def decorate(func):
        for name in reversed(names):
            func = option(name)(func)
        return func

    return decorate


def aliases(func):
    """Add the hidden older spelling of each option of ``func`` that has one (:data:`ALIASES`) and merge it.

    Put it above the options (it reads the options declared below it). The
    command receives the option's value whichever spelling was typed, and
    ``spellings``: ``{dest: the option name typed}``, for messages.
    """
    params = list(getattr(func, "__click_params__", []))
    present = {getattr(p, "declaration", None): p for p in params}
    pairs = [(alias, target, spelling) for alias, (target, spelling) in ALIASES.items() if target in present]

    @functools.wraps(func)
    def merged(*args, **kwargs):
        spellings = {}
        for alias, target, spelling in pairs:
            dest = OPTIONS[target].dest
            old = kwargs.pop(alias, None)
            canonical = OPTIONS[target].decls[0]
            if old is not None:
                if kwargs.get(dest) is not None:
                    raise click.UsageError(f"give {canonical} or its older spelling {spelling}, not both.")
                kwargs[dest] = old
                spellings[dest] = spelling
            else:
                spellings[dest] = canonical
        return func(*args, spellings=spellings, **kwargs)

    merged.__click_params__ = params
    for alias, target, spelling in pairs:
        source = OPTIONS[target].settings
        merged = click.option(spelling, alias, hidden=True, type=source.get("type"),
                              callback=source.get("callback"))(merged)
        merged.__click_params__[-1].declaration = target
        merged.__click_params__[-1].family = OPTIONS[target].family
        merged.__click_params__[-1].alias_of = target
    return merged
