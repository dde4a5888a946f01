"""xmrank tune rerank: the table, the JSON of the chosen settings, one-line errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from xmrank.cli.main import main
from xmrank.datasets import make_cross_modal


@pytest.fixture()
def sides(tmp_path):
    X, ids, mods = make_cross_modal(24, 3, dim=16)
    q, g = tmp_path / "q.npz", tmp_path / "g.npz"
    np.savez(q, features=X[mods == 1], ids=ids[mods == 1])
    np.savez(g, features=X[mods == 0], ids=ids[mods == 0])
    return str(q), str(g)


def test_tune_rerank_table_and_json(sides, tmp_path):
    out = tmp_path / "tuned.json"
    res = CliRunner().invoke(main, ["tune", "rerank", *sides, "--query-modalities", "1", "--gallery-modalities", "0",
                                    "--k1s", "10,20", "--k2s", "3", "--lambdas", "0.3", "--protocol", "regdb",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "chosen:" in res.output and "original" in res.output
    data = json.loads(out.read_text())
    assert set(data["chosen"]) == {"method", "k1", "k2", "lambda_value"}
    assert len(data["table"]) == 5  # 2 rules x 2 lengths + the original distance
    # the chosen settings are what `xmrank rerank` takes
    res = CliRunner().invoke(main, ["rerank", *sides, "--query-modalities", "1", "--gallery-modalities", "0",
                                    "--method", data["chosen"]["method"], "--k1", str(data["chosen"]["k1"]),
                                    "--k2", str(data["chosen"]["k2"]), "--lambda", str(data["chosen"]["lambda_value"]),
                                    "--protocol", "regdb"])
    assert res.exit_code == 0, res.output


def test_tune_rerank_errors(sides, tmp_path):
    q, g = sides
    lone = tmp_path / "lone.npz"
    X = np.load(q)["features"]
    np.savez(lone, features=X, ids=np.zeros(len(X), int))
    regdb = ["--protocol", "regdb"]
    for args, words in (([q, g, "--k1s", "x"], "'x': k1s must be an integer"),
                        ([q, g, "--k1s", "10,0"], "k1s must be >= 1"),
                        ([q, g, "--protocol", "sysu"], "--protocol sysu"),  # SYSU-MM01's rules need its cameras
                        ([q, g, "--query-cameras", "1", "--gallery-cameras", "2"], "give --protocol"),
                        ([str(lone), str(lone), *regdb], "at least two identities"),
                        ([q, g, "--query-modalities", "1", *regdb], "go together")):
        res = CliRunner().invoke(main, ["tune", "rerank", *args])
        assert res.exit_code != 0 and words in res.output, res.output
        assert "Traceback" not in res.output


def test_rerank_json_holds_the_chosen_dict(sides, tmp_path):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["rerank", *sides, "--query-modalities", "1", "--gallery-modalities", "0",
                                    "--k1", "auto", "--k2", "auto", "--protocol", "regdb", "--json", str(out)])
    assert res.exit_code == 0, res.output
    chosen = json.loads(out.read_text())["chosen"]
    assert chosen["requested"]["k1"] == "auto" and chosen["bias"]["ratio"] < 0.9 and chosen["k_reason"]
    out = tmp_path / "e.json"
    res = CliRunner().invoke(main, ["evaluate", *sides, "--query-modalities", "1", "--gallery-modalities", "0",
                                    "--protocol", "regdb", "--rerank", "--k1", "auto", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["chosen"]["method"] == "modality"


def test_camera_rule_with_k1_auto_is_accepted(tmp_path):
    X, ids, mods = make_cross_modal(12, 3, dim=16)
    q, g = tmp_path / "q.npz", tmp_path / "g.npz"
    for path, m, cam in ((q, 1, 0), (g, 0, 2)):
        np.savez(path, features=X[mods == m], ids=ids[mods == m], cameras=cam + np.arange((mods == m).sum()) % 2)
    res = CliRunner().invoke(main, ["rerank", str(q), str(g), "--protocol", "market", "--method", "camera",
                                    "--k1", "auto"])
    assert res.exit_code == 0, res.output
