"""The dual-stream ResNet + AGW re-identification network.

Per-modality stems (conv1, bn1, relu, maxpool: one copy for visible and one
for infrared images), then ResNet layer1-4 shared by both, with last stride 1,
non-local blocks inside layer2/layer3, generalised-mean (GeM) pooling and a
BNNeck (BatchNorm1d with a frozen bias). Built on torchvision's ResNet.

As the published BMIL code (commit 79cc647) builds it: non-local blocks of
embedding width 1, GeM with p = 3 fixed and ``+1e-12`` inside the root, BNNeck
weight initialised N(1, 0.01). A published checkpoint maps 1:1 onto it
(:func:`xmrank.torch.loading.load_model`).

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

logger = logging.getLogger(__name__)

__all__ = ["ARCHS", "NON_LOCAL_WIDTHS", "DualStreamReID", "NonLocal", "GeM", "build_model", "load_imagenet_weights"]

#: Backbones: torchvision constructor, ImageNet weight enum name, feature width.
ARCHS = {
    "resnet18": ("resnet18", "ResNet18_Weights", 512),
    "resnet34": ("resnet34", "ResNet34_Weights", 512),
    "resnet50": ("resnet50", "ResNet50_Weights", 2048),
}


#: Embedding widths of the non-local blocks (``non_local_width``): name -> inter channels for C channels.
NON_LOCAL_WIDTHS = {
    "one": lambda channels: 1,               # the published code (AGW: reduc_ratio // reduc_ratio)
    "half": lambda channels: channels // 2,  # departure: AGW's paper text
    "full": lambda channels: channels,       # departure: xmrank's former default
}


class NonLocal(nn.Module):
    """Embedded-dot-product non-local block (AGW), residual, zero-initialised output BN.

    ``z = x + BN(W(y))`` with ``y_i = (1/N) sum_j (theta_i . phi_j) g_j`` over the
    ``N = h*w`` positions (dot-product affinity divided by N, no softmax).

    Parameters
    ----------
    channels : int
    inter_channels : int, default=1
        Width of the theta/phi/g embeddings. The published code uses 1 (its
        AGW module computes ``reduc_ratio // reduc_ratio``); AGW's paper
        text says ``channels // 2``.

    Notes
    -----
    The sum is evaluated as ``theta^T (phi g^T) / N``: the same quantity as
    the published ``((theta^T phi) / N) g^T`` up to float rounding, but
    O(N C'^2) instead of O(N^2 C') work and memory, which for C' = 1 saves
    the N x N affinity matrix.
    """

    def __init__(self, channels: int, inter_channels: int = 1):
        super().__init__()
        channels = check_int(channels, "channels", minimum=1)
        inter = check_int(inter_channels, "inter_channels", minimum=1)
        self.inter_channels = inter
        self.g = nn.Conv2d(channels, inter, 1)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.out = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x):
        b, _, h, w = x.shape
        n = h * w
        g = self.g(x).flatten(2)                     # B x C' x N
        theta = self.theta(x).flatten(2)             # B x C' x N
        phi = self.phi(x).flatten(2)                 # B x C' x N
        if self.inter_channels < n:
            y = (phi @ g.transpose(1, 2) / n).transpose(1, 2) @ theta     # (g phi^T / N) theta: B x C' x N
        else:
            y = g @ (theta.transpose(1, 2) @ phi / n).transpose(1, 2)     # g (theta^T phi / N)^T
        return x + self.out(y.view(b, -1, h, w))


class GeM(nn.Module):
    """Generalised-mean pooling ``(mean(x^p) + eps)^(1/p)`` over the spatial positions.

    Parameters
    ----------
    p : float, default=3.0
        The exponent.
    learnable : bool, default=False
        False (the published code): ``p`` is a buffer, fixed, outside the
        optimiser and its weight decay. True: a trained parameter (a
        departure from the published code).
    eps : float, default=1e-12
        Added to the mean before the root, as the published code does: an
        all-zero channel pools to ``eps^(1/p)`` (1e-4 for p = 3), not to 0.

    Notes
    -----
    Inputs are clamped at 0 first, a no-op on the post-ReLU ResNet output
    that keeps the odd power of a negative input from giving NaN.
    """

    def __init__(self, p: float = 3.0, *, learnable: bool = False, eps: float = 1e-12):
        super().__init__()
        p = check_real(p, "p", low=0.0, low_open=True)
        self.eps = check_real(eps, "eps", low=0.0)
        self.learnable = bool(learnable)
        value = torch.full((1,), p)
        if self.learnable:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)

    def forward(self, x):
        return (x.clamp(min=0).pow(self.p).mean(dim=(2, 3)) + self.eps).pow(1.0 / self.p)

    def extra_repr(self):
        return f"p={float(self.p):g}, learnable={self.learnable}, eps={self.eps:g}"


def _with_non_local(layer, n_blocks: int, width: str):
    """Insert ``n_blocks`` non-local blocks after the last ``n_blocks`` blocks of a ResNet layer."""
    blocks = list(layer.children())
    n_blocks = min(n_blocks, len(blocks))
    after = set(range(len(blocks) - n_blocks, len(blocks)))
    out = []
    for i, block in enumerate(blocks):
        out.append(block)
        if i in after:
            channels = block.conv3.out_channels if hasattr(block, "conv3") else block.conv2.out_channels
            out.append(NonLocal(channels, NON_LOCAL_WIDTHS[width](channels)))
    return nn.Sequential(*out)


class DualStreamReID(nn.Module):
    """Two modality stems, shared ResNet body, GeM, BNNeck.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50"}, default="resnet50"
    non_local : tuple of 4 ints, default=(0, 2, 3, 0)
        Non-local blocks after the last blocks of layer1..layer4 (AGW: two in
        layer2, three in layer3). Capped at the layer's block count.
    non_local_width : {"one", "half", "full"}, default="one"
        Embedding width of the non-local blocks: 1 (the published code),
        half the channel count or the channel count (departures, kept as
        options).
    gem_p : float, default=3.0
        GeM exponent; 0 selects plain average pooling.
    gem_learnable : bool, default=False
        Train the GeM exponent (a departure: the published code keeps p = 3
        fixed).
    last_stride : {1, 2}, default=1
    backbone : torchvision ResNet, default=None
        A constructed (possibly pretrained) backbone; None builds a randomly
        initialised one.

    Notes
    -----
    Forward: ``model(images, modality)``: images ``(B, 3, H, W)``; modality an int
    (the whole batch) or a ``(B,)`` tensor of 0 (visible) / 1 (infrared).
    Returns the L2-normalised BNNeck features ``(B, D)``, in training and in
    evaluation mode. :meth:`features` returns the un-normalised pooled and
    BNNeck features.

    In training mode the batch-norm statistics of the shared body and of
    the BNNeck are taken over the whole batch, both modalities together, as
    the published code does with its ``modal=0`` forward; the order of the
    rows does not change them.
    """

    def __init__(self, arch: str = "resnet50", *, non_local=(0, 2, 3, 0), non_local_width: str = "one",
                 gem_p: float = 3.0, gem_learnable: bool = False, last_stride: int = 1, backbone=None):
        super().__init__()
        check_option(arch, "arch", tuple(ARCHS))
        check_option(non_local_width, "non_local_width", tuple(NON_LOCAL_WIDTHS))
        if last_stride not in (1, 2):
            raise InputError(f"last_stride must be 1 or 2; got {last_stride!r}.")
        try:
            non_local = tuple(non_local)
        except TypeError:
            raise InputError(
                f"non_local must be 4 non-negative ints (one per ResNet layer); got {non_local!r}."
            ) from None
        if len(non_local) != 4:
            raise InputError(f"non_local must be 4 non-negative ints (one per ResNet layer); got {non_local!r}.")
        non_local = tuple(check_int(n, "non_local", minimum=0) for n in non_local)
        gem_p = check_real(gem_p, "gem_p", low=0.0)
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
        self.pool = GeM(gem_p, learnable=gem_learnable) if gem_p > 0 else nn.AdaptiveAvgPool2d(1)
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        nn.init.normal_(self.neck.weight, 1.0, 0.01)  # the published code's BNNeck initialisation
        nn.init.zeros_(self.neck.bias)
        self.feature_dim = dim
        self.arch = arch
        self.non_local = non_local
        self.non_local_width = non_local_width
        self.last_stride = last_stride

    def _stems(self, images, modality):
        if isinstance(modality, int):
            return self.stems[modality](images)
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
        return x[inverse]

    def features(self, images, modality):
        """The pooled feature and the BNNeck feature, both un-normalised.

        Parameters
        ----------
        images : Tensor, shape (B, 3, H, W)
        modality : int or Tensor of shape (B,)
            0 (visible) or 1 (infrared), for the whole batch or per row.

        Returns
        -------
        pool : Tensor, shape (B, D)
            The GeM (or average) pooled feature: the published code's ``x_pool``.
        bn : Tensor, shape (B, D)
            The BNNeck feature: the published code's training-mode ``feat``;
            :meth:`forward` returns it L2-normalised.
        """
        x = self.body(self._stems(images, modality))
        pool = self.pool(x).flatten(1)
        return pool, self.neck(pool)

    def forward(self, images, modality):
        return F.normalize(self.features(images, modality)[1], dim=1)


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


def build_model(arch: str = "resnet50", *, pretrained="none", non_local=(0, 2, 3, 0), non_local_width: str = "one",
                gem_p: float = 3.0, gem_learnable: bool = False, last_stride: int = 1) -> DualStreamReID:
    """Build the dual-stream network, optionally from ImageNet weights.

    Parameters
    ----------
    arch, non_local, non_local_width, gem_p, gem_learnable, last_stride
        See :class:`DualStreamReID`.
    pretrained : {"none", "imagenet"} or path, default="none"
        See :func:`load_imagenet_weights`.

    Returns
    -------
    model : DualStreamReID
    """
    gem_p = check_real(gem_p, "gem_p", low=0.0)
    check_option(non_local_width, "non_local_width", tuple(NON_LOCAL_WIDTHS))
    backbone = load_imagenet_weights(arch, pretrained)
    return DualStreamReID(arch, non_local=non_local, non_local_width=non_local_width, gem_p=gem_p,
                          gem_learnable=gem_learnable, last_stride=last_stride, backbone=backbone)
