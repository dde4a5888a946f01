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


# --- a cache others can write to is never loaded from (#25) ---------------------------------

@pytest.fixture
def fresh_jit(monkeypatch):
    """_jit's per-process decision made again, with numba's own NUMBA_CACHE_DIR unset."""
    import numba

    monkeypatch.setattr(_jit, "_state", {})
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    return monkeypatch


def _tiny(x):
    return x + 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
@pytest.mark.parametrize("where", ["cache root", "numba folder", "inside"])
def test_a_group_writable_cache_is_refused_with_one_warning(tmp_path, fresh_jit, where):
    fresh_jit.setenv("XMRANK_CACHE_DIR", str(tmp_path))
    numba_dir = tmp_path / "numba"
    numba_dir.mkdir(mode=0o755)
    os.chmod(numba_dir, 0o755)
    os.chmod(tmp_path, 0o755)
    planted = numba_dir / "xmrank_kernels-1a2b" / "index.nbi"
    planted.parent.mkdir(mode=0o755)
    planted.write_bytes(b"a pickle planted by someone else")
    target = {"cache root": tmp_path, "numba folder": numba_dir, "inside": planted.parent}[where]
    os.chmod(target, 0o775)
    with pytest.warns(UserWarning, match=rf"not using the compiled-kernel cache .*: {target} is writable by its group"):
        assert _jit._cache_target() is None
    assert _jit.cache_refusal() is not None
    dispatcher = _jit.njit(cache=True)(_tiny)  # compiled in the process: nothing read from or written to the cache
    assert type(dispatcher._cache).__name__ == "NullCache"
    assert sorted(p.name for p in numba_dir.rglob("*")) == ["index.nbi", "xmrank_kernels-1a2b"]


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_a_private_cache_is_used_and_created_private(tmp_path, fresh_jit):
    import warnings

    fresh_jit.setenv("XMRANK_CACHE_DIR", str(tmp_path / "new"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _jit._cache_target() == str(tmp_path / "new" / "numba")
    for folder in (tmp_path / "new", tmp_path / "new" / "numba"):
        assert os.stat(folder).st_mode & 0o077 == 0
    assert _jit.cache_refusal() is None


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to give a folder away")
def test_a_cache_owned_by_another_user_is_refused(tmp_path, fresh_jit):
    fresh_jit.setenv("XMRANK_CACHE_DIR", str(tmp_path))
    (tmp_path / "numba").mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    os.chown(tmp_path / "numba", 12345, -1)
    with pytest.warns(UserWarning, match=r"numba is owned by (uid 12345|\w+), not by you"):
        assert _jit._cache_target() is None


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_numba_cache_dir_is_checked_too(tmp_path, fresh_jit):
    import numba

    folder = tmp_path / "nb"
    folder.mkdir()
    os.chmod(folder, 0o777)
    fresh_jit.setattr(numba.config, "CACHE_DIR", str(folder))
    with pytest.warns(UserWarning, match="is writable by others"):
        assert _jit._cache_target() is None


def test_warmup_says_why_a_cache_is_refused(tmp_path, fresh_jit):
    from click.testing import CliRunner

    from xmrank.cli.main import main

    fresh_jit.setenv("XMRANK_CACHE_DIR", str(tmp_path))
    os.chmod(tmp_path, 0o777)
    res = CliRunner().invoke(main, ["warmup", "--check"])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not used" in lines[0] and "writable by others" in lines[0], res.stderr
