"""One parameter declaration (xmrank._params) drives the functions, XMCluster and the command line alike;
one eps parser; scikit-learn's n_jobs; one bundle reader; `cameras` with the older spellings where kept."""

import inspect
import pathlib

import numpy as np
import pytest

import xmrank
from conftest import invoke, one_line_failure
from xmrank._params import DEFAULTS, PARAMS, check_params, parse_eps
from xmrank._validation import InputError, check_n_jobs, either_spelling
from xmrank.data import make_biased

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small():
    X, ids, mods, cams = make_biased(n_ids=10, per_id=6, gap=1.5, seed=0)
    return X, ids, mods, cams


# --- the declaration -------------------------------------------------------------------------------

BAD = [("min_samples", 0, "--min-samples"), ("k1", 0, "--k1"), ("k2", -2, "--k2"), ("eps", -1.0, "--eps"),
       ("eps", "big", "--eps"), ("algorithm", "optics", "--algorithm"), ("n_jobs", 0, "--jobs"),
       ("method", "bmil", "--method")]


@pytest.mark.parametrize("name,value,option", BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_one_declaration_refuses_alike_in_function_estimator_and_cli(small, tmp_path, name, value, option):
    X, _, mods, _ = small
    with pytest.raises(InputError) as function_error:
        PARAMS[name](value)
    with pytest.raises(InputError):
        xmrank.cluster(X, modalities=mods, **{name: value})
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of XMCluster must be "
                                          rf"{inspect.cleandoc(PARAMS[name].expected())[:12]}.*Got .* instead"):
        xmrank.XMCluster(**{name: value}).fit(X, modalities=mods)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "m.npy", mods)
    line = one_line_failure(invoke(["cluster", tmp_path / "x.npy", "-m", tmp_path / "m.npy", option, value]), option)
    if PARAMS[name].kind != "choice":  # click words a bad choice itself
        assert str(function_error.value) in line


def test_defaults_come_from_the_declaration():
    for func in (xmrank.cluster, xmrank.cluster_per_modality, xmrank.subset_cluster, xmrank.associate,
                 xmrank.cluster_refined, xmrank.XMCluster.__init__):
        for name, p in inspect.signature(func).parameters.items():
            if name in DEFAULTS and name != "seed" and (func, name) != (xmrank.associate, "method"):
                assert p.default == DEFAULTS[name], (func.__name__, name)
    from xmrank.cli.cluster import cluster_cmd

    options = {p.name: p for p in cluster_cmd.params}
    for name in ("k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter", "min_samples", "algorithm", "knn",
                 "method", "n_jobs", "eps_gap"):
        assert options[name].default == DEFAULTS[name], name
    # every command's --device: auto (the GPU where the gpu extra sees one, else the CPU), the functions' "cpu"
    assert options["device"].default == DEFAULTS["run_device"] == "auto" and DEFAULTS["device"] == "cpu"
    assert parse_eps(options["eps"].default, text=True) == DEFAULTS["eps"]
    assert options["n_jobs"].opts == ["--jobs", "-j"] or set(options["n_jobs"].opts) == {"--jobs", "-j"}


def test_estimator_params_round_trip_unchanged():
    from sklearn.base import clone

    est = xmrank.XMCluster(eps="auto", n_jobs=None, k1=np.int64(7))
    assert est.get_params()["k1"] is est.k1 and est.get_params()["n_jobs"] is None
    twin = clone(est.set_params(min_samples=3))
    assert twin.get_params() == est.get_params()
    assert set(est.get_params()) == set(PARAMS) & set(est.get_params())


def test_check_params_resolves_values():
    out = check_params(eps="auto", n_jobs=-1, k1=np.int64(4))
    assert out["eps"] == "auto" and out["n_jobs"] >= 1 and out["k1"] == 4 and type(out["k1"]) is int


def test_no_private_scikit_learn_import():
    for folder in ("xmrank", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "sklearn.utils._" not in text and "validate_data" not in text, path


# --- eps: one parser --------------------------------------------------------------------------------

@pytest.mark.parametrize("value,text,expected", [
    ("auto", False, "auto"), (0.3, False, 0.3), (2, False, 2.0), (np.float32(0.5), False, 0.5),
    (" Auto ", True, "auto"), ("0.25", True, 0.25), ("1.5", True, 1.5),
])
def test_parse_eps_accepts(value, text, expected):
    assert parse_eps(value, text=text) == expected


@pytest.mark.parametrize("value,text,match", [
    ("0.3", False, r"eps must be a positive number or 'auto'; got '0.3'"),
    ("Auto", False, r"positive number or 'auto'"), ("big", True, r"positive number or 'auto'; got 'big'"),
    (-1, False, r"eps must be > 0.0"), (0, True, r"eps must be > 0.0"), ("nan", True, r"finite"),
    (float("inf"), False, r"finite"), (True, False, r"finite"), (None, False, r"finite"),
])
def test_parse_eps_refuses(value, text, match):
    with pytest.raises(InputError, match=match):
        parse_eps(value, text=text)


def test_every_eps_reader_is_the_one_parser(small):
    X, ids, mods, _ = small
    for call in (lambda e: xmrank.cluster(X, modalities=mods, eps=e, k1=10, k2=3),
                 lambda e: xmrank.cluster_per_modality(X, mods, eps=e, k1=10, k2=3),
                 lambda e: xmrank.cluster_refined(X, modalities=mods, eps=e, k1=10, k2=3),
                 lambda e: xmrank.diagnose(X, mods, labels=ids, eps=e, k1=10, k2=3)):
        with pytest.raises(InputError, match=r"eps must be a positive number or 'auto'; got 'wide'"):
            call("wide")
    D = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3)
    with pytest.raises(InputError, match="cluster_distance needs a number"):
        xmrank.cluster_distance(D, eps="auto")


def test_cluster_reports_the_eps_it_used_and_the_estimator_reads_it(small, monkeypatch):
    from xmrank.clustering import api

    X, _, mods, _ = small
    calls = []
    real = api.auto_eps
    monkeypatch.setattr(api, "auto_eps", lambda *a, **k: calls.append(1) or real(*a, **k))
    est = xmrank.XMCluster(eps="auto", k1=10, k2=3).fit(X, modalities=mods)
    assert len(calls) == 1 and est.eps_ == est.info_["eps"] and 0 < est.eps_ < 1
    _, info = xmrank.cluster(X, modalities=mods, eps="auto", k1=10, k2=3, return_info=True)
    assert info["eps"] == est.eps_ and info["eps_requested"] == "auto"


# --- n_jobs: scikit-learn's meaning ------------------------------------------------------------------

def test_n_jobs_has_scikit_learn_meaning(small, monkeypatch):
    import joblib

    cores = check_n_jobs(-1)
    assert check_n_jobs(None) == 1 and check_n_jobs(1) == 1 and check_n_jobs(-2) == max(1, cores - 1)
    with joblib.parallel_config(n_jobs=2):
        assert check_n_jobs(None) == min(2, cores)
    with pytest.raises(InputError, match="n_jobs must be a positive number of threads"):
        check_n_jobs(0)
    X, _, mods, _ = small
    from xmrank.clustering import api

    seen = []
    real = api.jaccard_distance
    monkeypatch.setattr(api, "jaccard_distance", lambda *a, **k: seen.append(k["n_jobs"]) or real(*a, **k))
    a = xmrank.cluster(X, modalities=mods, k1=10, k2=3)
    b = xmrank.cluster(X, modalities=mods, k1=10, k2=3, n_jobs=None)
    assert seen == [cores, 1] and np.array_equal(a, b)
    with pytest.raises(InputError, match="n_jobs"):
        xmrank.rerank(X[:20], X[20:], k1=5, k2=2, n_jobs=0)
    assert np.allclose(xmrank.rerank(X[:20], X[20:], k1=5, k2=2, n_jobs=None),
                       xmrank.rerank(X[:20], X[20:], k1=5, k2=2))


def test_cli_jobs_option(small, tmp_path):
    X, _, mods, _ = small
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "m.npy", mods)
    for command in ("cluster", "diagnose", "rerank", "evaluate"):
        text = " ".join(invoke([command, "--help"]).output.split())
        assert "-j, --jobs" in text and "-1 (the default) uses all cores" in text, command
    out = tmp_path / "l.npy"
    res = invoke(["cluster", tmp_path / "x.npy", "-m", tmp_path / "m.npy", "--k1", 10, "--k2", 3, "-j", 1, "-o", out])
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.load(out), xmrank.cluster(X, modalities=mods, k1=10, k2=3))
    one_line_failure(invoke(["cluster", tmp_path / "x.npy", "-j", "many"]), "--jobs")


# --- one bundle reader ---------------------------------------------------------------------------

@pytest.mark.parametrize("keys", [
    dict(features="features", modalities="modalities", cameras="cameras", ids="ids", names="names"),
    dict(features="X", modalities="mods", cameras="cams", ids="pids", names="paths"),
    dict(features="embeddings", modalities="modality", cameras="camids", ids="labels", names="files"),
])
def test_one_bundle_reader_same_keys_for_every_command(small, tmp_path, keys):
    from xmrank.cli._bundle import load_side, read_bundle

    X, ids, mods, cams = small
    names = np.array([f"img{i}.png" for i in range(len(X))])
    arrays = dict(features=X, modalities=mods, cameras=cams, ids=ids, names=names)
    np.savez(tmp_path / "b.npz", **{keys[f]: arrays[f] for f in keys})
    got = read_bundle(str(tmp_path / "b.npz"))
    assert set(got) == set(arrays) and all(np.array_equal(got[f], arrays[f]) for f in arrays)
    side = load_side(str(tmp_path / "b.npz"), "query", {"ids": 7})
    assert side["ids"] == 7 and np.array_equal(side["cameras"], cams)
    # the cluster command and the evaluate command read the very same names
    out = tmp_path / "l.npy"
    res = invoke(["cluster", tmp_path / "b.npz", "--method", "camera", "--k1", 10, "--k2", 3, "-o", out])
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.load(out), xmrank.cluster(X, cameras=cams, method="camera", k1=10, k2=3))
    res = invoke(["evaluate", tmp_path / "b.npz", tmp_path / "b.npz", "--protocol", "market", "--json",
                  tmp_path / "s.json"])
    assert res.exit_code == 0, res.output


def test_bundle_without_known_arrays_fails_in_one_line(tmp_path):
    np.savez(tmp_path / "odd.npz", a=np.zeros(3), b=np.ones(3))
    one_line_failure(invoke(["evaluate", tmp_path / "odd.npz", tmp_path / "odd.npz"]), "query", "no array named",
                     every=True)
    one_line_failure(invoke(["cluster", tmp_path / "odd.npz"]), "FEATURES", "no array named", every=True)


# --- cameras everywhere, the older spellings where kept -----------------------------------------------

def test_evaluate_takes_cameras_and_its_older_spelling():
    rng = np.random.default_rng(0)
    D = rng.random((6, 9))
    qi, gi, qc, gc = rng.integers(0, 3, 6), rng.integers(0, 3, 9), rng.integers(1, 4, 6), rng.integers(1, 4, 9)
    a = xmrank.evaluate(D, qi, gi, query_cameras=qc, gallery_cameras=gc, protocol="market")
    b = xmrank.evaluate(D, qi, gi, query_cams=qc, gallery_cams=gc, protocol="market")
    c = xmrank.evaluate(D, qi, gi, qc, gc, protocol="market")
    assert a["mAP"] == b["mAP"] == c["mAP"]
    with pytest.raises(InputError, match="query_cameras must have one entry per row"):
        xmrank.evaluate(D, qi, gi, query_cameras=qc[:2], gallery_cameras=gc, protocol="market")
    with pytest.raises(InputError, match="give query_cameras or its older spelling query_cams, not both"):
        xmrank.evaluate(D, qi, gi, query_cameras=qc, query_cams=qc, gallery_cameras=gc, protocol="market")
    assert either_spelling(None, 3, "new", "old") == (3, "old") and either_spelling(2, None, "new", "old") == (2, "new")


def test_public_signatures_say_cameras():
    from xmrank.retrieval.visualize import plot_ranked_lists

    for func in (xmrank.cluster, xmrank.cluster_refined, xmrank.diagnose, xmrank.jaccard_distance):
        assert "cameras" in inspect.signature(func).parameters
    for func in (xmrank.rerank, plot_ranked_lists, xmrank.evaluate):
        params = inspect.signature(func).parameters
        assert "query_cameras" in params and "gallery_cameras" in params
    assert "query_cams" not in inspect.signature(plot_ranked_lists).parameters
    assert "cameras" in inspect.signature(xmrank.XMCluster.fit).parameters


def test_cli_camera_options_and_their_hidden_older_spelling(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 8)).astype(np.float32)
    ids, cams = np.arange(40) % 10, 1 + np.arange(40) % 3
    np.savez(tmp_path / "q.npz", features=X[:20], ids=ids[:20])
    np.savez(tmp_path / "g.npz", features=X[20:], ids=ids[20:])
    np.save(tmp_path / "qc.npy", cams[:20])
    np.save(tmp_path / "gc.npy", cams[20:])
    outputs = []
    for spelling in ("cameras", "cams"):
        res = invoke(["evaluate", tmp_path / "q.npz", tmp_path / "g.npz", "--protocol", "market",
                      f"--query-{spelling}", tmp_path / "qc.npy", f"--gallery-{spelling}", tmp_path / "gc.npy"])
        assert res.exit_code == 0, res.output
        outputs.append(res.output)
    assert outputs[0] == outputs[1]
    for command in ("evaluate", "rerank", "visrank"):
        text = invoke([command, "--help"]).output
        assert "--query-cameras" in text and "--gallery-cameras" in text and "--query-cams" not in text
    one_line_failure(invoke(["evaluate", tmp_path / "q.npz", tmp_path / "g.npz", "--query-cameras", 1,
                             "--query-cams", 1]), "--query-cameras", "--query-cams", every=True)


# --- method names from one tuple ----------------------------------------------------------------

def test_method_lists_come_from_the_one_tuple(small, tmp_path):
    from xmrank.diagnostics.report import DIAGNOSE_METHODS
    from xmrank.jaccard.distance import METHODS

    assert set(DIAGNOSE_METHODS) == set(METHODS) - {"auto"}
    for command in ("diagnose", "rerank", "evaluate", "cluster"):
        assert "modality-camera" in " ".join(invoke([command, "--help"]).output.split()), command
    X, ids, mods, cams = small
    q, g = mods == 1, mods == 0
    np.savez(tmp_path / "q.npz", features=X[q], ids=ids[q], cameras=cams[q], modalities=mods[q])
    np.savez(tmp_path / "g.npz", features=X[g], ids=ids[g], cameras=cams[g], modalities=mods[g])
    out = tmp_path / "r.npy"
    res = invoke(["rerank", tmp_path / "q.npz", tmp_path / "g.npz", "--method", "modality-camera", "--k1", 6,
                  "--k2", 2, "-o", out, "--protocol", "market"])
    assert res.exit_code == 0, res.output
    expected = xmrank.rerank(X[q], X[g], query_modalities=mods[q], gallery_modalities=mods[g],
                             query_cameras=cams[q], gallery_cameras=cams[g], method="modality-camera", k1=6, k2=2)
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)


# --- every public signature agrees with the declaration ------------------------------------------

#: Keywords of a public function that share a name with a declared parameter and mean something else.
HOMONYMS = {
    ("associate", "method"): "the association (hungarian, ot, ot-instance), not the Jaccard method",
    ("match_clusters", "method"): "the association",
    ("select_clustering", "eps"): "the grid of radii (CLUSTER_GRID)",
    ("subset_cluster", "seed"): "None: fresh subsets on every call, as the trainer's epochs draw them",
    ("subset_split", "seed"): "as subset_cluster",
    ("qb_norm", "k"): "QB-Norm's top-k of the inverted softmax, not the query-expansion length",
    ("db_norm", "k"): "as qb_norm",
    ("make_biased", "noise"): "the Gaussian noise of the synthetic rows, not how noise rows are scored",
    ("make_cross_modal", "noise"): "as make_biased",
}


def test_public_defaults_agree_with_the_declaration():
    """A public function's keyword that is a declared parameter defaults to the declared default (or to its
    family's: k1 is 30 to cluster and 20 to re-rank), unless it is a listed homonym."""
    import importlib

    declared = {}
    for p in PARAMS.values():
        declared.setdefault(p.keyword, set()).add(repr(p.default))
    modules = ["xmrank", "xmrank.jaccard", "xmrank.clustering", "xmrank.retrieval", "xmrank.diagnostics",
               "xmrank.association", "xmrank.knn", "xmrank.distributed", "xmrank.datasets"]
    checked, wrong = 0, []
    for name in modules:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            func = obj.__init__ if inspect.isclass(obj) else obj
            if not callable(func):
                continue
            try:
                params = inspect.signature(func).parameters
            except (TypeError, ValueError):
                continue
            for kw, p in params.items():
                if kw in declared and p.default is not inspect.Parameter.empty:
                    checked += 1
                    if repr(p.default) not in declared[kw] and (attr, kw) not in HOMONYMS:
                        wrong.append(f"{name}.{attr}({kw}={p.default!r}): declared {sorted(declared[kw])}")
    assert not wrong, wrong
    assert checked > 100  # the walk reaches the API
