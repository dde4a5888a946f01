"""knn="ann"'s cost model: constants measured at first use, cached beside the compiled kernels, or fixed."""

import json
import logging
import os

import numpy as np
import pytest

from xmrank import InputError, _jit
from xmrank.knn import ann_lists, cost_model

from conftest import unit_rows

FAKE = cost_model.CostConstants(exact={"faiss": 1.0, "numpy": 1.0, "bf16": 0.3}, scan={"flat": 6.0, "pqfs": 2.5},
                                build=1.5, source="measured", measured=["exact.faiss", "scan.flat", "scan.pqfs",
                                                                         "build"])


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """Measured mode, a fresh private cache folder, and a counting stand-in for the (timed) measurement."""
    import numba

    monkeypatch.setenv(cost_model.ENV, "measured")
    monkeypatch.setattr(_jit, "_state", {})
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XMRANK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cost_model, "_state", {})
    calls = []

    def fake_measure(*, need_bf16=False):
        calls.append(need_bf16)
        return cost_model.CostConstants(exact=dict(FAKE.exact), scan=dict(FAKE.scan), build=FAKE.build,
                                        source="measured",
                                        measured=list(FAKE.measured)
                                        + (["exact.bf16"] if cost_model._bf16_wanted(need_bf16) else []))

    monkeypatch.setattr(cost_model, "measure", fake_measure)
    path = tmp_path / "cache" / "numba" / cost_model.CACHE_FILE
    return calls, path


def test_the_constants_are_measured_once_cached_and_read_back(measured):
    calls, path = measured
    first = cost_model.constants()
    assert first.source == "measured" and len(calls) == 1
    assert path.is_file() and not path.stat().st_mode & 0o022
    stored = json.loads(path.read_text())
    assert stored["version"] == cost_model.VERSION and cost_model.cache_key() in stored["entries"]
    assert cost_model.constants() is first and len(calls) == 1  # once per process
    cost_model.reset()
    again = cost_model.constants()  # a new process: read from the file
    assert again.source == "cached" and len(calls) == 1
    assert again.as_dict() == first.as_dict()
    assert cost_model.cached().as_dict() == first.as_dict()


def _write_entry(path, entry, raw=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = raw if raw is not None else json.dumps({"version": cost_model.VERSION,
                                                   "entries": {cost_model.cache_key(): entry}})
    path.write_text(text)
    os.chmod(path, 0o600)


GOOD = {"exact": {"faiss": 1.0, "numpy": 1.0, "bf16": 0.5}, "scan": {"flat": 7.5, "pqfs": 3.0}, "build": 2.0,
        "measured": ["build", "exact.bf16", "exact.faiss", "scan.flat", "scan.pqfs"]}


@pytest.mark.parametrize("entry, raw", [
    (None, "{not json"),
    (None, '{"version": 1, "entries": {"k": {"build": NaN}}}'),
    (None, "[1, 2, 3]"),
    (None, "\xff\xfe"),
    ({**GOOD, "build": -1.0}, None),
    ({**GOOD, "build": 1e300}, None),
    ({**GOOD, "scan": {"flat": "7.5", "pqfs": 3.0}}, None),
    ({**GOOD, "scan": {"flat": True, "pqfs": 3.0}}, None),
    ({**GOOD, "exact": [1.0, 1.0, 0.5]}, None),
    ({**GOOD, "exact": {"faiss": 1.0, "numpy": 1.0, "bf16": 0.5, "evil": 1.0}}, None),
    ({**GOOD, "measured": [{"x": 1}]}, None),
    ("a string", None),
], ids=["bad-json", "nan", "list", "bytes", "negative", "huge", "string", "bool", "wrong-type", "extra-key",
        "bad-measured", "not-a-dict"])
def test_hostile_cache_contents_are_ignored_and_measured_again(measured, caplog, entry, raw):
    calls, path = measured
    cost_model.cache_path()  # the kernel cache folder is made (private)
    _write_entry(path, entry, raw)
    with caplog.at_level(logging.WARNING, logger="xmrank.knn.cost_model"):
        got = cost_model.constants()
    assert got.source == "measured" and len(calls) == 1
    assert got.as_dict() == FAKE.as_dict()
    assert any("ignoring the cost-model cache" in r.getMessage() for r in caplog.records)
    cost_model.reset()
    assert cost_model.constants().source == "cached"  # rewritten with a sound entry


def test_a_good_entry_is_used(measured):
    calls, path = measured
    cost_model.cache_path()
    _write_entry(path, GOOD)
    got = cost_model.constants()
    assert got.source == "cached" and not calls and got.scan["flat"] == 7.5


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
@pytest.mark.parametrize("what", ["folder", "file"])
def test_an_unsafe_cache_is_not_read(measured, caplog, what):
    calls, path = measured
    path_str, _ = cost_model.cache_path()  # resolved while the folder is still private
    assert path_str == str(path)
    _write_entry(path, GOOD)
    os.chmod(path.parent if what == "folder" else path, 0o777 if what == "folder" else 0o666)
    with caplog.at_level(logging.INFO, logger="xmrank.knn.cost_model"):
        got = cost_model.constants()
    assert got.source == "measured" and len(calls) == 1 and got.scan["flat"] != 7.5
    if what == "folder":
        assert cost_model.cache_path()[0] is None and "not safe" in cost_model.cache_path()[1]
        assert json.loads(path.read_text())["entries"][cost_model.cache_key()] == GOOD  # not written either
        assert any("not cached" in r.getMessage() for r in caplog.records)
    cost_model.reset()  # no cache: measured again in the next process
    assert cost_model.constants().source == "measured" and len(calls) == 2


def test_no_writable_cache_measures_once_per_process(measured, monkeypatch):
    calls, _ = measured
    monkeypatch.setattr(_jit, "cache_folder", lambda: None)
    assert cost_model.constants().source == "measured"
    assert cost_model.constants().source == "measured" and len(calls) == 1


def test_fixed_mode_keeps_the_fixed_constants(measured, monkeypatch):
    calls, path = measured
    monkeypatch.setenv(cost_model.ENV, "fixed")
    got = cost_model.constants()
    assert got.source == "fixed" and not calls and not path.exists()
    assert got.exact == cost_model.FIXED_EXACT and got.scan == cost_model.FIXED_SCAN
    assert ann_lists.model_constants().source == "fixed"
    monkeypatch.setenv(cost_model.ENV, "sometimes")
    with pytest.raises(InputError, match=cost_model.ENV):
        cost_model.constants()


def test_measured_constants_are_clamped_and_logged(monkeypatch, caplog):
    # every kernel after the unit "takes" 1000 times as long: absurd constants, clamped to 4x the fixed ones
    times = iter([1.0] + [1000.0] * 20)

    def slow(func, repeats=3):
        func()
        return next(times)

    monkeypatch.setattr(cost_model, "_best", slow)
    with caplog.at_level(logging.WARNING, logger="xmrank.knn.cost_model"):
        got = cost_model.measure()
    high = cost_model.BOUNDS[1]
    assert got.scan == {k: high * v for k, v in cost_model.FIXED_SCAN.items()}
    assert got.build == high * cost_model.FIXED_BUILD and got.exact["faiss"] == 1.0
    assert {"scan.flat", "scan.pqfs", "build"} <= set(got.clamped) <= {"scan.flat", "scan.pqfs", "build", "exact.bf16"}
    assert sum("outside" in r.getMessage() for r in caplog.records) == len(got.clamped)
    clamped: list = []
    assert cost_model._clamp("x", float("nan"), 2.0, clamped) == 0.5 and clamped == ["x"]
    assert cost_model._clamp("y", 2.1, 2.0, clamped) == 2.1 and clamped == ["x"]


def test_a_real_measurement_stays_within_bounds():
    got = cost_model.measure()
    assert got.source == "measured" and {"exact.faiss", "scan.flat", "scan.pqfs", "build"} <= set(got.measured)
    for name, fixed in [*cost_model.FIXED_SCAN.items(), ("build", cost_model.FIXED_BUILD)]:
        value = got.scan.get(name, got.build)
        assert cost_model.BOUNDS[0] * fixed <= value <= cost_model.BOUNDS[1] * fixed


def _data():
    X, mods = unit_rows(3000, 16, seed=1, n_ids=300)
    return X, [np.flatnonzero(mods == g) for g in range(2)]


def test_the_report_carries_the_constants_and_their_source(measured):
    X, groups = _data()
    _, reports = ann_lists.search_groups(X, groups, 5, min_rows=0, return_report=True)
    assert {r.cost_source for r in reports} == {"measured"}
    assert reports[0].cost_constants == FAKE.as_dict()
    cost_model.reset()
    _, reports = ann_lists.search_groups(X, groups, 5, min_rows=0, return_report=True)
    assert {r.cost_source for r in reports} == {"cached"}


def test_fixed_mode_in_the_report(monkeypatch):
    monkeypatch.setenv(cost_model.ENV, "fixed")
    X, groups = _data()
    _, reports = ann_lists.search_groups(X, groups, 5, min_rows=0, return_report=True)
    assert {r.cost_source for r in reports} == {"fixed"}
    assert reports[0].cost_constants["scan"] == ann_lists.SCAN_COST


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["measured", "low", "high"])
def test_the_choices_of_the_ann_tests_hold_with_measured_constants(monkeypatch, scale):
    """test_knn_ann_lists' asserted choices, with constants measured here or at either clamp bound."""
    from test_knn_ann_lists import _clustered, _groups

    if scale == "measured":
        model = cost_model.measure()
    else:
        f = cost_model.BOUNDS[0 if scale == "low" else 1]
        model = cost_model.CostConstants(exact=dict(cost_model.FIXED_EXACT),
                                         scan={k: f * v for k, v in cost_model.FIXED_SCAN.items()},
                                         build=f * cost_model.FIXED_BUILD, source="measured")
    monkeypatch.setattr(ann_lists, "model_constants", lambda engines=(): model)
    # unstructured rows: exact search
    X, mods = unit_rows(12_000, 64, seed=5)
    _, reports = ann_lists.search_groups(X, _groups(mods), 10, k_read=3, min_rows=0, return_report=True)
    assert [r.choice for r in reports] == ["exact", "exact"]
    # clustered rows with exact search priced 30 times higher (the slow_exact fixture): the index
    slow = cost_model.CostConstants(exact={k: 30 * v for k, v in model.exact.items()}, scan=model.scan,
                                    build=model.build, source=model.source)
    monkeypatch.setattr(ann_lists, "model_constants", lambda engines=(): slow)
    X, mods = _clustered(12_000)
    _, reports = ann_lists.search_groups(X, _groups(mods), 15, k_read=6, min_rows=0, return_report=True)
    assert [r.choice for r in reports] == ["ann", "ann"]


def test_warmup_measures_caches_and_reports(measured):
    from xmrank import _warmup

    calls, _ = measured
    assert _warmup.cost_constants(measure=False) is None  # --check: nothing cached, nothing measured
    assert not calls
    got = _warmup.cost_constants(measure=True)
    assert got.source == "measured" and calls == [True]
    assert "measured now" in _warmup.describe_constants(got)
    cost_model.reset()
    again = _warmup.cost_constants(measure=False)
    assert again.source == "cached" and "cached" in _warmup.describe_constants(again)


def test_a_clamped_measurement_is_used_but_not_cached(measured, monkeypatch, caplog):
    calls, path = measured
    real_fake = cost_model.measure

    def disturbed(*, need_bf16=False):
        got = real_fake(need_bf16=need_bf16)
        got.clamped = ["build"]
        return got

    monkeypatch.setattr(cost_model, "measure", disturbed)
    with caplog.at_level(logging.WARNING, logger="xmrank.knn.cost_model"):
        first = cost_model.constants()
    assert first.source == "measured" and first.clamped == ["build"] and len(calls) == 1
    assert not path.exists() and any("not cached" in r.getMessage() for r in caplog.records)
    assert cost_model.constants() is first and len(calls) == 1  # kept for this process
    cost_model.reset()
    cost_model.constants()  # the next process measures again
    assert len(calls) == 2
