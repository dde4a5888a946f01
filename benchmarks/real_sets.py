"""The real multi-view sets of ``../shared/data/real/`` as two-modality protocols, for the benchmarks.

Each set is a MATLAB file with one matrix per view and a label per row (see
that folder's README.md: sources, licenses, shapes). They are read from there,
never copied into the repository. A *protocol* takes two views of a set as two
modalities and aligns them the way a user with labelled training data would:

1. identities (classes) are split in half with a seeded permutation: the
   *train* half is what a user has labels for, the *test* half is scored;
2. each view is standardised, reduced by PCA where it is wide (> 128 columns,
   fitted on the train half), and the two views are projected into one space
   by scikit-learn's CCA fitted on the train half's paired rows;
3. rows are L2-normalised; view ``a`` is modality 0, view ``b`` modality 1.

Re-ranking scores query = view ``a`` of the test half against gallery =
view ``b`` (and the reverse); clustering runs on both views of the test half
stacked. Nothing of the test half is seen by the projection or by any
selection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Where the sets lie, beside the repository (``../shared/data/real``).
REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

#: set name -> (file under REAL_ROOT, label key)
SETS = {
    "orl": ("orl_mv/ORL.mat", "Y"),
    "leaves100": ("leaves100/100Leaves.mat", "y"),
    "landuse21": ("landuse21/LandUse-21.mat", "Y"),
    "scene15": ("scene15/Scene-15.mat", "Y"),
    "msrc": ("msrc_v5/MSRC-v5.mat", "y"),
    "cub": ("cub_img_txt/cub_googlenet_doc2vec_c10.mat", "gt"),
    "wikipedia": ("wikipedia/Wikipedia.mat", "y"),
    "reuters": ("reuters1200/Reuters-1200.mat", "y"),
}

#: (set, view a, view b): the pairs the benchmarks score (both directions).
DEFAULT_CASES = (
    ("orl", 0, 1), ("orl", 0, 2), ("orl", 1, 3),
    ("leaves100", 0, 1), ("landuse21", 0, 1), ("scene15", 0, 2), ("msrc", 1, 2),
    ("cub", 0, 1), ("wikipedia", 0, 1), ("reuters", 0, 1),
)


def available() -> bool:
    """Whether the shared real sets are on this machine."""
    return REAL_ROOT.is_dir()


def load_views(name: str):
    """The views (list of float64 arrays) and labels (int64) of one set."""
    import scipy.io as sio

    path, key = SETS[name]
    mat = sio.loadmat(str(REAL_ROOT / path))
    views = []
    for v in mat["X"].ravel():
        v = v.toarray() if hasattr(v, "toarray") else np.asarray(v)
        views.append(np.asarray(v, dtype=np.float64))
    labels = np.asarray(mat[key]).ravel().astype(np.int64)
    return views, labels


@dataclass
class Protocol:
    """One two-view protocol: train half (labelled, used to fit and select) and test half (scored)."""

    name: str
    train_a: np.ndarray  # float32 (n_train, c), view a of the train identities, L2-normalised
    train_b: np.ndarray
    train_ids: np.ndarray
    test_a: np.ndarray
    test_b: np.ndarray
    test_ids: np.ndarray

    def retrieval(self, split: str = "test", direction: str = "ab"):
        """(query, gallery, query_ids, gallery_ids, query_modalities, gallery_modalities)."""
        a, b, ids = (self.test_a, self.test_b, self.test_ids) if split == "test" else (
            self.train_a, self.train_b, self.train_ids)
        q, g, qm, gm = (a, b, 0, 1) if direction == "ab" else (b, a, 1, 0)
        return q, g, ids, ids, np.full(len(q), qm), np.full(len(g), gm)

    def clustering(self, split: str = "test"):
        """(features, ids, modalities): both views stacked."""
        a, b, ids = (self.test_a, self.test_b, self.test_ids) if split == "test" else (
            self.train_a, self.train_b, self.train_ids)
        X = np.concatenate([a, b])
        return X, np.concatenate([ids, ids]), np.repeat([0, 1], [len(a), len(b)])


def _l2(Z):
    Z = np.asarray(Z, dtype=np.float32)
    return np.ascontiguousarray(Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12))


def _prepare(v, train_rows, seed):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(v[train_rows])
    v = scaler.transform(v)
    v = np.nan_to_num(v)
    if v.shape[1] > 128:
        v = PCA(n_components=min(128, len(train_rows) - 1), random_state=seed).fit(v[train_rows]).transform(v)
    return v


def make_protocol(name: str, view_a: int, view_b: int, *, seed: int = 0, n_components: int = 32) -> Protocol:
    """Split identities in half, fit the views' CCA on the train half, project and normalise both halves."""
    from sklearn.cross_decomposition import CCA

    views, labels = load_views(name)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    train_classes = rng.permutation(classes)[: classes.size // 2]
    train = np.isin(labels, train_classes)
    tr, te = np.flatnonzero(train), np.flatnonzero(~train)
    va, vb = _prepare(views[view_a], tr, seed), _prepare(views[view_b], tr, seed)
    c = int(min(n_components, va.shape[1], vb.shape[1], tr.size - 1))
    cca = CCA(n_components=c, max_iter=1000).fit(va[tr], vb[tr])
    za, zb = cca.transform(va, vb)
    za, zb = _l2(za), _l2(zb)
    return Protocol(f"{name} {view_a}-{view_b}", za[tr], zb[tr], labels[tr], za[te], zb[te], labels[te])


#: Where built protocols are kept between runs (the CCA fits take minutes), outside the repository.
CACHE = Path(os.environ.get("XMRANK_REAL_CACHE", Path.home() / ".cache" / "xmrank" / "real_sets"))


def cached_protocol(name: str, view_a: int, view_b: int, *, seed: int = 0, n_components: int = 32) -> Protocol:
    """:func:`make_protocol`, kept as a .npz under :data:`CACHE` (keyed by set, views, seed and components)."""
    path = CACHE / f"{name}_{view_a}-{view_b}_s{seed}_c{n_components}.npz"
    fields = ("train_a", "train_b", "train_ids", "test_a", "test_b", "test_ids")
    if path.is_file():
        with np.load(path) as z:
            return Protocol(f"{name} {view_a}-{view_b}", *(z[f] for f in fields))
    p = make_protocol(name, view_a, view_b, seed=seed, n_components=n_components)
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f: getattr(p, f) for f in fields})
    except OSError:
        pass  # a read-only home: build again next time
    return p


def protocols(cases=DEFAULT_CASES, *, seed: int = 0, cache: bool = True):
    """Yield the :class:`Protocol` of each case (skipping sets that are absent); ``cache``: via :data:`CACHE`."""
    import warnings

    build = cached_protocol if cache else make_protocol
    for name, a, b in cases:
        if (REAL_ROOT / SETS[name][0]).is_file():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Maximum number of iterations", category=Warning)
                yield build(name, a, b, seed=seed)
