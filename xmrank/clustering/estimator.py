"""``XMCluster``: a scikit-learn estimator over :func:`xmrank.cluster`."""

from __future__ import annotations

import re
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import validate_data

from .._validation import InputError
from ..backend import KNN_ENGINES, parse_device
from ..jaccard.distance import METHODS
from .algorithms import ALGORITHMS
from .api import cluster

__all__ = ["XMCluster"]


class ParameterError(InputError, InvalidParameterError):
    """A bad constructor parameter of :class:`XMCluster`: an :class:`~xmrank.InputError` and scikit-learn's error."""


class _InputTypeError(InputError, TypeError):
    """scikit-learn's TypeError about X (an object the array cannot hold), also an InputError."""


def _first_line(exc) -> str:
    """The first line of scikit-learn's message, numpy scalars written plainly (``2.5``, not ``np.float64(2.5)``)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return re.sub(r"np\.[a-z_]+[0-9]*\((.*?)\)", r"\1", text)


class XMCluster(ClusterMixin, BaseEstimator):
    """Cluster embeddings with a (modality-aware) k-reciprocal Jaccard distance.

    A drop-in for the clustering step of unsupervised ReID trainers::

        from xmrank import XMCluster
        clusterer = XMCluster(eps=0.6, k1=30, k2=6)
        pseudo_labels = clusterer.fit_predict(features, modalities=modalities)

    Parameters
    ----------
    method : {"auto", "vanilla", "modality", "modality-qe", "camera"}, default="auto"
        Jaccard method, see :func:`xmrank.jaccard_distance`.
    eps : float or "auto", default=0.6
        DBSCAN radius on the Jaccard distance, > 0; "auto" picks the eps of
        the best label-free clustering quality (:func:`xmrank.clustering.auto_eps`),
        kept in :attr:`eps_`. Jaccard distances are at most 1, so
        ``eps >= 1`` makes every pair a neighbour (one cluster), as
        scikit-learn's DBSCAN does on the dense matrix.
    min_samples : int, default=4
    algorithm : {"dbscan", "hdbscan"}, default="dbscan"
    k1, k2 : int, default=30, 6
    k1_intra, k1_inter, k2_intra, k2_inter : int, default=5, 20, 2, 4
        CA-Jaccard's list lengths (``method="camera"``).
    knn : {"auto", "faiss", "numpy", "ann", "dask"}, default="auto"
        kNN engine, see :func:`xmrank.backend.resolve_knn`; "ann" is the
        approximate search for very large N.
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the distance is computed (see :func:`xmrank.jaccard_distance`);
        "cuda:1" names a GPU by index.
    n_jobs : int, default=None
        Threads for the compiled kernels; None uses all cores.

    Attributes
    ----------
    labels_ : ndarray of int64, shape (n_samples,)
        Cluster of each row, -1 for noise.
    n_clusters_ : int
    eps_ : float or None
        The eps used (the chosen one when ``eps="auto"``); None with HDBSCAN.
    info_ : dict
        Everything needed to rerun the clustering: the resolved Jaccard
        method, eps, min_samples, k1, k2, the kNN engine that ran, the
        device (see ``return_info`` of :func:`xmrank.cluster`).
    n_features_in_ : int

    See Also
    --------
    xmrank.cluster : the function this estimator wraps.
    xmrank.jaccard_distance : the distance.

    Examples
    --------
    >>> import numpy as np
    >>> from xmrank import XMCluster
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(5, 32))
    >>> X = np.repeat(centres, 20, axis=0) + 0.1 * rng.normal(size=(100, 32))
    >>> XMCluster(k1=10, k2=3).fit(X).n_clusters_
    5
    """

    _parameter_constraints: dict = {
        "method": [StrOptions(set(METHODS))],
        "eps": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "min_samples": [Interval(Integral, 1, None, closed="left")],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "k1": [Interval(Integral, 1, None, closed="left")],
        "k2": [Interval(Integral, 1, None, closed="left")],
        "k1_intra": [Interval(Integral, 1, None, closed="left")],
        "k1_inter": [Interval(Integral, 1, None, closed="left")],
        "k2_intra": [Interval(Integral, 1, None, closed="left")],
        "k2_inter": [Interval(Integral, 1, None, closed="left")],
        "knn": [StrOptions(set(KNN_ENGINES))],
        "device": [str],
        "n_jobs": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, *, method="auto", eps=0.6, min_samples=4, algorithm="dbscan", k1=30, k2=6,
                 k1_intra=5, k1_inter=20, k2_intra=2, k2_inter=4, knn="auto", device="cpu",
                 n_jobs=None):
        self.method = method
        self.eps = eps
        self.min_samples = min_samples
        self.algorithm = algorithm
        self.k1 = k1
        self.k2 = k2
        self.k1_intra = k1_intra
        self.k1_inter = k1_inter
        self.k2_intra = k2_intra
        self.k2_inter = k2_inter
        self.knn = knn
        self.device = device
        self.n_jobs = n_jobs

    def fit(self, X, y=None, *, modalities=None, cameras=None):
        """Compute the Jaccard distance of ``X`` and cluster it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        modalities, cameras : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : XMCluster
        """
        try:
            self._validate_params()
        except InvalidParameterError as exc:
            raise ParameterError(_first_line(exc)) from None
        try:
            parse_device(self.device)
        except InputError as exc:
            raise ParameterError(f"The 'device' parameter of XMCluster must be 'cpu', 'cuda' or 'cuda:N'; "
                                 f"got {self.device!r}.") from exc
        try:
            X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        except InputError:
            raise
        except (ValueError, TypeError) as exc:
            # scikit-learn's checks of X (shape, NaN, dtype), as one-line InputErrors of the same text
            raise (_InputTypeError if isinstance(exc, TypeError) else InputError)(_first_line(exc)) from None
        labels, info = cluster(
            X, modalities=modalities, cameras=cameras, method=self.method, eps=self.eps,
            min_samples=self.min_samples, algorithm=self.algorithm, k1=self.k1, k2=self.k2,
            k1_intra=self.k1_intra, k1_inter=self.k1_inter, k2_intra=self.k2_intra, k2_inter=self.k2_inter,
            knn=self.knn, device=self.device, n_jobs=self.n_jobs, return_info=True,
        )
        self.labels_ = labels
        self.n_clusters_ = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
        self.eps_ = info["eps"]
        self.info_ = info
        return self

    def fit_predict(self, X, y=None, *, modalities=None, cameras=None):
        """Fit and return :attr:`labels_`."""
        return self.fit(X, modalities=modalities, cameras=cameras).labels_
