"""CPU time of one stylize step, before and after the speed changes, in one process; prints JSON.

The two variants run the real edit loop (``meshstyle.edit.edit_mesh``, fast preset) in short
bursts, alternating (A, B, A, B, ...), so that they share the machine's load:

- ``before``: the VGG trunk in NCHW layout and the lit texture cubes made by a plain
  broadcast multiply (autograd's backward makes two B x F x K temporaries);
- ``after``: the defaults: NHWC trunk and the shared-cube product of
  :func:`meshstyle.shading.shade_textures`.

Reported per variant: the median CPU seconds per step (process time over all threads; with
``--threads 1``, the default, a loaded machine barely inflates it) and the loop's split of
wall time between renderer, network and the rest.

Usage: python bench/step.py [--case bunny-munch1] [--bursts 4] [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numba
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CASES = {
    "bunny-munch1": ("meshes/bunny.obj", "styles/munch1.jpg"),
    "teapot-gris1": ("meshes/teapot.obj", "styles/gris1.jpg"),
}


def _plain_product(textures, world_face_vertices, eye, lights):
    """The lit cubes as a broadcast multiply, as the renderer made them before."""
    from meshstyle.shading import face_intensity

    intensity = face_intensity(world_face_vertices, eye, lights)
    if textures.dim() == 5:
        textures = textures.unsqueeze(0)
    return textures * intensity[:, :, None, None, None, None]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=list(CASES), default="bunny-munch1")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--bursts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import meshstyle.renderer as renderer
    from meshstyle.edit import edit_mesh
    from meshstyle.features import load_feature_network
    from meshstyle.images import load_image
    from meshstyle.mesh import load_mesh, normalise
    from meshstyle.objectives import StyleObjective
    from meshstyle.runtime import configure_threads
    from meshstyle.settings import replace, resolve_settings
    from meshstyle.shading import light_textures
    from meshstyle.textures import initial_colours

    threads = configure_threads(args.threads)
    mesh_rel, style_rel = CASES[args.case]
    mesh, _ = normalise(load_mesh(DATA / mesh_rel))
    settings = resolve_settings(args.preset, {"precision": "fp32"}, base="fast")
    settings = replace(settings, iterations=args.steps)
    style = load_image(DATA / style_rel, size=settings.style_image_size)
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64)
    colours = initial_colours(mesh, settings.texture_size)

    variants = {}
    for name, channels_last, lighting in (
        ("before", False, _plain_product),
        ("after", True, light_textures),
    ):
        network = load_feature_network(
            settings.network, settings.style_layers, precision="fp32", channels_last=channels_last
        )
        variants[name] = (StyleObjective(network, style, settings), lighting)

    per_step: dict[str, list[float]] = {name: [] for name in variants}
    wall_step: dict[str, list[float]] = {name: [] for name in variants}
    split: dict[str, dict[str, float]] = {name: {} for name in variants}
    for burst in range(args.bursts + 1):
        for name, (objective, lighting) in variants.items():
            renderer.light_textures = lighting
            stamps: list[float] = []
            result = edit_mesh(
                vertices,
                faces,
                colours,
                objective,
                replace(settings, seed=burst),
                progress=lambda _, s=stamps: s.append((time.process_time(), time.perf_counter())),
            )
            if burst == 0:
                continue  # warm-up: numba's cache, allocator, oneDNN primitives
            pairs = list(zip(stamps, stamps[1:], strict=False))
            per_step[name] += [b[0] - a[0] for a, b in pairs]
            wall_step[name] += [b[1] - a[1] for a, b in pairs]
            for key, value in result.timing.items():
                split[name][key] = split[name].get(key, 0.0) + value
    renderer.light_textures = light_textures

    out = {
        "case": args.case,
        "preset": args.preset,
        "threads": threads,
        "threading_layer": numba.threading_layer(),
        "load_average": os.getloadavg(),
        "steps_timed": {name: len(v) for name, v in per_step.items()},
        "cpu_seconds_per_step_median": {
            name: round(statistics.median(v), 4) for name, v in per_step.items()
        },
        "wall_seconds_per_step_median": {
            name: round(statistics.median(v), 4) for name, v in wall_step.items()
        },
        "wall_split": {
            name: {k: round(v / sum(s.values()), 4) for k, v in s.items()}
            for name, s in split.items()
        },
    }
    before, after = (out["cpu_seconds_per_step_median"][k] for k in ("before", "after"))
    out["after_over_before"] = round(after / before, 4)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
