"""``xmrank test``: the standard multi-trial SYSU-MM01 / RegDB evaluation of a checkpoint (needs xmrank[torch])."""

from __future__ import annotations

import os

import click
import numpy as np

from xmrank._params import MAX_TRIALS, RERANK_ALGORITHMS

from ._io import check_outputs, echo_report, fail, user_errors, write_json
from ._model import check_checkpoint, load_network, network_options, require_torch, resolve_device_option
from ._options import option, options

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cli/train.py: no spinning OpenMP threads

_RANKS = (1, 5, 10, 20)

_HELP = """Evaluate a checkpoint with the published test protocol: Rank-1/5/10/20, mAP, mINP.

\b
SYSU-MM01: infrared queries (cameras 3, 6) against a single-shot visible
gallery (one random image per identity and camera, random.seed(trial)),
camera-2 gallery images dropped for camera-3 queries, CMC on distinct
identities; the mean over --trials gallery draws (0..N-1, default 10) is
reported, in all-search or --search-mode indoor.
\b
RegDB: the test lists of each --trial (1-10), visible->thermal (--direction
v2t), thermal->visible (t2v) or both. The published protocol trains one model
per trial: put {trial} in --checkpoint (runs/regdb{trial}/model.pt) to load
each trial's model; a single checkpoint evaluated on several trials sees
identities that other trials' models trained on.

CHECKPOINT is an xmrank run file (RUN/model.pt, RUN/stage1_model.pt,
RUN/checkpoint.pt) or a published BMIL checkpoint (model_best.pth.tar).
Features are flip-averaged and L2-normalised; distances are -q.g. With
--rerank, a second row scores the re-ranked distances of the same features
(xmrank.rerank over the --method neighbour rule, with the records' modalities
and cameras; 'auto': modality-aware where the features show a modality
bias); --reranker gnn makes it GNN re-ranking (Zhang et al.) over the same
lists, and --reranker k-reciprocal --reranker gnn scores both.
"""

_EPILOG = """\b
Examples:
  xmrank test --checkpoint runs/sysu/model.pt --dataset sysu --root data/SYSU-MM01
  xmrank test --checkpoint model_best.pth.tar --dataset sysu --root data/SYSU-MM01 --search-mode indoor --rerank
  xmrank test --checkpoint 'runs/regdb{trial}/model.pt' --dataset regdb --root data/RegDB \\
      --trial 1-10 --direction both --json regdb.json
"""


def _row(summary: dict, result: dict, size: dict) -> dict:
    """One table row / JSON entry: the mean over trials and each trial's scores (fractions in [0, 1])."""
    row = {k: summary[k] for k in ("mAP", "mINP") if k in summary}
    for k in _RANKS:
        if f"rank{k}" in summary:
            row[f"rank{k}"] = summary[f"rank{k}"]
    row["cmc"] = np.asarray(result["mean"]["cmc"], dtype=float).tolist()
    row["n_trials"] = int(result["mean"]["n_trials"])
    row["trials"] = [
        {"trial": int(t["trial"]), "mAP": float(t["mAP"]), "mINP": float(t["mINP"]),
         "cmc": np.asarray(t["cmc"], dtype=float).tolist(), "n_queries": int(t["n_queries"]),
         "n_skipped": int(t["n_skipped"]), "n_gallery": int(t["n_gallery"]), **size}
        for t in result["trials"]
    ]
    return row


def _merge(rows: list[dict]) -> dict:
    """Mean of several per-trial rows (RegDB, one evaluation per trial): the reported 10-trial mean."""
    trials = [t for r in rows for t in r["trials"]]
    n = min(len(t["cmc"]) for t in trials)
    cmc = np.mean([t["cmc"][:n] for t in trials], axis=0)
    out = {"mAP": float(np.mean([t["mAP"] for t in trials])), "mINP": float(np.mean([t["mINP"] for t in trials]))}
    for k in _RANKS:
        if k <= n:
            out[f"rank{k}"] = float(cmc[k - 1])
    out.update(cmc=cmc.tolist(), n_trials=len(trials), trials=trials)
    return out


def format_rows(title: str, rows: dict) -> str:
    """The printed table: one line per row name, Rank-1/5/10/20, mAP and mINP in percent."""
    ranks = [k for k in _RANKS if any(f"rank{k}" in r for r in rows.values())]
    head = [f"Rank-{k}" for k in ranks] + ["mAP", "mINP"]
    width = max(14, max(len(name) for name in rows) + 2)
    lines = [title, f"{'':<{width}}" + "".join(f"{h:>9}" for h in head)]
    for name, r in rows.items():
        vals = [r.get(f"rank{k}", float("nan")) for k in ranks] + [r["mAP"], r["mINP"]]
        lines.append(f"{name:<{width}}" + "".join(f"{100 * v:>9.2f}" for v in vals))
    return "\n".join(lines)


@click.command("test", help=_HELP, epilog=_EPILOG)
@option("checkpoint", required=True, more="RegDB: {trial} in the path is replaced by each trial's number.")
@option("dataset", more="Its test protocol: sysu (SYSU-MM01's, also for the synthetic set) or regdb "
                        "(RegDB's idx/ lists); a folder has no identities to score.")
@option("root", required=True)
@click.option("--search-mode", type=click.Choice(["all", "indoor"]), default=None,
              help="SYSU-MM01 search mode: all (gallery cameras 1, 2, 4, 5; default) or indoor (1, 2).")
@click.option("--trials", type=click.IntRange(min=1, max=MAX_TRIALS), default=None,
              help="SYSU-MM01: number of gallery draws, trials 0..N-1 (default 10).")
@option("trial", more="RegDB: the test lists scored.")
@click.option("--direction", type=click.Choice(["v2t", "t2v", "both"]), default=None,
              help="RegDB: visible->thermal (default), thermal->visible, or both.")
@options("rerank", "method", "rerank_k1", "rerank_k2", "lambda_value", "reranker", "camera_weight")
@option("json", more="Every trial's scores (fractions).")
@network_options
@user_errors
def test_cmd(checkpoint, dataset, root, search_mode, trials, trial, direction, rerank, method, k1, k2,
             lambda_value, reranker, camera_weight, json_path, device, batch_size, num_workers, height, width,
             progress):
    # ---- every check on the arguments before any work
    given = click.get_current_context().get_parameter_source
    if not rerank:
        for name, option_name in (("reranker", "--reranker"), ("camera_weight", "--camera-weight")):
            if given(name) is not click.core.ParameterSource.DEFAULT:
                fail(f"{option_name} is for re-ranking: add --rerank.")
    algorithms = tuple(dict.fromkeys(reranker))  # each once, in the order given
    other = [a for a in algorithms if a not in RERANK_ALGORITHMS]
    if other:
        fail(f"--reranker {other[0]}: test re-ranks with {' or '.join(RERANK_ALGORITHMS)}; embed the features "
             f"(`xmrank embed`) and run `xmrank rerank --reranker {other[0]}` on them.")
    if camera_weight is not None and "gnn" not in algorithms:
        fail("--camera-weight weighs the GNN re-ranking's graph: add --reranker gnn.")
    if dataset == "folder":
        fail("--dataset folder has no identities to score; test takes sysu (or synthetic, SYSU-MM01's layout) "
             "or regdb.")
    dataset = "sysu" if dataset == "synthetic" else dataset
    if dataset == "sysu":
        for name, value in (("--trial", trial), ("--direction", direction)):
            if value is not None:
                fail(f"{name} is a RegDB option; SYSU-MM01 uses --trials N (gallery draws) and --search-mode.")
        mode, trials = search_mode or "all", trials or 10
        checkpoints = {None: checkpoint}
    else:
        for name, value in (("--trials", trials), ("--search-mode", search_mode)):
            if value is not None:
                fail(f"{name} is a SYSU-MM01 option; RegDB uses --trial LIST and --direction.")
        trial_list = trial or [1]
        directions = ["v2t", "t2v"] if direction == "both" else [direction or "v2t"]
        if "{trial}" in checkpoint:
            checkpoints = {t: checkpoint.replace("{trial}", str(t)) for t in trial_list}
        else:
            checkpoints = {t: checkpoint for t in trial_list}
    for path in dict.fromkeys(checkpoints.values()):
        check_checkpoint(path)
    if not os.path.isdir(root):
        fail(f"--root {root}: not a directory.")
    check_outputs([("--json", json_path)], inputs=[("--checkpoint", p) for p in checkpoints.values()],
                  roots=[("--root", root)], stdout=("--json",))
    # read the test lists now: a wrong --root fails before any model is loaded
    from xmrank.datasets import regdb_query_gallery, sysu_query_gallery

    if dataset == "sysu":
        sysu_query_gallery(root, mode=mode, trial=0)
    else:
        for t in trial_list:
            regdb_query_gallery(root, trial=t)
    require_torch()
    from xmrank.torch.evaluation import evaluate_model

    if dataset == "regdb" and len(trial_list) > 1 and len(set(checkpoints.values())) == 1:
        click.echo(f"note: one model evaluated on {len(trial_list)} RegDB trials; the published protocol "
                   "tests each trial's own model (put {trial} in --checkpoint).", err=True)

    dev = resolve_device_option(device)
    rerank_kwargs = {alg: {"method": method, "k1": k1, "k2": k2, "lambda_value": lambda_value, "algorithm": alg,
                           **({"camera_weight": camera_weight} if alg == "gnn" else {})}
                     for alg in (algorithms if rerank else ())}
    reranked = {alg: ("GNN re-ranked" if alg == "gnn" else "re-ranked") if len(algorithms) == 1 else
                f"re-ranked ({alg})" for alg in rerank_kwargs}

    def run(model, cfg, cache, **kwargs):
        size = dict(height=height or cfg.height, width=width or cfg.width)
        summary, result = evaluate_model(model, dataset, root, device=dev, batch_size=batch_size,
                                         num_workers=num_workers, progress=progress, feature_cache=cache,
                                         details=True, **size, **kwargs)
        return _row(summary, result, size), result

    rows = {}
    if dataset == "sysu":
        model, cfg = load_network(checkpoint, dev)
        cache = {}
        rows["no re-ranking"], result = run(model, cfg, cache, sysu_mode=mode, trials=trials)
        for alg, kwargs in rerank_kwargs.items():
            rows[reranked[alg]], _ = run(model, cfg, cache, sysu_mode=mode, trials=trials, rerank=kwargs)
        title = (f"SYSU-MM01 {mode}-search: {result['n_query']} queries, {trials} gallery "
                 f"draw{'s' * (trials != 1)} (mean over trials)")
        setting = {"mode": mode, "trials": list(range(trials))}
    else:
        per = {}
        loaded = None
        for t in trial_list:
            if loaded is None or loaded[0] != checkpoints[t]:
                loaded = cache = None  # free the previous trial's model before loading the next
                loaded = (checkpoints[t], *load_network(checkpoints[t], dev))
                cache = {}  # features of this model, shared by its trials, directions and the re-ranking
            for d in directions:
                prefix = f"{d} " if len(directions) > 1 else ""
                for name, kwargs in [("no re-ranking", None)] + [(reranked[a], k) for a, k in rerank_kwargs.items()]:
                    row, _ = run(loaded[1], loaded[2], cache, regdb_trial=t, regdb_direction=d, rerank=kwargs)
                    per.setdefault(prefix + name, []).append(row)
        rows = {name: _merge(parts) for name, parts in per.items()}
        names = {"v2t": "visible->thermal", "t2v": "thermal->visible"}
        title = (f"RegDB {', '.join(names[d] for d in directions)}: trial{'s' * (len(trial_list) != 1)} "
                 f"{', '.join(map(str, trial_list))} (mean over trials)")
        setting = {"directions": directions, "trials": trial_list}

    echo_report(format_rows(title, rows), json_path)
    if json_path:
        settings = list(rerank_kwargs.values())
        payload = {"dataset": dataset, "checkpoint": checkpoint, **setting,
                   "rerank": (settings[0] if len(settings) == 1 else settings) if settings else None, "results": rows}
        write_json(json_path, payload, "--json")
