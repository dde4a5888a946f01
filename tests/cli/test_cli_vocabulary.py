"""One command-line vocabulary (issue 24): every command's parameters, walked.

A name (``--k1``, ``-m``, ``QUERY``) has one meaning, one type and one
default in every command that takes it; every option that two commands take
is built from its declaration (``xmrank.cli._options.OPTIONS``, which reads
``xmrank._params.PARAMS`` for the library's parameters); commands do not
import each other; older spellings are named in the error their users get.
"""

import ast
import json
import pathlib
from collections import defaultdict

import click
import numpy as np
import pytest

from conftest import cli, one_line_failure
from xmrank._params import DEFAULTS, PARAMS
from xmrank.cli._options import ALIASES, OPTIONS, RENAMED, TASK_FAMILIES
from xmrank.cli.main import COMMANDS, main

ROOT = pathlib.Path(__file__).resolve().parents[2]


def commands():
    """``{"cluster": command, "tune rerank": command, ...}``: every command of ``xmrank``, groups walked."""
    ctx = click.Context(main)
    out = {}

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), path + [name])
        else:
            out[" ".join(path)] = cmd

    for name in main.list_commands(ctx):
        walk(main.get_command(ctx, name), [name])
    return out


def _type_signature(param):
    """What a value of ``param`` may be: the type (its choices, its bounds, a declared parameter's constraints),
    and whether it repeats, is a flag, counts or takes several values. A path is a path (a file or a folder is the
    command's own check)."""
    t = param.type
    sig = [type(t).__name__, "" if isinstance(t, click.Path) else getattr(t, "name", "")]
    if isinstance(t, click.Choice):
        sig.append(tuple(t.choices))
    for attr in ("min", "max", "min_open", "max_open"):
        if hasattr(t, attr):
            sig.append((attr, getattr(t, attr)))
    if hasattr(t, "param"):  # xmrank.cli._options.DeclaredType: the library's constraints
        sig.append((t.param.kind, t.param.expected()))
    return (tuple(sig), param.param_type_name, getattr(param, "multiple", False), getattr(param, "is_flag", False),
            getattr(param, "count", False), param.nargs)


def vocabulary_conflicts(cmds: dict) -> list:
    """Every way the commands ``cmds`` disagree about a name; empty when they speak one vocabulary."""
    uses = defaultdict(list)  # spelling -> [(command, parameter)]
    for path, cmd in cmds.items():
        for p in cmd.params:
            for spelling in p.opts + p.secondary_opts:
                uses[spelling].append((path, p))
    problems = []
    for spelling, found in sorted(uses.items()):
        where = sorted({path for path, _ in found})
        families = {getattr(p, "family", None) or f"undeclared {p.name}" for _, p in found}
        options = [(path, p) for path, p in found if p.param_type_name == "option"]
        if len(where) > 1 and any(getattr(p, "declaration", None) is None for _, p in options):
            bare = sorted({path for path, p in options if getattr(p, "declaration", None) is None})
            problems.append(f"{spelling}: taken by {', '.join(where)}, not built from a declaration in {', '.join(bare)}")
        if len(families) > 1:
            problems.append(f"{spelling}: two meanings {sorted(families)} in {', '.join(where)}")
        if len({_type_signature(p) for _, p in found}) > 1:
            problems.append(f"{spelling}: two types in {', '.join(where)}")
        if len({p.name for _, p in found}) > 1:
            problems.append(f"{spelling}: two argument names {sorted({p.name for _, p in found})}")
        defaults = defaultdict(set)  # declaration -> defaults
        for _, p in found:
            defaults[getattr(p, "declaration", None)].add(repr(p.default))
        if any(len(d) > 1 for d in defaults.values()):
            problems.append(f"{spelling}: two defaults {sorted(set().union(*defaults.values()))} in {', '.join(where)}")
        if len(defaults) > 1:  # several declarations behind one spelling: only one of the declared task families
            declared = [OPTIONS.get(d) for d in defaults]
            if None in declared or len({s.family for s in declared}) != 1 or declared[0].family not in TASK_FAMILIES:
                problems.append(f"{spelling}: declarations {sorted(map(str, defaults))} are not one family of "
                                "xmrank.cli._options.TASK_FAMILIES")
    return problems


def test_every_name_has_one_meaning_type_and_default():
    assert vocabulary_conflicts(commands()) == []


def test_the_walk_finds_a_name_used_two_ways():
    """The check can fail: a command with its own ``--k1`` (another default) and a bare shared option is caught."""
    @click.command("rogue")
    @click.option("--k1", type=int, default=99)
    @click.option("--knn", default="auto")
    def rogue(k1, knn):
        pass

    problems = vocabulary_conflicts({**commands(), "rogue": rogue})
    assert any(p.startswith("--k1:") and "rogue" in p for p in problems), problems
    assert any(p.startswith("--knn:") and "not built from a declaration in rogue" in p for p in problems), problems


def test_the_one_family_shares_spelling_and_type_and_differs_in_default_only():
    """``--k1`` is 30 to cluster (cluster-contrast's) and 20 to re-rank (Zhong et al.'s), declared side by side."""
    cmds = commands()
    k1 = {path: next(p for p in cmd.params if "--k1" in p.opts) for path, cmd in cmds.items()
          if any("--k1" in p.opts for p in cmd.params)}
    assert {k1[c].default for c in ("cluster", "diagnose")} == {DEFAULTS["k1"]} == {30}
    assert {k1[c].default for c in ("rerank", "evaluate", "test")} == {DEFAULTS["rerank_k1"]} == {20}
    assert len({_type_signature(p) for p in k1.values()}) == 1
    families = [n for n, p in PARAMS.items() if p.family != n]
    assert sorted(families) == ["rerank_k1", "rerank_k2", "run_device"], families
    assert set(TASK_FAMILIES) == {"k1", "k2", "k1s", "output"}  # a new one is a decision: say why in TASK_FAMILIES


def test_declared_options_read_the_library_declaration():
    for name, spec in OPTIONS.items():
        if spec.param is None:
            continue
        p = PARAMS[spec.param]
        assert spec.decls[0].split("/")[0] == p.option, name
        assert spec.settings.get("default") == p.default, name
        assert spec.settings["help"] == p.help, name
    for path, cmd in commands().items():
        for p in cmd.params:
            spec = OPTIONS.get(getattr(p, "declaration", None))
            if spec is not None and spec.param is not None and not getattr(p, "alias_of", None):
                assert p.default == PARAMS[spec.param].default, (path, p.name)


@pytest.mark.parametrize("name", ["ids", "modalities", "cameras", "device", "knn", "protocol", "method",
                                  "rerank_k1", "lambda_value", "reranker", "seed", "json", "n_jobs"])
def test_the_issues_shared_options_are_spelled_one_way(name):
    """Identities, modalities, cameras, device, knn, protocol and re-ranking: one spelling wherever they appear."""
    spec = OPTIONS[name]
    found = [(path, p) for path, cmd in commands().items() for p in cmd.params
             if getattr(p, "declaration", None) == name and not getattr(p, "alias_of", None)]
    assert found, name
    assert {tuple(p.opts + p.secondary_opts) for _, p in found} == {tuple(d for d in spec.decls[0].split("/") if d)
                                                                     + spec.decls[1:]} or \
        all(spec.decls[0].split("/")[0] in p.opts for _, p in found)


def test_protocol_device_and_knn_are_everywhere_the_same_choice():
    cmds = commands()
    for spelling, expected in (("--protocol", DEFAULTS["protocol"]), ("--device", DEFAULTS["run_device"]),
                               ("--knn", DEFAULTS["knn"]), ("--method", DEFAULTS["method"])):
        params = [p for cmd in cmds.values() for p in cmd.params if spelling in p.opts]
        assert len(params) >= 2 and {p.default for p in params} == {expected}, spelling


def test_commands_do_not_import_each_other():
    modules = {m for m, _, _ in COMMANDS.values()} | {"tune_rerank", "tune_cluster"}
    group_members = {"tune": {"tune_rerank", "tune_cluster"}}  # a group owns its subcommands
    for module in modules:
        tree = ast.parse((ROOT / "cli" / f"{module}.py").read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xmrank.cli."):
                imported.add(node.module.split(".")[2])
        others = (imported & modules) - group_members.get(module, set()) - {module}
        assert not others, (module, others)


@pytest.mark.parametrize("args,old,new", [
    (["rerank", "q.npz", "g.npz", "--algorithm", "gnn"], "--algorithm", "--reranker"),
    (["evaluate", "q.npz", "g.npz", "--algorithm", "gnn"], "--algorithm", "--reranker"),
    (["test", "--rerank-method", "modality"], "--rerank-method", "--method"),
    (["test", "--mode", "indoor"], "--mode", "--search-mode"),
    (["diagnose", "f.npy", "--method", "vanilla"], "--method", "--methods"),
    (["tune", "cluster", "f.npy", "--eps", "0.5"], "--eps", "--eps-values"),
    (["test", "--height", "64"], "--height", "--input-height"),
    (["embed", "--width", "64"], "--width", "--input-width"),
])
def test_an_old_spelling_is_named_with_its_new_one(args, old, new):
    line = one_line_failure(cli(*args), old, new, every=True)
    assert line.startswith(f"Error: No such option '{old}': it is now {new}")
    assert any(v.startswith(new) for v in RENAMED[old].values())


def test_old_rerank_both_and_method_qb_norm_say_what_to_type():
    one_line_failure(cli("evaluate", "q.npz", "g.npz", "--rerank", "both"), "--rerank takes no value now")
    one_line_failure(cli("rerank", "q.npz", "g.npz", "--method", "qb-norm"), "--reranker qb-norm")


def test_hidden_older_spellings_work_and_stay_out_of_help(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8)).astype(np.float32)
    ids, mods = np.repeat(np.arange(10), 4), np.tile([0, 1], 20)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "i.npy", ids)
    np.save(tmp_path / "m.npy", mods)
    out = []
    for spelling in ("--ids", "--labels"):
        res = cli("cluster", tmp_path / "x.npy", "-m", tmp_path / "m.npy", spelling, tmp_path / "i.npy",
                  "--k1", 6, "--k2", 2, "--eps", "auto", "--json", tmp_path / f"{spelling[2:]}.json")
        assert res.exit_code == 0, res.output
        out.append(json.loads((tmp_path / f"{spelling[2:]}.json").read_text())["scores"])
    assert out[0] == out[1] and out[0]["n_identities"] == 10
    one_line_failure(cli("cluster", tmp_path / "x.npy", "--ids", tmp_path / "i.npy", "--labels", tmp_path / "i.npy"),
                     "--ids", "--labels", every=True)
    for command in ("cluster", "diagnose"):
        text = cli(command, "--help").output
        assert "--ids" in text and "--labels" not in text, command
    assert set(ALIASES) == {"labels", "query_cams", "gallery_cams"}


def _documented_commands():
    """Every ``xmrank ...`` command line of the README and docs/*.md: fenced blocks (with their continuation
    lines and synopses) and inline code spans, as (file, text)."""
    import re

    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            commands_here = []
            for line in block.splitlines():
                stripped = line.strip()
                if stripped.startswith("xmrank "):
                    commands_here.append(stripped)
                elif commands_here and stripped and (line[:1].isspace() or commands_here[-1].endswith("\\")):
                    commands_here[-1] += " " + stripped  # a continuation or synopsis line
                else:
                    commands_here.append("")
            out += [(path.name, c) for c in commands_here if c]
        out += [(path.name, span) for span in re.findall(r"`(xmrank [^`]+)`", text)]
    return out


def test_every_documented_option_exists():
    """No README or docs command line names an option its command does not take (renamed ones included)."""
    import re
    import shlex

    cmds = commands()
    checked, unknown = 0, []
    for name, text in _documented_commands():
        for line in re.split(r"(?=\bxmrank )", text):
            try:
                words = shlex.split(line.replace("\\", " "))
            except ValueError:
                words = line.split()
            words = [w for w in words[1:] if w not in ("-v", "-vv")]
            path = next((p for p in sorted(cmds, key=len, reverse=True)
                         if words[:len(p.split())] == p.split()), None)
            if path is None:
                continue
            known = {o for p in cmds[path].params for o in p.opts + p.secondary_opts} | {"-h", "--help"}
            rest = " ".join(words[len(path.split()):])
            for option in re.findall(r"(?<![\w.:/-])(--?[a-zA-Z][\w-]*)", rest):
                checked += 1
                if option not in known:
                    unknown.append(f"{name}: `xmrank {path} ... {option}`")
    assert not unknown, sorted(set(unknown))
    assert checked > 100
