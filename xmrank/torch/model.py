"""The dual-stream ResNet + AGW re-identification network.

Per-modality stems (conv1, bn1, relu, maxpool: one copy for visible and one
for infrared images), then ResNet layer1-4 shared by both, with last stride 1,
non-local blocks inside layer2/layer3, generalised-mean (GeM) pooling and a
BNNeck (BatchNorm1d with a frozen bias). Built on torchvision's ResNet.

The network returns the L2-normalised BNNeck feature in both training and
evaluation mode: the memories of :mod:`xmrank.torch.memory` and the retrieval
evaluation both work on it.
"""

from __future__ import annotations

import copy
import logging
import os

from .._validation import InputError, check_int, check_option, check_real
from ._require import torch, torchvision

nn = torch.nn
F = torch.nn.functional

logger = logging.getLogger("xmrank")

__all__ = ["ARCHS", "DualStreamReID", "NonLocal", "GeM", "build_model", "load_imagenet_weights"]

#: Backbones: torchvision constructor, ImageNet weight enum name, feature width.
ARCHS = {
    "resnet18": ("resnet18", "ResNet18_Weights", 512),
    "resnet34": ("resnet34", "ResNet34_Weights", 512),
    "resnet50": ("resnet50", "ResNet50_Weights", 2048),
}


class NonLocal(nn.Module):
    """Embedded-dot-product non-local block (AGW), residual, zero-initialised output BN.

    Parameters
    ----------
    channels : int
    inter_channels : int, default=None
        Width of the embedding; None uses ``channels`` (the unsupervised
        VI-ReID code), AGW's supervised code uses ``channels // 2``.
    """

    def __init__(self, channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = channels if inter_channels is None else inter_channels
        self.g = nn.Conv2d(channels, inter, 1)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.out = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x):
        b, _, h, w = x.shape
        g = self.g(x).flatten(2)                     # B x C' x N
        theta = self.theta(x).flatten(2)             # B x C' x N
        phi = self.phi(x).flatten(2)                 # B x C' x N
        attn = theta.transpose(1, 2) @ phi / (h * w)  # B x N x N
        y = (g @ attn.transpose(1, 2)).view(b, -1, h, w)
        return x + self.out(y)


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent (initial ``p``)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x):
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


def _with_non_local(layer, n_blocks: int, inter_channels):
    """Insert ``n_blocks`` non-local blocks after the last ``n_blocks`` blocks of a ResNet layer."""
    blocks = list(layer.children())
    n_blocks = min(n_blocks, len(blocks))
    after = set(range(len(blocks) - n_blocks, len(blocks)))
    out = []
    for i, block in enumerate(blocks):
        out.append(block)
        if i in after:
            channels = block.conv3.out_channels if hasattr(block, "conv3") else block.conv2.out_channels
            out.append(NonLocal(channels, channels if inter_channels == "full" else channels // 2))
    return nn.Sequential(*out)


class DualStreamReID(nn.Module):
    """Two modality stems, shared ResNet body, GeM, BNNeck.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50"}, default="resnet50"
    non_local : tuple of 4 ints, default=(0, 2, 3, 0)
        Non-local blocks after the last blocks of layer1..layer4 (AGW: two in
        layer2, three in layer3). Capped at the layer's block count.
    non_local_width : {"full", "half"}, default="full"
        Embedding width of the non-local blocks: the channel count (the
        unsupervised VI-ReID code) or half of it (AGW).
    gem_p : float, default=3.0
        Initial GeM exponent; 0 selects plain average pooling.
    last_stride : {1, 2}, default=1
    backbone : torchvision ResNet, default=None
        A constructed (possibly pretrained) backbone; None builds a randomly
        initialised one.

    Forward
    -------
    ``model(images, modality)``: images ``(B, 3, H, W)``; modality an int
    (the whole batch) or a ``(B,)`` tensor of 0 (visible) / 1 (infrared).
    Returns the L2-normalised BNNeck features ``(B, D)``.
    """

    def __init__(self, arch: str = "resnet50", *, non_local=(0, 2, 3, 0), non_local_width: str = "full",
                 gem_p: float = 3.0, last_stride: int = 1, backbone=None):
        super().__init__()
        check_option(arch, "arch", tuple(ARCHS))
        check_option(non_local_width, "non_local_width", ("full", "half"))
        if last_stride not in (1, 2):
            raise InputError(f"last_stride must be 1 or 2; got {last_stride!r}.")
        non_local = tuple(non_local)
        if len(non_local) != 4:
            raise InputError(f"non_local must be 4 non-negative ints (one per ResNet layer); got {non_local!r}.")
        non_local = tuple(check_int(n, "non_local", minimum=0) for n in non_local)
        ctor, _, dim = ARCHS[arch]
        net = backbone if backbone is not None else getattr(torchvision.models, ctor)(weights=None)
        if last_stride == 1:
            first = net.layer4[0]
            # torchvision puts the stride on conv2 of a Bottleneck, on conv1 of a BasicBlock
            (first.conv2 if hasattr(first, "conv3") else first.conv1).stride = (1, 1)
            if first.downsample is not None:
                first.downsample[0].stride = (1, 1)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stems = nn.ModuleList([stem, copy.deepcopy(stem)])
        layers = [net.layer1, net.layer2, net.layer3, net.layer4]
        self.body = nn.Sequential(*[
            _with_non_local(layer, n, non_local_width) if n else layer for layer, n in zip(layers, non_local)
        ])
        self.pool = GeM(gem_p) if gem_p > 0 else nn.AdaptiveAvgPool2d(1)
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        nn.init.ones_(self.neck.weight)
        nn.init.zeros_(self.neck.bias)
        self.feature_dim = dim
        self.arch = arch

    def forward(self, images, modality):
        if isinstance(modality, int):
            x = self.stems[modality](images)
        else:
            modality = modality.to(images.device)
            parts = []
            order = []
            for m in (0, 1):
                idx = torch.nonzero(modality == m).flatten()
                if idx.numel():
                    parts.append(self.stems[m](images[idx]))
                    order.append(idx)
            x = torch.cat(parts)
            inverse = torch.empty_like(modality)
            inverse[torch.cat(order)] = torch.arange(len(modality), device=modality.device)
            x = x[inverse]
        x = self.body(x)
        x = self.pool(x).flatten(1)
        x = self.neck(x)
        return F.normalize(x, dim=1)


def load_imagenet_weights(arch: str, pretrained):
    """A torchvision ResNet with ImageNet weights, or None for random initialisation.

    Parameters
    ----------
    arch : str
        Key of :data:`ARCHS`.
    pretrained : {"none", "imagenet"} or path
        ``"none"``: random initialisation. ``"imagenet"``: torchvision's
        weight enum (downloads once into torch's cache; needs a network or a
        warm cache). A path: a local state dict saved from torchvision's
        model of the same ``arch`` (``.pth``).

    Raises
    ------
    xmrank.InputError
        When the file is missing or does not fit, or the download fails.
    """
    ctor, enum_name, _ = ARCHS[check_option(arch, "arch", tuple(ARCHS))]
    if pretrained in (None, "none"):
        return None
    build = getattr(torchvision.models, ctor)
    if pretrained == "imagenet":
        weights = getattr(torchvision.models, enum_name).IMAGENET1K_V1
        try:
            return build(weights=weights)
        except Exception as exc:  # network errors come as URLError, OSError, RuntimeError...
            raise InputError(
                f"could not get torchvision's ImageNet weights for {arch} ({exc.__class__.__name__}: {exc}); "
                f"pass --pretrained PATH with a local .pth state dict, or --pretrained none for random initialisation."
            ) from None
    path = os.fspath(pretrained)
    if not os.path.isfile(path):
        raise InputError(f"pretrained weights file {path} not found; pass a .pth state dict, 'imagenet' or 'none'.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read pretrained weights {path} ({exc.__class__.__name__}: {exc}).") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"pretrained weights {path} hold a {type(state).__name__}, not a state dict.")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = build(weights=None)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise InputError(f"pretrained weights {path} do not fit a torchvision {arch}: {str(exc).splitlines()[0]}") from None
    body_missing = [k for k in missing if not k.startswith("fc.")]
    if body_missing:
        raise InputError(
            f"pretrained weights {path} lack {len(body_missing)} {arch} parameters (first: {body_missing[0]}); "
            f"is it a torchvision {arch} state dict?"
        )
    if unexpected:
        logger.info("pretrained weights %s: ignored %d unexpected keys", path, len(unexpected))
    return net


def build_model(arch: str = "resnet50", *, pretrained="none", non_local=(0, 2, 3, 0), non_local_width="full",
                gem_p: float = 3.0, last_stride: int = 1) -> DualStreamReID:
    """Build the dual-stream network, optionally from ImageNet weights (see :func:`load_imagenet_weights`)."""
    gem_p = check_real(gem_p, "gem_p", low=0.0)
    backbone = load_imagenet_weights(arch, pretrained)
    return DualStreamReID(arch, non_local=non_local, non_local_width=non_local_width, gem_p=gem_p,
                          last_stride=last_stride, backbone=backbone)
