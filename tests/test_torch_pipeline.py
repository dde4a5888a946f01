"""The two-stage trainer end to end on a tiny synthetic set: stages, clustering, metrics, checkpoints, CLI."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared CPU
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from click.testing import CliRunner

from xmrank import InputError
from xmrank.cli.main import main
from xmrank.torch.config import apply_overrides, preset_config
from xmrank.torch.pipeline import load_trained_model, train
from xmrank.torch.synthetic import make_synthetic


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is as fast and does not fight other jobs for the cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

# tiny images, a few iterations: mechanics only
TINY = dict(height=32, width=16, iters=2, epochs_stage1=2, epochs_stage2=2, batch_size=8, num_instances=4,
            global_batch_size=8, k1=6, k2=2, eval_trials=2, feature_batch_size=128, threads=1, device="cpu")
SETS = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_synthetic")
    make_synthetic(root, n_train_ids=5, n_val_ids=1, n_test_ids=3, images_per_camera=3, height=32, width=16)
    return str(root)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_root):
    out = str(tmp_path_factory.mktemp("run_a"))
    cfg = apply_overrides(preset_config("smoke"), TINY)
    metrics = train(cfg, dataset="synthetic", root=data_root, output=out, progress=False)
    return out, metrics


def test_both_stages_run_and_report(full_run):
    out, metrics = full_run
    assert metrics["complete"]
    stages = [(e["stage"], e["epoch"]) for e in metrics["epochs"]]
    assert stages == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for e in metrics["epochs"]:
        assert e["loss_intra"] is not None and np.isfinite(e["loss_intra"])
        assert {"visible", "infrared"} <= set(e["clusters"])
        assert e["clusters"]["visible"]["n_clusters"] > 0 and e["clusters"]["infrared"]["n_clusters"] > 0
        # subset clustering: only half of the (larger) visible modality is clustered each epoch
        assert e["clusters"]["visible"]["n_samples"] == 36
    for e in metrics["epochs"][:2]:
        assert "global" not in e["clusters"] and e["loss_global"] is None
    for e in metrics["epochs"][2:]:
        g = e["clusters"]["global"]
        assert g["n_samples"] == 36 + 36  # subset 1 of the visible rows + every infrared row
        assert np.isfinite(e["loss_global"])
    # the modality-aware Jaccard puts both modalities into some global clusters
    assert max(e["clusters"]["global"]["n_mixed"] for e in metrics["epochs"][2:]) > 0

    with open(os.path.join(out, "metrics.json")) as fh:
        saved = json.load(fh)
    for name in ("untrained", "stage1", "final"):
        assert 0.0 <= saved[name]["mAP"] <= 1.0 and 0.0 <= saved[name]["rank1"] <= 1.0
    assert saved["model_selection"].startswith("last epoch")
    assert saved["config"]["iters"] == 2
    for name in ("model.pt", "stage1_model.pt", "checkpoint.pt", "train.log"):
        assert os.path.isfile(os.path.join(out, name))
    with open(os.path.join(out, "train.log")) as fh:
        log = fh.read()
    assert "stage 2 epoch 2" in log and "mixed" in log
    model, cfg = load_trained_model(os.path.join(out, "model.pt"))
    assert cfg.height == 32 and not model.training


def test_interrupted_run_resumes_to_the_same_state(full_run, data_root, tmp_path):
    out_a, metrics_a = full_run
    out_b = str(tmp_path / "run_b")
    runner = CliRunner()
    args = ["train", "--dataset", "synthetic", "--root", data_root, "--output", out_b, "--preset", "smoke",
            "--no-progress", "-q"]
    for s in SETS:
        args += ["--set", s]
    res = runner.invoke(main, args + ["--max-epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "--resume" in res.output
    partial = json.load(open(os.path.join(out_b, "metrics.json")))
    assert len(partial["epochs"]) == 1 and not partial["complete"]
    # a second plain start refuses to overwrite the run
    res = runner.invoke(main, args)
    assert res.exit_code == 1 and "already holds a run" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["train", "--output", out_b, "--resume", "--no-progress", "-q"])
    assert res.exit_code == 0, res.output
    assert "mAP" in res.output and "->" in res.output

    a = torch.load(os.path.join(out_a, "model.pt"), weights_only=False)["model"]
    b = torch.load(os.path.join(out_b, "model.pt"), weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    metrics_b = json.load(open(os.path.join(out_b, "metrics.json")))
    assert [e["loss_intra"] for e in metrics_b["epochs"]] == [e["loss_intra"] for e in metrics_a["epochs"]]
    assert metrics_b["final"]["mAP"] == metrics_a["final"]["mAP"]


def test_train_rejects_bad_input(tmp_path, data_root):
    cfg = apply_overrides(preset_config("smoke"), TINY)
    with pytest.raises(InputError, match="cannot resume"):
        train(cfg, dataset="synthetic", root=data_root, output=str(tmp_path / "none"), resume=True)
    with pytest.raises(InputError, match="root is required"):
        train(cfg, dataset="sysu", output=str(tmp_path / "r"))
    with pytest.raises(InputError, match="dataset"):
        train(cfg, dataset="market", root=data_root, output=str(tmp_path / "r"))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "synthetic", "--set", "learning_rate=1"], "Unknown config field 'learning_rate'"),
        (["--dataset", "synthetic", "--set", "iters"], "FIELD=VALUE"),
        (["--dataset", "sysu"], "--root is required"),
        (["--dataset", "regdb", "--root", "/nonexistent/regdb"], "not a directory"),
        (["--resume"], "cannot resume"),
        (["--dataset", "synthetic", "--device", "cuda:0"] if not torch.cuda.is_available() else
         ["--dataset", "synthetic", "--set", "batch_size=2"], "CUDA|batch_size"),
        (["--dataset", "synthetic", "--config", "/nonexistent.yaml"], "not found"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, extra, message):
    res = CliRunner().invoke(main, ["train", "--output", str(tmp_path / "run")] + extra)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    import re

    assert re.search(message, res.output), res.output
    assert not os.path.exists(tmp_path / "run" / "metrics.json")


def test_cli_help_lists_the_options():
    res = CliRunner().invoke(main, ["train", "--help"])
    assert res.exit_code == 0
    for word in ("--dataset", "--preset", "--config", "--set", "--resume", "--device", "--pretrained"):
        assert word in res.output


def test_cli_show_config_round_trips(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--preset", "smoke", "--show-config", "--set", "lr=1e-3", "--seed", "5"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "cfg.yaml"
    path.write_text(res.output)
    again = runner.invoke(main, ["train", "--preset", "paper", "--config", str(path), "--show-config"])
    assert again.exit_code == 0, again.output
    assert again.output == res.output
    assert "lr: 0.001" in res.output and "seed: 5" in res.output and "arch: resnet18" in res.output
