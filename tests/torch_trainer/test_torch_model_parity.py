"""The network against the published BMIL code's own forward (tests/data/trainer_model_parity.npz).

The golden file (``golden/trainer/model_parity.npz``, see its README) holds
BMIL's ``agw()`` network with fixed weights (conv weights from a seeded recipe,
every other tensor stored) and what its forward computes on 4 visible and 4
infrared images at 288x144 and 64x32. Tolerances:

- evaluation embeddings, clustering / evaluation features: elementwise
  ``rtol=1e-4, atol=3e-5`` (the rows are unit vectors with entries ~0.02;
  reached: |diff| < 3e-6);
- training-mode pooled / BNNeck features: in float64, the per-row relative
  L2 error is below 1e-4 (pool) / 3e-4 (BN feature): what is left is the
  golden file's own float32 rounding, which train-mode batch norm over a
  batch of 8 amplifies in a network with random weights. In float32 the
  same rounding makes the result machine-dependent (1e-5 here, 1e-3 after a
  one-ulp change of the input), so the float32 check is at 2e-3.
"""

import copy
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from xmrank import InputError
from xmrank.datasets import ImageRecord
from xmrank.torch import load_model
from xmrank.torch.config import apply_overrides, config_from_dict, preset_config
from xmrank.torch.features import extract_features
from xmrank.torch.loading import bmil_key_map
from xmrank.torch.model import GeM, DualStreamReID, NonLocal, build_model
from xmrank.torch import transforms as xtransforms

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "trainer_model_parity.npz")
F = torch.nn.functional


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(min(2, old))
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def bmil_state(golden):
    """The golden network's tensors under BMIL's names: conv weights from the recipe, the rest stored."""
    state = {}
    seed = int(golden["recipe_seed"])
    for key, index, shape in zip(golden["recipe_keys"], golden["recipe_index"], golden["recipe_shapes"]):
        shape = tuple(int(s) for s in shape)
        fan_in = shape[1] * shape[2] * shape[3]
        rng = np.random.default_rng([seed, int(index)])
        state[str(key)] = torch.from_numpy(
            ((rng.random(shape) - 0.5) * np.sqrt(12) * np.sqrt(2 / fan_in)).astype(np.float32))
    for key in golden:
        if key.startswith("sd/"):
            state[key[3:]] = torch.from_numpy(np.array(golden[key]))
    assert sorted(state) == sorted(map(str, golden["bmil_keys"]))
    return state


def _golden_model(bmil_state):
    model = DualStreamReID("resnet50", non_local=(0, 2, 3, 0), non_local_width="one", gem_p=3.0)
    mapping = bmil_key_map(model)
    state = {ours: bmil_state[theirs] for ours, theirs in mapping.items()}
    state["pool.p"] = model.state_dict()["pool.p"]
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def model(bmil_state):
    return _golden_model(bmil_state)


def _images(golden, name, h):
    """uint8 NHWC -> normalised float batch through xmrank's test transform (ToTensor + Normalize)."""
    from PIL import Image

    arr = golden[f"img_{name}_{h}"]
    t = xtransforms.test_transform(arr.shape[1], arr.shape[2])
    return torch.stack([t(Image.fromarray(a)) for a in arr])


def _row_rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)).max())


# ------------------------------------------------------------ structure

def test_published_keys_map_one_to_one(golden, model):
    mapping = bmil_key_map(model)
    assert len(mapping) == 394 == len(set(mapping.values()))
    assert set(mapping.values()) == set(map(str, golden["bmil_keys"]))
    assert set(mapping) == set(model.state_dict()) - {"pool.p"}
    assert mapping["stems.0.0.weight"] == "visible_module.visible.conv1.weight"
    assert mapping["stems.1.1.running_var"] == "thermal_module.thermal.bn1.running_var"
    assert mapping["body.1.3.g.weight"] == "NL_2.0.g.0.weight"
    assert mapping["body.1.4.conv1.weight"] == "base_resnet.base.layer2.3.conv1.weight"
    assert mapping["body.2.8.out.1.bias"] == "NL_3.2.W.1.bias"
    assert mapping["neck.weight"] == "bottleneck.weight"


@pytest.mark.slow
def test_non_local_width_and_fixed_gem():
    m = DualStreamReID("resnet50")
    nl = [x for x in m.modules() if isinstance(x, NonLocal)]
    assert len(nl) == 5 and all(x.g.out_channels == 1 and x.theta.out_channels == 1 for x in nl)
    assert [x.out[0].out_channels for x in nl] == [512, 512, 1024, 1024, 1024]
    assert all(float(x.out[1].weight.detach().abs().sum()) == 0 for x in nl)  # zero-initialised W-BN
    # p is a buffer: in the state dict, not among the parameters (so no weight decay)
    assert isinstance(m.pool, GeM) and "pool.p" in dict(m.named_buffers())
    assert "pool.p" not in dict(m.named_parameters()) and float(m.pool.p) == 3.0
    learn = DualStreamReID("resnet18", non_local=(0, 0, 0, 0), gem_learnable=True)
    assert "pool.p" in dict(learn.named_parameters())
    half = DualStreamReID("resnet50", non_local_width="half")
    assert [x.g.out_channels for x in half.modules() if isinstance(x, NonLocal)] == [256, 256, 512, 512, 512]
    full = build_model("resnet18", non_local=(0, 1, 0, 0), non_local_width="full")
    assert [x.g.out_channels for x in full.modules() if isinstance(x, NonLocal)] == [128]
    with pytest.raises(InputError, match="non_local_width"):
        DualStreamReID("resnet18", non_local_width="quarter")
    # the BNNeck starts as the published code's N(1, 0.01)
    assert 0.95 < float(m.neck.weight.detach().min()) and float(m.neck.weight.detach().max()) < 1.05
    assert float(m.neck.weight.detach().std()) > 0
    # config: "one" is the default and the paper preset's
    assert preset_config("paper").non_local_width == "one" and preset_config("paper").gem_learnable is False
    cfg = apply_overrides(preset_config("smoke"), {"non_local_width": "half", "gem_learnable": "true"})
    assert (cfg.non_local_width, cfg.gem_learnable) == ("half", True)
    with pytest.raises(InputError, match="non_local_width"):
        apply_overrides(preset_config("smoke"), {"non_local_width": "C"})


def test_non_local_matches_the_published_formula():
    torch.manual_seed(0)
    for inter, (h, w) in ((1, (5, 3)), (3, (5, 3)), (8, (5, 3)), (8, (2, 2))):  # C' < N and C' >= N
        block = NonLocal(8, inter).eval()
        with torch.no_grad():
            block.out[1].weight.fill_(1.0)
            x = torch.randn(2, 8, h, w)
            b, _, h, w = x.shape
            g = block.g(x).view(b, inter, -1).permute(0, 2, 1)
            theta = block.theta(x).view(b, inter, -1).permute(0, 2, 1)
            phi = block.phi(x).view(b, inter, -1)
            f = theta @ phi / (h * w)
            y = (f @ g).permute(0, 2, 1).reshape(b, inter, h, w)
            torch.testing.assert_close(block(x), x + block.out(y), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ golden forward

@pytest.mark.slow
@pytest.mark.parametrize("h", [288, 64])
def test_eval_embeddings(golden, model, h):
    with torch.no_grad():
        for modality, name in ((0, "vis"), (1, "ir")):
            out = model(_images(golden, name, h), modality).numpy()
            np.testing.assert_allclose(out, golden[f"bmil_eval_{name}_{h}"], rtol=1e-4, atol=3e-5)
            assert _row_rel(out, golden[f"bmil_eval_{name}_{h}"]) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("h", [288, 64])
def test_train_mode_pool_and_bn_feature(golden, model, h):
    x = torch.cat([_images(golden, "vis", h), _images(golden, "ir", h)])
    modality = torch.tensor([0] * 4 + [1] * 4)
    pool_ref, feat_ref = golden[f"bmil_train_pool_{h}"], golden[f"bmil_train_feat_{h}"]
    m64 = copy.deepcopy(model).double().train()
    with torch.no_grad():
        pool, feat = m64.features(x.double(), modality)
    assert _row_rel(pool, pool_ref) < 1e-4
    assert _row_rel(feat, feat_ref) < 3e-4
    # GeM adds 1e-12 inside the root as published: an all-zero channel pools to 1e-4, not 0
    dead = pool_ref < 1e-3
    if h == 64:
        assert dead.any()
    np.testing.assert_allclose(pool.numpy()[dead], pool_ref[dead], rtol=1e-5)
    m32 = copy.deepcopy(model).train()
    with torch.no_grad():
        pool32, feat32 = m32.features(x, modality)
        normed = m32(x, modality)
    assert _row_rel(pool32, pool_ref) < 2e-3 and _row_rel(feat32, feat_ref) < 2e-3
    # what the trainer gets: the L2-normalised BN feature (one more train-mode pass: same batch statistics)
    torch.testing.assert_close(normed, F.normalize(feat32, dim=1), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_cluster_and_eval_features_through_png_files(golden, model, tmp_path):
    from PIL import Image

    records = []
    for modality, name in ((0, "vis"), (1, "ir")):
        for i, arr in enumerate(golden[f"img_{name}_288"]):
            path = str(tmp_path / f"{name}{i}.png")
            Image.fromarray(arr).save(path)
            records.append(ImageRecord(path, i, modality + 1, modality))
    model.train()
    clus = extract_features(model, records, height=288, width=144, batch_size=3, normalize=False)
    assert model.training  # mode restored
    model.eval()
    ev = extract_features(model, records, height=288, width=144, batch_size=8)
    for name, rows in (("vis", slice(0, 4)), ("ir", slice(4, 8))):
        np.testing.assert_allclose(clus[rows], golden[f"bmil_cluster_feat_{name}"], rtol=1e-4, atol=3e-5)
        np.testing.assert_allclose(ev[rows], golden[f"bmil_eval_feat_{name}"], rtol=1e-4, atol=3e-5)
    norms = np.linalg.norm(clus, axis=1)
    assert (norms < 0.999).all()  # the flip average, not re-normalised
    np.testing.assert_allclose(np.linalg.norm(ev, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(ev, clus / norms[:, None], rtol=1e-5, atol=1e-7)
    with pytest.raises(InputError, match="normalize"):
        extract_features(model, records, height=288, width=144, normalize="no")


# ------------------------------------------------------------ load_model

def _zeros(shape):
    """A zero tensor of ``shape`` stored as a single element (a cheap stand-in for an unused key)."""
    return torch.zeros(1).expand(*shape) if len(shape) else torch.zeros(())


@pytest.fixture(scope="module")
def published_checkpoint(golden, bmil_state, tmp_path_factory):
    """A checkpoint laid out as the published code saves it: DataParallel names, unused keys, numpy best_mAP."""
    state = {"module." + k: v for k, v in bmil_state.items()}
    for key in map(str, golden["bmil_unused_keys"]):
        if key == "classifier.weight":
            shape = (1000, 2048)
        else:
            source = key.replace("visible_module.visible.", "base_resnet.base.").replace(
                "thermal_module.thermal.", "base_resnet.base.")
            source = source.replace("base_resnet.base.conv1", "visible_module.visible.conv1").replace(
                "base_resnet.base.bn1", "visible_module.visible.bn1")
            shape = tuple(bmil_state[source].shape)
        state["module." + key] = _zeros(shape)
    assert len(state) == 394 + 631
    path = tmp_path_factory.mktemp("bmil") / "model_best.pth.tar"
    torch.save({"state_dict": state, "epoch": 3, "best_mAP": np.float64(0.25)}, path)
    return path


@pytest.mark.slow
def test_load_a_published_checkpoint(golden, published_checkpoint):
    model, cfg = load_model(published_checkpoint, device="cpu", return_config=True)
    assert isinstance(model, DualStreamReID) and not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert (cfg.arch, cfg.non_local, cfg.non_local_width, cfg.gem_p, cfg.gem_learnable, cfg.last_stride) == (
        "resnet50", (0, 2, 3, 0), "one", 3.0, False, 1)
    with torch.no_grad():
        for h in (288, 64):
            for modality, name in ((0, "vis"), (1, "ir")):
                out = model(_images(golden, name, h), modality).numpy()
                np.testing.assert_allclose(out, golden[f"bmil_eval_{name}_{h}"], rtol=1e-4, atol=3e-5)


def test_load_a_bare_published_state_dict(golden, bmil_state, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(dict(bmil_state), path)  # no "state_dict" entry, no "module." prefix, no unused keys
    model = load_model(path)
    with torch.no_grad():
        out = model(_images(golden, "ir", 64), 1).numpy()
    np.testing.assert_allclose(out, golden["bmil_eval_ir_64"], rtol=1e-4, atol=3e-5)


def test_load_model_refuses_pickled_objects(tmp_path):
    target = tmp_path / "created_by_unpickling.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(target), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"module.bottleneck.weight": torch.ones(2)}, "extra": Payload()}, path)
    with pytest.raises(InputError, match="weights_only"):
        load_model(path)
    assert not target.exists()
    # the payload is live: an unrestricted load would have run it
    torch.load(path, weights_only=False)
    assert target.exists()


@pytest.mark.slow
def test_load_model_errors(bmil_state, tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="cannot be loaded"):
        load_model(garbage)
    listed = tmp_path / "list.pt"
    torch.save([torch.ones(1)], listed)
    with pytest.raises(InputError, match="not a dict"):
        load_model(listed)
    state = dict(bmil_state)
    del state["NL_3.1.phi.weight"]
    missing = tmp_path / "missing_key.pth"
    torch.save({"state_dict": state}, missing)
    with pytest.raises(InputError, match=r"lacks the key 'NL_3\.1\.phi\.weight'"):
        load_model(missing)
    state = dict(bmil_state, **{"NL_3.9.extra.weight": torch.ones(1)})
    extra = tmp_path / "extra_key.pth"
    torch.save({"state_dict": state}, extra)
    with pytest.raises(InputError, match=r"unexpected key 'NL_3\.9\.extra\.weight'"):
        load_model(extra)
    state = dict(bmil_state, **{"bottleneck.weight": torch.ones(7)})
    shape = tmp_path / "bad_shape.pth"
    torch.save({"state_dict": state}, shape)
    with pytest.raises(InputError, match="neck.weight has shape"):
        load_model(shape)
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"fc.weight": torch.ones(2, 2)}}, other)
    with pytest.raises(InputError, match="neither an xmrank run file"):
        load_model(other)
    with pytest.raises(InputError, match="device"):
        load_model(other, device="tpu:0")


@pytest.mark.slow
def test_load_an_xmrank_run_file(tmp_path):
    cfg = preset_config("smoke")
    torch.manual_seed(0)
    model = build_model(cfg.arch, pretrained="none", non_local=cfg.non_local, non_local_width=cfg.non_local_width,
                        gem_p=cfg.gem_p, last_stride=cfg.last_stride)
    with torch.no_grad():  # move the BN statistics away from their initial values
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "stage": 2}, path)
    loaded, loaded_cfg = load_model(path, return_config=True)
    assert loaded_cfg == config_from_dict(cfg.to_dict())
    assert not loaded.training
    x = torch.randn(3, 3, cfg.height, cfg.width)
    model.eval()
    with torch.no_grad():
        for modality in (0, 1):
            torch.testing.assert_close(loaded(x, modality), model(x, modality))
    # the network needs only the network fields: a run setting that does not fit this machine does not matter
    odd = dict(cfg.to_dict(), cluster_knn="no-such-engine")
    torch.save({"model": model.state_dict(), "config": odd, "stage": 2}, path)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path)(x, 0), model(x, 0))
    with pytest.raises(InputError, match="cluster_knn"):
        load_model(path, return_config=True)
    # a run file whose weights do not fit its own config names the first missing key
    state = model.state_dict()
    del state["neck.running_mean"]
    torch.save({"model": state, "config": cfg.to_dict(), "stage": 2}, path)
    with pytest.raises(InputError, match="lacks the key 'neck.running_mean'"):
        load_model(path)
