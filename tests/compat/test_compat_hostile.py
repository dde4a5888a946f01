"""torchreid's own cosine distances: ``re_ranking`` reads float32 ``1 - cos`` (a little below 0 on the diagonal)
as 0, leaves the caller's arrays alone, and refuses truly negative distances in one line.
"""

import numpy as np
import pytest

from conftest import one_line, unit_rows
from xmrank import InputError

Q, _ = unit_rows(20, 8, seed=1)

G, _ = unit_rows(30, 8, seed=2)


def test_compat_re_ranking_accepts_one_minus_cosine_in_float32():
    from xmrank.compat import re_ranking

    q, g = Q, G
    qq, gg, qg = 1 - q @ q.T, 1 - g @ g.T, 1 - q @ g.T
    assert min(qq.min(), gg.min()) < 0  # float32 rounding: 1 - cos(x, x) is a little below 0
    out = re_ranking(qg, qq, gg, k1=5, k2=3)
    ref = re_ranking(qg, np.maximum(qq, 0), np.maximum(gg, 0), k1=5, k2=3)
    np.testing.assert_array_equal(out, ref)
    assert min(qq.min(), gg.min()) < 0  # the caller's arrays are not modified
    bad = qq.copy()
    bad[0, 1] = -1e-3
    with pytest.raises(InputError, match=r"q_q_dist must hold non-negative distances; q_q_dist\[0, 1\]") as e:
        re_ranking(qg, bad, gg, k1=5, k2=3)
    one_line(e)
