"""Entropic optimal transport: Sinkhorn's iterations in the log domain, in numpy.

Why not the POT library: the cluster-level problems are tens to a few
thousand clusters a side and the instance-level ones at most rows x
clusters, which one dense numpy matrix and about twenty lines solve; a
compiled dependency for that is not worth it. The plain scaling iterations
run where ``exp(-cost / reg)`` is safely representable, the log-domain ones
(finite for any ``reg > 0``) elsewhere.
"""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_int, check_real

__all__ = ["sinkhorn"]


def _marginal(w, n, name):
    if w is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.shape[0] != n or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"{name} must hold {n} finite, non-negative weights with a positive sum.")
    return w / w.sum()


def sinkhorn(cost, a=None, b=None, *, reg: float = 0.1, relative: bool = True, max_iter: int = 1000,
             tol: float = 1e-5):
    """Transport plan of ``min <P, cost> - reg * H(P)`` with marginals ``a`` and ``b``.

    Parameters
    ----------
    cost : array-like of shape (n, m)
    a, b : array-like of shape (n,) and (m,), default=None
        Row and column masses (normalised to sum 1); None is uniform.
    reg : float, default=0.1
        Entropic regularisation, > 0; smaller is closer to the exact
        (sparse) plan, and slower to converge.
    relative : bool, default=True
        Read ``reg`` in units of the spread of ``cost``: the standard
        deviation of the cost once each row's and each column's mean is
        removed (which leaves the plan unchanged). The plan is then the
        same for ``cost`` and ``s * cost + row and column constants``, so
        one ``reg`` fits cosines squeezed together by a modality gap as
        well as spread ones. False: ``reg`` in the units of ``cost``.
    max_iter : int, default=1000
    tol : float, default=1e-5
        Stop when the row marginals are off by less than this (L1; the
        plan's total mass is 1).

    Returns
    -------
    plan : ndarray of float64, shape (n, m)
        Sums to 1; rows sum to ``a``, columns to ``b``.

    Notes
    -----
    Adding a constant per row or per column to ``cost`` leaves the plan
    unchanged, so a modality offset that shifts every cross-modal
    similarity of a cluster by the same amount does not move the plan.
    """
    C = np.asarray(cost, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] == 0 or C.shape[1] == 0:
        raise InputError(f"cost must be a non-empty 2-D matrix; got shape {C.shape}.")
    if not np.isfinite(C).all():
        raise InputError("cost contains NaN or infinite values.")
    reg = check_real(reg, "reg", low=0.0, low_open=True)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_real(tol, "tol", low=0.0)
    a = _marginal(a, C.shape[0], "a")
    b = _marginal(b, C.shape[1], "b")
    if relative:
        # the plan is unchanged by per-row and per-column constants: remove them, then scale to unit spread
        C = C - C.mean(axis=1, keepdims=True) - C.mean(axis=0, keepdims=True) + C.mean()
        spread = float(C.std())
        C = C / spread if spread > 0 else C
    M = -C / reg
    M -= M.max()
    if M.min() > -500.0:  # exp(M) is far from underflow: the plain scaling iterations, several times faster
        plan = _scaling(np.exp(M), a, b, max_iter, tol)
        if plan is not None:
            return plan
    return _log_domain(M, a, b, max_iter, tol)


def _scaling(K, a, b, max_iter, tol):
    """Sinkhorn-Knopp on ``K``; None if a scaling leaves the finite range (the log domain then takes over)."""
    u = np.ones(K.shape[0])
    v = np.ones(K.shape[1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for it in range(max_iter):
            u = a / (K @ v)
            v = b / (K.T @ u)
            if it % 10 == 9 or it == max_iter - 1:
                if not (np.isfinite(u).all() and np.isfinite(v).all()):
                    return None
                if np.abs(u * (K @ v) - a).sum() < tol:
                    break
    plan = u[:, None] * K * v[None, :]
    return plan if np.isfinite(plan).all() else None


def _log_domain(M, a, b, max_iter, tol):
    from scipy.special import logsumexp

    with np.errstate(divide="ignore"):
        log_a, log_b = np.log(a), np.log(b)
    f = np.zeros(M.shape[0])
    g = np.zeros(M.shape[1])
    for it in range(max_iter):
        f = log_a - logsumexp(M + g[None, :], axis=1)
        g = log_b - logsumexp(M + f[:, None], axis=0)
        if it % 10 == 9:  # columns are exact after the g update: check the rows
            rows = np.exp(logsumexp(M + f[:, None] + g[None, :], axis=1))
            if np.abs(rows - a).sum() < tol:
                break
    return np.exp(M + f[:, None] + g[None, :])
