"""Speed and agreement of the feature network's precisions and memory layouts; prints JSON.

One step of the style loss as the edit loop runs it: VGG19 to relu4_3 forward, masked Gram
style loss, backward to the images. Variants run interleaved (A, B, C, A, B, C, ...) in one
process so that they share the machine's load; the JSON has the median wall time and the
median CPU time of the process (user + system over all threads) per variant, the
``precision auto`` choice and the CPU's load average. Agreement with float32 contiguous:
cosine of every style layer's features and of the gradient on the images.

Usage: python bench/network.py [--batch 2] [--size 128] [--repeats 5]
           [--variants fp32 fp32-cl bf16-cl] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

VARIANTS = {
    "fp32": ("fp32", False),
    "fp32-cl": ("fp32", True),
    "bf16": ("bf16", False),
    "bf16-cl": ("bf16", True),
}


def one_step(network, images, targets, silhouettes):
    """Style loss forward and backward; returns the features and the images' gradient."""
    from meshstyle.losses import style_loss

    x = images.clone().requires_grad_(True)
    features = network(x)
    style_loss(features, targets, silhouettes).backward()
    return {k: v.detach() for k, v in features.items()}, x.grad


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="*", default=["fp32", "fp32-cl", "bf16-cl"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")

    from meshstyle.features import STYLE_LAYERS, load_feature_network
    from meshstyle.losses import style_grams
    from meshstyle.precision import resolve_precision
    from meshstyle.runtime import configure_threads

    threads = configure_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=generator)
    silhouettes = (torch.rand(args.batch, args.size, args.size, generator=generator) > 0.3).float()
    style = torch.rand(1, 3, args.size, args.size, generator=generator)
    images, silhouettes, style = (t.to(args.device) for t in (images, silhouettes, style))

    reference = load_feature_network("vgg19", STYLE_LAYERS, args.device, "fp32", False)
    targets = style_grams(reference, style)
    ref_features, ref_grad = one_step(reference, images, targets, silhouettes)

    networks = {
        name: load_feature_network("vgg19", STYLE_LAYERS, args.device, *VARIANTS[name])
        for name in args.variants
    }
    wall: dict[str, list[float]] = {name: [] for name in networks}
    cpu: dict[str, list[float]] = {name: [] for name in networks}
    agreement = {}
    for name, network in networks.items():  # warm-up, and agreement with the reference
        features, grad = one_step(network, images, targets, silhouettes)
        agreement[name] = {
            "feature_cosine_min": round(
                min(cosine(features[k], ref_features[k]) for k in features), 6
            ),
            "image_gradient_cosine": round(cosine(grad, ref_grad), 6),
        }
    for _ in range(args.repeats):
        for name, network in networks.items():
            w0, c0 = time.perf_counter(), time.process_time()
            one_step(network, images, targets, silhouettes)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    result = {
        "batch": args.batch,
        "size": args.size,
        "threads": threads,
        "device": args.device,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "precision_auto": resolve_precision("auto", args.device).name,
        "load_average": os.getloadavg(),
        "variants": {
            name: {
                "wall_ms_median": round(1e3 * statistics.median(wall[name]), 1),
                "cpu_ms_median": round(1e3 * statistics.median(cpu[name]), 1),
                **agreement[name],
            }
            for name in networks
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
