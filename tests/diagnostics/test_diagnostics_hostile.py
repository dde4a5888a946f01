"""Memory bounded up front in the diagnostics: the distance histograms hold no N x N arrays.
"""

import numpy as np


def test_diagnose_histograms_hold_no_n_squared_arrays():
    import tracemalloc

    from xmrank.diagnostics.distances import jaccard_histogram, original_histogram

    rng = np.random.default_rng(0)
    n = 3000
    D = rng.random((n, n))
    codes = np.arange(n) % 2
    tracemalloc.start()
    h = jaccard_histogram(D, codes, bins=10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6  # the dense path used to build N² / 2 index pairs (~110 MB here)
    i, j = np.triu_indices(n, k=1)
    same = codes[i] == codes[j]
    ref = np.histogram(np.clip(D[i, j][same], 0, 1), bins=h["edges"])[0]
    np.testing.assert_array_equal(h["intra"], ref)
    X = rng.normal(size=(400, 4096)).astype(np.float32)
    tracemalloc.start()
    original_histogram(X, np.arange(400) % 2, max_pairs=50_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6  # the sampled pairs' rows are gathered a block at a time (was 2 x 50,000 x 4096 x 4 bytes)
