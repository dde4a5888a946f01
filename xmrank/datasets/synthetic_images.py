"""A procedural visible/infrared "person" image set in SYSU-MM01 layout.

Every identity is a set of body-part shapes (head, hair or hat, torso,
sleeves, legs, shoes, bag) with colours and textures (plain, stripes,
checks, diagonals). The visible rendering paints them in colour over a
cluttered, camera-tinted background; the infrared rendering paints the
*same shapes and textures* in grayscale with a different intensity mapping:
fabric brightness follows mostly the red channel through a gamma curve (a
dark-red shirt is as bright as a light-blue one, a navy one turns black),
skin is hot and bright, hair is dark, and the background is a dim, smooth
field. An untrained network therefore sees two unrelated-looking images of
the same person, while a network trained with channel augmentations can
learn the shared structure.

This module needs only numpy and pillow (no torch): :func:`make_synthetic`
and ``xmrank make-synthetic ROOT`` write the set; the SYSU-MM01 readers of
:mod:`xmrank.datasets` read it back, and the trainer's ``--dataset synthetic``
writes it on first use (:mod:`xmrank.torch.synthetic` re-exports it).

Layout written under ``root``::

    cam1/0001/0001.jpg ...   visible, indoor
    cam2/...                 visible, indoor
    cam3/...                 infrared, indoor
    cam4/, cam5/             visible, outdoor
    cam6/                    infrared, outdoor
    exp/train_id.txt, exp/val_id.txt, exp/test_id.txt
    xmrank_synthetic.json    the generator's parameters, and every file and folder it wrote

``overwrite=True`` deletes only what that manifest lists: anything else in
the folder (a user's ``camera_calibration/``) survives, and a file the new
set would replace that no manifest lists is refused before anything is written.

Every identity appears in every camera; identities are numbered from 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

import numpy as np

from .._atomic import atomic_write
from .._params import MAX_IMAGE_SIDE, MAX_SYNTHETIC_IMAGES, MAX_SYNTHETIC_PIXELS
from .._progress import progress_bar
from .._validation import InputError, check_int
from ._files import inside, real_root
from .sysu import INFRARED_CAMERAS, VISIBLE_CAMERAS

logger = logging.getLogger(__name__)

__all__ = [
    "make_synthetic",
    "render_person",
    "random_identity",
    "is_synthetic_root",
    "VISIBLE_CAMERAS",
    "INFRARED_CAMERAS",
    "MANIFEST",
    "PARTIAL",
]

#: Marker file written at the root of a generated set.
MANIFEST = "xmrank_synthetic.json"
#: Name prefix of the hidden folder a set is written into before it is moved into place.
PARTIAL = ".xmrank_synthetic.partial"

# part codes of the label map
_BG, _SKIN, _HAIR, _HAT, _TOP, _SLEEVE, _BOTTOM, _SHOE, _BAG = range(9)
_N_PARTS = 9

_PATTERNS = ("plain", "hstripes", "vstripes", "checks", "diagonal")

_PALETTE = np.array(
    [
        [0.85, 0.10, 0.10], [0.10, 0.25, 0.80], [0.10, 0.60, 0.20], [0.95, 0.85, 0.15],
        [0.95, 0.95, 0.95], [0.08, 0.08, 0.08], [0.55, 0.55, 0.55], [0.55, 0.25, 0.65],
        [0.95, 0.50, 0.10], [0.45, 0.75, 0.95], [0.50, 0.30, 0.15], [0.95, 0.55, 0.70],
        [0.20, 0.20, 0.45], [0.60, 0.05, 0.20], [0.75, 0.70, 0.50], [0.10, 0.50, 0.50],
    ],
    dtype=np.float32,
)
_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.68, 0.47, 0.32], [0.45, 0.30, 0.20]], np.float32)
_HAIR_TONES = np.array([[0.08, 0.06, 0.05], [0.30, 0.18, 0.10], [0.80, 0.65, 0.35], [0.50, 0.50, 0.50]], np.float32)


def _infrared_intensity(rgb: np.ndarray) -> np.ndarray:
    """Grayscale intensity of a fabric colour in the infrared rendering.

    Driven by the red channel through a gamma curve with a little green, so it
    is neither the luminance nor any single channel of the visible image.
    """
    rgb = np.asarray(rgb, np.float32)
    return (0.1 + 0.8 * (0.8 * rgb[..., 0] + 0.2 * rgb[..., 1]) ** 0.85).astype(np.float32)


def random_identity(rng: np.random.Generator) -> dict:
    """Draw the appearance of one identity (shapes, colours, textures)."""
    n = len(_PALETTE)
    top_a, top_b, bottom_a, bottom_b, shoe, bag, hat = rng.choice(n, size=7, replace=True)
    if top_b == top_a:
        top_b = (top_a + 5) % n
    if bottom_b == bottom_a:
        bottom_b = (bottom_a + 7) % n
    return {
        "width": float(rng.uniform(0.85, 1.2)),
        "leg_length": float(rng.uniform(0.95, 1.05)),
        "skin": int(rng.integers(len(_SKIN_TONES))),
        "hair": int(rng.integers(len(_HAIR_TONES))),
        "long_hair": bool(rng.random() < 0.35),
        "hat": int(hat) if rng.random() < 0.25 else -1,
        "top": (int(top_a), int(top_b)),
        "top_pattern": _PATTERNS[int(rng.integers(len(_PATTERNS)))],
        "top_period": float(rng.uniform(0.035, 0.07)),
        "long_sleeves": bool(rng.random() < 0.5),
        "bottom": (int(bottom_a), int(bottom_b)),
        "bottom_pattern": _PATTERNS[int(rng.choice([0, 0, 1, 2]))],
        "bottom_period": float(rng.uniform(0.04, 0.08)),
        "bottom_kind": ("trousers", "shorts", "skirt")[int(rng.choice(3, p=[0.6, 0.25, 0.15]))],
        "shoe": int(shoe),
        "bag": ("none", "left", "right", "backpack")[int(rng.integers(4))],
        "bag_colour": int(bag),
    }


def _pattern(kind, u, v, period, phase):
    if kind == "plain":
        return np.zeros(u.shape, bool)
    if kind == "hstripes":
        return (np.floor(v / period + phase) % 2).astype(bool)
    if kind == "vstripes":
        return (np.floor(u / period + phase) % 2).astype(bool)
    if kind == "checks":
        return ((np.floor(u / period + phase) + np.floor(v / period)) % 2).astype(bool)
    return (np.floor((u + v) / period + phase) % 2).astype(bool)


def _label_maps(ident, h, w, rng, scale):
    """Part label map and texture map (the same for both modalities)."""
    s = 0.9 * h * scale  # body height in pixels
    cx = w / 2 + rng.uniform(-0.06, 0.06) * w
    top = (h - s) / 2 + rng.uniform(-0.03, 0.03) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx + 0.5 - cx) / s
    v = (yy + 0.5 - top) / s
    au = np.abs(u)
    wf = ident["width"]
    leg_end = 0.93 * ident["leg_length"]
    spread = rng.uniform(0.0, 0.035)
    swing = rng.uniform(-0.25, 0.25)

    part = np.zeros((h, w), np.int8)
    pat = np.zeros((h, w), bool)

    if ident["bag"] == "backpack":  # seen as a pack behind the shoulders
        m = (au < 0.13 * wf) & (v > 0.17) & (v < 0.45)
        part[m] = _BAG
    # legs
    leg_x = 0.05 + spread
    legs = (np.abs(au - leg_x) < 0.042) & (v > 0.5) & (v < leg_end)
    kind = ident["bottom_kind"]
    bottom_pat = _pattern(ident["bottom_pattern"], u, v, ident["bottom_period"], 0.0)
    if kind == "trousers":
        part[legs] = _BOTTOM
    elif kind == "shorts":
        part[legs & (v < 0.66)] = _BOTTOM
        part[legs & (v >= 0.66)] = _SKIN
    else:  # skirt
        part[legs] = _SKIN
        skirt = (v > 0.48) & (v < 0.7) & (au < 0.095 * wf + 0.25 * (v - 0.48))
        part[skirt] = _BOTTOM
    m = part == _BOTTOM
    pat[m] = bottom_pat[m]
    shoes = (np.abs(au - leg_x) < 0.05) & (v >= leg_end) & (v < leg_end + 0.04)
    part[shoes] = _SHOE
    # torso (a trapezoid from the shoulders to the waist)
    half = (0.115 - 0.03 * np.clip((v - 0.17) / 0.35, 0, 1)) * wf
    torso = (v > 0.17) & (v < 0.53) & (au < half)
    top_pat = _pattern(ident["top_pattern"], u, v, ident["top_period"], 0.0)
    part[torso] = _TOP
    pat[torso] = top_pat[torso]
    # arms, swinging about the shoulders
    for side in (-1.0, 1.0):
        ax = side * (0.125 * wf + 0.02) + side * swing * np.clip(v - 0.19, 0, None) * 0.3
        arm = (np.abs(u - ax) < 0.03) & (v > 0.18) & (v < 0.5)
        sleeve = arm & ((v < 0.3) | ident["long_sleeves"])
        part[arm] = _SKIN
        part[sleeve] = _SLEEVE
        pat[sleeve] = top_pat[sleeve]
    # head, hair, hat
    head = (u / 0.062) ** 2 + ((v - 0.09) / 0.075) ** 2 < 1
    if ident["long_hair"]:
        part[(au < 0.075) & (v > 0.07) & (v < 0.24) & (part != _SLEEVE)] = _HAIR
    part[head] = _SKIN
    part[head & (v < 0.06)] = _HAIR
    if ident["hat"] >= 0:
        part[(au < 0.075) & (v > 0.005) & (v < 0.055)] = _HAT
        part[(au < 0.1) & (v > 0.045) & (v < 0.06)] = _HAT
    # side bag with a strap across the torso
    if ident["bag"] in ("left", "right"):
        sx = 0.16 * wf if ident["bag"] == "right" else -0.16 * wf
        part[(np.abs(u - sx) < 0.05) & (v > 0.42) & (v < 0.56)] = _BAG
        strap_u = -np.sign(sx) * 0.11 * wf + (v - 0.18) / 0.25 * (sx + np.sign(sx) * 0.11 * wf)
        part[torso & (np.abs(u - strap_u) < 0.012) & (v < 0.43)] = _BAG
    elif ident["bag"] == "backpack":
        for sx in (-0.07 * wf, 0.07 * wf):
            part[torso & (np.abs(u - sx) < 0.012) & (v < 0.45)] = _BAG
    pat[(part == _SKIN) | (part == _HAIR) | (part == _HAT) | (part == _SHOE) | (part == _BAG)] = False
    return part, pat


def _smooth_noise(rng, h, w, cells):
    """Bilinearly upsampled random field in [0, 1]."""
    ch, cw = cells
    coarse = rng.random((ch + 1, cw + 1)).astype(np.float32)
    ys = np.linspace(0, ch, h, dtype=np.float32)
    xs = np.linspace(0, cw, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), ch - 1)
    x0 = np.minimum(xs.astype(int), cw - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    a = coarse[y0][:, x0]
    b = coarse[y0][:, x0 + 1]
    c = coarse[y0 + 1][:, x0]
    d = coarse[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _visible_background(rng, h, w, camera_tint):
    base = np.clip(camera_tint + rng.normal(0, 0.06, 3), 0.05, 0.95).astype(np.float32)
    field = _smooth_noise(rng, h, w, (4, 2))[..., None]
    img = base * (0.7 + 0.6 * field)
    for _ in range(int(rng.integers(1, 4))):  # clutter: boxes tinted like the scene
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        hh, ww = int(rng.integers(h // 12, h // 4)), int(rng.integers(w // 8, w // 3))
        img[y0:y0 + hh, x0:x0 + ww] = 0.5 * base + 0.5 * (rng.random(3) * 0.9 + 0.05)
    return img


def render_person(ident: dict, modality: int, rng: np.random.Generator, *, height: int = 128, width: int = 64,
                  camera: int = 1) -> np.ndarray:
    """Render one image of an identity.

    Parameters
    ----------
    ident : dict
        From :func:`random_identity`.
    modality : {0, 1}
        0 = visible (RGB), 1 = infrared (grayscale, returned as 3 equal channels).
    rng : numpy.random.Generator
        Drives pose, position, scale, lighting, background and noise.
    height, width : int
    camera : int
        SYSU-MM01 camera number; sets the camera's tint, brightness and scale.

    Returns
    -------
    image : ndarray of uint8, shape (height, width, 3)
    """
    cam_rng = np.random.default_rng(1000 + camera)  # fixed per camera
    cam_scale = cam_rng.uniform(0.85, 1.0)
    cam_tint = cam_rng.uniform(0.2, 0.8, 3)
    cam_gain = cam_rng.uniform(0.8, 1.15)
    scale = cam_scale * rng.uniform(0.92, 1.05)
    part, pat = _label_maps(ident, height, width, rng, scale)

    fabric = np.zeros((_N_PARTS, 2, 3), np.float32)
    fabric[_SKIN] = _SKIN_TONES[ident["skin"]]
    fabric[_HAIR] = _HAIR_TONES[ident["hair"]]
    fabric[_HAT] = _PALETTE[max(ident["hat"], 0)]
    fabric[_TOP, 0] = fabric[_SLEEVE, 0] = _PALETTE[ident["top"][0]]
    fabric[_TOP, 1] = fabric[_SLEEVE, 1] = _PALETTE[ident["top"][1]]
    fabric[_BOTTOM, 0] = _PALETTE[ident["bottom"][0]]
    fabric[_BOTTOM, 1] = _PALETTE[ident["bottom"][1]]
    fabric[_SHOE] = _PALETTE[ident["shoe"]]
    fabric[_BAG] = _PALETTE[ident["bag_colour"]]
    body = part != _BG

    if modality == 0:
        img = _visible_background(rng, height, width, cam_tint)
        light = cam_gain * rng.uniform(0.8, 1.15) * (0.92 + 0.16 * rng.random(3)).astype(np.float32)
        shade = 0.85 + 0.3 * _smooth_noise(rng, height, width, (3, 1))[..., None]
        colours = fabric[part, pat.astype(np.int8)] * light * shade
        img[body] = colours[body]
        img = img + rng.normal(0, 0.025, img.shape).astype(np.float32)
    else:
        ir = _infrared_intensity(fabric)
        ir[_SKIN] = 0.95
        ir[_HAIR] = 0.3
        level = rng.uniform(0.1, 0.3)
        gray = level + 0.15 * _smooth_noise(rng, height, width, (3, 2))
        gain = cam_gain * rng.uniform(0.85, 1.1)
        vals = ir[part, pat.astype(np.int8)] * gain
        gray[body] = vals[body]
        gray = gray + rng.normal(0, 0.04, gray.shape).astype(np.float32)
        img = np.repeat(gray[..., None], 3, axis=2)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)



def check_size(n_ids: int, images_per_camera: int, height: int, width: int, *,
               ids_name: str = "n_train_ids + n_val_ids + n_test_ids") -> None:
    """Refuse a synthetic set larger than the bounds of :mod:`xmrank._params`, before anything is written.

    Four-digit identity folders of the SYSU-MM01 layout (at most 9999
    identities), at most ``MAX_SYNTHETIC_IMAGES`` images and
    ``MAX_SYNTHETIC_PIXELS`` pixels in all.
    """
    if n_ids > 9999:
        raise InputError(f"{ids_name} must be at most 9999 (four-digit identity folders of the SYSU-MM01 layout); "
                         f"got {n_ids}.")
    n_images = n_ids * 6 * images_per_camera
    if n_images > MAX_SYNTHETIC_IMAGES:
        raise InputError(f"the set would hold {n_images} images ({n_ids} identities x 6 cameras x "
                         f"{images_per_camera} images); at most {MAX_SYNTHETIC_IMAGES} are written.")
    if n_images * height * width > MAX_SYNTHETIC_PIXELS:
        raise InputError(f"the set would hold {n_images * height * width} pixels ({n_images} images of {height} x "
                         f"{width}); at most {MAX_SYNTHETIC_PIXELS} are written (fewer images or smaller ones).")


def make_synthetic(
    root,
    *,
    n_train_ids: int = 32,
    n_val_ids: int = 4,
    n_test_ids: int = 16,
    images_per_camera: int = 4,
    height: int = 128,
    width: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict:
    """Write the synthetic visible/infrared set under ``root`` in SYSU-MM01 layout.

    Parameters
    ----------
    root : str or path
        Output folder; created if missing. It must be empty (or hold a
        previous synthetic set and ``overwrite=True``).
    n_train_ids, n_val_ids, n_test_ids : int, default=32, 4, 16
        Identities listed in ``exp/train_id.txt``, ``exp/val_id.txt`` and
        ``exp/test_id.txt``. Training uses train and val identities (as the
        SYSU-MM01 protocol does); evaluation uses the test identities.
    images_per_camera : int, default=4
        Images of each identity in each of the six cameras (so
        ``4 * images_per_camera`` visible and ``2 * images_per_camera``
        infrared images per identity).
    height, width : int, default=128, 64
        Image size in pixels, at most :data:`xmrank._params.MAX_IMAGE_SIDE`.
        The identities together are at most 9999 (four-digit folders), and
        the set at most :data:`xmrank._params.MAX_SYNTHETIC_IMAGES` images
        and :data:`xmrank._params.MAX_SYNTHETIC_PIXELS` pixels: all are
        checked before anything is written.
    seed : int, default=0
        The whole set is a deterministic function of the parameters.
    overwrite : bool, default=False
        Replace a previous synthetic set at ``root``.
    progress : bool, default=None
        Show a progress bar; None shows it only on a terminal.

    Returns
    -------
    summary : dict
        The parameters plus image counts per modality.
    """
    from PIL import Image  # noqa: F401  (fail early when pillow is missing)

    n_train_ids = check_int(n_train_ids, "n_train_ids", minimum=1)
    n_val_ids = check_int(n_val_ids, "n_val_ids", minimum=1)  # the SYSU-MM01 readers need a non-empty list
    n_test_ids = check_int(n_test_ids, "n_test_ids", minimum=1)
    images_per_camera = check_int(images_per_camera, "images_per_camera", minimum=1, maximum=9999)
    height = check_int(height, "height", minimum=16, maximum=MAX_IMAGE_SIDE)
    width = check_int(width, "width", minimum=8, maximum=MAX_IMAGE_SIDE)
    check_size(n_train_ids + n_val_ids + n_test_ids, images_per_camera, height, width)
    seed = check_int(seed, "seed", minimum=0)
    root = os.fspath(root)
    if not root.strip():
        raise InputError("root must name a folder; got an empty path.")
    if os.path.islink(root):  # replace the folder a link points to, keep the link
        root = os.path.realpath(root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise InputError(f"root must be a folder; {root} is a file.")
    entries = os.listdir(root) if os.path.isdir(root) else []
    partial = [e for e in entries if e.startswith(PARTIAL)]
    others = [e for e in entries if not e.startswith(PARTIAL)]
    if others:
        if MANIFEST not in others and not partial:
            raise InputError(f"root {root} is not empty and holds no synthetic set; choose an empty or new folder.")
        if not overwrite:
            what = "a synthetic set" if MANIFEST in others else "an interrupted synthetic set"
            raise InputError(f"root {root} already holds {what}; pass overwrite=True (--overwrite) to replace it.")

    import shutil
    import tempfile

    umask = os.umask(0)
    os.umask(umask)
    params = dict(n_train_ids=n_train_ids, n_val_ids=n_val_ids, n_test_ids=n_test_ids,
                  images_per_camera=images_per_camera, height=height, width=width, seed=seed, progress=progress)
    if not os.path.isdir(root):
        # A new root: the set is written into a hidden folder beside it and renamed into place once complete.
        parent = os.path.dirname(os.path.abspath(root))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise InputError(f"root {root}: cannot create its parent folder {parent} ({exc.strerror or exc}).") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"root {root}: the parent folder {parent} is not writable.")
        work = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.abspath(root))}{PARTIAL}")
        try:
            os.chmod(work, 0o777 & ~umask)
            summary = _write_set(work, **params)
            os.replace(work, root)
            work = None
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
    else:
        # An existing folder (empty, or a previous set with overwrite): the set is written into a hidden
        # folder inside it (same file system), then swapped in: the files the previous set's manifest lists
        # (and those of a swap cut short, listed by the manifest in its hidden folder) are deleted, the new
        # files moved in, the manifest last. Nothing the manifests do not list is deleted or replaced.
        if not os.access(root, os.W_OK | os.X_OK):
            raise InputError(f"root {root} is not writable.")
        previous_files, previous_folders = _listed(root, [os.path.join(root, p) for p in partial])
        new_files, new_folders = _set_paths(n_train_ids + n_val_ids + n_test_ids, images_per_camera)
        root_real = real_root(root)
        for rel in new_files + new_folders:
            path = os.path.join(root, rel)
            if not os.path.lexists(path):
                continue
            if rel not in previous_files and rel not in previous_folders:
                raise InputError(f"root {root} holds {rel}, which the synthetic set would replace but no earlier "
                                 f"set wrote ({MANIFEST} does not list it); move it away first.")
            if os.path.islink(path) or not inside(path, root_real):
                raise InputError(f"root {root}: {rel} is a symbolic link or leads outside the root; the synthetic "
                                 "set is written inside its root only. Move it away first.")
        work = tempfile.mkdtemp(dir=root, prefix=PARTIAL)
        swapping = False
        try:
            summary = _write_set(work, **params)
            swapping = True
            for rel in sorted(previous_files):
                path = os.path.join(root, rel)
                # never through a folder that leads out of the root (a manifest is only a file: not trusted)
                if (os.path.islink(path) or os.path.isfile(path)) and inside(os.path.dirname(path), root_real):
                    os.remove(path)
            for rel in new_folders:  # parents first
                os.makedirs(os.path.join(root, rel), exist_ok=True)
            for rel in new_files:
                os.replace(os.path.join(work, rel), os.path.join(root, rel))
            os.replace(os.path.join(work, MANIFEST), os.path.join(root, MANIFEST))
            swapping = False
            for rel in sorted(previous_folders - set(new_folders), key=lambda r: -r.count("/")):
                with contextlib.suppress(OSError):  # kept when it holds anything the set did not write
                    os.rmdir(os.path.join(root, rel))
            for name in partial:  # folders of earlier interrupted runs, their files now deleted or replaced
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        finally:
            if not swapping:
                shutil.rmtree(work, ignore_errors=True)
    logger.info("make_synthetic: wrote %d visible and %d infrared images to %s",
                summary["images"]["visible"], summary["images"]["infrared"], root)
    return summary


def _set_paths(n_ids: int, images_per_camera: int):
    """Relative paths (``/``-separated) of the files and folders a set writes: (files, folders), parents first."""
    folders, files = ["exp"], [f"exp/{name}" for name in _SPLIT_FILES]
    for cam in sorted(VISIBLE_CAMERAS + INFRARED_CAMERAS):
        folders.append(f"cam{cam}")
        for pid in range(1, n_ids + 1):
            folders.append(f"cam{cam}/{pid:04d}")
            files.extend(f"cam{cam}/{pid:04d}/{k + 1:04d}.jpg" for k in range(images_per_camera))
    return files, folders


def _listed(root, partials):
    """The files and folders the manifests of ``root`` and of the hidden folders ``partials`` list (sets)."""
    files, folders = set(), set()
    for folder in [root, *partials]:
        try:
            with open(os.path.join(folder, MANIFEST), encoding="utf-8") as fh:
                manifest = json.load(fh)
        except (OSError, ValueError):
            continue
        listed_files, listed_folders = manifest.get("files"), manifest.get("folders")
        if not (isinstance(listed_files, list) and isinstance(listed_folders, list)):
            try:  # a manifest of an earlier xmrank: the set follows from its parameters
                n_ids = sum(int(manifest[k]) for k in ("n_train_ids", "n_val_ids", "n_test_ids"))
                listed_files, listed_folders = _set_paths(n_ids, int(manifest["images_per_camera"]))
            except (KeyError, TypeError, ValueError):
                continue
        for rel in listed_files + listed_folders:
            ok = isinstance(rel, str) and rel and not os.path.isabs(rel) and ".." not in rel.split("/") \
                and "\x00" not in rel
            if ok:
                (files if rel in listed_files else folders).add(rel)
    return files, folders


_SPLIT_FILES = ("train_id.txt", "val_id.txt", "test_id.txt")


def _write_set(root, *, n_train_ids, n_val_ids, n_test_ids, images_per_camera, height, width, seed, progress):
    """Write the images, id lists and manifest under the (new, empty) folder ``root``.

    Each file is written whole (:func:`xmrank._atomic.atomic_write`): an image cut short by a
    file-size limit or a full disk is an OSError, never a truncated JPEG.
    """
    import io

    from PIL import Image

    n_ids = n_train_ids + n_val_ids + n_test_ids
    master = np.random.default_rng(seed)
    identities = [random_identity(master) for _ in range(n_ids)]
    counts = {"visible": 0, "infrared": 0}
    cameras = sorted(VISIBLE_CAMERAS + INFRARED_CAMERAS)
    with progress_bar(total=n_ids * len(cameras), desc="make-synthetic", show=progress) as bar:
        for pid0, ident in enumerate(identities):
            pid = pid0 + 1
            for cam in cameras:
                modality = 1 if cam in INFRARED_CAMERAS else 0
                folder = os.path.join(root, f"cam{cam}", f"{pid:04d}")
                os.makedirs(folder, exist_ok=True)
                rng = np.random.default_rng([seed, pid, cam])
                for k in range(images_per_camera):
                    img = render_person(ident, modality, rng, height=height, width=width, camera=cam)
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="JPEG", quality=92)
                    data = buf.getvalue()
                    atomic_write(os.path.join(folder, f"{k + 1:04d}.jpg"), lambda fh: fh.write(data), fsync=False)
                counts["infrared" if modality else "visible"] += images_per_camera
                bar.update(1)

    exp = os.path.join(root, "exp")
    os.makedirs(exp, exist_ok=True)
    ids = np.arange(1, n_ids + 1)
    splits = dict(zip(_SPLIT_FILES, (ids[:n_train_ids], ids[n_train_ids:n_train_ids + n_val_ids],
                                     ids[n_train_ids + n_val_ids:])))
    for name, values in splits.items():
        text = (",".join(str(int(i)) for i in values) + "\n").encode()
        atomic_write(os.path.join(exp, name), lambda fh: fh.write(text), fsync=False)
    summary = {
        "n_train_ids": n_train_ids,
        "n_val_ids": n_val_ids,
        "n_test_ids": n_test_ids,
        "images_per_camera": images_per_camera,
        "height": height,
        "width": width,
        "seed": seed,
        "images": counts,
    }
    files, folders = _set_paths(n_ids, images_per_camera)
    manifest = json.dumps({**summary, "files": files, "folders": folders}, indent=2) + "\n"
    atomic_write(os.path.join(root, MANIFEST), lambda fh: fh.write(manifest.encode()))
    return summary


def is_synthetic_root(root) -> bool:
    """True when ``root`` holds a set written by :func:`make_synthetic`."""
    return os.path.isfile(os.path.join(os.fspath(root), MANIFEST))
