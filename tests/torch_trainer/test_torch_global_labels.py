"""The trainer's ``global_labels`` option: stage-2 global labels by Hungarian / OT matching of per-modality clusters."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from xmrank import InputError
from xmrank.datasets import make_biased
from xmrank.torch.config import GLOBAL_LABELS, apply_overrides, preset_config
from xmrank.torch.pseudo_labels import cluster_epoch


@pytest.mark.parametrize("choice", GLOBAL_LABELS)
@pytest.mark.parametrize("subset_ratio", [0.5, 1.0])
def test_cluster_epoch_makes_global_labels_each_way(choice, subset_ratio):
    X, ids, mods, _ = make_biased(n_ids=20, per_id=8, gap=1.0, seed=0)
    # visible (0) is the larger modality, as in SYSU-MM01: drop some infrared rows
    keep = (mods == 0) | (np.arange(mods.size) % 8 < 6)
    X, ids, mods = X[keep], ids[keep], mods[keep]
    cfg = apply_overrides(preset_config("smoke"), dict(global_labels=choice, subset_ratio=subset_ratio, k1=12, k2=3))
    out = cluster_epoch(X, mods, ids, cfg, np.random.default_rng(0), stage=2, larger=0)
    g = out["stats"]["global"]
    assert g["labels"] == choice
    assert g["n_samples"] == out["global_rows"].size == out["global"].size
    assert g["n_clusters"] > 0 and g["n_mixed"] > 0 and g["ari"] is not None
    assert ("n_assigned_rows" if choice == "ot-instance" else "n_matches") in g or choice == "jaccard"
    if choice != "jaccard":
        assert g["ari"] > 0.5


def test_unknown_global_labels_is_refused():
    with pytest.raises(InputError, match="Unknown global_labels 'kmeans'"):
        apply_overrides(preset_config("smoke"), {"global_labels": "kmeans"})


@pytest.mark.slow
def test_one_plus_one_epoch_run_reports_the_choice(tmp_path):
    from xmrank.torch.pipeline import train
    from xmrank.datasets import make_synthetic

    root = tmp_path / "data"
    make_synthetic(root, n_train_ids=5, n_val_ids=1, n_test_ids=3, images_per_camera=3, height=32, width=16)
    tiny = dict(height=32, width=16, iters=2, epochs_stage1=1, epochs_stage2=1, batch_size=8, num_instances=4,
                global_batch_size=8, k1=6, k2=2, eval_trials=2, feature_batch_size=128, threads=1, device="cpu",
                global_labels="hungarian")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = train(apply_overrides(preset_config("smoke"), tiny), dataset="synthetic", root=str(root),
                        output=str(tmp_path / "run"), progress=False)
    finally:
        torch.set_num_threads(old)
    assert metrics["complete"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["config"]["global_labels"] == "hungarian"
    g = saved["epochs"][1]["clusters"]["global"]
    assert saved["epochs"][1]["stage"] == 2 and g["labels"] == "hungarian"
    assert g["n_samples"] == 36 + 36 and "n_matches" in g
    assert {"n_clusters", "noise_share", "mixed_share", "purity", "ari"} <= set(g)


def test_auto_clustering_settings_are_chosen_each_round_and_reported():
    X, ids, mods, _ = make_biased(n_ids=20, per_id=8, gap=1.0, seed=0)
    cfg = apply_overrides(preset_config("smoke"), {"k1": "auto", "k2": "AUTO", "eps_intra": "auto",
                                                   "eps_global": "auto", "subset_ratio": 1.0})
    assert (cfg.k1, cfg.k2, cfg.eps_intra, cfg.eps_global) == ("auto",) * 4
    out = cluster_epoch(X, mods, ids, cfg, np.random.default_rng(0), stage=2, larger=0)
    chosen = out["stats"]["chosen"]
    assert chosen["global"]["k1"]["value"] in (5, 10, 20, 30) and "measurement" in chosen["global"]["eps"]
    assert set(chosen["intra"]) == {"0", "1"} and all("k1" in c for c in chosen["intra"].values())
    assert out["stats"]["global"]["ari"] > 0.5
    with pytest.raises(InputError, match="k1 must be an integer or 'auto'"):
        apply_overrides(preset_config("smoke"), {"k1": "often"})
