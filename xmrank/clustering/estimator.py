"""``XMCluster``: a scikit-learn estimator over :func:`xmrank.cluster`."""

from __future__ import annotations

import re

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_array

from .._params import DEFAULTS as _D
from .._params import PARAMS
from .._validation import InputError, plain
from .api import cluster

__all__ = ["XMCluster"]


class ParameterError(InputError):
    """A bad constructor parameter of :class:`XMCluster`, raised by ``fit``.

    An :class:`~xmrank.InputError`, hence a :class:`ValueError`, as
    scikit-learn's own ``InvalidParameterError`` is; the message has
    scikit-learn's form ("The 'eps' parameter of XMCluster must be ...
    Got ... instead.").
    """


class _InputTypeError(InputError, TypeError):
    """scikit-learn's TypeError about X (an object the array cannot hold), also an InputError."""


def _first_line(exc) -> str:
    """The first line of scikit-learn's message, numpy scalars written plainly (``2.5``, not ``np.float64(2.5)``)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return re.sub(r"np\.[a-z_]+[0-9]*\((.*?)\)", r"\1", text)


def _feature_names(X):
    """The column names of a table (a pandas or polars DataFrame) when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = list(columns)
    return np.asarray(names, dtype=object) if names and all(isinstance(c, str) for c in names) else None


class XMCluster(ClusterMixin, BaseEstimator):
    """Cluster embeddings with a (modality-aware) k-reciprocal Jaccard distance.

    A drop-in for the clustering step of unsupervised ReID trainers::

        from xmrank import XMCluster
        clusterer = XMCluster(eps=0.6, k1=30, k2=6)
        pseudo_labels = clusterer.fit_predict(features, modalities=modalities)

    Parameters
    ----------
    method : {"auto", "vanilla", "modality", "modality-qe", "camera", "modality-camera"}, default="auto"
        Jaccard method, see :func:`xmrank.jaccard_distance`.
    eps : float or "auto", default=0.6
        DBSCAN radius on the Jaccard distance, > 0; "auto" picks the eps of
        the best label-free clustering quality (:func:`xmrank.clustering.auto_eps`),
        kept in :attr:`eps_`. Jaccard distances are at most 1, so
        ``eps >= 1`` makes every pair a neighbour (one cluster), as
        scikit-learn's DBSCAN does on the dense matrix.
    min_samples : int, default=4
    algorithm : {"dbscan", "hdbscan"}, default="dbscan"
    k1, k2 : int or "auto", default=30, 6
        Neighbour-list and query-expansion lengths; "auto" chooses them from
        the data (see :func:`xmrank.cluster`), kept in :attr:`chosen_`.
    k1_intra, k1_inter, k2_intra, k2_inter : int, default=5, 20, 2, 4
        CA-Jaccard's list lengths (``method="camera"``).
    knn : {"auto", "faiss", "numpy", "ann", "dask"}, default="auto"
        kNN engine, see :func:`xmrank.backend.resolve_knn`; "ann" is the
        approximate search for very large N.
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the distance is computed (see :func:`xmrank.jaccard_distance`);
        "cuda:1" names a GPU by index.
    n_jobs : int or None, default=-1
        Threads, with scikit-learn's meaning: -1 all cores, -k all but
        k - 1, None one (or the ``n_jobs`` of an enclosing
        ``joblib.parallel_config``), a positive number that many.

    Every parameter is stored as given and checked by :meth:`fit`, against
    the declaration the functions and the command line read
    (``xmrank._params.PARAMS``): an invalid one raises a ``ValueError``
    (an :class:`~xmrank.InputError`) naming it.

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
    chosen_ : dict
        Each ``"auto"`` parameter's choice (``method``, ``k1``, ``k2``,
        ``eps``): ``{"value", "reason", "measurement"}``; empty when every
        parameter was explicit.
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

    def __init__(self, *, method=_D["method"], eps=_D["eps"], min_samples=_D["min_samples"],
                 algorithm=_D["algorithm"], k1=_D["k1"], k2=_D["k2"], k1_intra=_D["k1_intra"],
                 k1_inter=_D["k1_inter"], k2_intra=_D["k2_intra"], k2_inter=_D["k2_inter"], knn=_D["knn"],
                 device=_D["device"], n_jobs=_D["n_jobs"]):
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
        self._check_params()
        X = self._check_X(X)
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
        self.chosen_ = info["chosen"]
        return self

    def fit_predict(self, X, y=None, *, modalities=None, cameras=None):
        """Fit and return :attr:`labels_`."""
        return self.fit(X, modalities=modalities, cameras=cameras).labels_

    def _check_params(self):
        """Each parameter against its declaration (:data:`xmrank._params.PARAMS`), in scikit-learn's words."""
        for name, value in self.get_params(deep=False).items():
            param = PARAMS[name]
            try:
                param(value)
            except InputError:
                raise ParameterError(f"The {name!r} parameter of {type(self).__name__} must be {param.expected()}. "
                                     f"Got {plain(value)} instead.") from None

    def _check_X(self, X):
        """``X`` as float32 through scikit-learn's public ``check_array``; sets ``n_features_in_`` (and
        ``feature_names_in_`` for a table with string column names), as scikit-learn's estimators do."""
        names = _feature_names(X)
        try:
            X = check_array(X, dtype=np.float32, ensure_min_samples=2, estimator=self, input_name="X")
        except InputError:
            raise
        except (ValueError, TypeError) as exc:
            # scikit-learn's checks of X (shape, NaN, dtype), as one-line InputErrors of the same text
            raise (_InputTypeError if isinstance(exc, TypeError) else InputError)(_first_line(exc)) from None
        self.n_features_in_ = int(X.shape[1])
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X
