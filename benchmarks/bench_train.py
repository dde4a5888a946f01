"""Trainer throughput: images per second for data loading, a training iteration and feature extraction.

Run from the repository root (needs the ``torch`` extra)::

    python benchmarks/bench_train.py                      # both models, 0 and N workers
    python benchmarks/bench_train.py --models smoke --iters 5

For each model (``paper``: dual-stream ResNet-50 + AGW at 288x144; ``smoke``:
ResNet-18 at 64x32) and each DataLoader worker count it prints:

- ``load``: decoding and augmenting training batches alone (the visible
  training pipeline: two views per image), images per second over 12
  consecutive batches (the steady state, past the workers' prefetch);
- ``train``: one training iteration end to end (load, forward, intra-modality
  loss on a hybrid memory, backward, Adam step), images per second;
- ``extract``: flip-averaged feature extraction of every image, images per
  second.

Images are the procedural synthetic set (JPEG-like PNGs decoded from disk
each time, no in-memory cache), written once to a temporary folder. Timings
are best of the measured iterations after one warm-up, on whatever device
``--device`` names (cpu by default).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from xmrank.torch.config import preset_config  # noqa: E402
from xmrank.torch.data import RecordDataset, collate_views, training_records  # noqa: E402
from xmrank.torch.features import extract_features  # noqa: E402
from xmrank.torch.losses import intra_modality_loss  # noqa: E402
from xmrank.torch.memory import HybridMemory  # noqa: E402
from xmrank.torch.model import build_model  # noqa: E402
from xmrank.datasets import make_synthetic  # noqa: E402
from xmrank.torch.transforms import train_transform  # noqa: E402

MODELS = {
    "paper": dict(preset="paper", height=288, width=144),
    "smoke": dict(preset="smoke", height=64, width=32),
}


def _model(name):
    cfg = preset_config(MODELS[name]["preset"])
    return build_model(cfg.arch, pretrained="none", non_local=cfg.non_local, non_local_width=cfg.non_local_width,
                       gem_p=cfg.gem_p, last_stride=cfg.last_stride)


def _loader(records, height, width, batch, workers, device):
    views = (train_transform(height, width, "visible"), train_transform(height, width, "visible_ca"))
    ds = RecordDataset(records, views)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                       collate_fn=collate_views, drop_last=True,
                                       persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                                       generator=torch.Generator().manual_seed(0))


def _forever(loader):
    while True:
        yield from loader


def _best_rate(n_images, times):
    return n_images / min(times) if times else float("nan")


def measure(name, records, *, workers, batch, iters, device, amp, load_batches=12):
    h, w = MODELS[name]["height"], MODELS[name]["width"]
    loader = _loader(records, h, w, batch, workers, device)
    # loading alone, in the steady state: many consecutive batches (workers prefetch a few, so one batch
    # would measure the prefetch buffer, not the rate)
    it = _forever(loader)
    next(it)  # warm-up (starts the workers)
    t0 = time.perf_counter()
    for _ in range(load_batches):
        next(it)
    load_rate = load_batches * 2 * batch / (time.perf_counter() - t0)
    # a training iteration
    model = _model(name).to(device).train()
    memory = HybridMemory(torch.nn.functional.normalize(torch.randn(8, model.feature_dim), dim=1)).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3.5e-4, weight_decay=5e-4)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if amp
                else torch.autocast(device.type, enabled=False))
    train_times = []
    for i in range(iters + 1):
        t0 = time.perf_counter()
        v1, v2, index, _ = next(it)
        images = torch.cat([v1, v2]).to(device, non_blocking=True)
        targets = (index % 8).repeat(2).to(device)
        with autocast:
            feats = model(images, 0)
        loss = intra_modality_loss(feats.float(), targets, memory)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        memory.update(feats.detach().float(), targets)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first iteration is the warm-up
            train_times.append(time.perf_counter() - t0)
    # extraction of every record
    t0 = time.perf_counter()
    extract_features(model, records, height=h, width=w, batch_size=64, device=device, num_workers=workers,
                     progress=False)
    t_extract = time.perf_counter() - t0
    return {
        "load": load_rate,
        "train": _best_rate(2 * batch, train_times),
        "extract": len(records) / t_extract,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--workers", nargs="+", type=int, default=[0, min(4, os.cpu_count() or 1)])
    parser.add_argument("--batch", type=int, default=16, help="images per batch (two views each)")
    parser.add_argument("--iters", type=int, default=3, help="measured iterations (after one warm-up)")
    parser.add_argument("--images", type=int, default=96, help="images in the extraction pass")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast in the training iteration")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores; batch {args.batch} images x 2 views, best of {args.iters} iterations")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in args.models:
            h, w = MODELS[name]["height"], MODELS[name]["width"]
            root = os.path.join(tmp, name)
            make_synthetic(root, n_train_ids=8, n_val_ids=1, n_test_ids=1, images_per_camera=2, height=h, width=w,
                           progress=False)
            records = training_records("synthetic", root)
            records = [r for r in records if r.modality == 0][: args.images]
            for workers in args.workers:
                r = measure(name, records, workers=workers, batch=args.batch, iters=args.iters, device=device,
                            amp=args.amp)
                rows.append((name, workers, r))
                print(f"  measured {name} workers={workers}", flush=True)
    print()
    print(f"{'model':<28} {'workers':>7} {'load img/s':>11} {'train img/s':>12} {'extract img/s':>14}")
    print("-" * 76)
    label = {"paper": "ResNet-50+AGW 288x144", "smoke": "ResNet-18 64x32"}
    for name, workers, r in rows:
        print(f"{label[name]:<28} {workers:>7} {r['load']:>11.1f} {r['train']:>12.1f} {r['extract']:>14.1f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
