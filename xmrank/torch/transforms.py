"""Channel augmentations and the train/test image pipelines.

The three channel augmentations work on ``(3, H, W)`` tensors (after
``ToTensor``/``Normalize``) and draw their randomness from torch's generator,
so ``torch.manual_seed`` makes a run repeatable.

- :class:`ChannelExchange`: replace the image by one of its channels (or its
  luminance), copied to all three: an RGB image that looks single-band.
- :class:`ChannelAdapGray`: with a probability, the same on infrared images.
- :class:`ChannelRandomErasing`: random erasing of a rectangle.
"""

from __future__ import annotations

import math

from .._validation import check_int, check_option, check_real
from ._require import torch, torchvision

T = torchvision.transforms

__all__ = [
    "ChannelExchange",
    "ChannelAdapGray",
    "ChannelRandomErasing",
    "RandomView",
    "train_transform",
    "test_transform",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.2989, 0.587, 0.114)


def _randint(high: int) -> int:
    """Uniform integer in [0, high) from torch's generator."""
    return int(torch.randint(high, (1,)).item())


def _single_band(img, choice: int):
    if choice < 3:
        band = img[choice]
    else:
        band = img[0] * _LUMA[0] + img[1] * _LUMA[1] + img[2] * _LUMA[2]
    return band.unsqueeze(0).expand_as(img).clone()


class ChannelExchange:
    """Copy one randomly chosen channel to all three (choice in ``0..gray``; 3 = luminance).

    Parameters
    ----------
    gray : int, default=2
        Highest choice: 2 picks among R, G, B; 3 adds the luminance image.
    """

    def __init__(self, gray: int = 2):
        self.gray = check_int(gray, "gray", minimum=0, maximum=3)

    def __call__(self, img):
        return _single_band(img, _randint(self.gray + 1))

    def __repr__(self):
        return f"ChannelExchange(gray={self.gray})"


class ChannelAdapGray:
    """With probability ``probability``, replace the image by R, G, B or luminance (equally likely)."""

    def __init__(self, probability: float = 0.5):
        self.probability = check_real(probability, "probability", low=0.0, high=1.0)

    def __call__(self, img):
        if torch.rand(1).item() >= self.probability:
            return img
        return _single_band(img, _randint(4))

    def __repr__(self):
        return f"ChannelAdapGray(probability={self.probability})"


class ChannelRandomErasing:
    """Random erasing: with probability ``probability`` fill a random rectangle with ``value``.

    Parameters
    ----------
    probability : float, default=0.5
    area : (float, float), default=(0.02, 0.4)
        Range of the rectangle's share of the image area.
    min_aspect : float, default=0.3
        Aspect ratios are drawn log-uniformly from ``[min_aspect, 1/min_aspect]``.
    value : sequence of 3 floats, default=(0, 0, 0)
        Fill per channel; 0 is the data mean after ``Normalize``.
    """

    def __init__(self, probability: float = 0.5, *, area=(0.02, 0.4), min_aspect: float = 0.3, value=(0.0, 0.0, 0.0)):
        self.probability = check_real(probability, "probability", low=0.0, high=1.0)
        self.area = (check_real(area[0], "area", low=0.0, high=1.0), check_real(area[1], "area", low=0.0, high=1.0))
        self.min_aspect = check_real(min_aspect, "min_aspect", low=0.0, high=1.0, low_open=True)
        self.value = torch.tensor(value, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img):
        if torch.rand(1).item() >= self.probability:
            return img
        _, h, w = img.shape
        for _ in range(100):
            r = torch.rand(3).tolist()
            target = (self.area[0] + (self.area[1] - self.area[0]) * r[0]) * h * w
            log_lo = math.log(self.min_aspect)
            aspect = math.exp(log_lo + (-2 * log_lo) * r[1])
            eh = int(round(math.sqrt(target * aspect)))
            ew = int(round(math.sqrt(target / aspect)))
            if 0 < eh < h and 0 < ew < w:
                y = _randint(h - eh + 1)
                x = _randint(w - ew + 1)
                img = img.clone()
                img[:, y:y + eh, x:x + ew] = self.value.to(img.dtype)
                return img
        return img

    def __repr__(self):
        return f"ChannelRandomErasing(probability={self.probability})"


class RandomView:
    """Apply one of several transforms, chosen uniformly with torch's generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        return self.transforms[_randint(len(self.transforms))](img)

    def __repr__(self):
        return f"RandomView({self.transforms!r})"


#: Kinds of training view: plain RGB, colour-augmented RGB, infrared.
VIEWS = ("visible", "visible_ca", "infrared")


def train_transform(height: int, width: int, view: str = "visible", *, erasing: float = 0.5,
                    gray_probability: float = 0.5):
    """Training pipeline of one view.

    Parameters
    ----------
    height, width : int
        Network input size (the recipe: 288 x 144).
    view : {"visible", "visible_ca", "infrared"}
        ``"visible"``: resize, pad-and-crop, flip, erasing.
        ``"visible_ca"``: the same plus ColorJitter and :class:`ChannelExchange`.
        ``"infrared"``: the same as visible plus :class:`ChannelAdapGray`.
    erasing : float, default=0.5
        Probability of :class:`ChannelRandomErasing` (all views).
    gray_probability : float, default=0.5
        Probability of :class:`ChannelAdapGray` (infrared view).
    """
    height = check_int(height, "height", minimum=8)
    width = check_int(width, "width", minimum=8)
    check_option(view, "view", VIEWS)
    pad = max(1, int(round(10 * height / 288)))
    steps = [T.Resize((height, width)), T.Pad(pad), T.RandomCrop((height, width)), T.RandomHorizontalFlip()]
    if view == "visible_ca":
        steps.append(T.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD), ChannelRandomErasing(erasing)]
    if view == "visible_ca":
        steps.append(ChannelExchange(gray=2))
    elif view == "infrared":
        steps.append(ChannelAdapGray(gray_probability))
    return T.Compose(steps)


def test_transform(height: int, width: int):
    """Evaluation pipeline: resize and normalise."""
    height = check_int(height, "height", minimum=8)
    width = check_int(width, "width", minimum=8)
    return T.Compose([T.Resize((height, width)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
