"""Entry point of the ``xmrank`` command: a click group whose commands load lazily.

Each command lives in its own module of this package; importing the group
imports none of them, so ``xmrank --help`` stays fast and a command's heavy
dependencies (torch, matplotlib) load only when that command runs.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import warnings

import click

#: command name -> (module in xmrank.cli, attribute, one-line help)
COMMANDS = {
    "cluster": ("cluster", "cluster_cmd", "Cluster embeddings with a (modality-aware) Jaccard distance and DBSCAN."),
    "demo": ("demo", "demo_cmd", "Run vanilla vs modality-aware clustering on an embedded biased data set."),
    "diagnose": ("diagnose", "diagnose_cmd", "Measure modality bias: neighbour make-up, distance histograms, cluster scores."),
    "rerank": ("rerank", "rerank_cmd", "Re-rank query/gallery distances with k-reciprocal Jaccard."),
    "evaluate": ("evaluate", "evaluate_cmd", "Score a query x gallery distance matrix (mAP, mINP, CMC)."),
    "visrank": ("visrank", "visrank_cmd", "Draw ranked lists: sample queries beside their top-k gallery items."),
    "test": ("test", "test_cmd", "Evaluate a checkpoint on SYSU-MM01 or RegDB with the published protocol (needs xmrank[torch])."),
    "embed": ("embed", "embed_cmd", "Embed a data set's images with a checkpoint into a features .npz (needs xmrank[torch])."),
    "tune": ("tune", "tune", "Select re-ranking or clustering settings on labelled validation data (cross-validation over identities)."),
    "train": ("train", "train_cmd", "Train the two-stage unsupervised VI-ReID pipeline (needs xmrank[torch])."),
    "make-synthetic": ("make_synthetic", "make_synthetic_cmd", "Write the synthetic visible/infrared image set in SYSU-MM01 layout."),
    "warmup": ("warmup", "warmup_cmd", "Compile xmrank's kernels ahead of time into the user cache folder (for container images)."),
}


#: commands that time work done by xmrank's compiled kernels: the kernels are compiled (or loaded from the
#: cache) before the command starts, with a notice, so that no reported time includes first-use compilation
KERNEL_COMMANDS = frozenset({"cluster", "demo", "diagnose", "rerank", "train"})


def _compiled_first(callback):
    @functools.wraps(callback)
    def run(*args, **kwargs):
        from xmrank import _warmup

        _warmup.ensure_compiled()
        return callback(*args, **kwargs)

    run.compiles_kernels_first = True
    return run


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"Warning: {' '.join(str(message).split())}\n"


def _parse_args_once(command, ctx, args):
    """``command.parse_args``, refusing an option that takes one value and is given twice.

    click keeps the last value silently, so ``--json - --json r.json`` would
    quietly drop one of two outputs the user asked for: a repeated
    single-valued option is a usage error (flags and options that take
    several values may repeat).
    """
    try:
        _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    except click.UsageError:
        order = []  # click's own parse below reports it
    seen = set()
    for param in order:
        if isinstance(param, click.Option) and not (param.multiple or param.count or param.is_flag):
            if param.name in seen:
                raise click.UsageError(f"{max(param.opts, key=len)} is given more than once; give it once.", ctx)
            seen.add(param.name)
    return type(command).parse_args(command, ctx, args)


def _renamed(exc) -> str:
    """The message for an option this command no longer spells so (issue 24's one vocabulary), else ""."""
    if exc.ctx is None:
        return ""
    from ._options import renamed_hint

    if isinstance(exc, click.NoSuchOption):
        new = renamed_hint(exc.ctx.command_path, exc.option_name)
        return f"No such option '{exc.option_name}': it is now {new}." if new else ""
    for word in ("both", "none"):
        if f"unexpected extra argument ({word})" in exc.format_message():
            return f"Got unexpected extra argument ({word}): --rerank takes no value now (give --rerank, or leave it out)."
    return ""


class LazyGroup(click.Group):
    def main(self, *args, **kwargs):
        """Like click's, but a usage error is one line (no usage block), as every xmrank error is, and so is
        a warning shown outside a command's own warning report ("Warning: ...")."""
        saved = warnings.formatwarning
        warnings.formatwarning = _one_line_warning
        try:
            return self._main(*args, **kwargs)
        finally:
            warnings.formatwarning = saved

    def _main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"Error: {_renamed(exc) or exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except Exception as exc:  # a bug, or a failure no check foresaw: still one line (-vv or XMRANK_DEBUG=1: traceback)
            if os.environ.get("XMRANK_DEBUG") or logging.getLogger("xmrank").getEffectiveLevel() <= logging.DEBUG:
                raise
            text = " ".join(str(exc).split()) or "no message"
            click.echo(f"Error: internal error ({exc.__class__.__name__}: {text}); "
                       "rerun with -vv or XMRANK_DEBUG=1 for the traceback, and please report it.", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        command = getattr(importlib.import_module(f"xmrank.cli.{module}"), attr)
        for cmd in [command, *getattr(command, "commands", {}).values()]:  # a group's subcommands too
            if "parse_args" not in vars(cmd):
                cmd.parse_args = functools.partial(_parse_args_once, cmd)
        if name in KERNEL_COMMANDS and not getattr(command.callback, "compiles_kernels_first", False):
            command.callback = _compiled_first(command.callback)  # runs after parsing: --help never compiles
        return command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xmrank")
@click.option("-v", "--verbose", count=True, help="Log progress (-v) or debug details (-vv) to stderr.")
def main(verbose):
    """xmrank: modality-aware k-reciprocal Jaccard distances for cross-modal embeddings.

    Run `xmrank demo` for a self-contained example, or `xmrank COMMAND --help`.
    """
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    # -v is about xmrank: third-party libraries (faiss' loader, dask, numba) keep the root's WARNING level;
    # xmrank's records reach the root handler by propagation whatever the root's own level is
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("xmrank").setLevel(level)
    # the first use of the compiled kernels on this machine compiles them (seconds): say so, on stderr, as is
    notice = logging.getLogger("xmrank._warmup")
    notice.setLevel(min(level, logging.INFO))
    notice.propagate = False
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    notice.handlers[:] = [handler]


if __name__ == "__main__":  # pragma: no cover
    main()
