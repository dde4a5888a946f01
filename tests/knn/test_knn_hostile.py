"""Hostile input to the approximate search (faiss): seeds that do not fit faiss are refused, and recall below its
target is a warning pointing at the caller's line.
"""

import os

import numpy as np
import pytest

from conftest import unit_rows
from xmrank import InputError

X, _ = unit_rows(40, 8, seed=0)

HERE = os.path.abspath(__file__)


def test_ann_seed_fits_faiss():
    pytest.importorskip("faiss")
    from xmrank.knn import ann

    for seed in (-1, 2**31, 2**70, 1.5):
        with pytest.raises(InputError, match="seed must be"):
            ann.search(X, X, 3, seed=seed)


def test_ann_recall_below_target_is_a_warning_at_the_callers_line():
    pytest.importorskip("faiss")
    from xmrank.knn import ann

    rng = np.random.default_rng(0)
    D = rng.normal(size=(3000, 16)).astype(np.float32)
    with pytest.warns(ann.RecallWarning, match=r"recall@10 = 0\.\d+, below its target 1\.00") as rec:
        ann.search(D[:200], D, 10, min_rows=0, nlist=64, nprobe=1, target_recall=1.0)
    assert len(rec) == 1 and rec[0].filename == HERE
