"""Hostile values for retrieval: hubness parameters that overflow are refused (finite at the bounds), and the
SYSU-MM01 protocol on camera numbers outside 1-6 says so.
"""

import numpy as np
import pytest

import xmrank
from conftest import one_line, unit_rows
from xmrank import InputError
from xmrank.retrieval import hubness

Q, _ = unit_rows(20, 8, seed=1)

G, _ = unit_rows(30, 8, seed=2)


@pytest.mark.parametrize("call,match", [
    (lambda: hubness.qb_norm(Q, G, beta=1e308), r"beta must be <= 1000000.0"),
    (lambda: hubness.db_norm(Q, G, beta1=1e308), r"beta1 must be <= 1000000.0"),
    (lambda: hubness.db_norm(Q, G, beta2=float("inf")), r"beta2 must be a finite number"),
    (lambda: hubness.alpha_qe(Q, G, alpha=1e308), r"alpha must be <= 100.0"),
    (lambda: hubness.query_expansion(Q, G, alpha=-1), r"alpha must be >= 0.0"),
    (lambda: hubness.qb_norm(Q * 1e17, G * 1e17, beta=1e6), r"non-finite distance"),
])
def test_hubness_parameters_that_overflow_are_refused(call, match):
    with pytest.raises(InputError, match=match) as e:
        call()
    one_line(e)


@pytest.mark.parametrize("call", [
    lambda: hubness.qb_norm(Q, G, beta=1e6), lambda: hubness.db_norm(Q, G, beta1=1e6, beta2=1e6),
    lambda: hubness.alpha_qe(Q, G, alpha=100.0)[0], lambda: hubness.alpha_qe(Q * (1 + 1e-7), G, alpha=100.0)[0],
])
def test_hubness_at_the_bounds_is_finite(call):
    assert np.isfinite(call()).all()


def test_sysu_rules_on_cameras_0_to_3_say_so():
    D = np.random.default_rng(0).random((4, 6))
    q_ids, g_ids = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0, 1, 5])
    with pytest.warns(UserWarning) as rec:
        res = xmrank.evaluate(D, q_ids, g_ids, np.array([0, 0, 3, 3]), np.array([1, 1, 2, 2, 2, 2]), protocol="sysu")
    msgs = [str(w.message) for w in rec]
    assert any("outside SYSU-MM01's 1-6" in m and "2 camera number(s)" in m for m in msgs), msgs
    assert any("2 of 4 queries have no valid match" in m for m in msgs), msgs  # query 2 (gallery cam 2 removed), 3
    assert res["n_skipped"] == 2
    with pytest.raises(InputError, match=r"No query has a valid match in the gallery under protocol 'sysu' \(2"):
        xmrank.evaluate(D[:2, 2:], q_ids[2:], g_ids[2:], np.array([3, 3]), np.array([2, 2, 2, 2]), protocol="sysu")
