"""Compiled kernels: cached outside the installed package, and importable where no cache can be written."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import xmrank
from xmrank import _jit

PACKAGE_DIR = os.path.dirname(os.path.abspath(xmrank.__file__))

# one small kernel, compiled in a fresh interpreter
SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
import numpy as np
import xmrank
from xmrank.jaccard import kernels
rank = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]], dtype=np.int64)
print("mask", kernels.reciprocal_mask(rank, 1).sum())
"""


def _run(env_changes, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in drop and k != "NUMBA_CACHE_DIR"}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)


def _cache_files_since(folder, start):
    found = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith((".nbi", ".nbc")) and os.path.getmtime(path) >= start:
                found.append(path)
    return found


@pytest.mark.slow
def test_kernels_are_cached_in_the_user_cache_folder_not_in_the_package(tmp_path):
    start = time.time() - 1
    res = _run({"XMRANK_CACHE_DIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert "mask 5" in res.stdout
    assert _cache_files_since(tmp_path / "numba", start), "no compiled kernel was cached in XMRANK_CACHE_DIR"
    assert _cache_files_since(PACKAGE_DIR, start) == []


@pytest.mark.slow
def test_import_and_kernels_work_without_a_writable_cache(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    start = time.time() - 1
    res = _run({"XMRANK_CACHE_DIR": str(blocker / "sub")}, drop=("HOME",))
    assert res.returncode == 0, res.stderr
    assert "mask 5" in res.stdout
    assert res.stdout.count("no writable cache folder for compiled kernels") == 1
    assert "Traceback" not in res.stderr
    assert _cache_files_since(PACKAGE_DIR, start) == []


def test_cache_dir_follows_the_platform_conventions(monkeypatch, tmp_path):
    monkeypatch.delenv("XMRANK_CACHE_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _jit.kernel_cache_dir() == os.path.join(str(tmp_path), "xmrank", "numba")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _jit.kernel_cache_dir() == os.path.join(str(tmp_path), "home", ".cache", "xmrank", "numba")
    monkeypatch.setenv("XMRANK_CACHE_DIR", str(tmp_path / "mine"))
    assert _jit.kernel_cache_dir() == os.path.join(str(tmp_path), "mine", "numba")
    # an unknown home (expanduser leaves "~") is no cache folder, never a relative path
    monkeypatch.delenv("XMRANK_CACHE_DIR")
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)
    assert _jit.kernel_cache_dir() is None


def test_njit_without_cache_is_plain_numba():
    @_jit.njit()
    def add(a, b):
        return a + b

    assert add(np.int64(2), np.int64(3)) == 5
