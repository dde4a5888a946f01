"""The two-stage trainer end to end on a tiny synthetic set: stages, clustering, metrics, checkpoints, CLI."""

import json
import os

import numpy as np
import pytest
from conftest import TINY_TRAIN

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared CPU
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from click.testing import CliRunner

from xmrank import InputError
from xmrank.cli.main import main
from xmrank.torch.config import apply_overrides, preset_config
from xmrank.torch.pipeline import load_trained_model, train


pytestmark = pytest.mark.usefixtures("torch_one_thread")

# tiny images, a few iterations: mechanics only
TINY = TINY_TRAIN
SETS = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_root):
    out = str(tmp_path_factory.mktemp("run_a"))
    cfg = apply_overrides(preset_config("smoke"), TINY)
    metrics = train(cfg, dataset="synthetic", root=data_root, output=out, progress=False)
    return out, metrics


@pytest.mark.slow
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


@pytest.mark.slow
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
    # resumed with DataLoader workers: the augmentations are seeded per image, so the result is the same
    res = runner.invoke(main, ["train", "--output", out_b, "--resume", "--no-progress", "-q", "--num-workers", "2"])
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


# ------------------------------------------------------------- the published recipe

HPARAMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "trainer_bmil_hparams.json")
#: bmil_hparams.json key -> TrainConfig field, where the names differ
_FIELD_OF = {"gem_p_learnable": "gem_learnable", "ir_colorjitter_stage1": "ir_color_jitter_stage1",
             "global_k1": "k1", "global_k2": "k2"}
_SHARED = ("lr", "weight_decay", "step_size", "gamma", "epochs_stage1", "epochs_stage2", "iters", "batch_size_ir",
           "batch_size_rgb", "num_instances", "temperature", "momentum", "intra_margin", "n_candidates", "eps_intra",
           "eps_global", "min_samples", "k1", "k2", "global_k1", "global_k2", "subset_ratio", "erasing", "non_local",
           "height", "width", "gem_p", "gem_p_learnable", "ir_colorjitter_stage1")


@pytest.mark.parametrize("dataset", ["sysu", "regdb"])
def test_paper_preset_is_the_published_recipe(dataset):
    from xmrank.torch.steps import build_optimizer

    with open(HPARAMS) as fh:
        published = json.load(fh)[dataset]
    cfg = preset_config("paper", dataset=dataset)
    for key in _SHARED:
        ours = getattr(cfg, _FIELD_OF.get(key, key))
        expected = published[key]
        ours = list(ours) if isinstance(ours, tuple) else ours
        assert ours == expected, f"{dataset} {key}: {ours!r} != published {expected!r}"
    assert published["non_local_inter_channels"] == 1 and cfg.non_local_width == "one"
    assert not published["ir_colorjitter_stage2"]  # xmrank's stage-2 infrared view never has ColorJitter
    # the global step's loaders use the intra loaders' batch sizes (128 IR + 128 RGB; RegDB 128 IR + 64 RGB)
    assert cfg.global_batch_size_ir == published["batch_size_ir"]
    assert cfg.global_batch_size_rgb == published["batch_size_rgb"]
    assert f"{cfg.global_batch_size_ir} IR + {cfg.global_batch_size_rgb} RGB" in published["global_batch"]
    # both stages run (the published RegDB script ships with stage 1 commented out: a departure, documented)
    assert cfg.epochs_stage1 > 0 and cfg.epochs_stage2 > 0
    # StepLR over 50 epochs, read from the optimiser the trainer builds
    opt, sched = build_optimizer(torch.nn.Linear(2, 2), cfg)
    lrs = []
    for _ in range(len(published["lr_per_epoch"])):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx(published["lr_per_epoch"], rel=1e-12)


def test_batch_size_shorthand_sets_both_modalities():
    cfg = apply_overrides(preset_config("paper"), {"batch_size": 64, "global_batch_size": 32, "batch_size_ir": 96})
    sizes = (cfg.batch_size_ir, cfg.batch_size_rgb, cfg.global_batch_size_ir, cfg.global_batch_size_rgb)
    assert sizes == (96, 64, 32, 32)
    with pytest.raises(InputError, match="global_batch_size_rgb"):
        apply_overrides(cfg, {"global_batch_size_rgb": 8})  # below num_instances (16)


# ------------------------------------------------------------- pseudo labels, streams, steps

def _tiny_cfg(**extra):
    return apply_overrides(preset_config("smoke"), {**TINY, **extra})


@pytest.fixture(scope="module")
def records(data_root):
    from xmrank.torch.data import training_records

    return training_records("synthetic", data_root)


def _identity_features(records, seed=0):
    """Un-normalised features that cluster by identity."""
    rng = np.random.default_rng(seed)
    pids = np.array([r.pid for r in records])
    _, code = np.unique(pids, return_inverse=True)
    feats = np.eye(code.max() + 1, 16)[code] + 0.05 * rng.standard_normal((len(records), 16))
    return (0.9 * feats).astype(np.float32)


def test_regdb_style_global_clustering_uses_every_row(records):
    from xmrank.torch.pseudo_labels import cluster_epoch

    mods = np.array([r.modality for r in records])
    pids = np.array([r.pid for r in records])
    feats = _identity_features(records)
    rng = np.random.default_rng(0)
    whole = cluster_epoch(feats, mods, pids, _tiny_cfg(subset_ratio=1.0), rng, stage=2, larger=0)
    assert np.array_equal(whole["global_rows"], np.arange(len(records)))
    assert whole["stats"]["visible"]["n_samples"] == int((mods == 0).sum())
    half = cluster_epoch(feats, mods, pids, _tiny_cfg(), rng, stage=2, larger=0)
    g_visible = half["global_rows"][mods[half["global_rows"]] == 0]
    assert len(g_visible) == (mods == 0).sum() // 2 and (mods[half["global_rows"]] == 1).sum() == (mods == 1).sum()
    assert not np.isin(g_visible, np.flatnonzero(half["intra"] >= 0)).any()  # subset 1, not the clustered subset 0


def _global_streams(records, **extra):
    from xmrank.torch.pseudo_labels import StreamMaker, global_part

    cfg = _tiny_cfg(**extra)
    mods = np.array([r.modality for r in records])
    pids = np.array([r.pid for r in records])
    _, glabels = np.unique(pids, return_inverse=True)
    glabels[(mods == 0) & (glabels == 0)] = glabels.max() + 1  # one visible-only cluster
    maker = StreamMaker(records, cfg)
    part = global_part(_identity_features(records), mods, np.arange(len(records)), glabels, maker,
                       np.random.default_rng(1), device="cpu")
    return cfg, maker, part


def test_global_batches_are_separate_per_modality(records):
    cfg, maker, (memory, streams) = _global_streams(records, global_batch_size_ir=8, global_batch_size_rgb=4)
    assert set(streams) == {0, 1}
    (ir_view, ir_index, ir_mod) = next(streams[1].batches)
    *rgb_views, rgb_index, rgb_mod = next(streams[0].batches)
    assert ir_view.shape == (8, 3, 32, 16) and (ir_mod == 1).all()
    assert len(rgb_views) == 2 and rgb_views[0].shape == (4, 3, 32, 16) and (rgb_mod == 0).all()
    # groups of num_instances images of one global cluster: 2 clusters of infrared rows, 1 of visible rows
    ir_groups = streams[1].targets[ir_index].view(-1, cfg.num_instances)
    assert (ir_groups == ir_groups[:, :1]).all() and ir_groups[:, 0].unique().numel() == 2
    assert streams[0].targets[rgb_index].unique().numel() == 1
    # stage-2 infrared views have no ColorJitter, stage 1's do
    assert "ColorJitter" not in repr(maker.infrared_views[2]) and "ColorJitter" in repr(maker.infrared_views[1])
    assert "ColorJitter" not in repr(_maker(records, ir_color_jitter_stage1=False).infrared_views[1])
    assert memory.positives(torch.tensor([1])).sum() == 2  # a mixed cluster: two prototypes


def _maker(records, **extra):
    from xmrank.torch.pseudo_labels import StreamMaker

    return StreamMaker(records, _tiny_cfg(**extra))


class _TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 4 * 2, 16)

    def forward(self, images, modality):
        x = torch.nn.functional.adaptive_avg_pool2d(images, (4, 2)).flatten(1)
        return torch.nn.functional.normalize(self.fc(x) + modality.unsqueeze(1).float(), dim=1)


def test_global_step_gradient_is_taken_before_the_memory_update(records):
    import copy

    from xmrank.torch.losses import global_step_loss
    from xmrank.torch.pseudo_labels import Stream
    from xmrank.torch.steps import Precision, global_step

    cfg, _, (memory, streams) = _global_streams(records, global_batch_size_ir=8, global_batch_size_rgb=4)
    batches = {m: next(s.batches) for m, s in streams.items()}
    once = {m: Stream(iter([batches[m]]), s.targets) for m, s in streams.items()}
    torch.manual_seed(0)
    net = _TinyNet()
    ref_net, ref_memory = copy.deepcopy(net), copy.deepcopy(memory)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    loss = global_step(net, (memory, once), opt, cfg, "cpu", Precision(False, "cpu"))

    # the expected loss: ½ (mean over the infrared rows + mean over the visible rows), memory as before the step
    *rgb_views, rgb_index, _ = batches[0]
    ir_view, ir_index, _ = batches[1]
    x = torch.cat([*rgb_views, ir_view])
    mods = torch.cat([torch.zeros(2 * len(rgb_index), dtype=torch.long), torch.ones(len(ir_index), dtype=torch.long)])
    f = ref_net(x, mods)
    n_rgb = 2 * len(rgb_index)
    y_rgb, y_ir = streams[0].targets[rgb_index].repeat(2), streams[1].targets[ir_index]
    expected, (t_ir, t_rgb) = global_step_loss([(f[n_rgb:], y_ir), (f[:n_rgb], y_rgb)], ref_memory,
                                               temperature=cfg.temperature, n_candidates=cfg.n_candidates)
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() == pytest.approx(0.5 * (t_ir + t_rgb).item(), rel=1e-6)
    expected.backward()
    for p, q in zip(net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(p, q - q.grad)  # SGD lr 1: the step used the gradient of the reported loss
    # then the memory moved: each row toward its own (cluster, modality) prototype
    ref_memory.update(f.detach()[n_rgb:], y_ir, torch.ones_like(y_ir))
    ref_memory.update(f.detach()[:n_rgb], y_rgb, torch.zeros_like(y_rgb))
    torch.testing.assert_close(memory.mean, ref_memory.mean)
    torch.testing.assert_close(memory.hard, ref_memory.hard)


def test_augmentations_do_not_depend_on_the_number_of_workers(records):
    from xmrank.torch.data import RecordDataset, SeededBatches, make_loader
    from xmrank.torch.transforms import train_transform

    ds = RecordDataset(records[:8], (train_transform(32, 16, "visible"), train_transform(32, 16, "visible_ca")))
    batches = [[0, 1, 2, 3], [4, 5, 6, 7], [1, 1, 3, 3]]
    runs = []
    for workers in (0, 2):
        before = torch.get_rng_state()
        loader = make_loader(ds, batch_sampler=SeededBatches(batches, np.random.default_rng(5)), num_workers=workers,
                             seed=3)
        runs.append([b for b in loader])
        assert torch.equal(before, torch.get_rng_state())  # the caller's generator is left alone
    for a, b in zip(*runs):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    assert not torch.equal(runs[0][2][0][0], runs[0][2][0][1])  # one image drawn twice: two different augmentations


def test_amp_is_a_noop_on_the_cpu(records):
    from xmrank.torch.steps import Precision, forward_batches

    p = Precision(True, "cpu")
    assert not p.enabled and p.describe() == "float32" and p.scaler is None
    # the autocast path itself (what amp does on CUDA), here with CPU bfloat16: float32 features come out
    p.dtype = torch.bfloat16
    _, _, (_, streams) = _global_streams(records)
    torch.manual_seed(0)
    out = forward_batches(_TinyNet(), [(m, streams[m]) for m in (0, 1)], "cpu", p)
    assert [f.dtype for f, _, _ in out] == [torch.float32, torch.float32]
    assert [len(f) for f, _, _ in out] == [16, 8]  # visible: 8 images x 2 views; infrared: 8 images


def test_resume_refuses_a_checkpoint_with_foreign_objects(tmp_path, data_root):
    import fractions

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": 2, "stage": 1, "epoch": 1, "model": {}, "metrics": {}, "config": {},
                "dataset": "synthetic", "root": data_root, "extra": fractions.Fraction(1, 3)}, run / "checkpoint.pt")
    with pytest.raises(InputError, match="weights_only=True"):
        train(output=str(run), resume=True)
    torch.save([1, 2], run / "checkpoint.pt")
    with pytest.raises(InputError, match="not an xmrank training checkpoint"):
        train(output=str(run), resume=True)


@pytest.mark.slow
def test_run_files_hold_plain_types_only(full_run):
    from xmrank.torch.checkpoints import read_run_checkpoint

    out, _ = full_run
    state = read_run_checkpoint(os.path.join(out, "checkpoint.pt"))
    assert state["stage"] == 3 and state["config"]["batch_size_ir"] == 8
    for name in ("model.pt", "stage1_model.pt"):
        saved = torch.load(os.path.join(out, name), weights_only=True)
        assert saved["config"]["global_batch_size_rgb"] == 8


def test_cli_throughput_options(tmp_path):
    res = CliRunner().invoke(main, ["train", "--preset", "smoke", "--show-config", "--num-workers", "2", "--amp"])
    assert res.exit_code == 0, res.output
    assert "num_workers: 2" in res.output and "amp: true" in res.output
    res = CliRunner().invoke(main, ["train", "--output", str(tmp_path), "--resume", "--amp"])
    assert res.exit_code == 1 and "cannot be combined with --resume" in res.output


def test_a_run_that_cannot_cluster_is_refused_before_anything_is_written(tmp_path, data_root):
    out = tmp_path / "never"
    cfg = apply_overrides(preset_config("smoke"), {**TINY, "subset_ratio": 0.01})
    with pytest.raises(InputError, match="subset_ratio=0.01"):
        train(cfg, dataset="synthetic", root=data_root, output=str(out), progress=False)
    assert not out.exists()


def test_fitted_k_respects_the_per_modality_split():
    from xmrank.torch.pseudo_labels import fitted_k

    assert fitted_k(30, 6, 100) == (30, 6)
    assert fitted_k(12, 3, 5) == (4, 3)              # one list over a group of 5 rows
    assert fitted_k(12, 3, 5, parts=2) == (8, 3)     # k1 // 2 = 4 from each modality of 5 rows
    assert fitted_k(12, 3, 3, parts=2) == (4, 2)     # k2 <= k1 // 2


def test_a_run_trained_with_another_clustering_backend_still_loads(tmp_path):
    from xmrank.torch.loading import load_model
    from xmrank.torch.model import build_model

    cfg = preset_config("smoke")
    model = build_model(cfg.arch, non_local=cfg.non_local, non_local_width=cfg.non_local_width)
    config = cfg.to_dict()
    config["cluster_device"] = "cuda"  # trained on a GPU machine; this one has no cupy
    torch.save({"model": model.state_dict(), "config": config, "stage": 2}, tmp_path / "model.pt")
    net, loaded = load_model(tmp_path / "model.pt", return_config=True)
    assert loaded.cluster_device == "cuda" and not net.training


def test_resume_refuses_a_checkpoint_of_an_earlier_format(tmp_path, data_root):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": 1, "stage": 1, "epoch": 1, "model": {}, "metrics": {"epochs": []}, "config": {},
                "dataset": "synthetic", "root": data_root}, run / "checkpoint.pt")
    with pytest.raises(InputError, match="earlier xmrank"):
        train(output=str(run), resume=True)


def test_a_second_run_in_a_locked_run_folder_is_refused(tmp_path, data_root):
    """Two `train --output run` at once: the second ends in one line naming the folder, writing nothing."""
    import fcntl

    from xmrank.torch.runlog import LOCK

    out = tmp_path / "run"
    out.mkdir()
    with open(out / LOCK, "a") as held:  # what the first run holds while it trains
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = CliRunner().invoke(main, ["train", "--dataset", "synthetic", "--root", data_root, "--output", str(out),
                                        "--preset", "smoke", *sum((["--set", s] for s in SETS), [])])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"output {out} is in use by another training run" in lines[0], res.stderr
    assert sorted(os.listdir(out)) == [LOCK]


def test_a_checkpoint_save_at_the_file_size_limit_is_one_oserror(tmp_path):
    """torch.save reports a write cut short by `ulimit -f` as a RuntimeError: saved as EFBIG naming the file."""
    import errno
    import resource

    from xmrank.torch.checkpoints import save

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"previous checkpoint")
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, saved[1]))
    try:
        with pytest.raises(OSError) as err:
            save(path, {"model": {"w": torch.zeros(100_000)}})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved)
    assert err.value.errno == errno.EFBIG and err.value.filename == str(path) and "ulimit -f" in str(err.value)
    assert path.read_bytes() == b"previous checkpoint"
    assert os.listdir(tmp_path) == ["checkpoint.pt"]


@pytest.mark.parametrize("where", [".", "runs/a"])
def test_a_run_folder_inside_the_data_set_root_is_refused(tmp_path, where):
    root = tmp_path / "data"
    (root / "visible").mkdir(parents=True)
    res = CliRunner().invoke(main, ["train", "--dataset", "folder", "--root", str(root), "--output",
                                    str(root / where), "--preset", "smoke"])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--output" in lines[0] and "inside the data set root" in lines[0], res.stderr
    assert sorted(os.listdir(root)) == ["visible"]
