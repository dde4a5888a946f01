"""Issue 21, clustering side: method/k1/k2/eps "auto" with their measurements, the degenerate warning's checked
suggestion, select_clustering and `tune cluster`."""

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import adjusted_rand_score

import xmrank
from xmrank.datasets import make_biased


@pytest.fixture(scope="module")
def biased():
    X, ids, mods, _ = make_biased(n_ids=30, per_id=8, gap=1.5, seed=0)
    return X, ids, mods


@pytest.fixture(scope="module")
def aligned():
    """Two modalities with no gap: plain lists already mix them (no modality bias)."""
    X, ids, mods, _ = make_biased(n_ids=30, per_id=8, gap=0.0, seed=0)
    return X, ids, mods


def test_method_auto_measures_the_bias(biased, aligned):
    X, ids, mods = biased
    _, info = xmrank.cluster(X, modalities=mods, eps=0.6, k1=20, k2=4, return_info=True)
    rec = info["chosen"]["method"]
    assert info["method"] == "modality" and rec["value"] == "modality"
    assert rec["measurement"]["ratio"] < rec["measurement"]["threshold"]
    X, ids, mods = aligned
    _, info = xmrank.cluster(X, modalities=mods, eps=0.6, k1=20, k2=4, return_info=True)
    assert info["method"] == "vanilla"
    assert info["chosen"]["method"]["measurement"]["ratio"] >= 0.5


def test_jaccard_distance_auto_is_the_measured_method(aligned):
    from xmrank.jaccard import plan_jaccard

    X, _, mods = aligned
    D = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=2)
    D_vanilla = xmrank.jaccard_distance(X, modalities=mods, method="vanilla", k1=10, k2=2)
    assert (D != D_vanilla).nnz == 0
    plan = plan_jaccard(X, modalities=mods, k1=10, k2=2)
    assert plan.method == "vanilla" and plan.chosen["method"]["value"] == "vanilla"
    assert plan_jaccard(X, modalities=mods, method="modality", k1=10, k2=2).chosen == {}


def test_k1_k2_eps_auto_choose_and_report(biased):
    X, ids, mods = biased
    labels, info = xmrank.cluster(X, modalities=mods, k1="auto", k2="auto", eps="auto", return_info=True)
    chosen = info["chosen"]
    assert set(chosen) == {"method", "k1", "k2", "eps"}
    assert info["k1"] == chosen["k1"]["value"] in (5, 10, 20, 30)
    assert info["k2"] == chosen["k2"]["value"] == -(-info["k1"] // 5)
    assert info["eps"] == chosen["eps"]["value"]
    candidates = chosen["k1"]["measurement"]["candidates"]
    assert [c["k1"] for c in candidates] == [5, 10, 20, 30]
    usable = [c for c in candidates if not c["degenerate"]]
    best = max(c["score"] for c in usable)
    assert info["k1"] in [c["k1"] for c in usable if c["score"] == best]
    assert adjusted_rand_score(ids, labels) > 0.9
    est = xmrank.XMCluster(k1="auto", k2="auto", eps="auto").fit(X, modalities=mods)
    assert est.chosen_["k1"]["value"] == info["k1"] and np.array_equal(est.labels_, labels)


def test_auto_k1_avoids_the_collapse_of_the_default(biased):
    """Identities of 8 rows per modality: the default k1=30 with eps 0.95 chains everything, k1='auto' does not."""
    X, ids, mods = biased
    labels = xmrank.cluster(X, modalities=mods, k1="auto", k2="auto", eps="auto")
    ok = labels >= 0
    assert np.bincount(labels[ok]).max() / labels.size <= 0.5


def test_explicit_settings_are_unchanged(biased):
    X, _, mods = biased
    labels, D, info = xmrank.cluster(X, modalities=mods, method="modality", k1=20, k2=4, eps=0.5,
                                     return_distance=True, return_info=True)
    ref = xmrank.cluster_distance(xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=20, k2=4),
                                  eps=0.5, min_samples=4)
    assert np.array_equal(labels, ref) and info["chosen"] == {}


def test_auto_falls_back_with_a_warning_on_too_few_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    with pytest.warns(UserWarning, match="too few"):
        labels, info = xmrank.cluster(X, k1="auto", k2="auto", eps="auto", return_info=True)
    assert labels.shape == (5,) and info["k1"] == 4


def test_method_auto_with_one_modality_warns_and_uses_vanilla(biased):
    X, _, _ = biased
    with pytest.warns(UserWarning, match="single modality"):
        _, info = xmrank.cluster(X, modalities=np.zeros(len(X), int), k1=10, k2=2, eps=0.6, return_info=True)
    assert info["method"] == "vanilla"


def test_auto_on_all_equal_features_never_raises():
    X = np.ones((60, 8), np.float32) / np.sqrt(8)
    mods = np.repeat([0, 1], 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, info = xmrank.cluster(X, modalities=mods, k1="auto", k2="auto", eps="auto", return_info=True)
    assert labels.shape == (60,) and info["k1"] in (5, 10, 20, 30)


def test_degenerate_warning_names_a_checked_eps_that_holds(biased):
    X, _, mods = biased
    with pytest.warns(UserWarning, match="lower eps to") as rec:
        _, info = xmrank.cluster(X, modalities=mods, method="modality", k1=30, k2=6, eps=0.95, return_info=True)
    fix = info["suggestion"]
    assert "checked" in str(rec[0].message) and fix["largest_share"] <= 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # following the suggestion does not degenerate again
        xmrank.cluster(X, modalities=mods, method="modality", k1=30, k2=6, eps=fix["eps"])


def test_degenerate_warning_names_a_checked_k1_that_holds():
    """3 rows per identity and modality, k1=30: the list outgrows the identities; the warning says so."""
    X, _, _, _ = make_biased(n_ids=30, per_id=3, gap=0.0, noise=1.4, seed=0)
    with pytest.warns(UserWarning, match=r"k1=30 is longer than the identities can fill .*use k1=\d+, k2=\d+, eps="):
        _, info = xmrank.cluster(X, method="vanilla", k1=30, k2=6, eps=0.95, return_info=True)
    fix = info["suggestion"]
    assert fix["k1"] < 30 and fix["largest_share"] <= 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xmrank.cluster(X, method="vanilla", k1=fix["k1"], k2=fix["k2"], eps=fix["eps"])


@pytest.mark.slow
def test_select_clustering_returns_cluster_kwargs(biased):
    X, ids, mods = biased
    chosen, table = xmrank.select_clustering(X, ids, modalities=mods, k1s=(10, 20), eps=(0.4, 0.6, "auto"),
                                             return_table=True)
    assert set(chosen) == {"method", "k1", "k2", "eps", "min_samples"} and chosen["method"] == "modality"
    assert len(table) == 2 * 2 * 3 and table[0]["ari_mean"] == max(r["ari_mean"] for r in table)
    X2, ids2, mods2, _ = make_biased(n_ids=30, per_id=8, gap=1.5, seed=5)
    labels = xmrank.cluster(X2, modalities=mods2, **chosen)
    assert adjusted_rand_score(ids2, labels) > 0.9


def test_select_clustering_bad_input(biased):
    X, ids, mods = biased
    with pytest.raises(xmrank.InputError, match="labels but features has"):
        xmrank.select_clustering(X, ids[:-1], modalities=mods)
    with pytest.raises(xmrank.InputError, match="single identity"):
        xmrank.select_clustering(X, np.zeros(len(X), int), modalities=mods)
    with pytest.raises(xmrank.InputError, match="n_splits"):
        xmrank.select_clustering(X[:16], ids[:16], n_splits=3, k1s=(5,))


def test_cli_cluster_auto_json(tmp_path, biased):
    from xmrank.cli.main import main

    X, ids, mods = biased
    np.savez(tmp_path / "b.npz", features=X, modalities=mods, ids=ids)
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "b.npz"), "--k1", "auto", "--k2", "auto", "--eps",
                                    "auto", "--json", "-"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["parameters"]["k1_requested"] == "auto" and data["chosen"]["k1"]["value"] == data["parameters"]["k1"]
    bad = CliRunner().invoke(main, ["cluster", str(tmp_path / "b.npz"), "--k1", "often"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output and "integer or 'auto'" in bad.output


@pytest.mark.slow
def test_cli_tune_cluster(tmp_path, biased):
    from xmrank.cli.tune_cluster import tune_cluster

    X, ids, mods = biased
    np.savez(tmp_path / "train.npz", features=X, modalities=mods, ids=ids)
    res = CliRunner().invoke(tune_cluster, [str(tmp_path / "train.npz"), "--k1s", "10,20", "--eps-values", "0.5,auto",
                                            "--json", str(tmp_path / "out.json")])
    assert res.exit_code == 0, res.output
    assert "chosen: --method modality" in res.output
    data = json.loads((tmp_path / "out.json").read_text())
    assert len(data["table"]) == 8 and xmrank.cluster(X, modalities=mods, **data["chosen"]).shape == (len(X),)
    one = CliRunner().invoke(tune_cluster, [str(tmp_path / "train.npz"), "--labels", str(tmp_path / "one.npy")])
    assert one.exit_code != 0
    np.save(tmp_path / "one.npy", np.zeros(len(X), int))
    res = CliRunner().invoke(tune_cluster, [str(tmp_path / "train.npz"), "--labels", str(tmp_path / "one.npy"),
                                            "--json", str(tmp_path / "no.json")])
    assert res.exit_code != 0 and "Traceback" not in res.output and "single identity" in res.output
    assert not (tmp_path / "no.json").exists()


def test_jaccard_distance_k2_auto_and_k1_auto_leave_cluster_auto_alone(biased):
    X, _, mods = biased
    D = xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=20, k2="auto")
    assert (D != xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=20, k2=4)).nnz == 0
    # jaccard_distance's k1="auto" is the retrieval estimate; cluster's stays the choice among its candidates
    plan = xmrank.jaccard.plan_jaccard(X, modalities=mods, method="modality", k1="auto")
    assert plan.chosen["k1"]["measurement"]["pairing"] is not None
    _, info = xmrank.cluster(X, modalities=mods, method="modality", k1="auto", k2="auto", eps="auto",
                            return_info=True)
    assert info["chosen"]["k1"]["value"] in (5, 10, 20, 30)
    assert [r["k1"] for r in info["chosen"]["k1"]["measurement"]["candidates"]] == [5, 10, 20, 30]


def test_diagnose_cli_auto_reports_the_choice_per_method(tmp_path, biased):
    from xmrank.cli.diagnose import diagnose_cmd

    X, ids, mods = biased
    np.savez(tmp_path / "b.npz", features=X, modalities=mods, ids=ids)
    res = CliRunner().invoke(diagnose_cmd, [str(tmp_path / "b.npz"), "--methods", "modality", "--k1", "auto", "--k2",
                                            "auto", "--eps", "auto", "--json", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "d.json").read_text())
    k1 = report["chosen"]["modality"]["k1"]["value"]
    assert report["clustering"]["modality"]["k1"] == k1 and report["clustering"]["modality"]["ari"] > 0.9
    assert f"modality k1={k1}" in res.output


def test_k1_auto_beside_a_given_k2_tries_the_candidates_it_fits(biased):
    X, _, mods = biased
    # the default k2=6 with the modality-aware rule: k1 // 2 must hold 6 rows, so 5 and 10 are not tried
    _, info = xmrank.cluster(X, modalities=mods, method="modality", k1="auto", eps="auto", return_info=True)
    assert [r["k1"] for r in info["chosen"]["k1"]["measurement"]["candidates"]] == [20, 30]
    assert info["k2"] == 6 and info["k1"] in (20, 30)
    _, info = xmrank.cluster(X, method="vanilla", k1="auto", k2=6, eps="auto", return_info=True)
    assert [r["k1"] for r in info["chosen"]["k1"]["measurement"]["candidates"]] == [10, 20, 30]
    with pytest.raises(xmrank.InputError, match=r"^k2=40 is longer than the list of every k1 .*k2='auto'\.$"):
        xmrank.cluster(X, modalities=mods, method="modality", k1="auto", k2=40)
