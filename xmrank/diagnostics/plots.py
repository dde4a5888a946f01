"""Figures of a diagnosis: neighbour make-up and intra/inter-modality distance histograms.

matplotlib is optional (``pip install 'xmrank[plot]'``) and imported only
when a figure is drawn. Figures are built with :class:`matplotlib.figure.Figure`
directly, so no GUI backend (and no pyplot state) is needed to save them.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["require_matplotlib", "plot_distance_histograms", "plot_neighbor_makeup", "plot_diagnosis"]

_TITLES = {
    "original": "original (2 - 2 x.y)",
    "vanilla": "vanilla Jaccard",
    "modality-qe": "modality-balanced QE Jaccard",
    "modality": "modality-aware Jaccard",
    "camera": "camera-aware Jaccard",
}


def require_matplotlib():
    """Import matplotlib, or raise ImportError telling how to install it."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'xmrank[plot]'") from None
    return Figure


def _new_axes(n_panels, width=4.0, height=3.2, max_cols=3):
    """A figure with ``n_panels`` axes on a grid at most ``max_cols`` wide (spare axes hidden)."""
    Figure = require_matplotlib()
    cols = min(n_panels, max_cols)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _density(counts, edges):
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total else counts


def plot_distance_histograms(histograms: dict, *, axes=None):
    """Intra- vs inter-modality distance histograms, one panel per distance.

    Parameters
    ----------
    histograms : dict
        Distance name -> dict with ``edges``, ``intra`` and ``inter``
        counts (as in ``diagnose(...)["histograms"]``); each histogram is
        drawn normalised to unit area.
    axes : sequence of matplotlib Axes, default=None
        One per histogram; a new figure when None.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    names = list(histograms)
    if axes is None:
        fig, axes = _new_axes(len(names))
    else:
        require_matplotlib()
        axes = list(np.ravel(axes))
        fig = axes[0].figure
    for ax, name in zip(axes, names):
        h = histograms[name]
        edges = np.asarray(h["edges"], dtype=np.float64)
        for key, colour in (("intra", "tab:blue"), ("inter", "tab:orange")):
            dens = _density(h[key], edges)
            ax.stairs(dens, edges, fill=True, alpha=0.35, color=colour, label=f"{key}-modality")
            ax.stairs(dens, edges, color=colour)
        ax.set_title(_TITLES.get(name, name))
        ax.set_xlabel("distance")
        ax.set_yscale("log")
    axes[0].set_ylabel("density (log)")
    axes[0].legend(loc="upper left", fontsize="small")
    return fig


def plot_neighbor_makeup(makeup: dict, *, ax=None):
    """Per-row share of cross-modal neighbours for plain kNN vs modality-aware lists.

    Parameters
    ----------
    makeup : dict
        ``diagnose(...)["neighbor_makeup"]`` (or :func:`neighbor_makeup`'s
        result): each list kind holds ``cross_modal_share_histogram``.
    ax : matplotlib Axes, default=None

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    if ax is None:
        fig, (ax,) = _new_axes(1)
    else:
        require_matplotlib()
        fig = ax.figure
    labels = {"knn": "plain kNN lists", "modality": "modality-aware lists"}
    for kind, colour in (("knn", "tab:red"), ("modality", "tab:green")):
        h = makeup[kind]["cross_modal_share_histogram"]
        edges = np.asarray(h["edges"], dtype=np.float64)
        counts = np.asarray(h["counts"], dtype=np.float64)
        share = counts / counts.sum() if counts.sum() else counts
        mean = makeup[kind]["cross_modal_share_mean"]
        ax.stairs(share, edges, fill=True, alpha=0.4, color=colour, label=f"{labels[kind]} (mean {mean:.2f})")
    ax.axvline(makeup["uniform_cross_modal_share"], color="k", ls="--", lw=1, label="random neighbours")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"cross-modal share of the k1={makeup['k1']} neighbours")
    ax.set_ylabel("share of rows")
    ax.set_title("neighbour make-up")
    ax.legend(fontsize="small")
    return fig


def plot_diagnosis(report: dict, path=None):
    """One figure: neighbour make-up, then the distance histograms of ``report``.

    Parameters
    ----------
    report : dict
        The result of :func:`xmrank.diagnostics.diagnose`.
    path : str or path-like, default=None
        Save the figure there (format from the extension), whole or not at
        all (:func:`xmrank._atomic.atomic_path`).

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    hists = report["histograms"]
    fig, axes = _new_axes(1 + len(hists))
    plot_neighbor_makeup(report["neighbor_makeup"], ax=axes[0])
    plot_distance_histograms(hists, axes=axes[1:])
    if path is not None:
        from .._atomic import atomic_path

        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=os.path.splitext(os.fspath(path))[1][1:].lower() or None)
    return fig
