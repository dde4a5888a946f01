"""Resume validates what it reads: a checkpoint's bookkeeping, its data set, root and recipe are checked before
anything in the run folder is touched (issue 25); a checkpoint save that fails is an OSError, one line."""

import os

import pytest
from conftest import TINY_TRAIN

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from click.testing import CliRunner

from xmrank import InputError
from xmrank.cli.main import main
from xmrank.torch.checkpoints import checkpoint_payload, save
from xmrank.torch.config import apply_overrides, preset_config
from xmrank.torch.model import build_model
from xmrank.torch.pipeline import train
from xmrank.torch.steps import build_optimizer

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = {**TINY_TRAIN, "num_workers": 0}
LOG, METRICS = "old log line\n", '{"old": true}\n'


@pytest.fixture(scope="module")
def good_state(data_root):
    """A stage-1, epoch-1 checkpoint with real optimiser state (one Adam step), built without training."""
    cfg = apply_overrides(preset_config("smoke"), TINY)
    torch.manual_seed(0)
    model = build_model(cfg.arch, pretrained="none", non_local=cfg.non_local, non_local_width=cfg.non_local_width,
                        gem_p=cfg.gem_p, gem_learnable=cfg.gem_learnable, last_stride=cfg.last_stride)
    opt, sched = build_optimizer(model, cfg)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    sched.step()
    metrics = {"dataset": "synthetic", "root": data_root, "untrained": {"mAP": 0.5, "rank1": 0.5, "protocol": "sysu"},
               "stage1": None, "final": None, "epochs": [{"stage": 1, "epoch": 1, "lr": 1e-4, "loss_intra": 1.0,
                                                           "loss_global": None, "time_s": 1.0}],
               "complete": False, "evaluated": ["untrained"], "time_s": 1.0}
    return checkpoint_payload(stage=1, epoch=1, model=model, metrics=metrics, cfg=cfg, dataset="synthetic",
                              root=data_root, optimizer=opt, scheduler=sched)


def _run_folder(tmp_path, state):
    run = tmp_path / "run"
    run.mkdir()
    torch.save(state, run / "checkpoint.pt")  # no fsync: fast
    (run / "train.log").write_text(LOG)
    (run / "metrics.json").write_text(METRICS)
    return run


def _untouched(run):
    assert (run / "train.log").read_text() == LOG
    assert (run / "metrics.json").read_text() == METRICS
    assert sorted(os.listdir(run)) == ["checkpoint.pt", "metrics.json", "train.log"]


def _shape_of_first_moment(state):
    opt = dict(state["optimizer"])
    inner = {k: dict(v) for k, v in opt["state"].items()}
    first = next(iter(inner))
    inner[first]["exp_avg"] = torch.zeros(3)
    opt["state"] = inner
    return opt


def _set(key, value):
    return lambda s: {**s, key: value}


def _metrics(**changes):
    return lambda s: {**s, "metrics": {**s["metrics"], **changes}}


BAD = [
    (_set("stage", 0), r"stage 0 is not 1, 2 or 3"),
    (_set("stage", -3), r"stage -3 is not 1, 2 or 3"),
    (_set("stage", True), r"stage True is not 1, 2 or 3"),
    (_set("stage", 4), r"stage 4 is not"),
    (_set("epoch", -1), r"epoch -1 is outside 0 to 2"),
    (_set("epoch", 3), r"epoch 3 is outside 0 to 2, the epochs of stage 1"),
    (_set("epoch", True), r"epoch True is outside"),
    (_set("optimizer", "garbage"), r"optimizer state is a str"),
    (_set("optimizer", {"state": {}, "param_groups": []}), r"optimizer state does not fit this run"),
    (_set("optimizer", {"state": 5, "param_groups": "x"}), r"optimizer state does not fit this run"),
    (lambda s: {**s, "optimizer": _shape_of_first_moment(s)}, r"optimizer state 'exp_avg' has shape \(3,\)"),
    (_set("scheduler", [1, 2]), r"scheduler state is a list"),
    (_set("scheduler", {"last_epoch": "x"}), r"scheduler position \(last_epoch\) is 'x'"),
    (_set("scheduler", {"last_epoch": -5}), r"scheduler position"),
    (_set("scheduler", {"step_size": "ten", "last_epoch": 1}), r"scheduler step_size is 'ten'"),
    (_metrics(epochs="x"), r"hold no list of epochs"),
    (_metrics(epochs=["x"]), r"epoch record 0 is a str"),
    (_metrics(epochs=[{"stage": 1, "epoch": 1, "lr": "fast"}]), r"epoch record 0 has lr 'fast', not a number"),
    (_metrics(epochs=[{"stage": "1", "epoch": 1}]), r"epoch record 0 has stage '1', not an integer"),
    (_metrics(untrained={"mAP": "high"}), r"untrained mAP is 'high', not a number"),
    (_metrics(untrained=[0.5]), r"'untrained' is a list"),
    (_metrics(final={"rank1": True}), r"final rank1 is True"),
    (_metrics(time_s="long"), r"time_s is 'long'"),
    (_metrics(evaluated=["untrained", "later"]), r"'evaluated' must list some of"),
    (_metrics(evaluated="untrained"), r"'evaluated' must list"),
    (_set("dataset", "regdb"), r"cannot resume: dataset is 'synthetic', the run was trained on 'regdb'"),
]


#: refused by the bookkeeping check, before the weights are read: a checkpoint without weights is enough (fast)
_BEFORE_WEIGHTS = ("stage", "epoch", "is a str", "is a list", "metrics", "epoch record", "untrained", "final",
                   "time_s", "evaluated", "dataset is")


def _light(state):
    return {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler")} | {"model": {}}


@pytest.mark.parametrize("change,match", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_bookkeeping_is_refused_before_the_run_folder_is_touched(tmp_path, good_state, change, match):
    light = any(w in match for w in _BEFORE_WEIGHTS) and "optimizer" not in match and "scheduler" not in match
    state = change(good_state)
    if light:
        kept = {k: state[k] for k in ("optimizer", "scheduler") if k in state and not isinstance(state[k], dict)}
        state = {**_light(state), **kept}
    run = _run_folder(tmp_path, state)
    kwargs = {"dataset": "synthetic"} if "dataset is" in match else {}
    with pytest.raises(InputError, match=match) as e:
        train(output=str(run), resume=True, max_epochs=0, **kwargs)
    assert "\n" not in str(e.value)
    _untouched(run)


def test_nan_weights_in_a_checkpoint_are_refused(tmp_path, good_state):
    model = dict(good_state["model"])
    key = next(k for k, v in model.items() if v.is_floating_point())
    model[key] = torch.full_like(model[key], float("nan"))
    run = _run_folder(tmp_path, {**good_state, "model": model})
    with pytest.raises(InputError, match="NaN or infinite value"):
        train(output=str(run), resume=True, max_epochs=0)
    _untouched(run)


def test_complex_weights_in_a_checkpoint_are_refused_not_cast(tmp_path, good_state):
    import warnings

    model = dict(good_state["model"])
    key = next(k for k, v in model.items() if v.is_floating_point())
    model[key] = model[key].to(torch.complex64)
    run = _run_folder(tmp_path, {**good_state, "model": model})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning cast
        with pytest.raises(InputError, match="holds complex numbers"):
            train(output=str(run), resume=True, max_epochs=0)
    _untouched(run)


def test_another_root_or_recipe_is_refused_naming_the_field(tmp_path, good_state, data_root):
    run = _run_folder(tmp_path, good_state)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(InputError, match=r"cannot resume: root is .*other, the run was trained on the data set in"):
        train(output=str(run), resume=True, root=str(other), max_epochs=0)
    cfg = apply_overrides(preset_config("smoke"), {**TINY, "lr": 0.5})
    with pytest.raises(InputError, match=r"cannot resume: config lr is 0.5, the run was trained with"):
        train(cfg, output=str(run), resume=True, max_epochs=0)
    _untouched(run)
    res = CliRunner().invoke(main, ["train", "--output", str(run), "--resume", "--root", str(other)])
    assert res.exit_code == 1 and "cannot resume: root is" in res.output and "Traceback" not in res.output
    _untouched(run)


def test_resume_with_max_epochs_zero_keeps_metrics_json(tmp_path, good_state, data_root):
    run = _run_folder(tmp_path, good_state)
    cfg = apply_overrides(preset_config("smoke"), TINY)  # the same recipe given again: accepted
    metrics = train(cfg, output=str(run), resume=True, root=data_root, max_epochs=0, progress=False)
    assert metrics["epochs"] == good_state["metrics"]["epochs"]
    assert (run / "metrics.json").read_text() == METRICS


def test_a_checkpoint_save_that_cannot_be_written_is_an_oserror(tmp_path, good_state):
    """A real file-size limit (``ulimit -f``; Python ignores SIGXFSZ, so the write fails with EFBIG)."""
    resource = pytest.importorskip("resource")

    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"previous")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        with pytest.raises(OSError) as e:
            save(target, good_state)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert e.value.filename is not None and "checkpoint.pt" in e.value.filename  # the CLI prints "PATH: File too large"
    assert target.read_bytes() == b"previous"  # the previous checkpoint is kept
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temporary left behind
