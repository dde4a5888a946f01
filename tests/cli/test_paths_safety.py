"""File-system safety (#25): atomic outputs committed together, temporaries that never outlive a run,
no output on a pipe, a closed standard output or inside a data set root, a repeated output option
refused, make-synthetic's manifest and file-size limits.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import invoke, one_line_failure, small_sysu

import xmrank.cli._io as cli_io
from xmrank import _atomic
from xmrank._atomic import TMP_MARK, atomic_path, atomic_write, committed_together, remove_stale

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None

PREVIOUS = b"previous good file\n"
SMALL = ["--train-ids", "1", "--val-ids", "1", "--test-ids", "1", "--height", "16", "--width", "8"]




def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if TMP_MARK in name)


@pytest.fixture
def file_limit():
    """Set a file-size limit (RLIMIT_FSIZE) for this process for the length of a ``with`` block."""
    if resource is None or not hasattr(signal, "SIGXFSZ"):
        pytest.skip("no file-size limits here")
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN  # Python's default: a write raises EFBIG

    class Limit:
        def __init__(self, nbytes):
            self.nbytes = nbytes

        def __enter__(self):
            self.saved = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.nbytes, self.saved[1]))

        def __exit__(self, *exc):
            resource.setrlimit(resource.RLIMIT_FSIZE, self.saved)

    return Limit


# --- the atomic writer ---------------------------------------------------------------------

def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(PREVIOUS)
    atomic_write(target, lambda fh: fh.write(b"new"))
    assert target.read_bytes() == b"new"
    assert temporaries(tmp_path) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(PREVIOUS)

    def broken(fh):
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, broken)
    assert target.read_bytes() == PREVIOUS
    assert temporaries(tmp_path) == []


def test_outputs_committed_together_or_not_at_all(tmp_path):
    first, second = tmp_path / "a.npy", tmp_path / "b.json"
    first.write_bytes(PREVIOUS)
    second.write_bytes(PREVIOUS)
    with pytest.raises(OSError):
        with committed_together():
            atomic_write(first, lambda fh: fh.write(b"new a"))
            assert first.read_bytes() == PREVIOUS  # not renamed before the block ends
            atomic_write(second, lambda fh: (_ for _ in ()).throw(OSError(errno.EFBIG, "File too large")))
    assert first.read_bytes() == PREVIOUS and second.read_bytes() == PREVIOUS
    assert temporaries(tmp_path) == []
    with committed_together():
        atomic_write(first, lambda fh: fh.write(b"new a"))
        atomic_write(second, lambda fh: fh.write(b"new b"))
    assert (first.read_bytes(), second.read_bytes()) == (b"new a", b"new b")
    assert temporaries(tmp_path) == []


def _dead_pid():
    pid = 2**22 - 7
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_temporaries_of_a_killed_process_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "out.npy"
    stale = tmp_path / f".out.npy{TMP_MARK}{_dead_pid()}-abcd1234.npy"
    alive = tmp_path / f".out.npy{TMP_MARK}{os.getppid()}-abcd1234.npy"  # a running process: kept
    other = tmp_path / f".other.npy{TMP_MARK}{_dead_pid()}-abcd1234.npy"  # another target: kept
    for path in (stale, alive, other):
        path.write_bytes(b"partial")
    atomic_write(target, lambda fh: fh.write(b"x"))
    assert not stale.exists() and alive.exists() and other.exists()
    assert remove_stale(tmp_path / "other.npy") == [str(other)]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_terminated_process_removes_its_temporaries(tmp_path, sig):
    script = textwrap.dedent(f"""
        import importlib.util, os, signal, sys
        spec = importlib.util.spec_from_file_location("atomic", {_atomic.__file__!r})
        atomic = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(atomic)
        with atomic.atomic_path({str(tmp_path / "out.npy")!r}) as tmp:
            open(tmp, "wb").write(b"half")
            print(tmp, flush=True)
            os.kill(os.getpid(), signal.{sig})
            print("survived", flush=True)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == -getattr(signal, sig), (res.returncode, res.stderr)
    assert "survived" not in res.stdout
    assert res.stdout.strip().startswith(str(tmp_path / f".out.npy{TMP_MARK}{''}"))
    assert os.listdir(tmp_path) == []


def test_a_short_write_a_c_writer_hides_is_a_file_size_error(tmp_path, file_limit):
    """pillow and numpy write through C streams that drop a write cut short by the limit."""
    target = tmp_path / "img.jpg"
    target.write_bytes(PREVIOUS)

    def c_writer(fh):
        fh.flush()
        for _ in range(8):
            try:
                os.write(fh.fileno(), b"x" * 1024)
            except OSError:
                pass  # what a C library that ignores errors does
        fh.seek(8 * 1024)

    with file_limit(2048):
        with pytest.raises(OSError) as err:
            atomic_write(target, c_writer)
    assert err.value.errno == errno.EFBIG and "ulimit -f" in str(err.value)
    assert target.read_bytes() == PREVIOUS
    assert temporaries(tmp_path) == []


def test_an_exception_at_the_file_size_limit_becomes_efbig(tmp_path, file_limit):
    """torch.save turns the failed write into a RuntimeError: still an EFBIG OSError naming the target."""
    def torch_like(fh):
        try:
            fh.write(b"x" * 8192)
            fh.flush()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    with file_limit(2048):
        with pytest.raises(OSError) as err:
            atomic_write(tmp_path / "checkpoint.pt", torch_like)
    assert err.value.errno == errno.EFBIG and err.value.filename == str(tmp_path / "checkpoint.pt")
    assert os.listdir(tmp_path) == []


def test_atomic_path_refuses_a_fifo_and_writes_the_null_device(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        with atomic_path(fifo):
            pass
    atomic_write(os.devnull, lambda fh: fh.write(b"discarded"))


# --- command outputs -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paths_safety")
    rng = np.random.default_rng(0)
    np.save(folder / "f.npy", rng.normal(size=(40, 4)).astype(np.float32))
    np.save(folder / "m.npy", np.arange(40) % 2)
    return folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_an_output_on_a_fifo_or_dev_stdout_is_refused_before_work(tmp_path, feats):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    msg = one_line_failure(invoke(["cluster", feats / "f.npy", "--modalities", feats / "m.npy", "-o", fifo]),
                           "--output")
    assert "not a regular file" in msg
    if os.path.exists("/dev/stdout"):  # a pipe, a terminal, or (redirected) a link to a file: refused all the same
        msg = one_line_failure(invoke(["diagnose", feats / "f.npy", "--modalities", feats / "m.npy",
                                       "--json", "/dev/stdout"]), "--json")
        assert "not a regular file" in msg and "or - for standard output" in msg


def test_check_output_accepts_the_null_device(tmp_path):
    cli_io.check_output(os.devnull, "--output")


def test_the_same_output_option_twice_is_refused(tmp_path, feats):
    report = tmp_path / "r.json"
    res = invoke(["diagnose", feats / "f.npy", "--modalities", feats / "m.npy", "--json", "-", "--json", report])
    assert res.exit_code == 2
    assert res.stderr.strip().startswith("Error: --json is given more than once; give it once.")
    assert len(res.stderr.strip().splitlines()) == 1
    assert res.stdout == "" and not report.exists()
    res = invoke(["cluster", feats / "f.npy", "-o", tmp_path / "a.npy", "--output", tmp_path / "b.npy"])
    assert res.exit_code == 2 and "--output is given more than once" in res.stderr
    assert os.listdir(tmp_path) == []


def test_json_to_a_closed_standard_output_is_an_error(monkeypatch, tmp_path):
    import click

    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(click.ClickException, match="standard output is closed"):
        cli_io.check_outputs([("--json", "-")], stdout=("--json",))
    with pytest.raises(click.ClickException, match="--contents -: standard output is closed"):
        cli_io.write_json("-", {"a": 1}, "--contents")


@pytest.mark.slow
def test_json_to_a_closed_standard_output_exits_non_zero(feats):
    res = subprocess.run([sys.executable, "-m", "xmrank.cli.main", "diagnose", str(feats / "f.npy"), "--modalities",
                          str(feats / "m.npy"), "--json", "-"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, timeout=300, pass_fds=(), close_fds=True,
                         preexec_fn=lambda: os.close(1))
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip() == "Error: --json -: standard output is closed; give a file name."


@pytest.mark.slow
def test_a_failure_writing_the_second_output_leaves_the_first_untouched(tmp_path, feats, monkeypatch):
    out, report = tmp_path / "labels.npy", tmp_path / "r.json"
    out.write_bytes(PREVIOUS)
    report.write_bytes(PREVIOUS)
    real = _atomic.atomic_write

    def failing(path, write, **kw):
        if str(path).endswith(".json"):
            raise OSError(errno.EFBIG, "File too large", str(path))
        return real(path, write, **kw)

    monkeypatch.setattr(_atomic, "atomic_write", failing)
    msg = one_line_failure(invoke(["cluster", feats / "f.npy", "--modalities", feats / "m.npy", "--k1", "10",
                                   "--k2", "3", "-o", out, "--json", report]), "--json")
    assert "File too large" in msg
    assert out.read_bytes() == PREVIOUS and report.read_bytes() == PREVIOUS
    assert temporaries(tmp_path) == []


# --- outputs never inside a data set root --------------------------------------------------

@pytest.fixture
def sysu_root(tmp_path):
    root = small_sysu(tmp_path / "syn", image=b"jpeg")
    (tmp_path / "model.pt").write_bytes(b"not read")
    return root


@pytest.mark.parametrize("inside", ["exp/test_id.txt", "cam1/0001/0001.jpg", "new.json"])
def test_test_json_inside_the_data_set_root_is_refused(sysu_root, inside):
    before = (sysu_root / "exp" / "test_id.txt").read_bytes()
    msg = one_line_failure(invoke(["test", "--checkpoint", sysu_root.parent / "model.pt", "--dataset", "sysu",
                                   "--root", sysu_root, "--json", sysu_root / inside]), "--json")
    assert "inside the data set root" in msg
    assert (sysu_root / "exp" / "test_id.txt").read_bytes() == before
    assert (sysu_root / "cam1" / "0001" / "0001.jpg").read_bytes() == b"jpeg"
    assert not (sysu_root / "new.json").exists()


def test_embed_output_inside_the_data_set_root_through_a_link_is_refused(sysu_root, tmp_path):
    os.symlink(sysu_root / "exp", tmp_path / "lists")
    msg = one_line_failure(invoke(["embed", "--checkpoint", tmp_path / "model.pt", "--root", sysu_root,
                                   "-o", tmp_path / "lists" / "feats.npz"]), "-o/--output")
    assert "inside the data set root" in msg
    assert not (sysu_root / "exp" / "feats.npz").exists()


# --- make-synthetic ------------------------------------------------------------------------

def test_make_synthetic_overwrite_deletes_only_what_its_manifest_lists(tmp_path):
    from xmrank.datasets.synthetic_images import MANIFEST

    root = tmp_path / "syn"
    assert invoke(["make-synthetic", root, *SMALL, "--images-per-camera", "2"]).exit_code == 0
    manifest = json.loads((root / MANIFEST).read_text())
    assert "cam1/0001/0002.jpg" in manifest["files"] and "exp" in manifest["folders"]
    (root / "camera_calibration").mkdir()
    (root / "camera_calibration" / "cam1.yaml").write_text("K: [1, 0, 0]\n")
    (root / "cam1" / "notes.txt").write_text("mine")  # a user's file inside a folder of the set
    res = invoke(["make-synthetic", root, *SMALL, "--images-per-camera", "1", "--seed", "1", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (root / "camera_calibration" / "cam1.yaml").read_text() == "K: [1, 0, 0]\n"
    assert (root / "cam1" / "notes.txt").read_text() == "mine"
    assert not (root / "cam1" / "0001" / "0002.jpg").exists()  # the previous set's, gone
    assert (root / "cam1" / "0001" / "0001.jpg").exists()
    assert not any(name.startswith(".") for name in os.listdir(root))


def test_make_synthetic_overwrite_refuses_to_replace_a_file_no_set_wrote(tmp_path):
    root = tmp_path / "syn"
    assert invoke(["make-synthetic", root, *SMALL, "--images-per-camera", "1"]).exit_code == 0
    (root / "cam2" / "0001" / "0002.jpg").write_bytes(b"a user's own picture")
    msg = one_line_failure(invoke(["make-synthetic", root, *SMALL, "--images-per-camera", "2", "--overwrite"]),
                           "cam2/0001/0002.jpg")
    assert "move it away" in msg
    assert (root / "cam2" / "0001" / "0002.jpg").read_bytes() == b"a user's own picture"


def test_make_synthetic_under_a_file_size_limit_fails_in_one_line(tmp_path, file_limit):
    root = tmp_path / "syn"
    with file_limit(2048):
        res = invoke(["make-synthetic", root, "--train-ids", "1", "--val-ids", "1", "--test-ids", "1",
                      "--images-per-camera", "1"])
    msg = one_line_failure(res, "ROOT")
    assert "ulimit -f" in msg
    assert os.listdir(tmp_path) == []  # no set reported or left, truncated or not


def test_make_synthetic_overwrite_never_deletes_or_writes_through_a_link_out(tmp_path):
    import shutil

    root, outside = tmp_path / "syn", tmp_path / "outside"
    assert invoke(["make-synthetic", root, *SMALL, "--images-per-camera", "1"]).exit_code == 0
    shutil.move(root / "cam1", outside)  # cam1/0001/0001.jpg, listed by the manifest, now lies outside
    os.symlink(outside, root / "cam1")
    before = sorted(p.name for p in outside.rglob("*"))
    msg = one_line_failure(invoke(["make-synthetic", root, *SMALL, "--images-per-camera", "1", "--overwrite"]),
                           "cam1")
    assert "symbolic link" in msg
    assert sorted(p.name for p in outside.rglob("*")) == before


def test_run_log_under_a_file_size_limit_stops_with_the_file_named(tmp_path, file_limit):
    """train.log hitting RLIMIT_FSIZE: the OSError naming it, not logging's own traceback on stderr."""
    pytest.importorskip("torch")
    import logging

    from xmrank.torch.runlog import run_log

    path = tmp_path / "train.log"
    log = logging.getLogger("xmrank.train")
    with run_log(str(path)):
        log.info("first record")
        with file_limit(path.stat().st_size + 10), pytest.raises(OSError) as info:
            log.info("a record longer than what the limit leaves " * 4)
    assert info.value.filename == str(path) and info.value.errno is not None
