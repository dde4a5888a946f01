"""The trainer's building blocks: model, transforms, memories, losses, sampler, readers, features, config."""

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: no spinning on a shared CPU
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from xmrank import InputError
from xmrank.torch.config import apply_overrides, build_config, load_yaml, parse_overrides, preset_config
from xmrank.torch.data import ImageCache, folder_records, training_records
from xmrank.torch.features import extract_features
from xmrank.torch.losses import intra_modality_loss, multi_positive_nce, split_contrast_loss
from xmrank.torch.memory import HybridMemory, SplitContrastMemory
from xmrank.torch.model import DualStreamReID, NonLocal, build_model
from xmrank.torch.sampler import PseudoIdentitySampler
from xmrank.torch.transforms import ChannelAdapGray, ChannelExchange, ChannelRandomErasing, train_transform


pytestmark = pytest.mark.usefixtures("torch_one_thread")

F = torch.nn.functional


def _write_image(path, value=0, size=(16, 8)):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = np.full((size[0], size[1], 3), value, dtype=np.uint8)
    arr[..., 0] = (value * 7) % 256
    Image.fromarray(arr).save(path)


# ------------------------------------------------------------------- model

def test_model_structure_and_output():
    torch.manual_seed(0)
    m = DualStreamReID("resnet18", non_local=(0, 2, 3, 0))
    # resnet18 layers have 2 blocks: 2 + min(3, 2) non-local blocks
    assert sum(isinstance(x, NonLocal) for x in m.modules()) == 4
    assert m.stems[0] is not m.stems[1]
    assert m.stems[0][0].weight.data_ptr() != m.stems[1][0].weight.data_ptr()
    assert not m.neck.bias.requires_grad
    x = torch.randn(6, 3, 64, 32)
    body = m.body(m.stems[0](x))
    assert body.shape[-2:] == (4, 2)  # last stride 1: 1/16 of the input
    m2 = DualStreamReID("resnet18", non_local=(0, 0, 0, 0), last_stride=2)
    assert m2.body(m2.stems[0](x)).shape[-2:] == (2, 1)
    m.eval()
    with torch.no_grad():
        mod = torch.tensor([0, 1, 1, 0, 1, 0])
        mixed = m(x, mod)
        vis = m(x[mod == 0], 0)
        ir = m(x[mod == 1], 1)
    assert mixed.shape == (6, 512)
    torch.testing.assert_close(mixed.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(mixed[mod == 0], vis, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[mod == 1], ir, atol=1e-5, rtol=1e-4)
    # the infrared stem does not touch visible images
    with torch.no_grad():
        m.stems[1][0].weight.add_(1.0)
        assert torch.allclose(m(x[mod == 0], 0), vis, atol=1e-5)
        assert not torch.allclose(m(x[:2], 1), m(x[:2], 0), atol=1e-3)


@pytest.mark.slow
def test_resnet50_agw_layout():
    m = DualStreamReID("resnet50")
    nl = [x for x in m.modules() if isinstance(x, NonLocal)]
    assert len(nl) == 5
    assert nl[0].g.out_channels == 1 and nl[-1].g.out_channels == 1  # inter_channels = 1, as published
    assert nl[0].out[0].out_channels == 512 and nl[-1].out[0].out_channels == 1024
    assert m.feature_dim == 2048
    half = DualStreamReID("resnet50", non_local_width="half")
    assert [x for x in half.modules() if isinstance(x, NonLocal)][0].g.out_channels == 256
    full = DualStreamReID("resnet50", non_local_width="full")
    assert [x for x in full.modules() if isinstance(x, NonLocal)][-1].g.out_channels == 1024


def test_pretrained_from_a_local_file(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    m = build_model("resnet18", pretrained=str(path), non_local=(0, 0, 0, 0))
    for stem in m.stems:
        assert torch.equal(stem[0].weight, net.conv1.weight)
    with pytest.raises(InputError, match="not found"):
        build_model("resnet18", pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(InputError, match="do not fit|lack"):
        build_model("resnet50", pretrained=str(path))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        build_model("resnet18", pretrained=str(bad))
    with pytest.raises(InputError, match="arch"):
        build_model("vgg16")


# -------------------------------------------------------------- transforms

def test_channel_augmentations():
    img = torch.stack([torch.full((8, 4), 1.0), torch.full((8, 4), 2.0), torch.full((8, 4), 3.0)])
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        out = ChannelExchange(gray=2)(img)
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        seen.add(float(out[0, 0, 0]))
    assert seen == {1.0, 2.0, 3.0}
    # BMIL's ChannelAdapGray: R, G, B 1/4 each; the probability only splits the last quarter
    # between luminance and unchanged, so even at 0 the image is single-band 3/4 of the time
    outs = [ChannelAdapGray(0.0)(img) for _ in range(40)]
    assert any(torch.equal(o, img) for o in outs) and any(torch.equal(o[0], o[2]) for o in outs)
    out = ChannelAdapGray(1.0)(img)
    assert torch.equal(out[0], out[2])
    erased = ChannelRandomErasing(1.0, value=(9.0, 9.0, 9.0))(torch.zeros(3, 32, 16))
    assert (erased == 9.0).any() and (erased == 0.0).any()
    assert torch.equal(ChannelRandomErasing(0.0)(img), img)


def test_train_transform_is_repeatable(tmp_path):
    from PIL import Image

    img = Image.fromarray((np.random.default_rng(0).random((40, 20, 3)) * 255).astype(np.uint8))
    tr = train_transform(32, 16, "visible_ca")
    torch.manual_seed(1)
    a = tr(img)
    torch.manual_seed(1)
    b = tr(img)
    assert a.shape == (3, 32, 16) and torch.equal(a, b)
    assert torch.equal(a[0], a[1])  # ChannelExchange made it single-band
    with pytest.raises(InputError, match="view"):
        train_transform(32, 16, "thermal")


# ---------------------------------------------------------------- memories

def test_hybrid_memory_momentum_update():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mem = HybridMemory(centroids, momentum=0.1)
    feats = F.normalize(torch.tensor([[1.0, 1.0], [1.0, 0.2], [0.0, 1.0]]), dim=1)
    targets = torch.tensor([0, 0, 1])
    mem.update(feats, targets)
    batch_mean = feats[:2].mean(0)
    expected_mean0 = F.normalize(0.1 * centroids[0] + 0.9 * batch_mean, dim=0)
    torch.testing.assert_close(mem.mean[0], expected_mean0)
    # the hard row takes the member least similar to the mean row: [1, 1]/sqrt(2)
    expected_hard0 = F.normalize(0.1 * centroids[0] + 0.9 * feats[0], dim=0)
    torch.testing.assert_close(mem.hard[0], expected_hard0)
    torch.testing.assert_close(mem.mean[1], torch.tensor([0.0, 1.0]))


def test_intra_loss_margin_on_mean_rows():
    mem = HybridMemory(torch.eye(3), momentum=0.1)
    feats = torch.eye(3)
    targets = torch.arange(3)
    loss = intra_modality_loss(feats, targets, mem, temperature=0.05, margin=0.2)
    ce = F.cross_entropy(feats @ torch.eye(3) / 0.05, targets)
    assert ce < 0.2  # so the mean-row term is clipped to zero
    torch.testing.assert_close(loss, 0.5 * ce)
    loss_no_margin = intra_modality_loss(feats, targets, mem, temperature=0.05, margin=0.0)
    torch.testing.assert_close(loss_no_margin, ce)


def test_split_contrast_memory_has_two_positives_for_mixed_clusters():
    feats = F.normalize(torch.randn(7, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    clusters = np.array([0, 0, 0, 1, 1, 2, 2])
    modalities = np.array([0, 1, 1, 0, 0, 1, 1])  # cluster 0 mixed, 1 visible only, 2 infrared only
    mem = SplitContrastMemory(feats, clusters, modalities, momentum=0.1)
    assert mem.n_prototypes == 4
    pos = mem.positives(torch.as_tensor(clusters))
    assert pos.sum(1).tolist() == [2, 2, 2, 1, 1, 1, 1]
    assert mem.proto_cluster.tolist() == [0, 0, 1, 2]
    torch.testing.assert_close(mem.mean[1], F.normalize(feats[1:3].mean(0), dim=0))
    # each image updates the prototype of its own (cluster, modality)
    before = mem.mean.clone()
    mem.update(feats[3:4], torch.tensor([1]), torch.tensor([0]))
    changed = (mem.mean != before).any(1).tolist()
    assert changed == [False, False, True, False]
    with pytest.raises(InputError, match="no prototype"):
        mem.update(feats[:1], torch.tensor([1]), torch.tensor([1]))


def test_multi_positive_nce_matches_the_formula():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    pos = torch.tensor([[True, True, False, False, False], [False, False, True, False, False]])
    loss = multi_positive_nce(logits, pos, n_candidates=50)
    lp = F.log_softmax(logits, dim=1)
    expected = (-(lp[0, 0] + lp[0, 1]) / 2 - lp[1, 2]) / 2
    torch.testing.assert_close(loss, expected)
    # with 3 candidates: row 0 keeps its 2 positives + the hardest negative (index 4)
    loss3 = multi_positive_nce(logits, pos, n_candidates=3)
    lp0 = F.log_softmax(logits[0, [0, 1, 4]], dim=0)
    lp1 = F.log_softmax(logits[1, [2, 4, 3]], dim=0)
    torch.testing.assert_close(loss3, (-(lp0[0] + lp0[1]) / 2 - lp1[0]) / 2)
    # an easy negative outside the candidates does not matter
    easier = logits.clone()
    easier[0, 3] = -50.0
    torch.testing.assert_close(multi_positive_nce(easier, pos, n_candidates=3), loss3)


def test_split_contrast_loss_is_half_hard_half_mean():
    g = torch.Generator().manual_seed(1)
    feats = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    clusters = np.array([0, 0, 1, 1, 2, 2])
    mods = np.array([0, 1, 0, 0, 1, 0])
    mem = SplitContrastMemory(feats, clusters, mods)
    mem.hard.copy_(F.normalize(torch.randn(mem.n_prototypes, 4, generator=g), dim=1))
    c = torch.as_tensor(clusters)
    pos = mem.positives(c)
    expected = 0.5 * (multi_positive_nce(feats @ mem.hard.t() / 0.05, pos)
                      + multi_positive_nce(feats @ mem.mean.t() / 0.05, pos))
    torch.testing.assert_close(split_contrast_loss(feats, c, mem, temperature=0.05), expected)


# ----------------------------------------------------------------- sampler

def test_pseudo_identity_sampler():
    labels = np.array([-1, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, -1, 3])
    s = PseudoIdentitySampler(labels, batch_size=8, num_instances=4, iterations=5, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 5
    seen = set()
    for b in batches:
        assert len(b) == 8
        labs = labels[b]
        assert (labs >= 0).all()
        ids, counts = np.unique(labs, return_counts=True)
        assert len(ids) == 2 and (counts == 4).all()
        seen.update(ids.tolist())
    assert seen == {0, 1, 2, 3}  # every cluster visited
    with pytest.raises(InputError, match="no cluster"):
        PseudoIdentitySampler(np.full(4, -1), batch_size=8, num_instances=4, iterations=1)


# ----------------------------------------------------------------- readers

def test_folder_records(tmp_path):
    for rel in ["visible/a.jpg", "visible/cam1/b.png", "visible/cam1/deep/c.JPG", "visible/.hidden.jpg",
                "visible/notes.txt", "infrared/x.jpg", "infrared/y/z.bmp"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    recs = folder_records(tmp_path)
    assert [r.modality for r in recs] == [0, 0, 0, 1, 1]
    assert all(r.pid == -1 for r in recs)
    assert recs[2].path.endswith(os.path.join("deep", "c.JPG"))
    os.remove(tmp_path / "infrared" / "x.jpg")
    os.remove(tmp_path / "infrared" / "y" / "z.bmp")
    with pytest.raises(InputError, match="no images"):
        folder_records(tmp_path)
    with pytest.raises(InputError, match="infrared"):
        folder_records(tmp_path / "visible")


def test_training_records_of_fake_sysu_and_regdb(tmp_path):
    sysu = tmp_path / "SYSU-MM01"
    counts = {1: 3, 2: 2, 3: 2, 4: 1, 5: 0, 6: 4}  # images per camera for each id
    for pid in (1, 2, 5):
        for cam, n in counts.items():
            for k in range(n):
                _write_image(str(sysu / f"cam{cam}" / f"{pid:04d}" / f"{k:04d}.jpg"), pid)
    (sysu / "exp").mkdir()
    (sysu / "exp" / "train_id.txt").write_text("1,2\n")
    (sysu / "exp" / "val_id.txt").write_text("5\n")
    (sysu / "exp" / "test_id.txt").write_text("7\n")
    recs = training_records("sysu", sysu)
    assert len(recs) == 3 * sum(counts.values())
    assert sum(r.modality == 1 for r in recs) == 3 * (counts[3] + counts[6])

    regdb = tmp_path / "RegDB"
    (regdb / "idx").mkdir(parents=True)
    lines_v = [f"Visible/{p}/v{k}.bmp {p}" for p in range(4) for k in range(3)]
    lines_t = [f"Thermal/{p}/t{k}.bmp {p}" for p in range(4) for k in range(2)]
    (regdb / "idx" / "train_visible_2.txt").write_text("\n".join(lines_v) + "\n")
    (regdb / "idx" / "train_thermal_2.txt").write_text("\n".join(lines_t) + "\n")
    recs = training_records("regdb", regdb, trial=2)
    assert len(recs) == 20
    assert [r.modality for r in recs].count(1) == 8
    with pytest.raises(InputError, match="not found"):
        training_records("regdb", regdb, trial=3)
    with pytest.raises(InputError, match="dataset"):
        training_records("market", regdb)


def test_image_cache_and_errors(tmp_path):
    p = str(tmp_path / "a.png")
    _write_image(p, 10, size=(20, 10))
    cache = ImageCache((16, 8))
    img = cache(p)
    assert img.size == (8, 16) and cache(p) is img and len(cache) == 1
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(InputError, match="cannot read image"):
        cache(str(tmp_path / "bad.jpg"))


# ---------------------------------------------------------------- features

def test_flip_averaged_features(tmp_path):
    from xmrank.datasets import ImageRecord
    from xmrank.torch.transforms import test_transform

    paths = []
    for i in range(3):
        p = str(tmp_path / f"{i}.png")
        from PIL import Image

        Image.fromarray((np.random.default_rng(i).random((32, 16, 3)) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    recs = [ImageRecord(paths[0], 1, 1, 0), ImageRecord(paths[1], 1, 3, 1), ImageRecord(paths[2], 2, 2, 0)]
    torch.manual_seed(0)
    m = DualStreamReID("resnet18", non_local=(0, 0, 0, 0))
    m.train()
    f = extract_features(m, recs, height=32, width=16, batch_size=2)
    assert m.training  # mode restored
    assert f.shape == (3, 512) and f.dtype == np.float32
    m.eval()
    from PIL import Image

    x = test_transform(32, 16)(Image.open(paths[1]).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        ref = F.normalize(m(x, 1) + m(torch.flip(x, dims=[3]), 1), dim=1)
    np.testing.assert_allclose(f[1], ref[0].numpy(), atol=1e-5)


# ------------------------------------------------------------------ config

def test_presets_and_overrides(tmp_path):
    paper = preset_config("paper")
    assert (paper.arch, paper.lr, paper.weight_decay, paper.step_size, paper.gamma) == ("resnet50", 3.5e-4, 5e-4, 20, 0.1)
    assert (paper.epochs_stage1, paper.epochs_stage2, paper.iters, paper.num_instances) == (50, 50, 200, 16)
    assert (paper.temperature, paper.momentum, paper.eps_intra, paper.eps_global) == (0.05, 0.1, 0.6, 0.6)
    assert (paper.height, paper.width, paper.non_local, paper.n_candidates) == (288, 144, (0, 2, 3, 0), 50)
    regdb = preset_config("paper", dataset="regdb")
    assert (regdb.eps_intra, regdb.eps_global, regdb.iters) == (0.3, 0.3, 100)
    smoke = preset_config("smoke")
    assert smoke.arch == "resnet18" and smoke.pretrained == "none"
    with pytest.raises(InputError, match="preset"):
        preset_config("fast")

    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 1.0e-4\nnon_local: [0, 1, 1, 0]\ncache_images: true\n")
    cfg = build_config("paper", yaml_path=yml, overrides=parse_overrides(["iters=7", "device=cpu", "k1=20", "weight_decay=1e-3"]))
    assert cfg.weight_decay == 1e-3
    assert (cfg.lr, cfg.non_local, cfg.cache_images, cfg.iters, cfg.device, cfg.k1) == (
        1e-4, (0, 1, 1, 0), True, 7, "cpu", 20)
    assert apply_overrides(cfg, {"non_local": "0,2,3,0"}).non_local == (0, 2, 3, 0)
    with pytest.raises(InputError, match="Unknown config field 'learning_rate'"):
        apply_overrides(cfg, {"learning_rate": 1})
    with pytest.raises(InputError, match="iters must be an integer"):
        apply_overrides(cfg, {"iters": "many"})
    with pytest.raises(InputError, match="k2"):
        apply_overrides(cfg, {"k1": 3, "k2": 6})
    with pytest.raises(InputError, match="FIELD=VALUE"):
        parse_overrides(["lr"])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")
    with pytest.raises(InputError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")


def test_evaluate_model_on_a_fake_regdb(tmp_path):
    from xmrank.torch.evaluation import evaluate_model

    regdb = tmp_path / "RegDB"
    (regdb / "idx").mkdir(parents=True)
    lines = {"visible": [], "thermal": []}
    for pid in range(3):
        for k in range(2):
            for mod, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                rel = f"{folder}/{pid}/{k}.png"
                _write_image(str(regdb / rel), 40 * pid + 10 * k + (0 if mod == "visible" else 5), size=(32, 16))
                lines[mod].append(f"{rel} {pid}")
    for mod, ls in lines.items():
        (regdb / "idx" / f"test_{mod}_1.txt").write_text("\n".join(ls) + "\n")
    torch.manual_seed(0)
    m = DualStreamReID("resnet18", non_local=(0, 0, 0, 0))
    res = evaluate_model(m, "regdb", regdb, height=32, width=16)
    assert res["protocol"] == "regdb-v2t-trial1" and res["n_trials"] == 1
    assert 0.0 <= res["mAP"] <= 1.0 and 0.0 <= res["rank1"] <= res["rank5"] <= 1.0
    assert evaluate_model(m, "folder", tmp_path, height=32, width=16) is None


def test_cluster_backends_are_checked_when_the_config_is_built():
    assert build_config("smoke", dataset="synthetic", overrides={"cluster_knn": "ann"}).cluster_knn == "ann"
    with pytest.raises(InputError, match="cluster_knn"):
        build_config("smoke", dataset="synthetic", overrides={"cluster_knn": "dask"})
    with pytest.raises(InputError, match="cluster_device"):
        build_config("smoke", dataset="synthetic", overrides={"cluster_device": "tpu"})


def test_test_transform_resizes_as_named(tmp_path):
    """Lanczos is PIL's ANTIALIAS (the published test resize); bicubic is the published cluster resize."""
    from PIL import Image

    from xmrank.torch.transforms import IMAGENET_MEAN, IMAGENET_STD, test_transform

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (40, 20, 3), dtype=np.uint8))
    for name, mode in (("lanczos", Image.LANCZOS), ("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)):
        want = np.asarray(img.resize((8, 16), mode), dtype=np.float32) / 255.0
        want = (want - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        got = test_transform(16, 8, interpolation=name)(img).numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="interpolation"):
        test_transform(16, 8, interpolation="nearest")


def test_split_contrast_off_keeps_one_prototype_per_cluster():
    from xmrank.torch.memory import SplitContrastMemory

    feats = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    mods = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    split = SplitContrastMemory(feats, clusters, mods)
    plain = SplitContrastMemory(feats, clusters, mods, split=False)
    assert split.n_prototypes == 3 and plain.n_prototypes == 2
    assert plain.positives(torch.tensor([0, 1])).sum(1).tolist() == [1, 1]
    torch.testing.assert_close(plain.mean[0], torch.nn.functional.normalize(feats[:4].sum(0), dim=0))
    before = plain.mean.clone()
    plain.update(feats[2:4], torch.tensor([0, 0]), torch.tensor([1, 1]))  # infrared rows update the one prototype
    assert not torch.equal(plain.mean[0], before[0]) and torch.equal(plain.mean[1], before[1])
