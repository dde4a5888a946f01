"""The README's two quick-start commands, one after the other in one fresh virtual environment (slow: installs)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quick_start_then_editable_install_in_one_venv(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", ROOT, str(repo)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
           "XMRANK_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)

    def sh(cmd):
        res = subprocess.run(cmd, shell=True, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, f"{cmd}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        return res

    demo = sh('pip install -q ".[faiss]" && xmrank demo')
    assert "modality" in demo.stdout
    site = subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          env=env, capture_output=True, text=True, check=True).stdout.strip()
    installed = os.path.join(site, "xmrank")
    cached = [f for _, _, fs in os.walk(installed) for f in fs if f.endswith((".nbi", ".nbc"))]
    assert cached == [], "compiled-kernel caches were written inside the installed package"
    # the second command installs the checkout in place of the wheel: nothing of the wheel may shadow it
    sh('pip install -q -e ".[dev]"')
    assert not os.path.exists(installed), "a leftover site-packages/xmrank folder would shadow the editable install"
    check = sh('python -c "import xmrank, xmrank.cli.main; from xmrank import InputError; print(xmrank.__file__)"')
    assert check.stdout.strip().startswith(str(repo))
