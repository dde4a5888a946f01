"""The README's two quick-start commands, one after the other in one fresh virtual environment (slow: installs)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


# --- the README's walkthrough on your own features: its blocks, in order, in one empty folder ---

README = os.path.join(ROOT, "README.md")
WALKTHROUGH = "## Your own features, end to end"


def walkthrough_blocks(text):
    """``(language, line, code)`` of the python and bash blocks of the README section WALKTHROUGH, in order."""
    lines = text.splitlines()
    start = lines.index(WALKTHROUGH)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks, i = [], start
    while i < end:
        if lines[i].startswith("```"):
            lang, first = lines[i][3:].strip(), i + 1
            i += 1
            while not lines[i].startswith("```"):
                i += 1
            if lang in ("python", "bash"):
                blocks.append((lang, first, "\n".join(lines[first:i]) + "\n"))
        i += 1
    return blocks


def test_the_walkthrough_shows_each_command_on_a_file_it_writes():
    with open(README, encoding="utf-8") as f:
        blocks = walkthrough_blocks(f.read())
    assert blocks and blocks[0][0] == "python", "the walkthrough starts by writing the feature files"
    shell = "\n".join(code for lang, _, code in blocks if lang == "bash")
    for command in ("xmrank diagnose", "xmrank cluster", "xmrank rerank", "xmrank evaluate", "xmrank tune cluster"):
        assert command in shell, f"the walkthrough has no `{command}`"


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path):
    if shutil.which("bash") is None or os.name == "nt":
        pytest.skip("needs bash and a POSIX shell script for the `xmrank` shim")
    with open(README, encoding="utf-8") as f:
        blocks = walkthrough_blocks(f.read())
    work, shim = tmp_path / "work", tmp_path / "bin"
    work.mkdir()
    shim.mkdir()
    # `xmrank` is the installed entry point; this interpreter's, whatever the PATH holds
    (shim / "xmrank").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m xmrank.cli.main "$@"\n')
    (shim / "xmrank").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)  # xmrank as installed, not from the checkout's folder
    for lang, line, code in blocks:
        cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
        res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"README.md line {line}:\n{code}\n--- stderr ---\n{res.stderr[-3000:]}"
    for written in ("feats.npz", "bias.json", "labels.npy", "summary.json", "clusters.csv", "reranked.npy",
                    "rerank.json", "chosen.json"):
        assert (work / written).is_file(), f"the walkthrough did not write {written}"
