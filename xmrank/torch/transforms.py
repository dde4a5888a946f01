"""Channel augmentations and the train/test image pipelines, as in the published BMIL code.

The three channel augmentations work on ``(3, H, W)`` tensors (after
``ToTensor``/``Normalize``) and draw their randomness from torch's generator,
so ``torch.manual_seed`` makes a run repeatable. Each channel augmentation
ends in one of five outcomes, named in :data:`OUTCOMES`; :func:`channel_outcome`
applies a given one.

- :class:`ChannelExchange`: replace the image by one of its channels (or its
  luminance), copied to all three: an RGB image that looks single-band.
  ``gray=2`` (the recipe) picks R, G or B, each a third of the time.
- :class:`ChannelAdapGray`: for infrared images. R, G, B each a quarter of the
  time; in the last quarter the luminance image with probability
  ``probability``, else the image unchanged. At 0.5 that is R, G, B 1/4
  each, luminance 1/8, unchanged 1/8 (it is not "unchanged half the time").
- :class:`ChannelRandomErasing`: with a probability, fill a random rectangle
  (0.02-0.4 of the area, height/width ratio uniform on [0.3, 1/0.3]) with
  (0.4914, 0.4822, 0.4465), a value in normalised space.

:func:`train_transform` builds the published training pipelines (bicubic
resize, pad 10, random crop, flip, optional ColorJitter, normalise, erasing,
then the view's channel augmentation).
"""

from __future__ import annotations

import math

from .._validation import InputError, check_int, check_option, check_real
from ._require import torch, torchvision

T = torchvision.transforms

__all__ = [
    "ChannelExchange",
    "ChannelAdapGray",
    "ChannelRandomErasing",
    "channel_outcome",
    "train_transform",
    "test_transform",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ERASING_FILL",
    "LUMA_WEIGHTS",
    "OUTCOMES",
    "VIEWS",
    "INTERPOLATIONS",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Fill of :class:`ChannelRandomErasing` (the published value, used as is in normalised space).
ERASING_FILL = (0.4914, 0.4822, 0.4465)
#: Luminance weights of the channel augmentations (R, G, B).
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)
#: Outcomes of the channel augmentations, in the order of the frequency tables.
OUTCOMES = ("identity", "R", "G", "B", "luminance")
#: Kinds of training view: plain RGB, colour-augmented RGB, infrared.
VIEWS = ("visible", "visible_ca", "infrared")
#: Resize interpolations accepted by :func:`train_transform` and :func:`test_transform`.
INTERPOLATIONS = ("bicubic", "bilinear", "lanczos")


def _randint(high: int) -> int:
    """Uniform integer in [0, high) from torch's generator."""
    return int(torch.randint(high, (1,)).item())


def _uniform() -> float:
    """Uniform float in [0, 1) from torch's generator (double precision)."""
    return float(torch.rand(1, dtype=torch.float64).item())


def channel_outcome(img, outcome: str):
    """Apply one outcome of the channel augmentations to a ``(3, H, W)`` tensor.

    Parameters
    ----------
    img : torch.Tensor, shape (3, H, W)
    outcome : {"identity", "R", "G", "B", "luminance"}
        ``"R"``/``"G"``/``"B"`` copy that channel to all three;
        ``"luminance"`` copies ``0.2989 R + 0.587 G + 0.114 B``;
        ``"identity"`` returns ``img`` itself.

    Returns
    -------
    torch.Tensor
        A new tensor (``img`` is not modified), or ``img`` for ``"identity"``.
    """
    check_option(outcome, "outcome", OUTCOMES)
    if outcome == "identity":
        return img
    if outcome == "luminance":
        band = img[0] * LUMA_WEIGHTS[0] + img[1] * LUMA_WEIGHTS[1] + img[2] * LUMA_WEIGHTS[2]
    else:
        band = img["RGB".index(outcome)]
    return band.unsqueeze(0).expand_as(img).clone()


class ChannelExchange:
    """Replace the image by one randomly chosen channel, copied to all three.

    The choice is uniform on ``0..gray``: 0, 1, 2 are R, G, B and 3 is the
    luminance image, so ``gray=2`` (the recipe's RGB colour view) picks R, G
    or B a third of the time each and ``gray=3`` adds the luminance.

    Parameters
    ----------
    gray : int, default=2
        Highest choice, 0 to 3.
    """

    def __init__(self, gray: int = 2):
        self.gray = check_int(gray, "gray", minimum=0, maximum=3)

    def draw(self) -> str:
        """Draw an outcome (one of :data:`OUTCOMES`) from torch's generator."""
        return OUTCOMES[1 + _randint(self.gray + 1)]

    def __call__(self, img):
        return channel_outcome(img, self.draw())

    def __repr__(self):
        return f"ChannelExchange(gray={self.gray})"


class ChannelAdapGray:
    """Channel augmentation of infrared images.

    One of four cases, equally likely: R, G or B copied to all three
    channels, or (fourth case) the luminance image with probability
    ``probability`` and the unchanged image otherwise. The outcome shares are
    R, G, B 1/4 each, luminance ``probability/4``, unchanged
    ``(1 - probability)/4``.

    Parameters
    ----------
    probability : float, default=0.5
        Chance of the luminance image in the fourth case.
    """

    def __init__(self, probability: float = 0.5):
        self.probability = check_real(probability, "probability", low=0.0, high=1.0)

    def draw(self) -> str:
        """Draw an outcome (one of :data:`OUTCOMES`) from torch's generator."""
        choice = _randint(4)
        if choice < 3:
            return OUTCOMES[1 + choice]
        return "luminance" if _uniform() < self.probability else "identity"

    def __call__(self, img):
        return channel_outcome(img, self.draw())

    def __repr__(self):
        return f"ChannelAdapGray(probability={self.probability})"


class ChannelRandomErasing:
    """Random erasing: with probability ``probability`` fill a random rectangle with ``value``.

    Up to 100 attempts draw an area share uniformly from ``area`` and a
    height/width ratio uniformly (not log-uniformly) from
    ``[min_aspect, 1/min_aspect]``; the rectangle's sides are the rounded
    ``sqrt(area * ratio)`` and ``sqrt(area / ratio)``. The first rectangle
    smaller than the image in both sides is placed uniformly and filled; if
    none fits, the image is returned unchanged.

    Parameters
    ----------
    probability : float, default=0.5
    area : (float, float), default=(0.02, 0.4)
        Range of the rectangle's share of the image area.
    min_aspect : float, default=0.3
        Lower end of the ratio range; the upper end is ``1/min_aspect``.
    value : sequence of 3 floats, default=ERASING_FILL
        Fill per channel, used as is (the images are already normalised).
    """

    def __init__(self, probability: float = 0.5, *, area=(0.02, 0.4), min_aspect: float = 0.3, value=ERASING_FILL):
        self.probability = check_real(probability, "probability", low=0.0, high=1.0)
        try:
            lo, hi = area
        except (TypeError, ValueError):
            raise InputError(f"area must be a pair (low, high) of area shares; got {area!r}.") from None
        self.area = (check_real(lo, "area", low=0.0, high=1.0), check_real(hi, "area", low=0.0, high=1.0))
        if self.area[0] > self.area[1]:
            raise InputError(f"area must be (low, high) with low <= high; got {area!r}.")
        self.min_aspect = check_real(min_aspect, "min_aspect", low=0.0, high=1.0, low_open=True)
        try:
            value = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise InputError(f"value must be 3 numbers (one fill per channel); got {value!r}.") from None
        if len(value) != 3:
            raise InputError(f"value must be 3 numbers (one fill per channel); got {len(value)}.")
        self.value = torch.tensor(value, dtype=torch.float32).view(-1, 1, 1)

    def sample_box(self, height: int, width: int):
        """Draw a rectangle for an image of ``height`` x ``width`` (torch's generator).

        Returns
        -------
        (top, left, box_height, box_width) or None
            None when no attempt fitted (the image stays unchanged). The
            erasing probability is not drawn here.
        """
        total = height * width
        hi_aspect = 1.0 / self.min_aspect
        for _ in range(100):
            share = self.area[0] + (self.area[1] - self.area[0]) * _uniform()
            aspect = self.min_aspect + (hi_aspect - self.min_aspect) * _uniform()
            target = share * total
            eh = int(round(math.sqrt(target * aspect)))
            ew = int(round(math.sqrt(target / aspect)))
            if eh < height and ew < width:
                top = _randint(height - eh + 1)
                left = _randint(width - ew + 1)
                return top, left, eh, ew
        return None

    def __call__(self, img):
        if _uniform() >= self.probability:
            return img
        _, h, w = img.shape
        box = self.sample_box(h, w)
        if box is None:
            return img
        top, left, eh, ew = box
        img = img.clone()
        img[:, top:top + eh, left:left + ew] = self.value.to(img.dtype)
        return img

    def __repr__(self):
        return f"ChannelRandomErasing(probability={self.probability})"


def _interpolation(name: str):
    check_option(name, "interpolation", INTERPOLATIONS)
    mode = T.InterpolationMode
    return {"bicubic": mode.BICUBIC, "bilinear": mode.BILINEAR, "lanczos": mode.LANCZOS}[name]


def train_transform(height: int, width: int, view: str = "visible", *, erasing: float = 0.5,
                    gray_probability: float = 0.5, color_jitter: bool | None = None,
                    interpolation: str = "bicubic"):
    """Training pipeline of one view, in the published order.

    Resize (bicubic), pad 10 (scaled with ``height``/288 for other sizes),
    random crop back to ``height`` x ``width``, horizontal flip,
    [ColorJitter(0.5, 0.5, 0.5, 0.5)], ToTensor, Normalize (ImageNet),
    :class:`ChannelRandomErasing`, then the view's channel augmentation.

    Parameters
    ----------
    height, width : int
        Network input size (the recipe: 288 x 144).
    view : {"visible", "visible_ca", "infrared"}
        ``"visible"``: no channel augmentation.
        ``"visible_ca"``: ColorJitter and :class:`ChannelExchange` (``gray=2``).
        ``"infrared"``: :class:`ChannelAdapGray`.
    erasing : float, default=0.5
        Probability of :class:`ChannelRandomErasing` (all views).
    gray_probability : float, default=0.5
        ``probability`` of :class:`ChannelAdapGray` (infrared view).
    color_jitter : bool, optional
        Add the ColorJitter step. Default: only for ``"visible_ca"``. The
        published SYSU-MM01 recipe sets it for the infrared view in stage 1
        (``TrainConfig.ir_color_jitter_stage1``).
    interpolation : {"bicubic", "bilinear"}, default="bicubic"
        Resize interpolation (the published code trains with bicubic).

    Returns
    -------
    torchvision.transforms.Compose
        PIL image in, ``(3, height, width)`` float tensor out.
    """
    height = check_int(height, "height", minimum=8)
    width = check_int(width, "width", minimum=8)
    check_option(view, "view", VIEWS)
    if color_jitter is None:
        color_jitter = view == "visible_ca"
    elif not isinstance(color_jitter, bool):
        raise InputError(f"color_jitter must be True, False or None; got {color_jitter!r}.")
    pad = max(1, int(round(10 * height / 288)))
    steps = [T.Resize((height, width), interpolation=_interpolation(interpolation)), T.Pad(pad),
             T.RandomCrop((height, width)), T.RandomHorizontalFlip()]
    if color_jitter:
        steps.append(T.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD), ChannelRandomErasing(erasing)]
    if view == "visible_ca":
        steps.append(ChannelExchange(gray=2))
    elif view == "infrared":
        steps.append(ChannelAdapGray(gray_probability))
    return T.Compose(steps)


def test_transform(height: int, width: int, *, interpolation: str = "bilinear"):
    """Evaluation pipeline: resize and normalise.

    Parameters
    ----------
    height, width : int
    interpolation : {"bilinear", "bicubic", "lanczos"}, default="bilinear"
        Resize interpolation. The published code resizes the images it
        clusters with bicubic and its test images with PIL's Lanczos
        (``Image.ANTIALIAS``); the trainer passes those.
    """
    height = check_int(height, "height", minimum=8)
    width = check_int(width, "width", minimum=8)
    return T.Compose([T.Resize((height, width), interpolation=_interpolation(interpolation)), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
