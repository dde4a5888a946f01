"""The trainer's shape: one engine with explicit steps, resume state in checkpoints, data made by the caller."""

import os

import pytest
from conftest import TINY_TRAIN

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared CPU
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from xmrank import InputError
from xmrank.torch.config import apply_overrides, preset_config

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = {**TINY_TRAIN, "num_workers": 0}
SMALL_SET = dict(synthetic_train_ids=4, synthetic_test_ids=2, synthetic_images_per_camera=2, synthetic_height=32,
                 synthetic_width=16)


def test_train_reads_the_synthetic_set_and_never_makes_it(tmp_path):
    from xmrank.torch.pipeline import train

    out = tmp_path / "run"
    cfg = apply_overrides(preset_config("smoke"), TINY)
    with pytest.raises(InputError, match="no synthetic data set in .*prepare_synthetic"):
        train(cfg, dataset="synthetic", output=str(out))
    assert not out.exists()  # refused before anything was written


def test_prepare_synthetic_makes_the_set_once_where_train_looks(tmp_path):
    from xmrank.datasets.synthetic_images import is_synthetic_root
    from xmrank.torch.synthetic import prepare_synthetic, synthetic_root

    cfg = apply_overrides(preset_config("smoke"), SMALL_SET)
    out = tmp_path / "run"
    root = prepare_synthetic(cfg, out)
    assert root == synthetic_root(out) == os.path.join(str(out), "synthetic")
    assert is_synthetic_root(root)
    before = {p: os.path.getmtime(os.path.join(d, p)) for d, _, fs in os.walk(root) for p in fs}
    assert prepare_synthetic(cfg, out) == root  # present: left as it is
    assert {p: os.path.getmtime(os.path.join(d, p)) for d, _, fs in os.walk(root) for p in fs} == before
    elsewhere = prepare_synthetic(cfg, out, tmp_path / "data")
    assert elsewhere == str(tmp_path / "data") and is_synthetic_root(elsewhere)


def test_steps_take_explicit_settings_and_match_the_config_shorthands():
    from xmrank.torch import steps

    cfg = preset_config("smoke")
    prec = steps.Precision(False, "cpu")
    step = steps.IntraStep(temperature=cfg.temperature, margin=cfg.intra_margin, device="cpu", precision=prec)
    assert (step.temperature, step.margin) == (cfg.temperature, cfg.intra_margin)
    gstep = steps.GlobalStep(temperature=cfg.temperature, n_candidates=cfg.n_candidates, device="cpu", precision=prec)
    assert gstep.n_candidates == cfg.n_candidates
    net = torch.nn.Linear(2, 2)
    a, sa = steps.make_optimizer(net, lr=cfg.lr, weight_decay=cfg.weight_decay, step_size=cfg.step_size,
                                 gamma=cfg.gamma)
    b, sb = steps.build_optimizer(net, cfg)
    assert a.param_groups[0]["lr"] == b.param_groups[0]["lr"] == cfg.lr
    assert a.param_groups[0]["weight_decay"] == b.param_groups[0]["weight_decay"] == cfg.weight_decay
    assert (sa.step_size, sa.gamma) == (sb.step_size, sb.gamma) == (cfg.step_size, cfg.gamma)


def test_torch_device_is_defined_once():
    import xmrank.torch.device as device
    import xmrank.torch.loading as loading
    import xmrank.torch.pipeline as pipeline
    import xmrank.torch.steps as steps
    import xmrank.torch.trainer as trainer

    assert "torch_device" not in steps.__all__ and "torch_device" not in pipeline.__all__
    for mod in (loading, pipeline, trainer):
        assert mod.torch_device is device.torch_device


def test_run_state_restores_a_stage_once_and_only_its_own(tmp_path, data_root):
    from xmrank.torch.checkpoints import RunState, checkpoint_payload
    from xmrank.torch.steps import build_optimizer

    cfg = apply_overrides(preset_config("smoke"), TINY)
    net = torch.nn.Linear(2, 2)
    opt, sched = build_optimizer(net, cfg)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    sched.step()
    metrics = {"epochs": [], "untrained": None, "stage1": None, "final": None, "evaluated": []}
    state = checkpoint_payload(stage=1, epoch=1, model=net, metrics=metrics, cfg=cfg, dataset="synthetic",
                               root=data_root, optimizer=opt, scheduler=sched)
    run = RunState(tmp_path, cfg, "synthetic", data_root, state)
    assert (run.stage, run.epoch) == (1, 1)
    fresh, fresh_sched = build_optimizer(net, cfg)
    run.restore(fresh, fresh_sched)
    assert fresh_sched.last_epoch == 1 and len(fresh.state) == 2
    again, again_sched = build_optimizer(net, cfg)
    run.restore(again, again_sched)  # the next stage starts fresh
    assert again_sched.last_epoch == 0 and len(again.state) == 0
    other = RunState(tmp_path, cfg, "synthetic", data_root, {**state, "stage": 2, "epoch": 0})
    opt2, sched2 = build_optimizer(net, cfg)
    other.stage = 1  # a checkpoint of another stage is never loaded into this one
    other.restore(opt2, sched2)
    assert sched2.last_epoch == 0


def test_cli_train_refuses_a_folder_holding_a_run_before_making_synthetic_data(tmp_path):
    from conftest import invoke, one_line_failure

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = invoke(["train", "--dataset", "synthetic", "--output", str(run), "--preset", "smoke"])
    line = one_line_failure(result, "--output")
    assert "already holds a run" in line
    assert sorted(os.listdir(run)) == ["checkpoint.pt"]  # no synthetic set written
