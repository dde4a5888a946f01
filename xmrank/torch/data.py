"""Image loading, torch Datasets over :class:`~xmrank.datasets.ImageRecord` lists, training-set readers.

- :func:`folder_records`: a user's own unlabeled data, ``root/visible/**`` and
  ``root/infrared/**`` (nested folders allowed).
- :func:`training_records`: the training images of ``sysu``, ``synthetic``,
  ``regdb`` or ``folder`` (SYSU-MM01 and RegDB through :mod:`xmrank.datasets`).
- :class:`RecordDataset`: ``(image tensor(s), row index)`` items, with an
  optional in-memory cache of decoded, resized images.
- :class:`SeededBatches` and :func:`make_loader`: DataLoaders whose random
  augmentations depend only on the run's seed, not on the number of worker
  processes (:func:`default_num_workers` picks that number).
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np

from .._validation import InputError, check_option
from ..datasets import INFRARED, VISIBLE, ImageRecord, regdb_records, sysu_train_records
from ..datasets._files import IMAGE_EXTENSIONS, Skipped, check_inside, real_root, require_dir, walk_images
from ._require import torch

logger = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "folder_records",
    "training_records",
    "load_image",
    "ImageCache",
    "RecordDataset",
    "collate_views",
    "worker_errors",
    "SeededBatches",
    "make_loader",
    "default_num_workers",
    "resolve_num_workers",
]

#: Training-set kinds accepted by ``dataset=``.
DATASETS = ("sysu", "regdb", "folder", "synthetic")
_FOLDER_MODALITIES = {"visible": VISIBLE, "infrared": INFRARED}


def folder_records(root) -> list[ImageRecord]:
    """Unlabeled images under ``root/visible`` and ``root/infrared`` (any depth), in sorted path order.

    Parameters
    ----------
    root : str or path-like
        A folder holding ``visible/`` and ``infrared/`` sub-folders; files
        with the endings of :data:`IMAGE_EXTENSIONS` (any case) are read,
        hidden files and folders are skipped, and so are (with one warning)
        links to files or folders outside ``root`` and other files.

    Returns
    -------
    records : list of ImageRecord
        Visible images first. ``pid`` is -1 (unknown), ``cam`` is 1 for
        visible and 2 for infrared images.

    Raises
    ------
    xmrank.InputError
        If ``root`` or either sub-folder is missing, leads outside ``root``,
        or holds no image.
    """
    root = require_dir(root, "folder data set root")
    root_real = real_root(root)
    skipped = Skipped("folder data set", root)
    out = []
    for name, modality in _FOLDER_MODALITIES.items():
        top = os.path.join(root, name)
        if not os.path.isdir(top):
            raise InputError(f"folder data set {root!r} has no {name}/ sub-folder; expected root/visible and root/infrared.")
        check_inside(top, root_real, "folder data set", "sub-folder")
        paths = walk_images(top, root_real, skipped)
        if not paths:
            raise InputError(f"folder data set: found no images under {top} (endings: {', '.join(IMAGE_EXTENSIONS)}).")
        out.extend(ImageRecord(p, -1, modality + 1, modality) for p in paths)
    skipped.warn()
    return out


def training_records(dataset: str, root, *, trial: int = 1) -> list[ImageRecord]:
    """The training images of a data set.

    Parameters
    ----------
    dataset : {"sysu", "regdb", "folder", "synthetic"}
        ``"synthetic"`` reads the SYSU-MM01 layout that
        :func:`xmrank.datasets.make_synthetic` writes.
    root : str or path-like
    trial : int, default=1
        RegDB split (1-10).
    """
    check_option(dataset, "dataset", DATASETS)
    if dataset in ("sysu", "synthetic"):
        return sysu_train_records(root)
    if dataset == "regdb":
        return (regdb_records(root, split="train", trial=trial, modality="visible")
                + regdb_records(root, split="train", trial=trial, modality="thermal"))
    return folder_records(root)


def load_image(path: str, size=None):
    """Open an image as RGB (PIL), optionally resized to ``size = (height, width)``.

    Raises
    ------
    xmrank.InputError
        When the file is missing, not a readable image, or larger than
        Pillow's decompression-bomb limit (:func:`xmrank.datasets.images.open_image`).
    """
    from PIL import Image

    from ..datasets.images import open_image

    with open_image(path) as img:
        img = img.convert("RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BICUBIC)
    return img


class ImageCache:
    """Decoded images kept in memory, resized to ``size = (height, width)``.

    Worth it for small sets (the synthetic one, RegDB); SYSU-MM01 at
    288 x 144 needs about 4 GB.
    """

    def __init__(self, size):
        self.size = tuple(size)
        self._images = {}

    def __call__(self, path: str):
        img = self._images.get(path)
        if img is None:
            img = self._images[path] = load_image(path, self.size)
        return img

    def __len__(self):
        return len(self._images)

    def fill(self, paths):
        """Decode every path now (before worker processes start, so that they inherit the images)."""
        for path in paths:
            self(path)


class RecordDataset(torch.utils.data.Dataset):
    """Images of a record list through a transform.

    Parameters
    ----------
    records : sequence of ImageRecord
    transform : callable or sequence of callables
        Applied to the PIL image; with several, the item holds one tensor
        per transform (e.g. two views of a visible image).
    loader : callable, default=None
        ``path -> PIL image``; an :class:`ImageCache` or None for
        :func:`load_image`.

    Notes
    -----
    Each item is ``(tensor, ..., index, modality)``: the view(s), the record's position
    in ``records`` and its modality code. The key is the position, or
    ``(position, seed)`` (what :class:`SeededBatches` yields): the random
    transforms then draw from torch's and Python's generators seeded with
    ``seed``, in whichever process runs them, and the caller's generator
    states are left as they were.
    """

    def __init__(self, records, transform, *, loader=None):
        self.records = list(records)
        self.transforms = tuple(transform) if isinstance(transform, (list, tuple)) else (transform,)
        self.loader = loader or load_image

    def __len__(self):
        return len(self.records)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            index, seed = key
            with torch.random.fork_rng(devices=[]):
                state = random.getstate()
                torch.manual_seed(seed)
                random.seed(seed)
                try:
                    return self._item(index)
                finally:
                    random.setstate(state)
        return self._item(key)

    def _item(self, index):
        rec = self.records[index]
        img = self.loader(rec.path)
        return (*[t(img) for t in self.transforms], index, rec.modality)


def collate_views(batch):
    """Stack ``(view..., index, modality)`` items into tensors."""
    n_views = len(batch[0]) - 2
    views = [torch.stack([item[v] for item in batch]) for v in range(n_views)]
    index = torch.tensor([item[-2] for item in batch], dtype=torch.long)
    modality = torch.tensor([item[-1] for item in batch], dtype=torch.long)
    return (*views, index, modality)


class SeededBatches:
    """Wrap a batch sampler: each row becomes ``(row, seed)``, one fresh 63-bit seed per item.

    The seeds come from ``seed`` (an int or a numpy Generator) in batch order,
    in the main process, so the augmentation of every item is fixed by the
    run's seed whatever the number of DataLoader workers.

    Parameters
    ----------
    batch_sampler : iterable of lists of int
    seed : int or numpy Generator
    """

    def __init__(self, batch_sampler, seed):
        self.batch_sampler = batch_sampler
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        for batch in self.batch_sampler:
            seeds = self.rng.integers(0, 2**63 - 1, size=len(batch), dtype=np.int64)
            yield [(int(row), int(s)) for row, s in zip(batch, seeds)]


def default_num_workers() -> int:
    """The ``num_workers = -1`` choice: ``min(4, CPU cores this process may use)``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return min(4, cores)


def resolve_num_workers(num_workers: int) -> int:
    """``-1`` -> :func:`default_num_workers`; other values unchanged."""
    return default_num_workers() if num_workers == -1 else int(num_workers)


def _seed_worker(worker_id):
    """Seed Python's and numpy's generators of a worker from its torch seed (the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(dataset, *, batch_sampler=None, batch_size=None, num_workers: int = 0, pin_memory: bool = False,
                seed=0):
    """A DataLoader with the trainer's settings.

    Parameters
    ----------
    dataset : RecordDataset
    batch_sampler : iterable of lists, default=None
        Batches of keys (wrap a sampler in :class:`SeededBatches` for
        augmentations independent of ``num_workers``). Without it, the
        dataset is read in order in batches of ``batch_size``.
    batch_size : int, default=None
    num_workers : int, default=0
        Worker processes; they stay alive between passes (``persistent_workers``).
    pin_memory : bool, default=False
        Page-locked batches, for faster copies to a CUDA device.
    seed : int or numpy Generator, default=0
        Seeds the loader's own generator (the workers' base seed), so that
        making the loader draws nothing from torch's global generator.
    """
    generator = torch.Generator()
    generator.manual_seed(int(np.random.default_rng(seed).integers(0, 2**63 - 1)))
    options = dict(num_workers=num_workers, collate_fn=collate_views, pin_memory=pin_memory, generator=generator)
    if num_workers > 0:
        options.update(persistent_workers=True, worker_init_fn=_seed_worker)
    if batch_sampler is not None:
        return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, **options)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, **options)


def worker_errors(loader):
    """Iterate a DataLoader; an error raised in a worker process becomes that worker's own message, one line.

    torch re-raises a worker's exception in this process with the worker's
    whole traceback in the message; the last line of it is what went wrong
    (an :class:`~xmrank.InputError` naming the image, usually).
    """
    try:
        yield from loader
    except Exception as exc:  # torch re-raises the worker's own type (an InputError too) with its traceback as text
        text = str(exc)
        if "DataLoader worker" not in text:
            raise
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), text.strip())
        head, sep, rest = last.partition(": ")
        if sep and " " not in head:  # "xmrank._validation.InputError: message" -> the message
            last = rest
        raise InputError(last) from None
