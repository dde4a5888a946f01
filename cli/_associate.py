"""``xmrank cluster --mode associate`` and ``--refine``: the association baselines and the refinement."""

from __future__ import annotations


def cluster_associated(X, mods, cams, *, mode, association, refine, eps_gap, method, camera_lengths, common):
    """``(labels, info, extra)`` for --mode associate and for --refine.

    ``info`` has the keys of :func:`xmrank.cluster`'s info (what the
    command reports as its parameters); ``extra`` goes into the --json
    summary (``association``, ``refine``).
    """
    import xmrank
    from xmrank.backend import resolve_knn

    common = {k: v for k, v in common.items() if k != "return_info"}
    extra = {}
    if mode == "associate" and not refine:
        per, info = xmrank.cluster_per_modality(X, mods, return_info=True, **common)
        labels, minfo = xmrank.match_clusters(X, per, mods, method=association, return_info=True)
        extra["association"] = {k: v for k, v in minfo.items() if k != "matches"}
        return labels, info, extra
    del common["algorithm"]  # --refine is DBSCAN only (checked by the command)
    if mode == "associate":
        labels, minfo = xmrank.associate(X, mods, method=association, refine=True, eps_gap=eps_gap, return_info=True,
                                         **common)
        used, resolved = minfo.pop("eps"), "vanilla"
        extra["association"] = {k: v for k, v in minfo.items()
                                if k != "matches" and not k.startswith("n_dropped") and k != "eps_gap"}
        extra["refine"] = {k: minfo[k] for k in ("eps_gap", "n_dropped_clusters", "n_dropped_rows")}
    else:
        labels, scores = xmrank.cluster_refined(X, modalities=mods, cameras=cams, method=method, eps_gap=eps_gap,
                                                return_scores=True, **camera_lengths, **common)
        used = scores["eps"]
        resolved = method if method != "auto" else ("modality" if mods is not None else
                                                    "camera" if cams is not None else "vanilla")
        extra["refine"] = {k: scores[k] for k in ("eps_gap", "min_independence", "n_dropped_clusters",
                                                  "n_dropped_rows")}
    info = {"method": resolved, "algorithm": "dbscan", "eps": used, "eps_requested": common["eps"],
            "min_samples": common["min_samples"], "k1": common["k1"], "k2": common["k2"],
            "knn": resolve_knn(common["knn"], common["device"]), "device": common["device"]}
    return labels, info, extra


def parameters(mode, association, refine, eps_gap) -> dict:
    """The association and refinement settings for the --json ``parameters``."""
    out = {"association": association} if mode == "associate" else {}
    if refine:
        out.update(refine=True, eps_gap=eps_gap)
    return out


def describe(extra) -> str:
    """The association and refinement part of the command's one-line report."""
    text = ""
    a = extra.get("association")
    if a is not None:
        text += (f"; {a['method']}: {a['n_assigned_rows']} of {a['n_candidate_rows']} rows assigned"
                 if "n_assigned_rows" in a else f"; {a['method']}: {a['n_matches']} cross-modal matches")
    r = extra.get("refine")
    if r is not None:
        text += f"; refinement dropped {r['n_dropped_clusters']} clusters, {r['n_dropped_rows']} rows"
    return text
