"""Results that would not fit are refused before they are allocated (xmrank._memory, the min-sum's estimate)."""

import numpy as np
import pytest

import xmrank
from xmrank import _memory
from xmrank.jaccard import blocks


def _noisy(n, seed=0, d=32):
    """Issue 23's hard regime, small: every row's expanded set overlaps many others."""
    rng = np.random.default_rng(seed)
    n_ids = n // 10
    C = rng.standard_normal((n_ids, d))
    off = rng.standard_normal((2, d)) * 0.8
    ids = rng.integers(0, n_ids, n)
    mods = (rng.random(n) < 0.35).astype(int)
    X = C[ids] + off[mods] + rng.standard_normal((n, d)) * 0.9
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), mods


@pytest.mark.parametrize("max_distance", [None, 0.6])
def test_estimate_matches_the_stored_pairs(max_distance):
    X, mods = _noisy(2000)
    D = xmrank.jaccard_distance(X, modalities=mods, max_distance=max_distance)
    stored = (D.nnz - X.shape[0]) / 2
    plan = xmrank.jaccard.plan_jaccard(X, modalities=mods)
    from xmrank.jaccard.stages import NumbaExecutor

    ex = NumbaExecutor(1)
    parts = blocks.prepare(ex.expand(ex.weights(X, plan), plan))
    exact = blocks.estimate_pairs(parts, max_distance=max_distance, sample=X.shape[0])
    sampled = blocks.estimate_pairs(parts, max_distance=max_distance, sample=500, seed=1)
    assert exact == pytest.approx(stored, rel=1e-9, abs=0.5)
    assert sampled == pytest.approx(stored, rel=0.15)


def test_refused_before_the_output_is_allocated(monkeypatch):
    X, mods = _noisy(2000)
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "2M")

    def fail(*args, **kwargs):  # the pair buffers are allocated here
        raise AssertionError("min-sum ran although the output cannot fit")

    monkeypatch.setattr(blocks, "minsum_rows", fail)
    with pytest.raises(xmrank.OutputTooLarge, match=r"max_distance") as info:
        xmrank.jaccard_distance(X, modalities=mods)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, xmrank.InputError)
    assert "\n" not in str(info.value) and "stored entries" in str(info.value)


def test_max_distance_makes_it_fit(monkeypatch):
    X, mods = _noisy(2000)
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "40M")
    with pytest.raises(xmrank.OutputTooLarge):
        xmrank.jaccard_distance(X, modalities=mods)
    D = xmrank.jaccard_distance(X, modalities=mods, max_distance=0.6)
    assert D.nnz < 20 * X.shape[0]


def test_dense_output_refused_with_its_alternative(monkeypatch):
    X, mods = _noisy(600)
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", str(600 * 600))  # less than 600^2 float32 / 0.8
    with pytest.raises(xmrank.OutputTooLarge, match="dense=False"):
        xmrank.jaccard_distance(X, modalities=mods, dense=True)


@pytest.mark.parametrize("text, expected", [("1024", 1024), ("2K", 2048), ("1.5G", int(1.5 * 2**30)),
                                            ("3gb", 3 * 2**30), ("4GiB", 4 * 2**30), ("nonsense", None),
                                            ("-5", None), ("0", None), ("1e30T", None)])
def test_size_parser(text, expected):
    assert _memory._parse_size(text) == expected


def test_bad_limit_is_ignored_with_a_log(monkeypatch, caplog):
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "lots")
    room = _memory.available_bytes()
    assert room is None or room > 0
    assert "XMRANK_MEMORY_LIMIT" in caplog.text


def test_cli_cluster_reports_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from xmrank.cli.main import main as cli

    X, mods = _noisy(2000)
    np.save(tmp_path / "f.npy", X)
    np.save(tmp_path / "m.npy", mods)
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "1K")
    out = tmp_path / "labels.npy"
    res = CliRunner().invoke(cli, ["cluster", str(tmp_path / "f.npy"), "-m", str(tmp_path / "m.npy"),
                                   "-o", str(out)])
    assert res.exit_code != 0 and "Traceback" not in (res.output + res.stderr)
    assert len(res.stderr.strip().splitlines()) == 1 and "would need about" in res.stderr
    assert not out.exists()


def test_rerank_computes_only_the_query_gallery_block(monkeypatch):
    """rerank on the CPU runs the min-sum on query rows x gallery rows only; same numbers as the full Jaccard."""
    import importlib

    R = importlib.import_module("xmrank.retrieval.rerank")
    X, mods = _noisy(900)
    Q, G = X[:200], X[200:]
    kw = dict(method="modality", k1=10, k2=3)
    calls = []
    monkeypatch.setattr(blocks, "minsum_rows", lambda *a, **k: calls.append(1))  # the full square min-sum
    D = xmrank.rerank(Q, G, query_modalities=mods[:200], gallery_modalities=mods[200:], **kw)
    assert calls == []
    monkeypatch.undo()
    ref = R._original_into(Q, G, normalize="gallery", scale=0.3, shift=0.7)
    J = xmrank.jaccard_distance(X, modalities=mods, **kw)
    R._add_query_gallery_block(ref, J, np.float32(0.7))
    assert np.abs(D - ref).max() <= 1e-6


def test_rerank_refuses_a_dense_result_that_cannot_fit(monkeypatch):
    X, mods = _noisy(600)
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "100K")
    with pytest.raises(xmrank.OutputTooLarge, match="re-ranked distance matrix"):
        xmrank.rerank(X[:300], X[300:], query_modalities=mods[:300], gallery_modalities=mods[300:], k1=10, k2=3)
