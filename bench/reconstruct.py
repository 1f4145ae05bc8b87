"""Benchmark single-image reconstruction training and print JSON.

Measures, on a small procedural data set made in a temporary folder (or on --data):

- ``train_step``: one full training step per decoder (encoder and decoder forward, the
  silhouettes of each predicted object from two views each, the loss, the backward pass
  through the rasterizer's approximate gradient, the Adam update), as steps/s and input
  images/s (2 x batch images per step);
- ``silhouettes``: the rasterizer alone on the 642-vertex predictions, forward and
  forward+backward, as silhouettes/s at 64 x 64 with anti-aliasing;
- ``eval``: reconstruct-and-voxelise throughput (images/s).

Timings on a shared machine are inflated by other work: compare steps/s from one run only.
The process keeps freed memory as the ``meshstyle reconstruct`` commands do
(:func:`meshstyle.runtime.retain_freed_memory`); ``--return-memory`` measures without.

Usage: python bench/reconstruct.py [--batch-size B] [--steps N] [--device cpu|cuda] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up: kernel loading, allocator
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--data", type=Path, default=None, help="an existing data folder")
    parser.add_argument(
        "--return-memory", action="store_true", help="glibc's default: unmap large frees"
    )
    args = parser.parse_args()
    from meshstyle.runtime import timing_device_problem

    problem = timing_device_problem(args.device)
    if problem:
        parser.error(problem)
    if not args.return_memory:
        from meshstyle.runtime import retain_freed_memory

        retain_freed_memory()

    import torch

    from meshstyle.reconstruct import procedural
    from meshstyle.reconstruct.data import to_float
    from meshstyle.reconstruct.evaluate import score
    from meshstyle.reconstruct.train import Trainer, TrainSettings
    from meshstyle.renderer import RenderSettings, render

    device = (args.device, args.device)
    result = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": args.device,
        "batch_size": args.batch_size,
        "steps_timed": args.steps,
        "freed_memory_kept": not args.return_memory,
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            start = time.perf_counter()
            objects = 0
            for kind in ("chair", "table", "airplane"):
                for split, count in (("train", 8), ("val", 2)):
                    images, voxels = procedural.make_split(kind, split, count, seed=0)
                    procedural.write_split(data, kind, split, images, voxels)
                    objects += count
            result["make_data_objects_per_s"] = round(objects / (time.perf_counter() - start), 2)
        for decoder in ("mesh", "voxel"):
            settings = TrainSettings(decoder=decoder, batch_size=args.batch_size)
            trainer = Trainer(data, Path(tmp) / f"run_{decoder}", settings, device)
            times = _timed(trainer.step, args.steps)
            median = statistics.median(times)
            result[f"train_step_{decoder}"] = {
                "seconds_median": round(median, 4),
                "steps_per_s": round(1 / median, 3),
                "images_per_s": round(2 * args.batch_size / median, 2),
            }
            if decoder == "mesh":
                split = trainer.train_split
                n = min(len(split), 4 * args.batch_size)
                images = to_float(split.images[np.arange(n) % len(split), 0]).to(args.device)
                with torch.no_grad():
                    vertices = trainer.model(images)
                cameras = split.layout.cameras(np.arange(n) % 24).to(args.device)
                render_settings = RenderSettings(image_size=64, backend=args.device)

                def forward(v=vertices, c=cameras, s=render_settings, f=trainer.faces):
                    with torch.no_grad():
                        render(v, f, None, c, settings=s)

                def backward(v=vertices, c=cameras, s=render_settings, f=trainer.faces):
                    v = v.clone().requires_grad_()
                    render(v, f, None, c, settings=s).silhouettes.mean().backward()

                fwd = statistics.median(_timed(forward, args.steps))
                bwd = statistics.median(_timed(backward, args.steps))
                result["silhouettes"] = {
                    "count": n,
                    "forward_per_s": round(n / fwd, 1),
                    "forward_backward_per_s": round(n / bwd, 1),
                }

                # The evaluation's own path: images in, voxelised meshes scored.
                chosen = np.arange(n) % len(split)
                first_view = np.zeros(n, dtype=np.int64)

                def evaluate(m=trainer.model, s=split, o=chosen, v=first_view):
                    score(m, s, o, v, device=args.device)

                evals = statistics.median(_timed(evaluate, args.steps))
                result["eval_images_per_s"] = round(n / evals, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
