"""`xmrank warmup`, first-use compilation kept out of the timings, -v without third-party noise, make-synthetic without pillow."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

XMRANK = [sys.executable, "-m", "xmrank.cli.main"]


def _env(cache_dir, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XMRANK_DEBUG")}
    env.update(XMRANK_CACHE_DIR=str(cache_dir), **extra)
    return env


def _run(args, cache_dir, timeout=900, **extra):
    return subprocess.run(XMRANK + list(args), env=_env(cache_dir, **extra), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def cold_demo(tmp_path_factory):
    """`xmrank demo` on a machine whose kernel cache is empty (compiles once, here)."""
    cache = tmp_path_factory.mktemp("kernel-cache")
    check = _run(["warmup", "--check"], cache)
    demo = _run(["demo"], cache)
    return cache, check, demo


@pytest.mark.slow
def test_an_empty_cache_fails_the_check_in_one_line(cold_demo):
    _, check, _ = cold_demo
    assert check.returncode == 1
    assert check.stderr.count("\n") == 1 and check.stderr.startswith("Error: ")
    assert "xmrank warmup" in check.stderr and "Traceback" not in check.stderr


@pytest.mark.slow
def test_first_demo_says_it_compiles_and_keeps_it_out_of_the_table(cold_demo):
    cache, _, demo = cold_demo
    assert demo.returncode == 0, demo.stderr
    folder = os.path.join(str(cache), "numba")
    assert f"compiling xmrank's kernels once (cached in {folder}" in demo.stderr
    compiled = re.search(r"compiled xmrank's kernels in ([\d.]+)s", demo.stderr)
    assert compiled, demo.stderr
    times = [float(t) for t in re.findall(r"^(?:vanilla|modality-qe|modality) .* ([\d.]+)s$", demo.stdout, re.M)]
    assert len(times) == 3, demo.stdout
    # compiling takes seconds; each method on 960 rows takes a fraction of that
    assert max(times) < 0.5 * float(compiled.group(1)), (times, compiled.group(0))


@pytest.mark.slow
def test_after_the_first_run_everything_is_cached(cold_demo):
    cache, _, _ = cold_demo
    check = _run(["warmup", "--check"], cache)
    assert check.returncode == 0, check.stderr
    assert os.path.join(str(cache), "numba") in check.stdout
    warm = _run(["warmup"], cache)
    assert warm.returncode == 0, warm.stderr
    assert "already compiled" in warm.stdout and "compiling" not in warm.stderr
    demo = _run(["demo", "--n-ids", "20"], cache)
    assert demo.returncode == 0, demo.stderr
    assert "compiling" not in demo.stderr


@pytest.mark.slow
def test_warmup_compiles_the_signatures_real_calls_use(cold_demo):
    """After compile_kernels(), a broad set of real calls compiles nothing new."""
    cache, _, _ = cold_demo
    script = r"""
import numpy as np
import xmrank
from xmrank import _warmup
from xmrank.compat import compute_jaccard_distance, compute_jaccard_distance_xmodal
from xmrank.datasets import make_biased
from xmrank.diagnostics import neighbor_makeup

_warmup.compile_kernels()
before = {d.py_func.__qualname__: len(d.signatures) for d in _warmup.kernels()}
X, ids, mods, cams = make_biased(n_ids=20, per_id=6, seed=0)
for knn in ("auto", "numpy"):
    xmrank.cluster(X, modalities=mods, eps=0.6, knn=knn, progress=False)
    xmrank.cluster(X.astype(np.float64), modalities=mods.astype(str), cameras=cams, method="camera", knn=knn)
xmrank.cluster(X, modalities=mods, eps="auto")
xmrank.cluster_per_modality(X, mods)
xmrank.subset_cluster(X, mods, ratio=0.5, seed=0)
xmrank.XMCluster(eps=0.6).fit_predict(X, modalities=mods)
xmrank.jaccard_distance(X, modalities=mods, dense=True)
xmrank.jaccard_distance(X, modalities=mods, method="modality-qe", self_in_k1=False, max_distance=1.0)
xmrank.rerank(X[:20], X[20:], query_modalities=1, gallery_modalities=0, k1=10, k2=3)
xmrank.rerank(X[:20].astype(np.float64), X[20:], k1=10, k2=3, normalize="union")
compute_jaccard_distance(X, k1=10, k2=3)
compute_jaccard_distance_xmodal(X, k1=10, k2=3, search_option=5, rgbNum=int((mods == 0).sum()))
neighbor_makeup(X, mods, k1=10)
after = {d.py_func.__qualname__: len(d.signatures) for d in _warmup.kernels()}
print("NEW", sorted(k for k in after if after[k] != before[k]))
"""
    res = subprocess.run([sys.executable, "-c", script], env=_env(cache), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    assert "NEW []" in res.stdout, res.stdout


@pytest.mark.slow
def test_verbose_logs_xmrank_only(cold_demo):
    cache, _, _ = cold_demo
    res = _run(["-v", "demo", "--n-ids", "20"], cache)
    assert res.returncode == 0, res.stderr
    assert "INFO xmrank" in res.stderr
    assert "faiss" not in res.stderr and "ModuleNotFoundError" not in res.stderr, res.stderr


def test_warmup_without_a_writable_cache_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = _run(["warmup"], blocker / "sub", timeout=300)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "no writable cache folder" in res.stderr
    assert "XMRANK_CACHE_DIR" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_make_synthetic_without_pillow_names_the_extra(tmp_path):
    root = tmp_path / "set"
    code = ("import sys; sys.modules['PIL'] = None\n"
            "from xmrank.cli.main import main\n"
            f"main(['make-synthetic', {str(root)!r}])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1, res.stderr
    assert "pillow" in res.stderr and "xmrank[torch]" in res.stderr and "Traceback" not in res.stderr
    assert not root.exists()


def test_make_synthetic_help_names_its_dependencies():
    res = subprocess.run(XMRANK + ["make-synthetic", "--help"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "pillow" in res.stdout
