"""Hostile input, faults and untrusted files: every CLI output is whole or absent, never written over
an input, and every error is one line (no traceback) with a non-zero exit and no output file.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import invoke, one_line_failure
from click.testing import CliRunner

import xmrank
import xmrank.cli._io as cli_io
from xmrank.cli.main import main
from xmrank.datasets import make_biased

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None

BIG = str(2**70)
PREVIOUS = b"previous good file\n"


# --- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Input files in a folder of their own (tests write their outputs to tmp_path)."""
    tmp = tmp_path_factory.mktemp("cli_safety")
    X, ids, mods, cams = make_biased(n_ids=10, per_id=5, gap=1.5, seed=0)
    arrays = {
        "feats": X, "mods": mods, "ids": ids, "cams": cams, "flat": X[:, 0], "short_ids": ids[:-3],
        "huge": (X * np.float32(1e20)).astype(np.float32), "dist": np.random.default_rng(0).random((50, 50)),
        "dist_1d": np.zeros(5), "dist_nan": np.full((50, 50), np.nan), "dist_wrong": np.zeros((40, 50)),
        "nan_feats": np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X).astype(np.float32),
    }
    paths = {}
    for name, arr in arrays.items():
        paths[name] = tmp / f"{name}.npy"
        np.save(paths[name], arr)
    np.savez(tmp / "bundle.npz", features=X, modalities=mods)
    paths["bundle"] = tmp / "bundle.npz"
    for side, rows in (("q", slice(0, 50)), ("g", slice(50, 100))):
        paths[side] = tmp / f"{side}.npz"
        np.savez(paths[side], features=X[rows], ids=ids[rows], cams=cams[rows])
    paths["q_mod"] = tmp / "q_mod.npz"
    np.savez(paths["q_mod"], features=X[:50], ids=ids[:50], cams=cams[:50], modalities=mods[:50])
    for side, rows in (("q_huge", slice(0, 50)), ("g_huge", slice(50, 100))):
        paths[side] = tmp / f"{side}.npz"
        np.savez(paths[side], features=arrays["huge"][rows], ids=ids[rows], cams=cams[rows])
    for name, shape, data_bytes in (("liar", "(100000000000, 64)", 100), ("cut_short", "(100, 64)", 1000)):
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape
        header = header.ljust(117) + "\n"
        paths[name] = tmp / f"{name}.npy"
        paths[name].write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
                                + b"\0" * data_bytes)
    paths["folder"] = tmp / "a_folder"
    paths["folder"].mkdir()
    paths["missing"] = tmp / "no_such_file.npy"
    out = {k: str(v) for k, v in paths.items()}
    out["dir"] = str(tmp)
    return out




def stray_files(folder, keep=()):
    """Temporary or partial files left in ``folder`` (anything hidden or not in ``keep``)."""
    return sorted(f for f in os.listdir(folder) if f not in keep)


def file_bytes(paths):
    return {p: open(p, "rb").read() for p in paths}


@pytest.fixture
def no_work(monkeypatch):
    """Make every library entry point the commands compute with fail loudly: checks run before any work."""
    import xmrank.diagnostics
    import xmrank.retrieval

    def boom(*args, **kwargs):
        raise AssertionError("computed before checking the outputs")

    for mod, name in ((xmrank, "cluster"), (xmrank, "subset_cluster"), (xmrank, "cluster_per_modality"),
                      (xmrank.retrieval, "rerank"), (xmrank.retrieval, "evaluate"), (xmrank.diagnostics, "diagnose")):
        monkeypatch.setattr(mod, name, boom)


# --- 1. atomic outputs ------------------------------------------------------------------------

def _command(data, name, out):
    """Arguments of a command that writes ``out`` through the option ``name`` (and nothing else)."""
    d = data
    table = {
        "cluster -o": ["cluster", d["feats"], "-m", d["mods"], "-o", out],
        "cluster --json": ["cluster", d["feats"], "-m", d["mods"], "--json", out],
        "rerank -o": ["rerank", d["q"], d["g"], "-o", out],
        "rerank --json": ["rerank", d["q"], d["g"], "--json", out, "--protocol", "regdb"],
        "evaluate --json": ["evaluate", d["q"], d["g"], "--json", out, "--protocol", "regdb"],
        "diagnose --json": ["diagnose", d["feats"], "--modalities", d["mods"], "--json", out],
        "diagnose --plot": ["diagnose", d["feats"], "--modalities", d["mods"], "--plot", out],
    }
    return table[name]


OUTPUTS = ["cluster -o", "cluster --json", "rerank -o", "rerank --json", "evaluate --json", "diagnose --json",
           "diagnose --plot"]


def _out_name(name):
    return "out.png" if name.endswith("--plot") else ("out.json" if name.endswith("--json") else "out.npy")


@pytest.mark.parametrize("name", OUTPUTS)
def test_outputs_are_complete_files(data, tmp_path, name):
    out = tmp_path / _out_name(name)
    res = invoke(_command(data, name, out))
    assert res.exit_code == 0, res.output
    assert stray_files(tmp_path) == [out.name]
    if out.suffix == ".npy":
        assert np.load(out).ndim in (1, 2)
    elif out.suffix == ".json":
        json.loads(out.read_text())
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", OUTPUTS)
def test_a_write_cut_short_keeps_the_previous_file(data, tmp_path, monkeypatch, name):
    """The writer fails mid-file (a full disk): the previous file is untouched, no temporary file is left."""
    out = tmp_path / _out_name(name)
    out.write_bytes(PREVIOUS)

    def fail_mid_write(fd):
        os.write(fd, b"half")
        raise OSError(28, "No space left on device")

    if name == "diagnose --plot":
        import xmrank.diagnostics

        def plot(report, path):
            with open(path, "wb") as fh:
                fh.write(b"\x89PNG half")
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(xmrank.diagnostics, "plot_diagnosis", plot)
    else:
        monkeypatch.setattr(cli_io.os, "fsync", fail_mid_write)
    res = invoke(_command(data, name, out))
    option = name.split()[1]
    msg = one_line_failure(res, "--output" if option == "-o" else option, allow_stdout=True)
    assert "No space left" in msg
    assert out.read_bytes() == PREVIOUS
    assert stray_files(tmp_path) == [out.name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cluster -o", "cluster --json", "rerank -o", "evaluate --json", "diagnose --json",
                                  "diagnose --plot"])
@pytest.mark.skipif(resource is None, reason="needs RLIMIT_FSIZE")
def test_a_file_size_limit_keeps_the_previous_file(data, tmp_path, name):
    """A real short write: RLIMIT_FSIZE in a subprocess (numpy alone would not notice it)."""
    out = tmp_path / _out_name(name)
    out.write_bytes(PREVIOUS)
    limit = 64  # bytes: smaller than every output here

    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "MPLBACKEND": "Agg"}
    warm = invoke(_command(data, name, tmp_path / ("warm" + out.suffix)))  # compiled-kernel and font caches in place
    assert warm.exit_code == 0, warm.output
    os.remove(tmp_path / ("warm" + out.suffix))
    proc = subprocess.run([sys.executable, "-c", "from xmrank.cli.main import main; main()",
                           *map(str, _command(data, name, out))],
                          preexec_fn=set_limit, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0], proc.stderr
    assert out.read_bytes() == PREVIOUS
    assert stray_files(tmp_path) == [out.name]


def test_an_interrupted_write_leaves_no_temporary_file(data, tmp_path, monkeypatch):
    out = tmp_path / "labels.npy"

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_io.os, "fsync", interrupt)
    res = invoke(["cluster", data["feats"], "-o", out])
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert stray_files(tmp_path) == []


def test_overwriting_keeps_the_file_mode_and_follows_links(data, tmp_path):
    target = tmp_path / "real.npy"
    target.write_bytes(PREVIOUS)
    os.chmod(target, 0o640)
    link = tmp_path / "link.npy"
    link.symlink_to(target)
    res = invoke(["cluster", data["feats"], "-o", link])
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and np.load(link).shape == (100,)
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o640)
    assert stray_files(tmp_path) == ["link.npy", "real.npy"]


def test_a_new_file_gets_the_usual_mode(data, tmp_path):
    out = tmp_path / "labels.npy"
    umask = os.umask(0o022)
    try:
        assert invoke(["cluster", data["feats"], "-o", out]).exit_code == 0
    finally:
        os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o644


# --- 2. collisions with inputs and between outputs ---------------------------------------------

COLLISIONS = [
    # (command args with {placeholders}, option named in the message)
    (["cluster", "{feats}", "-o", "{tmp}/L.npy", "--json", "{tmp}/L.npy"], "--json"),
    (["cluster", "{feats}", "-o", "{feats}"], "FEATURES"),
    (["cluster", "{feats}", "-m", "{mods}", "-o", "{mods}"], "--modalities"),
    (["cluster", "{feats}", "-c", "{cams}", "--json", "{cams}"], "--cameras"),
    (["cluster", "{bundle}:features", "--json", "{bundle}"], "FEATURES"),
    (["cluster", "{feats}", "-o", "{link_to_feats}"], "FEATURES"),
    (["cluster", "{feats}", "-o", "{hardlink_to_feats}"], "FEATURES"),
    (["cluster", "{feats}", "-o", "{tmp}/../{tmpname}/same.npy", "--json", "{tmp}/same.npy"], "same file"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--plot", "{tmp}/P.png", "--json", "{tmp}/P.png"], "--plot"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--json", "{feats}"], "FEATURES"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--labels", "{ids}", "--json", "{ids}"], "--labels"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--cameras", "{cams}", "--plot", "{cams}"], "--cameras"),
    (["rerank", "{q}", "{g}", "-o", "{tmp}/R.npy", "--json", "{tmp}/R.npy"], "--json"),
    (["rerank", "{q}", "{g}", "--json", "{q}"], "QUERY"),
    (["rerank", "{feats}", "{feats}", "--query-ids", "{ids}", "--gallery-ids", "{ids}", "-o", "{ids}"], "--query-ids"),
    (["rerank", "{q}", "{g}", "--query-modalities", "{mods}", "--gallery-modalities", "1", "-o", "{mods}"],
     "--query-modalities"),
    (["evaluate", "{q}", "{g}", "--distances", "{dist}", "--json", "{dist}"], "--distances"),
    (["evaluate", "{q}", "{g}", "--json", "{g}"], "GALLERY"),
]


@pytest.mark.parametrize("args,name", COLLISIONS, ids=[" ".join(a[:1] + a[2:]) for a, _ in COLLISIONS])
def test_outputs_never_name_an_input_or_each_other(data, tmp_path, no_work, args, name):
    links = {"link_to_feats": tmp_path / "link.npy", "hardlink_to_feats": tmp_path / "hard.npy"}
    links["link_to_feats"].symlink_to(data["feats"])
    os.link(data["feats"], links["hardlink_to_feats"])
    fields = {**data, **{k: str(v) for k, v in links.items()}, "tmp": str(tmp_path), "tmpname": tmp_path.name}
    args = [a.format(**fields) for a in args]
    inputs = [p for k, p in data.items() if k not in ("dir", "folder", "missing")]
    before = file_bytes(inputs)
    one_line_failure(invoke(args), name)
    assert file_bytes(inputs) == before
    assert stray_files(tmp_path) == ["hard.npy", "link.npy"]


# --- 3. exactly the path named ----------------------------------------------------------------

@pytest.mark.parametrize("command", ["cluster", "rerank"])
@pytest.mark.parametrize("filename", ["labels.txt", "labels", "out.dat"])
def test_output_goes_to_exactly_the_path_named(data, tmp_path, command, filename):
    out = tmp_path / filename
    args = ["cluster", data["feats"]] if command == "cluster" else ["rerank", data["q"], data["g"]]
    res = invoke(args + ["-o", out])
    assert res.exit_code == 0, res.output
    assert stray_files(tmp_path) == [filename]
    assert np.load(out).shape[0] in (100, 50)
    if command == "cluster":
        assert f"labels written to {out}" in res.stdout


@pytest.mark.parametrize("command", ["cluster", "rerank"])
def test_npz_name_for_one_array_is_refused(data, tmp_path, no_work, command):
    args = ["cluster", data["feats"]] if command == "cluster" else ["rerank", data["q"], data["g"]]
    msg = one_line_failure(invoke(args + ["-o", tmp_path / "out.npz"]), "--output")
    assert ".npy" in msg
    assert stray_files(tmp_path) == []


# --- 4. every output path checked before any work ------------------------------------------------

BAD_PATHS = {
    "missing folder": "{tmp}/nope/out.json",
    "a folder": "{tmp}",
    "under a file": "{feats}/out.json",
    "empty": "",
}


@pytest.mark.parametrize("kind", list(BAD_PATHS))
@pytest.mark.parametrize("command,option", [("cluster", "--json"), ("cluster", "-o"), ("rerank", "--json"),
                                            ("rerank", "-o"), ("evaluate", "--json"), ("diagnose", "--json"),
                                            ("diagnose", "--plot")])
def test_bad_output_path_fails_before_any_work(data, tmp_path, no_work, command, option, kind):
    bad = BAD_PATHS[kind].format(tmp=tmp_path, **data)
    if option == "--plot" and kind != "a folder":
        bad = bad.replace(".json", ".png")
    good = {"cluster": ["-o", tmp_path / "good.npy", "--json", tmp_path / "good.json"],
            "rerank": ["-o", tmp_path / "good.npy", "--json", tmp_path / "good.json"],
            "evaluate": ["--json", tmp_path / "good.json"],
            "diagnose": ["--json", tmp_path / "good.json", "--plot", tmp_path / "good.png"]}[command]
    i = good.index(option if option != "-o" else "-o")
    good[i + 1] = bad
    base = {"cluster": ["cluster", data["feats"], "-m", data["mods"]], "rerank": ["rerank", data["q"], data["g"]],
            "evaluate": ["evaluate", data["q"], data["g"]],
            "diagnose": ["diagnose", data["feats"], "--modalities", data["mods"]]}[command]
    res = invoke(base + good)
    names = (option, "--output") if option == "-o" else (option,)
    if kind == "a folder" and option in ("-o", "--json", "--plot"):
        names += ("directory", "folder")
    one_line_failure(res, *names)
    assert stray_files(tmp_path) == []


# --- 5. make-synthetic: the set appears whole or not at all -------------------------------------

SMALL = ["--train-ids", "1", "--val-ids", "1", "--test-ids", "1", "--images-per-camera", "1",
         "--height", "16", "--width", "8"]


def _break_after(monkeypatch, n, exc):
    """Make the image writer fail after ``n`` images."""
    from PIL import Image

    calls = {"n": 0}
    save = Image.Image.save

    def flaky(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n:
            raise exc
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", flaky)


def _set_files(root):
    out = {}
    for folder, _, files in os.walk(root):
        for f in files:
            p = os.path.join(folder, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_make_synthetic_interrupted_new_root_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "syn"
    _break_after(monkeypatch, 5, OSError(28, "No space left on device"))
    msg = one_line_failure(invoke(["make-synthetic", root, *SMALL]), "ROOT")
    assert "No space left" in msg
    assert stray_files(tmp_path) == []
    monkeypatch.undo()
    res = invoke(["make-synthetic", root, *SMALL])  # no --overwrite needed: nothing was left
    assert res.exit_code == 0, res.output
    from xmrank.datasets.synthetic_images import is_synthetic_root

    assert is_synthetic_root(root)
    assert stray_files(tmp_path) == ["syn"]


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_make_synthetic_interrupted_overwrite_keeps_the_previous_set(tmp_path, monkeypatch, exc):
    root = tmp_path / "syn"
    assert invoke(["make-synthetic", root, *SMALL]).exit_code == 0
    before = _set_files(root)
    _break_after(monkeypatch, 5, exc)
    res = invoke(["make-synthetic", root, *SMALL, "--seed", "1", "--overwrite"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert _set_files(root) == before
    assert stray_files(tmp_path) == ["syn"]


def test_make_synthetic_interrupted_into_an_empty_folder_leaves_it_empty(tmp_path, monkeypatch):
    root = tmp_path / "syn"
    root.mkdir()
    _break_after(monkeypatch, 3, OSError(5, "Input/output error"))
    one_line_failure(invoke(["make-synthetic", root, *SMALL]), "ROOT")
    assert os.listdir(root) == []


def test_make_synthetic_overwrite_replaces_a_set_cut_short(tmp_path):
    """A swap cut short (say, a power cut): the marker folder is there, the manifest is not."""
    from xmrank.datasets.synthetic_images import MANIFEST, PARTIAL, is_synthetic_root

    root = tmp_path / "syn"
    assert invoke(["make-synthetic", root, *SMALL]).exit_code == 0
    # cut short while moving the files of a first set into an empty folder: its manifest is still in
    # the hidden folder, listing the files already moved
    (root / (PARTIAL + "abc")).mkdir()
    os.replace(root / MANIFEST, root / (PARTIAL + "abc") / MANIFEST)
    msg = one_line_failure(invoke(["make-synthetic", root, *SMALL]), "--overwrite")
    assert "interrupted" in msg
    res = invoke(["make-synthetic", root, *SMALL, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert is_synthetic_root(root)
    assert not any(name.startswith(PARTIAL) for name in os.listdir(root))


def test_make_synthetic_refuses_a_file_and_a_foreign_folder(tmp_path):
    target = tmp_path / "afile"
    target.write_bytes(PREVIOUS)
    one_line_failure(invoke(["make-synthetic", target, *SMALL]), "ROOT", "afile")
    assert target.read_bytes() == PREVIOUS
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    one_line_failure(invoke(["make-synthetic", foreign, *SMALL, "--overwrite"]), "not empty")
    assert os.listdir(foreign) == ["notes.txt"]


def test_make_synthetic_overwrite_swaps_in_the_new_set(tmp_path):
    root = tmp_path / "syn"
    assert invoke(["make-synthetic", root, *SMALL]).exit_code == 0
    first = _set_files(root)
    assert invoke(["make-synthetic", root, *SMALL, "--seed", "5", "--overwrite"]).exit_code == 0
    second = _set_files(root)
    assert set(first) == set(second) and first != second
    assert stray_files(tmp_path) == ["syn"]


# --- 6/7. invalid numbers: one line each --------------------------------------------------------

INVALID = [
    (["demo", "--n-ids", "0"], "--n-ids"),
    (["demo", "--n-ids", "-1"], "--n-ids"),
    (["demo", "--n-ids", "1"], "--n-ids"),
    (["demo", "--n-ids", "2", "--per-id", "2"], "--n-ids"),
    (["demo", "--n-ids", BIG], "--n-ids"),
    (["demo", "--per-id", "0"], "--per-id"),
    (["demo", "--gap", "nan"], "--gap"),
    (["demo", "--gap", "-1"], "--gap"),
    (["demo", "--gap", "inf"], "--gap"),
    (["demo", "--eps", "0"], "--eps"),
    (["demo", "--eps", "-1"], "--eps"),
    (["demo", "--eps", "nan"], "--eps"),
    (["demo", "--seed", "-1"], "--seed"),
    (["demo", "--seed", BIG], "--seed"),
    (["cluster", "{feats}", "-m", "{mods}", "--mode", "subset", "--seed", "-1"], "--seed"),
    (["cluster", "{feats}", "-m", "{mods}", "--mode", "subset", "--seed", BIG], "--seed"),
    (["cluster", "{feats}", "-m", "{mods}", "--seed", BIG], "--seed"),
    (["make-synthetic", "{tmp}/syn", "--seed", "-1"], "--seed"),
    (["make-synthetic", "{tmp}/syn", "--seed", BIG], "--seed"),
    (["evaluate", "{q}", "{g}", "--distances", "{dist_1d}"], "--distances"),
    (["evaluate", "{q}", "{g}", "--distances", "{dist_nan}"], "--distances"),
    (["evaluate", "{q}", "{g}", "--distances", "{dist_wrong}"], "--distances"),
    (["evaluate", "{q}", "{g}", "--query-cams", BIG], "--query-cams"),
    (["rerank", "{q}", "{g}", "--query-modalities", BIG, "--gallery-modalities", "0"], "--query-modalities"),
]


@pytest.mark.parametrize("args,name", INVALID, ids=[" ".join(a[:1] + a[-2:]) for a, _ in INVALID])
def test_invalid_numbers_fail_in_one_line(data, tmp_path, args, name):
    args = [a.format(tmp=tmp_path, **data) for a in args]
    one_line_failure(invoke(args + (["--json", tmp_path / "out.json"] if args[0] == "evaluate" else [])), name)
    assert stray_files(tmp_path) == []


def test_seeds_up_to_64_bits_work(data, tmp_path):
    res = invoke(["cluster", data["feats"], "-m", data["mods"], "--mode", "subset", "--k1", "8", "--k2", "3",
                  "--seed", str(2**64 - 1)])
    assert res.exit_code == 0, res.output


# --- 8. modalities (and cameras) on one side only: the API's rule --------------------------------

ONE_SIDED = [
    (["--query-modalities", "1"], "--query-modalities", "--gallery-modalities"),
    (["--gallery-modalities", "0"], "--query-modalities", "--gallery-modalities"),
    (["--query-modalities", "1", "--method", "vanilla"], "--query-modalities", "--gallery-modalities"),
    (["--query-cams", "{cams_q}"], "--query-cams", "--gallery-cams"),
]


@pytest.mark.parametrize("extra,opt_a,opt_b", ONE_SIDED)
def test_rerank_labels_on_one_side_only_fail_like_the_api(data, tmp_path, extra, opt_a, opt_b):
    np.save(tmp_path / "cams_q.npy", np.zeros(50, dtype=np.int64))
    feats = tmp_path / "feats_only.npy"
    np.save(feats, np.load(data["feats"])[:50])
    extra = [e.format(cams_q=tmp_path / "cams_q.npy") for e in extra]
    args = ["rerank", feats, feats, "-o", tmp_path / "r.npy", *extra]
    msg = one_line_failure(invoke(args), opt_a)
    assert opt_b in msg
    assert not (tmp_path / "r.npy").exists()
    with pytest.raises(xmrank.InputError):
        Q = np.load(feats)
        kw = {"query_modalities": 1} if "modalities" in opt_a else {"query_cameras": np.zeros(50)}
        xmrank.rerank(Q, Q, **kw)


def test_rerank_modalities_bundled_on_one_side_only(data, tmp_path):
    msg = one_line_failure(invoke(["rerank", data["q_mod"], data["g"], "-o", tmp_path / "r.npy"]),
                           "--query-modalities")
    assert "--gallery-modalities" in msg and "query side" in msg
    assert stray_files(tmp_path) == []


# --- 9. eps >= 1 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", ["1.0", "1.5"])
def test_cluster_eps_of_one_or_more_is_dbscan_or_one_line(data, tmp_path, eps):
    """Jaccard distances of exactly 1 are not stored: the library either matches scikit-learn's
    DBSCAN on the dense distance or refuses eps >= 1; either way the CLI answers in one line."""
    out = tmp_path / "labels.npy"
    res = invoke(["cluster", data["feats"], "-m", data["mods"], "--eps", eps, "-o", out])
    if res.exit_code != 0:
        one_line_failure(res, "eps")
        assert not out.exists()
        return
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    X, mods = np.load(data["feats"]), np.load(data["mods"])
    D = xmrank.jaccard_distance(X, modalities=mods, method="modality", dense=True)
    D = np.asarray(D.toarray() if hasattr(D, "toarray") else D, dtype=np.float64)
    expected = DBSCAN(eps=float(eps), min_samples=4, metric="precomputed").fit_predict(D)
    labels = np.load(out)
    assert np.array_equal(labels == -1, expected == -1)
    assert adjusted_rand_score(expected, labels) == pytest.approx(1.0)


# --- 10. features whose products overflow float32 -------------------------------------------------

OVERFLOW = {
    "cluster": ["cluster", "{huge}", "-m", "{mods}", "-o", "{tmp}/out.npy", "--json", "{tmp}/out.json"],
    "diagnose": ["diagnose", "{huge}", "--modalities", "{mods}", "--labels", "{ids}", "--json", "{tmp}/out.json"],
    "diagnose (no labels)": ["diagnose", "{huge}", "--modalities", "{mods}", "--json", "{tmp}/out.json"],
    "rerank": ["rerank", "{huge}", "{huge}", "-o", "{tmp}/out.npy"],
    "evaluate": ["evaluate", "{q_huge}", "{g_huge}", "--json", "{tmp}/out.json"],
}


@pytest.mark.parametrize("name", list(OVERFLOW))
def test_overflowing_features_fail_in_one_line(data, tmp_path, name):
    args = [a.format(tmp=tmp_path, **data) for a in OVERFLOW[name]]
    line = one_line_failure(invoke(args), "features", "FEATURES", "query", "finite", "overflow", "distance")
    assert line
    assert stray_files(tmp_path) == []


# --- sweep: hostile input to every command ---------------------------------------------------------

SWEEP = [
    (["cluster", "{missing}"], "FEATURES"),
    (["cluster", "{folder}"], "FEATURES"),
    (["cluster", "{feats}", "-m", "{missing}"], "--modalities"),
    (["cluster", "{feats}", "-c", "{missing}"], "--cameras"),
    (["cluster", "{flat}"], "2-D"),
    (["cluster", "{nan_feats}"], "NaN"),
    (["cluster", "{feats}", "-m", "{short_ids}"], "modalities"),
    (["cluster", "{feats}", "-c", "{short_ids}"], "cameras"),
    (["cluster", "{feats}", "-m", "{feats}"], "modalities"),
    (["cluster", "{feats}:features"], "FEATURES"),
    (["cluster", "{liar}"], "cut short"),
    (["cluster", "{cut_short}"], "cut short"),
    (["cluster", "{feats}", "-m", "{liar}"], "--modalities"),
    (["diagnose", "{liar}", "--modalities", "{mods}"], "cut short"),
    (["evaluate", "{q}", "{g}", "--distances", "{liar}"], "--distances"),
    (["rerank", "{liar}", "{feats}", "-o", "{tmp}/r.npy"], "cut short"),
    (["cluster", "{feats}", "--k1", BIG], "k1"),
    (["cluster", "{feats}", "--min-samples", BIG], "min_samples"),
    (["cluster", "{feats}", "--eps", "nan"], "eps"),
    (["diagnose", "{missing}", "--modalities", "{mods}"], "FEATURES"),
    (["diagnose", "{flat}", "--modalities", "{mods}"], "2-D"),
    (["diagnose", "{nan_feats}", "--modalities", "{mods}"], "NaN"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--labels", "{short_ids}"], "labels"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--cameras", "{missing}"], "--cameras"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--bins", BIG], "bins"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--max-pairs", BIG], "max_pairs"),
    (["diagnose", "{feats}", "--modalities", "{mods}", "--k1", BIG], "k1"),
    (["rerank", "{missing}", "{g}", "-o", "{tmp}/r.npy"], "query"),
    (["rerank", "{q}", "{missing}", "-o", "{tmp}/r.npy"], "gallery"),
    (["rerank", "{flat}", "{feats}", "-o", "{tmp}/r.npy"], "2-D"),
    (["rerank", "{nan_feats}", "{feats}", "-o", "{tmp}/r.npy"], "NaN"),
    (["rerank", "{q}", "{g}", "--query-ids", "{short_ids}", "--protocol", "regdb"], "query_ids"),
    (["rerank", "{q}", "{g}", "--max-rank", BIG], "max_rank"),
    (["rerank", "{q}", "{g}", "--lambda", "nan"], "lambda"),
    (["evaluate", "{missing}", "{g}"], "query"),
    (["evaluate", "{q}", "{g}", "--distances", "{missing}"], "--distances"),
    (["evaluate", "{q}", "{g}", "--query-ids", "{short_ids}", "--protocol", "regdb"], "query_ids"),
    (["evaluate", "{flat}", "{feats}", "--query-ids", "{ids}", "--gallery-ids", "{ids}"], "2-D"),
    (["evaluate", "{q}", "{g}", "--max-rank", BIG], "max_rank"),
    (["make-synthetic", "{tmp}/syn", "--train-ids", BIG], "n_train_ids"),
    (["make-synthetic", "{tmp}/syn", "--height", "4"], "height"),
    (["make-synthetic", "{feats}/syn"], "root"),
]


@pytest.mark.parametrize("args,name", SWEEP, ids=[" ".join(a[:1] + a[2:]) for a, _ in SWEEP])
def test_hostile_input_fails_in_one_line(data, tmp_path, args, name):
    args = [a.format(tmp=tmp_path, **data) for a in args]
    one_line_failure(invoke(args), name)
    assert stray_files(tmp_path) == []


def test_warnings_of_a_successful_run_are_one_line_each(data, tmp_path, monkeypatch):
    import warnings

    real = xmrank.cluster

    def noisy(*args, **kwargs):
        warnings.warn("something odd\non two lines", RuntimeWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(xmrank, "cluster", noisy)
    res = invoke(["cluster", data["feats"], "-o", tmp_path / "l.npy"])
    assert res.exit_code == 0
    assert res.stderr.strip().splitlines() == ["Warning: something odd"]


def test_an_unforeseen_failure_is_still_one_line(data, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded\nwith details")

    monkeypatch.setattr(xmrank, "cluster", broken)
    out = tmp_path / "l.npy"
    msg = one_line_failure(invoke(["cluster", data["feats"], "-o", out]), "internal error")
    assert "RuntimeError: kernel exploded with details" in msg and "-vv" in msg
    assert not out.exists()
    res = CliRunner().invoke(main, ["-vv", "cluster", data["feats"], "-o", str(out)])
    assert isinstance(res.exception, RuntimeError)  # -vv: the traceback, for a bug report
