"""``xmrank test`` and ``xmrank embed`` on tiny fake SYSU-MM01 / RegDB trees with a tiny network."""

import dataclasses
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared CPU
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from conftest import cli, one_line_failure  # noqa: E402
from xmrank.cli.main import main  # noqa: E402
from xmrank.datasets import regdb_query_gallery, sysu_test_records, sysu_train_records  # noqa: E402
from xmrank.retrieval import evaluate, regdb_evaluation, rerank, sysu_evaluation  # noqa: E402
from xmrank.torch import build_model, preset_config  # noqa: E402
from xmrank.torch.features import extract_features  # noqa: E402

H, W = 32, 16
TRAIN, VAL, TEST = [4, 5], [6], [1, 2, 3]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _image(path, pid, cam, k):
    from PIL import Image

    rng = np.random.default_rng([pid, cam, k])
    arr = (rng.random((H, W, 3)) * 60 + pid * 50 + (cam in (3, 6)) * 30).clip(0, 255).astype(np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture(scope="module")
def sysu(tmp_path_factory):
    """camK/PPPP/NNNN.jpg: 2 images per (id, camera), every camera; exp/{train,val,test}_id.txt."""
    root = tmp_path_factory.mktemp("SYSU-MM01")
    for pid in TRAIN + VAL + TEST:
        for cam in range(1, 7):
            if pid in TRAIN + VAL and cam not in (1, 3):
                continue
            for k in range(2):
                _image(str(root / f"cam{cam}" / f"{pid:04d}" / f"{k + 1:04d}.jpg"), pid, cam, k)
    (root / "exp").mkdir()
    for name, ids in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return str(root)


@pytest.fixture(scope="module")
def regdb(tmp_path_factory):
    """idx/{train,test}_{visible,thermal}_{1,2}.txt over Visible/ and Thermal/ images."""
    root = tmp_path_factory.mktemp("RegDB")
    (root / "idx").mkdir()
    for trial in (1, 2):
        for split, ids in (("train", (0, 1)), ("test", (2, 3, 4))):
            for mod, folder, cam in (("visible", "Visible", 1), ("thermal", "Thermal", 3)):
                lines = []
                for pid in ids:
                    for k in range(2):
                        rel = f"{folder}/{pid + 10 * trial}/{k}.bmp"
                        if not (root / rel).exists():
                            _image(str(root / rel), pid + trial, cam, k)
                        lines.append(f"{rel} {pid}")
                (root / "idx" / f"{split}_{mod}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return str(root)


def _save_run(path, seed=0):
    torch.manual_seed(seed)
    model = build_model("resnet18", non_local=(0, 0, 0, 0))
    cfg = dataclasses.replace(preset_config("smoke"), height=H, width=W)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "stage": 2}, path)
    return model.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "model.pt"
    model = _save_run(path)
    return str(path), model


def _embed(model, records):
    return extract_features(model, records, height=H, width=W, batch_size=64)


def _listing(folder):
    return sorted(os.listdir(folder))


# ----------------------------------------------------------------------------- xmrank test

@pytest.mark.slow
def test_test_sysu_matches_the_protocol_with_and_without_rerank(sysu, ckpt, tmp_path):
    path, model = ckpt
    res = cli("test", "--checkpoint", path, "--dataset", "sysu", "--root", sysu, "--trials", 3, "--rerank",
              "--method", "modality", "--k1", 4, "--k2", 2, "--device", "cpu", "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    for col in ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "no re-ranking", "re-ranked"):  # 12-image galleries: no Rank-20
        assert col in res.output
    assert "12 queries, 3 gallery draws" in res.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["mode"] == "all" and data["trials"] == [0, 1, 2]
    plain, reranked = data["results"]["no re-ranking"], data["results"]["re-ranked"]
    assert [t["trial"] for t in plain["trials"]] == [0, 1, 2]
    assert all(t["height"] == H and t["width"] == W for t in plain["trials"])  # the run's size by default
    ref = sysu_evaluation(lambda recs: _embed(model, recs), sysu, trials=range(3))
    assert plain["mAP"] == pytest.approx(ref["mean"]["mAP"], rel=1e-6)
    assert plain["mINP"] == pytest.approx(ref["mean"]["mINP"], rel=1e-6)
    assert plain["cmc"] == pytest.approx(ref["mean"]["cmc"].tolist(), rel=1e-6)
    assert plain["rank1"] == pytest.approx(ref["mean"]["cmc"][0])
    ref_rr = sysu_evaluation(lambda recs: _embed(model, recs), sysu, trials=range(3),
                             rerank={"method": "modality", "k1": 4, "k2": 2, "lambda_value": 0.3})
    assert reranked["mAP"] == pytest.approx(ref_rr["mean"]["mAP"], rel=1e-6)
    assert f"{100 * ref['mean']['mAP']:.2f}" in res.output
    assert f"{100 * ref_rr['mean']['mAP']:.2f}" in res.output


@pytest.mark.slow
def test_test_rerank_with_the_gnn_algorithm(sysu, ckpt, tmp_path):
    path, model = ckpt
    res = cli("test", "--checkpoint", path, "--dataset", "sysu", "--root", sysu, "--trials", 2, "--rerank",
              "--reranker", "gnn", "--method", "modality", "--k1", 4, "--k2", 2, "--device", "cpu",
              "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    assert "GNN re-ranked" in res.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["rerank"]["algorithm"] == "gnn"
    ref = sysu_evaluation(lambda recs: _embed(model, recs), sysu, trials=range(2),
                          rerank={"method": "modality", "k1": 4, "k2": 2, "lambda_value": 0.3, "algorithm": "gnn"})
    assert data["results"]["GNN re-ranked"]["mAP"] == pytest.approx(ref["mean"]["mAP"], rel=1e-6)


def test_test_algorithm_needs_rerank(tmp_path):
    res = cli("test", "--checkpoint", tmp_path / "none.pt", "--dataset", "sysu", "--root", tmp_path,
              "--reranker", "gnn")
    one_line_failure(res, "--reranker is for re-ranking: add --rerank")


@pytest.mark.slow
def test_test_rerank_accepts_auto(sysu, ckpt, tmp_path):
    path, model = ckpt
    res = cli("test", "--checkpoint", path, "--dataset", "sysu", "--root", sysu, "--trials", 1, "--rerank",
              "--method", "auto", "--k1", "auto", "--k2", "auto", "--device", "cpu", "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["rerank"]["k1"] == "auto"  # as asked: each trial's gallery gets its own choice
    ref = sysu_evaluation(lambda recs: _embed(model, recs), sysu, trials=range(1),
                          rerank={"method": "auto", "k1": "auto", "k2": "auto", "lambda_value": 0.3})
    assert data["results"]["re-ranked"]["mAP"] == pytest.approx(ref["mean"]["mAP"], rel=1e-6)


@pytest.mark.slow
def test_test_sysu_indoor_and_explicit_size(sysu, ckpt):
    path, model = ckpt
    res = cli("test", "--checkpoint", path, "--dataset", "sysu", "--root", sysu, "--search-mode", "indoor", "--trials", 2,
              "--input-height", 48, "--input-width", 24, "--batch-size", 5, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "indoor-search" in res.output and "re-ranked" not in res.output
    ref = sysu_evaluation(lambda r: extract_features(model, r, height=48, width=24), sysu, mode="indoor", trials=range(2))
    assert f"{100 * ref['mean']['mAP']:.2f}" in res.output


@pytest.mark.slow
def test_test_regdb_trials_directions_and_per_trial_checkpoints(regdb, tmp_path):
    m1 = _save_run(tmp_path / "regdb1.pt", seed=1)
    m2 = _save_run(tmp_path / "regdb2.pt", seed=2)
    res = cli("test", "--checkpoint", tmp_path / "regdb{trial}.pt", "--dataset", "regdb", "--root", regdb,
              "--trial", "1-2", "--direction", "both", "--rerank", "--method", "modality", "--k1", 4, "--k2", 2,
              "--device", "cpu",
              "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data["results"]) == {"v2t no re-ranking", "v2t re-ranked", "t2v no re-ranking", "t2v re-ranked"}
    assert data["trials"] == [1, 2] and data["directions"] == ["v2t", "t2v"]
    for direction in ("v2t", "t2v"):
        ref = regdb_evaluation({1: lambda r: _embed(m1, r), 2: lambda r: _embed(m2, r)}, regdb, trials=[1, 2],
                               direction=direction)
        got = data["results"][f"{direction} no re-ranking"]
        assert got["n_trials"] == 2
        assert got["mAP"] == pytest.approx(ref["mean"]["mAP"], rel=1e-6)
        assert got["mINP"] == pytest.approx(ref["mean"]["mINP"], rel=1e-6)
        assert got["cmc"] == pytest.approx(ref["mean"]["cmc"].tolist(), rel=1e-6)
    # re-ranking of trial 1, v2t, by hand
    q, g = regdb_query_gallery(regdb, trial=1, direction="v2t")
    D = rerank(_embed(m1, q), _embed(m1, g), query_modalities=0, gallery_modalities=1, method="modality", k1=4, k2=2)
    ref1 = evaluate(D, [r.pid for r in q], [r.pid for r in g], protocol="regdb")
    assert data["results"]["v2t re-ranked"]["trials"][0]["mAP"] == pytest.approx(ref1["mAP"], rel=1e-6)


@pytest.mark.slow
def test_test_regdb_one_checkpoint_default_trial(regdb, ckpt):
    path, model = ckpt
    res = cli("test", "--checkpoint", path, "--dataset", "regdb", "--root", regdb, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "visible->thermal: trial 1" in res.output and "note:" not in res.output
    ref = regdb_evaluation(lambda r: _embed(model, r), regdb, trials=[1])
    assert f"{100 * ref['mean']['mAP']:.2f}" in res.output
    res = cli("test", "--checkpoint", path, "--dataset", "regdb", "--root", regdb, "--trial", "1,2", "--device", "cpu")
    assert res.exit_code == 0 and "note: one model evaluated on 2 RegDB trials" in res.output


@pytest.mark.slow
def test_test_accepts_a_published_bmil_checkpoint(sysu, tmp_path):
    from xmrank.torch.loading import bmil_key_map
    from xmrank.torch.model import DualStreamReID

    torch.manual_seed(0)
    model = DualStreamReID("resnet50", non_local=(0, 2, 3, 0), non_local_width="one").eval()
    names = bmil_key_map(model)
    state = {"module." + names[k]: v for k, v in model.state_dict().items() if k in names}
    state["module.classifier.weight"] = torch.zeros(3, 2048)  # an unused key of the published file
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "model_best.pth.tar")
    res = cli("test", "--checkpoint", tmp_path / "model_best.pth.tar", "--dataset", "sysu", "--root", sysu,
              "--trials", 1, "--input-height", H, "--input-width", W, "--device", "cpu", "--json", tmp_path / "b.json")
    assert res.exit_code == 0, res.output
    ref = sysu_evaluation(lambda r: _embed(model, r), sysu, trials=[0])
    got = json.loads((tmp_path / "b.json").read_text())["results"]["no re-ranking"]
    assert got["mAP"] == pytest.approx(ref["mean"]["mAP"], rel=1e-5)


# ----------------------------------------------------------------------------- xmrank embed

@pytest.mark.slow
def test_embed_sysu_train_bundle_feeds_cluster_and_diagnose(sysu, ckpt, tmp_path):
    path, model = ckpt
    out = tmp_path / "train.npz"
    res = cli("embed", "--checkpoint", path, "--root", sysu, "-o", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    records = sysu_train_records(sysu)
    with np.load(out, allow_pickle=False) as z:
        assert set(z.files) == {"features", "modalities", "cameras", "ids", "paths"}
        assert z["features"].dtype == np.float32 and z["features"].shape == (len(records), model.feature_dim)
        np.testing.assert_allclose(z["features"], _embed(model, records), atol=1e-5)
        assert z["paths"].tolist() == [r.path for r in records]
        assert z["ids"].tolist() == [r.pid for r in records]
        assert z["cameras"].tolist() == [r.cam for r in records]
        assert z["modalities"].tolist() == [r.modality for r in records]
    assert f"{len(records)} images" in res.output
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not the temporary file's 0600
    assert _listing(tmp_path) == ["train.npz"]  # no temporary file left
    res = cli("cluster", out, "--k1", 4, "--k2", 2, "--min-samples", 2, "-o", tmp_path / "labels.npy")
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "labels.npy").shape == (len(records),)
    res = cli("diagnose", out, "--k1", 4, "--k2", 2, "--min-samples", 2, "--methods", "vanilla,modality",
              "--json", tmp_path / "d.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["n_samples"] == len(records) and "clustering" in report  # the ids were read


@pytest.mark.slow
def test_embed_test_split_by_modality_feeds_evaluate_and_rerank(sysu, ckpt, tmp_path):
    path, model = ckpt
    for mod in ("infrared", "visible"):
        res = cli("embed", "--checkpoint", path, "--root", sysu, "--split", "test", "--modality", mod,
                  "-o", tmp_path / f"{mod}.npz", "--device", "cpu", "--no-progress")
        assert res.exit_code == 0, res.output
    res = cli("evaluate", tmp_path / "infrared.npz", tmp_path / "visible.npz", "--protocol", "sysu",
              "--json", tmp_path / "e.json")
    assert res.exit_code == 0, res.output
    recs = sysu_test_records(sysu)
    q = [r for r in recs if r.modality == 1]
    g = [r for r in recs if r.modality == 0]
    ref = evaluate(-(_embed(model, q) @ _embed(model, g).T), [r.pid for r in q], [r.pid for r in g],
                   [r.cam for r in q], [r.cam for r in g], protocol="sysu")
    assert json.loads((tmp_path / "e.json").read_text())["mAP"] == pytest.approx(ref["mAP"], rel=1e-5)
    res = cli("rerank", tmp_path / "infrared.npz", tmp_path / "visible.npz", "--k1", 4, "--k2", 2, "--protocol", "sysu")
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_embed_regdb_all_splits_and_folder(regdb, sysu, ckpt, tmp_path):
    path, _ = ckpt
    res = cli("embed", "--checkpoint", path, "--root", regdb, "--dataset", "regdb", "--trial", 2, "--split", "all",
              "-o", tmp_path / "r.npz", "--device", "cpu")
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "r.npz") as z:
        assert len(z["features"]) == 20 and sorted(set(z["cameras"].tolist())) == [1, 2]
    folder = tmp_path / "mine"
    for mod, cam in (("visible", 1), ("infrared", 3)):
        for k in range(3):
            _image(str(folder / mod / "sub" / f"{k}.png"), k, cam, k)
    res = cli("embed", "--checkpoint", path, "--root", folder, "--dataset", "folder", "-o", tmp_path / "f.npz",
              "--device", "cpu")
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "f.npz") as z:
        assert "ids" not in z.files  # a folder has no identities
        assert z["modalities"].tolist() == [0, 0, 0, 1, 1, 1]
    res = cli("diagnose", tmp_path / "f.npz", "--k1", 2, "--k2", 1, "--methods", "modality")
    assert res.exit_code == 0, res.output


# ----------------------------------------------------------------------------- bad input

class Arbitrary:
    pass


@pytest.fixture()
def bad_checkpoints(tmp_path):
    with open(tmp_path / "plain.pkl", "wb") as fh:
        pickle.dump({"model": Arbitrary(), "config": {}}, fh)
    torch.save(Arbitrary(), tmp_path / "object.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"state_dict": {"foo.weight": torch.zeros(2)}}, tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("not a model\n")
    return tmp_path


@pytest.mark.parametrize("name", ["plain.pkl", "object.pt", "list.pt", "foreign.pt", "text.pt"])
@pytest.mark.parametrize("command", ["test", "embed"])
def test_unloadable_checkpoints_are_one_line_errors(bad_checkpoints, sysu, name, command):
    d = bad_checkpoints
    before = _listing(d)
    if command == "test":
        res = cli("test", "--checkpoint", d / name, "--dataset", "sysu", "--root", sysu, "--trials", 1,
                  "--device", "cpu", "--json", d / "out.json")
    else:
        res = cli("embed", "--checkpoint", d / name, "--root", sysu, "-o", d / "out.npz", "--device", "cpu")
    one_line_failure(res, "--checkpoint")
    assert _listing(d) == before


def test_bad_arguments_are_one_line_errors_without_output(sysu, regdb, ckpt, tmp_path):
    path, _ = ckpt
    base = ["--checkpoint", path, "--root", sysu, "--device", "cpu"]
    cases = [
        (["test", "--checkpoint", tmp_path / "missing.pt", "--dataset", "sysu", "--root", sysu], "missing.pt: file not found"),
        (["test", "--checkpoint", tmp_path, "--dataset", "sysu", "--root", sysu], "not a file"),
        (["test", *base, "--dataset", "market"], "--dataset"),
        (["test", *base, "--dataset", "sysu", "--direction", "t2v"], "--direction is a RegDB option"),
        (["test", *base, "--dataset", "regdb", "--trials", 3], "--trials is a SYSU-MM01 option"),
        (["test", *base, "--dataset", "regdb", "--trial", "0"], "--trial"),
        (["test", *base, "--dataset", "regdb", "--trial", "x-2"], "--trial"),
        (["test", "--checkpoint", tmp_path / "r{trial}.pt", "--dataset", "regdb", "--root", regdb], "r1.pt: file not found"),
        (["test", "--checkpoint", path, "--dataset", "sysu", "--root", tmp_path / "nope"], "--root"),
        (["test", *base, "--dataset", "sysu", "--json", tmp_path / "no" / "s.json"], "--json"),
        (["test", *base, "--dataset", "sysu", "--json", tmp_path], "is a directory"),
        (["test", *base, "--dataset", "sysu", "--json", path], "input file of --checkpoint"),
        (["test", *base, "--dataset", "sysu", "--device", "cuda:99" if torch.cuda.is_available() else "cuda"],
         "--device"),
        (["test", *base, "--dataset", "regdb"], "RegDB"),  # the SYSU root has no idx/ lists
        (["embed", "--checkpoint", tmp_path / "missing.pt", "--root", sysu, "-o", tmp_path / "f.npz"], "file not found"),
        (["embed", *base, "--dataset", "market", "-o", tmp_path / "f.npz"], "--dataset"),
        (["embed", *base, "-o", tmp_path / "f.npy"], "must end with .npz"),
        (["embed", *base, "-o", tmp_path / "no" / "f.npz"], "does not exist"),
        (["embed", *base, "-o", tmp_path], "is a directory"),
        (["embed", *base, "--dataset", "folder", "--split", "test", "-o", tmp_path / "f.npz"], "--split"),
        (["embed", *base, "--trial", 2, "-o", tmp_path / "f.npz"], "--trial is a RegDB option"),
        (["embed", *base, "--dataset", "folder", "-o", tmp_path / "f.npz"], "visible/"),
    ]
    before = _listing(tmp_path)
    for args, pattern in cases:
        one_line_failure(cli(*args), pattern)
        assert _listing(tmp_path) == before, args


def test_output_equal_to_the_checkpoint_is_refused_and_the_checkpoint_kept(sysu, tmp_path):
    ck = tmp_path / "weights.npz"  # a checkpoint whose name ends with .npz, given as -o too
    _save_run(ck)
    data = ck.read_bytes()
    one_line_failure(cli("embed", "--checkpoint", ck, "--root", sysu, "-o", ck, "--device", "cpu"),
                     "input file of --checkpoint")
    one_line_failure(cli("embed", "--checkpoint", ck, "--root", sysu, "-o", tmp_path / "." / "weights.npz",
                         "--device", "cpu"), "input file of --checkpoint")
    assert ck.read_bytes() == data and _listing(tmp_path) == ["weights.npz"]


def test_missing_torch_is_one_line_naming_the_extra(tmp_path, ckpt, sysu):
    # an import hook that hides torch (sys.modules['torch'] = None would break scipy's torch detection)
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from xmrank.cli.main import main\n"
        "main()\n"
    )
    for args in (["test", "--checkpoint", ckpt[0], "--dataset", "sysu", "--root", sysu],
                 ["embed", "--checkpoint", ckpt[0], "--root", sysu, "-o", str(tmp_path / "f.npz")]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        assert len(lines) == 1 and "pip install 'xmrank[torch]'" in lines[0], proc.stdout + proc.stderr
    assert not (tmp_path / "f.npz").exists()


def test_trials_past_any_sensible_count_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["test", "--checkpoint", str(tmp_path / "m.pt"), "--dataset", "sysu",
                                    "--root", str(tmp_path), "--trials", str(2**70)])
    assert res.exit_code != 0
    assert "--trials" in res.output and "Traceback" not in res.output
