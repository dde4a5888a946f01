"""Augmentation and sampler parity with the published BMIL code.

Golden data (tests/data/trainer_transforms_parity.npz, trainer_sampler_parity.npz) were
computed by BMIL's own ``ChannelExchange``, ``ChannelAdapGray``, ``ChannelRandomErasing``
and ``RandomMultipleGallerySampler`` (see /work/shared/golden/trainer/README.md).

Tolerances:

- forced outcomes (a fixed choice of channel): 1e-4 relative, the float32 rounding of
  the luminance sum;
- frequencies and statistics: BMIL drew from Python's ``random``/``np.random``, xmrank
  draws from torch's generator (augmentations) and a numpy Generator (sampler), so the
  two runs are independent samples of the same distribution. Each statistic is compared
  within 5 standard errors of the difference of the two sample means,
  ``sd * sqrt(1/n_golden + 1/n_ours)`` (two-sided false-alarm rate below 1e-6); the
  seeds are fixed, so the tests are deterministic. Where the exact expectation is known
  (outcome shares, the sampler's duplicate share), both samples are also checked
  against it, within 5 standard errors of one sample. The tolerances are small enough
  to tell the published choices from their neighbours: log-uniform aspect ratios would
  move the mean log-aspect by about 25 standard errors, "unchanged half the time" the
  identity share of ChannelAdapGray by over 100.
"""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from xmrank import InputError
from xmrank.torch import transforms as tr
from xmrank.torch.config import build_config, preset_config
from xmrank.torch.sampler import PseudoIdentitySampler
from xmrank.torch.transforms import (ERASING_FILL, OUTCOMES, ChannelAdapGray, ChannelExchange,
                                     ChannelRandomErasing, channel_outcome, train_transform)

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
RTOL = 1e-4
Z = 5.0  # standard errors


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def gt():
    with np.load(os.path.join(DATA, "trainer_transforms_parity.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def gs():
    with np.load(os.path.join(DATA, "trainer_sampler_parity.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _close(ours, golden):
    np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), np.asarray(golden, dtype=np.float64),
                               rtol=RTOL, atol=RTOL * float(np.abs(golden).max()))


# ------------------------------------------------------------ forced outcomes

@pytest.mark.parametrize("idx", [0, 1, 2, 3])
def test_channel_exchange_forced(gt, idx, monkeypatch):
    img = torch.from_numpy(gt["img"])
    monkeypatch.setattr(tr, "_randint", lambda high: idx)
    out = ChannelExchange(gray=3)(img.clone())
    _close(out.numpy(), gt[f"exchange_idx{idx}"])
    _close(channel_outcome(img, ("R", "G", "B", "luminance")[idx]).numpy(), gt[f"exchange_idx{idx}"])


def test_luminance_weights(gt):
    img = gt["img"].astype(np.float64)
    w = tr.LUMA_WEIGHTS
    assert w == (0.2989, 0.587, 0.114)
    _close(np.broadcast_to(w[0] * img[0] + w[1] * img[1] + w[2] * img[2], img.shape), gt["exchange_idx3"])


@pytest.mark.parametrize("name,choice,u", [("R", 0, 0.9), ("G", 1, 0.9), ("B", 2, 0.9),
                                           ("gray", 3, 0.25), ("identity", 3, 0.75)])
def test_channel_adap_gray_forced(gt, name, choice, u, monkeypatch):
    img = torch.from_numpy(gt["img"])
    monkeypatch.setattr(tr, "_randint", lambda high: choice)
    monkeypatch.setattr(tr, "_uniform", lambda: u)
    out = ChannelAdapGray(0.5)(img.clone())
    _close(out.numpy(), gt[f"adapgray_{name}"])


# ----------------------------------------------------------- outcome shares

def _shares(aug, img, draws):
    keys = {}
    for i, name in enumerate(OUTCOMES):
        o = channel_outcome(img, name)
        keys[(float(o[0, 0, 0]), float(o[1, 0, 0]))] = i
    assert len(keys) == len(OUTCOMES)  # the first pixel tells the five outcomes apart
    counts = np.zeros(len(OUTCOMES))
    for _ in range(draws):
        o = aug(img)
        counts[keys[(float(o[0, 0, 0]), float(o[1, 0, 0]))]] += 1
    return counts / draws


def _check_shares(ours, golden, expected, n_ours, n_golden):
    for i, name in enumerate(OUTCOMES):
        p = expected[i]
        if p == 0:
            assert ours[i] == 0 and golden[i] == 0, name
            continue
        sd = math.sqrt(p * (1 - p))
        assert abs(ours[i] - golden[i]) <= Z * sd * math.sqrt(1 / n_ours + 1 / n_golden), name
        assert abs(ours[i] - p) <= Z * sd / math.sqrt(n_ours), name
        assert abs(golden[i] - p) <= Z * sd / math.sqrt(n_golden), name


def test_channel_exchange_gray2_shares(gt):
    img = torch.from_numpy(gt["img"])
    n = 20000
    torch.manual_seed(0)
    ours = _shares(ChannelExchange(gray=2), img, n)
    _check_shares(ours, gt["exchange_gray2_freq"], [0, 1 / 3, 1 / 3, 1 / 3, 0], n, int(gt["freq_draws"]))


def test_channel_adap_gray_shares(gt):
    img = torch.from_numpy(gt["img"])
    n = 20000
    torch.manual_seed(0)
    ours = _shares(ChannelAdapGray(0.5), img, n)
    # [identity, R, G, B, luminance]: unchanged 1/8, not 1/2
    _check_shares(ours, gt["adapgray_p05_freq"], [1 / 8, 1 / 4, 1 / 4, 1 / 4, 1 / 8], n, int(gt["freq_draws"]))


def test_channel_adap_gray_probability_extremes():
    img = torch.stack([torch.full((4, 2), 1.0), torch.full((4, 2), 2.0), torch.full((4, 2), 3.0)])
    torch.manual_seed(0)
    assert "luminance" not in {ChannelAdapGray(0.0).draw() for _ in range(400)}
    assert "identity" not in {ChannelAdapGray(1.0).draw() for _ in range(400)}
    assert {ChannelExchange(gray=3).draw() for _ in range(400)} == {"R", "G", "B", "luminance"}
    with pytest.raises(InputError, match="outcome"):
        channel_outcome(img, "gray")


# ------------------------------------------------------------------ erasing

def _erasing_sample(draws, seed):
    torch.manual_seed(seed)
    er = ChannelRandomErasing(0.5)
    img = torch.randn(3, 288, 144)  # no pixel equals the fill, so the changed pixels are the rectangle
    hs, ws, fills = [], [], []
    for _ in range(draws):
        out = er(img)
        changed = (out != img).any(0)
        if not changed.any():
            continue
        rows = torch.nonzero(changed.any(1)).flatten()
        cols = torch.nonzero(changed.any(0)).flatten()
        eh, ew = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert int(changed.sum()) == eh * ew  # one full rectangle
        hs.append(eh)
        ws.append(ew)
        if len(fills) < 3:
            fills.append(out[:, rows[0], cols[0]].numpy().copy())
    return np.array(hs), np.array(ws), fills


@pytest.mark.slow
def test_channel_random_erasing_statistics(gt):
    n = 6000
    hs, ws, fills = _erasing_sample(n, seed=0)
    for f in fills:
        _close(f, gt["erasing_fill"])
    np.testing.assert_allclose(ERASING_FILL, gt["erasing_fill"], rtol=RTOL)

    n_gold = int(gt["erasing_draws"])
    rate = hs.size / n
    p = 0.5
    assert abs(rate - gt["erasing_rate"]) <= Z * math.sqrt(p * (1 - p) * (1 / n + 1 / n_gold))

    k_ours, k_gold = hs.size, round(float(gt["erasing_rate"]) * n_gold)
    scale = math.sqrt(1 / k_ours + 1 / k_gold)
    area = hs * ws / (288 * 144)
    aspect = hs / ws
    for values, key in ((area, "erasing_area_mean"), (aspect, "erasing_aspect_mean"),
                        (np.log(aspect), "erasing_log_aspect_mean")):
        assert abs(values.mean() - gt[key]) <= Z * values.std() * scale, key
    # median: sd of a sample median = 1 / (2 f(median)); the density from the 45 % and 55 % quantiles
    q45, q55 = np.quantile(aspect, [0.45, 0.55])
    sd_median = 0.5 * (q55 - q45) / 0.10
    assert abs(np.median(aspect) - gt["erasing_aspect_median"]) <= Z * sd_median * scale
    # within the published ranges: area 0.02-0.4 (after rounding the sides), ratio 0.3-3.33
    assert area.min() >= 0.018 and area.max() <= 0.41
    assert aspect.min() >= 0.27 and aspect.max() <= 3.7


def test_channel_random_erasing_arguments():
    er = ChannelRandomErasing(1.0, value=(9.0, 9.0, 9.0))
    torch.manual_seed(0)
    out = er(torch.zeros(3, 32, 16))
    assert (out == 9.0).any() and (out == 0.0).any()
    assert torch.equal(ChannelRandomErasing(0.0)(out), out)
    with pytest.raises(InputError, match="value"):
        ChannelRandomErasing(value=(1.0, 2.0))
    with pytest.raises(InputError, match="area"):
        ChannelRandomErasing(area=(0.5, 0.1))
    with pytest.raises(InputError, match="min_aspect"):
        ChannelRandomErasing(min_aspect=0.0)


# --------------------------------------------------------------- pipelines

def _steps(t):
    return [type(s).__name__ for s in t.transforms]


def test_train_transform_published_order():
    T = tr.T
    for view, tail in (("visible", []), ("visible_ca", ["ChannelExchange"]), ("infrared", ["ChannelAdapGray"])):
        t = train_transform(288, 144, view)
        jitter = ["ColorJitter"] if view == "visible_ca" else []
        assert _steps(t) == (["Resize", "Pad", "RandomCrop", "RandomHorizontalFlip"] + jitter
                             + ["ToTensor", "Normalize", "ChannelRandomErasing"] + tail)
        resize, pad, crop = t.transforms[:3]
        assert resize.interpolation == T.InterpolationMode.BICUBIC and tuple(resize.size) == (288, 144)
        assert pad.padding == 10 and tuple(crop.size) == (288, 144)
        assert t.transforms[-(1 + len(tail))].value.flatten().tolist() == pytest.approx(ERASING_FILL)
    ir_ca = train_transform(288, 144, "infrared", color_jitter=True)
    assert _steps(ir_ca) == ["Resize", "Pad", "RandomCrop", "RandomHorizontalFlip", "ColorJitter", "ToTensor",
                             "Normalize", "ChannelRandomErasing", "ChannelAdapGray"]
    cj = ir_ca.transforms[4]
    assert cj.brightness == (0.5, 1.5) and cj.contrast == (0.5, 1.5) and cj.saturation == (0.5, 1.5)
    assert cj.hue == (-0.5, 0.5)
    assert "ColorJitter" not in _steps(train_transform(288, 144, "visible_ca", color_jitter=False))
    assert train_transform(64, 32, "visible", interpolation="bilinear").transforms[0].interpolation \
        == T.InterpolationMode.BILINEAR
    with pytest.raises(InputError, match="color_jitter"):
        train_transform(288, 144, "infrared", color_jitter="yes")
    with pytest.raises(InputError, match="interpolation"):
        train_transform(288, 144, "infrared", interpolation="nearest")


def test_train_transform_repeatable_with_jitter():
    from PIL import Image

    img = Image.fromarray((np.random.default_rng(0).random((40, 20, 3)) * 255).astype(np.uint8))
    t = train_transform(32, 16, "infrared", color_jitter=True)
    torch.manual_seed(3)
    a = t(img)
    torch.manual_seed(3)
    b = t(img)
    assert a.shape == (3, 32, 16) and torch.equal(a, b)


def test_ir_color_jitter_config():
    assert preset_config("paper").ir_color_jitter_stage1 is True
    assert preset_config("paper", dataset="regdb").ir_color_jitter_stage1 is False
    assert preset_config("smoke", dataset="regdb").ir_color_jitter_stage1 is False
    assert build_config("paper", overrides={"ir_color_jitter_stage1": "false"}).ir_color_jitter_stage1 is False


# ------------------------------------------------------------------ sampler

def _sampler_stats(batches, labels, cams, k=16):
    b = np.asarray(batches)
    groups = b.reshape(-1, k)
    ids = np.mean([np.unique(labels[x]).size for x in b])
    single = np.mean([np.unique(labels[g]).size == 1 for g in groups])
    cross = np.mean(cams[groups[:, 1:]] != cams[groups[:, :1]])
    s = np.sort(groups, axis=1)
    dup = np.mean((s[:, 1:] == s[:, :-1]).sum(1) / k)
    return ids, single, cross, dup


def _expected_duplicate_share(labels, cams, k=16):
    """Exact mean and per-pass variance of the duplicate share (each pass visits every identity once)."""
    def distinct_pmf(m, draws):
        p = np.zeros(m + 1)
        p[0] = 1.0
        for _ in range(draws):
            q = p * np.arange(m + 1) / m
            q[1:] += p[:-1] * (m - np.arange(m)) / m
            p = q
        return p

    means, variances = [], []
    for c in np.unique(labels):
        cc = cams[labels == c]
        n = cc.size
        m1 = m2 = 0.0
        for a in range(n):
            m = int((cc != cc[a]).sum()) or n - 1
            if m >= k:
                continue  # drawn without replacement: no duplicate
            pmf = distinct_pmf(m, k - 1)
            dup = (k - 1 - np.arange(m + 1)) / k
            m1 += (pmf * dup).sum() / n
            m2 += (pmf * dup ** 2).sum() / n
        means.append(m1)
        variances.append(m2 - m1 ** 2)
    return float(np.mean(means)), float(np.sum(variances)) / len(means) ** 2


def test_sampler_statistics_match_published(gs):
    labels, cams = gs["labels"], gs["cams"]
    n_batches, k = gs["batches"].shape[0], 16
    s = PseudoIdentitySampler(labels, cams, batch_size=128, num_instances=k, iterations=n_batches, seed=0)
    batches = list(s)
    assert len(batches) == n_batches and all(len(b) == 128 for b in batches)

    gold = _sampler_stats(gs["batches"], labels, cams)
    np.testing.assert_allclose(gold, [gs["stat_ids_per_batch"], gs["stat_groups_single_id"],
                                      gs["stat_cross_camera_share"], gs["stat_duplicate_share"]], rtol=1e-12)
    ids, single, cross, dup = _sampler_stats(batches, labels, cams)
    # structural statistics are fixed by the algorithm (30 passes over all 40 identities): exact
    assert ids == gs["stat_ids_per_batch"] == 8.0
    assert single == gs["stat_groups_single_id"] == 1.0
    assert cross == pytest.approx(float(gs["stat_cross_camera_share"]), rel=1e-12)  # 37 of 40 identities span cameras
    # duplicate share: random; exact expectation and variance of a 30-pass sample
    mean, var_pass = _expected_duplicate_share(labels, cams, k)
    sd = math.sqrt(var_pass / (n_batches * 128 / k / len(np.unique(labels))))
    assert abs(dup - gs["stat_duplicate_share"]) <= Z * sd * math.sqrt(2)
    assert abs(dup - mean) <= Z * sd
    assert abs(float(gs["stat_duplicate_share"]) - mean) <= Z * sd


def test_sampler_group_rule(gs):
    labels, cams = gs["labels"], gs["cams"]
    k = 16
    batches = list(PseudoIdentitySampler(labels, cams, batch_size=128, num_instances=k, iterations=40, seed=1))
    for b in batches:
        assert np.unique(labels[b]).size == 8  # no identity twice in a batch
        for g in np.asarray(b).reshape(-1, k):
            anchor, rest = g[0], g[1:]
            members = np.flatnonzero(labels == labels[anchor])
            other_cam = members[cams[members] != cams[anchor]]
            pool = other_cam if other_cam.size else members[members != anchor]
            assert np.isin(rest, pool).all()
            if pool.size >= k:
                assert np.unique(rest).size == k - 1  # without replacement


def test_sampler_passes_and_no_cams():
    labels = np.array([-1, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, -1, 3, 4, 4])
    s = PseudoIdentitySampler(labels, batch_size=8, num_instances=4, iterations=4, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 4
    for i, b in enumerate(batches):
        labs = labels[b]
        ids, counts = np.unique(labs, return_counts=True)
        assert (labs >= 0).all() and len(ids) == 2 and (counts == 4).all()
        for g in np.asarray(b).reshape(-1, 4):
            if labels[g[0]] != 3:
                assert g[0] not in g[1:]  # the anchor's partners exclude it (no camera given)
    # 5 identities, 2 per batch: each pass yields 2 batches and drops the fifth identity
    assert len(set(labels[batches[0]]) | set(labels[batches[1]])) == 4
    # fewer identities than a batch holds: every batch holds all of them
    small = list(PseudoIdentitySampler([0, 0, 1], batch_size=16, num_instances=4, iterations=2, seed=0))
    assert all(sorted(set(np.array([0, 0, 1])[b])) == [0, 1] and len(b) == 8 for b in small)
    # a Generator is used as is (the pipeline passes one)
    rng = np.random.default_rng(5)
    a = list(PseudoIdentitySampler(labels, batch_size=8, num_instances=4, iterations=3, seed=rng))
    b = list(PseudoIdentitySampler(labels, batch_size=8, num_instances=4, iterations=3, seed=np.random.default_rng(5)))
    assert a == b


def test_sampler_same_camera_fallback():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    cams = np.array([1, 1, 1, 1, 1, 2, 2, 2])
    batches = list(PseudoIdentitySampler(labels, cams, batch_size=8, num_instances=4, iterations=50, seed=0))
    for b in batches:
        for g in np.asarray(b).reshape(-1, 4):
            if labels[g[0]] == 0:  # one camera only: the other rows of the identity
                assert g[0] not in g[1:]
            else:
                assert (cams[g[1:]] != cams[g[0]]).all()


def test_sampler_bad_input():
    with pytest.raises(InputError, match="no cluster"):
        PseudoIdentitySampler(np.full(4, -1), batch_size=8, num_instances=4, iterations=1)
    with pytest.raises(InputError, match="cams"):
        PseudoIdentitySampler([0, 0, 1], [1, 2], batch_size=8, num_instances=4, iterations=1)
    with pytest.raises(InputError, match="labels"):
        PseudoIdentitySampler(["a", "b"], batch_size=8, num_instances=4, iterations=1)
    with pytest.raises(InputError, match="cams"):
        PseudoIdentitySampler([0, 1], [0.5, 1.0], batch_size=8, num_instances=4, iterations=1)
    with pytest.raises(InputError, match="batch_size"):
        PseudoIdentitySampler([0, 1], batch_size=2, num_instances=4, iterations=1)
