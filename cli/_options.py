"""Click options built from the one parameter declaration, ``xmrank._params.PARAMS``.

``declared("k1")`` is ``--k1`` with the library's default, its check and its
help text: the command line refuses what the functions and
:class:`xmrank.XMCluster` refuse, with the same words, as a one-line usage
error. Commands add their own sentence to a help text with ``more=``.
"""

from __future__ import annotations

import functools

import click

from xmrank._params import PARAMS, parse_eps, parse_int_or_auto
from xmrank._validation import InputError

from ._io import DEVICE, SEED

__all__ = ["DeclaredType", "EPS", "K_OR_AUTO", "KOrAuto", "algorithm_option", "camera_alias", "camera_weight_option",
           "declared", "either_option", "jobs_option", "label_or_path", "progress_option", "rerank_k_options",
           "rerank_method_option"]


class DeclaredType(click.ParamType):
    """The click type of a declared parameter: the text read as its kind, then checked by its declaration."""

    def __init__(self, param):
        self.param = param
        self.name = {"eps": "FLOAT|auto", "int_auto": "INTEGER|auto", "float": "FLOAT",
                     "n_jobs": "INTEGER"}.get(param.kind, "INTEGER")

    def convert(self, value, param, ctx):
        p = self.param
        try:
            if p.kind == "eps":
                return parse_eps(value, p.name, text=True)
            if p.kind == "int_auto":
                return parse_int_or_auto(value, p.name, text=True)
            if isinstance(value, str):
                text = value.strip()
                try:
                    value = float(text) if p.kind == "float" else int(text)
                except ValueError:
                    kind = "number" if p.kind == "float" else "integer"
                    self.fail(f"{p.name} must be an {kind}; got {value!r}.", param, ctx)
            checked = p(value)
        except InputError as exc:
            self.fail(str(exc), param, ctx)
        return value if p.kind == "n_jobs" else checked  # n_jobs: the library resolves -1 to the cores there


#: The click type of every ``--eps``: a number > 0 or "auto", read by :func:`xmrank._params.parse_eps`.
EPS = DeclaredType(PARAMS["eps"])


def _click_type(param):
    if param.kind == "choice":
        return click.Choice(param.choices())
    if param.kind == "device":
        return DEVICE
    if param.kind == "seed":
        return SEED
    return DeclaredType(param)


def declared(name: str, *decls, more: str = "", **overrides):
    """``click.option`` for the declared parameter ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`xmrank._params.PARAMS`.
    *decls : str
        Extra spellings (``"-j"``); the first option is ``--`` + ``name``
        with dashes, unless ``overrides`` names ``option``.
    more : str, default=""
        A sentence appended to the declared help text.
    **overrides
        Other ``click.option`` arguments (``default``, ``type``, ``help``),
        and ``option`` (the long option) or ``dest`` (the argument's name).
    """
    param = PARAMS[name]
    option = overrides.pop("option", param.option)
    dest = overrides.pop("dest", name)
    help_text = overrides.pop("help", param.help)
    settings = dict(type=_click_type(param), default=param.default, show_default=param.default is not None,
                    help=f"{help_text} {more}".strip())
    settings.update(overrides)
    return click.option(option, *decls, dest, **settings)


class KOrAuto(click.ParamType):
    """A list length: a positive integer, or ``auto`` (chosen from the data)."""

    name = "INTEGER|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is neither a positive integer nor 'auto'.", param, ctx)
        if not 1 <= number < 2**63:
            self.fail(f"expected a positive integer or 'auto'; got {value!r}.", param, ctx)
        return number


#: The click type of every re-ranking ``--k1`` / ``--k2`` (and ``--qe-k``): a positive integer or "auto".
K_OR_AUTO = KOrAuto()

#: The help of the re-ranking options, once for rerank, evaluate, test and tune.
RERANK_METHOD_HELP = ("Neighbour rule of the re-ranking. 'auto' measures the modality bias of plain kNN lists: "
                      "'modality' where they keep to their own modality, else 'camera' with cameras, else 'vanilla'.")
RERANK_K1_HELP = ("Re-ranking neighbour-list length, or 'auto': the published 20 unless the data show one item per "
                  "identity and modality (then 1 per modality: the ranking is kept) or larger groups.")
RERANK_K2_HELP = "Re-ranking query-expansion length (per modality for 'modality'), or 'auto' (see xmrank.retrieval.auto_k)."


def rerank_method_option(choices, *decls, option="--method", dest="method", default="auto"):
    """``--method`` of a re-ranking command: one of ``choices`` ('auto' among them), with the shared help."""
    return click.option(option, *decls, dest, type=click.Choice(choices), default=default, show_default=True,
                        help=RERANK_METHOD_HELP)


def rerank_k_options(func):
    """``--k1`` and ``--k2`` of a re-ranking command: a positive integer or 'auto' (defaults 20 and 6)."""
    func = click.option("--k2", type=K_OR_AUTO, default=6, show_default=True, help=RERANK_K2_HELP)(func)
    return click.option("--k1", type=K_OR_AUTO, default=20, show_default=True, help=RERANK_K1_HELP)(func)


def jobs_option(what: str = "the Jaccard distance"):
    """``--jobs/-j``: threads of ``what``, -1 (the default) for all cores, as scikit-learn's ``n_jobs``."""
    return declared("n_jobs", "-j", option="--jobs",
                    help=f"Threads for {what}, as scikit-learn's n_jobs counts them: -1 (the default) uses all "
                         "cores, -k all but k - 1, a positive number that many.")


def algorithm_option(multiple: bool = False, more: str = ""):
    """``--algorithm [k-reciprocal|gnn]``: the re-ranking algorithm (``xmrank.rerank(algorithm=...)``).

    ``multiple=True`` (``evaluate``): the option may be repeated, one table row per algorithm.
    ``more``: a sentence appended to the declared help text.
    """
    if not multiple:
        return declared("rerank_algorithm", option="--algorithm", dest="algorithm", more=more)
    default = PARAMS["rerank_algorithm"].default
    return declared("rerank_algorithm", option="--algorithm", dest="algorithm", multiple=True, default=(default,),
                    more="Repeat it (--algorithm k-reciprocal --algorithm gnn) for a row of each.")


def camera_weight_option():
    """``--camera-weight``: CEIL's camera weights of the GNN re-ranking's graph (``xmrank.rerank(camera_weight=...)``)."""
    return declared("camera_weight", show_default=False)


def progress_option():
    """``--progress/--no-progress``, with the declared help text."""
    return click.option("--progress/--no-progress", default=None, help=PARAMS["progress"].help)


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


def camera_alias(option: str, dest: str):
    """A hidden older spelling of a camera option (``--query-cams`` for ``--query-cameras``).

    :func:`camera_options` merges it; it stays out of ``--help``.
    """
    return click.option(option, dest, callback=label_or_path, hidden=True)


def either_option(value, old_value, option: str, old_option: str):
    """The value of an option or of its hidden older spelling, and the spelling used (for messages)."""
    if old_value is None:
        return value, option
    if value is not None:
        raise click.UsageError(f"give {option} or its older spelling {old_option}, not both.")
    return old_value, old_option


def camera_options(func):
    """``--query-cameras`` / ``--gallery-cameras`` (an array file, or one integer for the side) for a command.

    Their hidden older spellings ``--query-cams`` / ``--gallery-cams`` are
    merged here, once for every command: the command receives
    ``query_cameras``, ``gallery_cameras`` and ``camera_spellings``, the
    pair of option names the user gave (for messages).
    """
    @functools.wraps(func)
    def merged(*args, query_cameras=None, gallery_cameras=None, query_cams=None, gallery_cams=None, **kwargs):
        query_cameras, q_opt = either_option(query_cameras, query_cams, "--query-cameras", "--query-cams")
        gallery_cameras, g_opt = either_option(gallery_cameras, gallery_cams, "--gallery-cameras", "--gallery-cams")
        return func(*args, query_cameras=query_cameras, gallery_cameras=gallery_cameras,
                    camera_spellings=(q_opt, g_opt), **kwargs)

    merged.__click_params__ = list(getattr(func, "__click_params__", []))  # the options declared below this one
    for option in (camera_alias("--gallery-cams", "gallery_cams"), camera_alias("--query-cams", "query_cams"),
                   click.option("--gallery-cameras", callback=label_or_path,
                                help="Camera of each gallery row (.npy), or one integer for all."),
                   click.option("--query-cameras", callback=label_or_path,
                                help="Camera of each query row (.npy), or one integer for all.")):
        merged = option(merged)
    return merged
