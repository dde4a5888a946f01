"""Progress reporting where long runs happen, and GPUs named by index (device="cuda:N")."""

import logging

import numpy as np
import pytest

import xmrank
from xmrank import backend
from xmrank._progress import block_progress, progress_bar
from xmrank.datasets import make_biased

HAVE_CUDA = backend.cuda_available()


# --- progress ----------------------------------------------------------------------------------

def test_forced_progress_off_a_terminal_is_lines_with_times(capsys):
    with progress_bar(total=3, desc="work", show=True, interval=0.0) as bar:
        bar.stage("load")
        bar.set_postfix(loss="0.5")
        bar.update(1)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0].startswith("work: load ") and lines[0].endswith("s (1/3)")
    assert lines[1].startswith("work: 2/3 (67%)") and "loss=0.5" in lines[1]
    assert lines[-1].startswith("work: done, 2/3 in ")
    assert "\r" not in err


def test_default_progress_off_a_terminal_is_silent_or_logged(capsys, caplog):
    X, ids, mods, _ = make_biased(n_ids=10, per_id=6, seed=0)
    xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3)
    assert capsys.readouterr().err == ""  # nohup, a scheduler: nothing written
    with caplog.at_level(logging.INFO, logger="xmrank.progress"):
        xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3)
    stages = [r.getMessage() for r in caplog.records if r.name == "xmrank.progress"]
    assert [s.split(": ")[1].rsplit(" ", 2)[0] for s in stages[:4]] == [
        "neighbour lists", "reciprocal sets and weights", "query expansion", "min-sum Jaccard"]
    assert stages[-1].startswith("jaccard[modality]: done, 4/4 in ")


def test_no_progress_is_silent(capsys, caplog):
    X, ids, mods, _ = make_biased(n_ids=10, per_id=6, seed=0)
    with caplog.at_level(logging.INFO, logger="xmrank.progress"):
        xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3, progress=False)
    assert capsys.readouterr().err == "" and not [r for r in caplog.records if r.name == "xmrank.progress"]


def test_block_progress_follows_the_enclosing_setting(capsys):
    with block_progress(total=5, desc="blocks") as bar:  # outside any progress_bar: silent
        bar.update(5)
    with progress_bar(total=1, desc="outer", show=False):
        with block_progress(total=5, desc="blocks") as bar:
            bar.update(5)
    assert capsys.readouterr().err == ""
    with progress_bar(total=1, desc="outer", show=True) as outer:
        with block_progress(total=5, desc="blocks", interval=0.0) as bar:
            for _ in range(5):
                bar.update(1)
        outer.stage("search")
    err = capsys.readouterr().err
    assert "blocks: 1/5 (20%)" in err and "blocks: done, 5/5" in err and "outer: search" in err


def test_progress_argument_is_checked():
    with pytest.raises(xmrank.InputError, match="progress must be True, False or None"):
        progress_bar(total=1, show="yes")


# --- devices by index --------------------------------------------------------------------------

@pytest.mark.parametrize("device,expected", [("cpu", ("cpu", None)), ("cuda", ("cuda", None)),
                                             ("cuda:0", ("cuda", 0)), ("cuda:12", ("cuda", 12))])
def test_parse_device(device, expected):
    assert backend.parse_device(device) == expected


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:-1", "cuda:a", "CUDA", "cpu:0", None, 1])
def test_bad_devices_are_refused(device):
    with pytest.raises(xmrank.InputError, match="Unknown device"):
        backend.parse_device(device)


@pytest.mark.skipif(HAVE_CUDA, reason="checks the messages shown without a GPU")
def test_gpu_by_index_without_a_gpu_says_what_is_missing():
    X, ids, mods, _ = make_biased(n_ids=10, per_id=6, seed=0)
    for call in (lambda: xmrank.jaccard_distance(X, k1=10, k2=3, device="cuda:1"),
                 lambda: xmrank.cluster(X, k1=10, k2=3, device="cuda:1"),
                 lambda: xmrank.XMCluster(k1=10, k2=3, device="cuda:1").fit(X),
                 lambda: xmrank.knn.knn_search(X, X, 3, device="cuda:1")):
        with pytest.raises(xmrank.InputError, match=r"device='cuda:1' (needs cupy|found no CUDA GPU)"):
            call()
    with pytest.raises(xmrank.InputError, match="'cpu', 'cuda' or 'cuda:N'"):
        xmrank.XMCluster(device="gpu").fit(X)
