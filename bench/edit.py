"""Quality and speed of stylize and deepdream on the shared test meshes; prints JSON.

Each case runs the real job (as ``meshstyle stylize`` would, writing every output file),
then reloads the written OBJ and its texture atlas and measures, on 8 views that the
optimisation never used:

- stylize: the style loss after / before (target: at most 0.30), the mean silhouette IoU
  between input and output (target: at least 0.85) and how far the shape moved, NaN checks
  and the bounding-box growth (target: at most 1.2×);
- deepdream: the chosen layer's mean activation after / before (target: at least 3×);
- wall time of the job and how a step's time splits between rendering, the network and the
  rest (target: the renderer under 5%), and the renderer's milliseconds a step.

Usage: python bench/edit.py [--preset fast] [--out bench-out] [--cases bunny-munch1 ...]
           [--precisions fp32 bf16] [--seeds 0 1 2] [--iterations N]

With several seeds (and precisions) the JSON's ``summary`` gives, per case and precision,
the range over seeds of each measure: the noise band a change of precision must stay in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CASES = {
    "bunny-munch1": ("stylize", "meshes/bunny.obj", "styles/munch1.jpg"),
    "teapot-gris1": ("stylize", "meshes/teapot.obj", "styles/gris1.jpg"),
    "bunny-deepdream": ("deepdream", "meshes/bunny.obj", None),
}
HELD_OUT = [(elev, azim) for elev in (25.0, 35.0) for azim in (22.5, 112.5, 202.5, 292.5)]


def held_out_views(objective, settings, batch: int):
    """Fixed cameras no step used, lit by the objective's own light rule (fixed seed)."""
    from meshstyle.camera import Cameras

    elev = torch.tensor([e for e, _ in HELD_OUT][:batch])
    azim = torch.tensor([a for _, a in HELD_OUT][:batch])
    cameras = Cameras.from_angles(settings.distance, elev, azim)
    return cameras, objective.lights(cameras, np.random.default_rng(12345))


def reload_output(mesh_file: Path, transform, texture_size: int):
    """The written OBJ and atlas, back in the normalised frame of the input."""
    from meshstyle.mesh import load_mesh
    from meshstyle.textures import cubes_from_uv_texture

    out = load_mesh(mesh_file)
    vertices = torch.as_tensor(transform.apply(out.vertices), dtype=torch.float32)
    faces = torch.as_tensor(out.faces, dtype=torch.int64)
    cubes = torch.as_tensor(
        cubes_from_uv_texture(out.face_uvs, out.texture, texture_size), dtype=torch.float32
    )
    return vertices, faces, cubes, seam_rms(out.faces, out.face_uvs, cubes)


def seam_rms(faces, face_uvs, cubes) -> float:
    """RMS colour step (of 255) between the two sides of the texture's UV seams."""
    from meshstyle.uvtexture import SeamPoints

    return round(255.0 * SeamPoints(faces, face_uvs, cubes.shape[1]).rms(cubes), 2)


def measure(kind, objective, settings, vertices, faces, colours):
    """Held-out style loss (stylize) or activation (deepdream), and silhouettes."""
    from meshstyle.losses import style_loss
    from meshstyle.renderer import RenderSettings, render

    cameras, lights = held_out_views(objective, settings, len(HELD_OUT))
    raster = RenderSettings(image_size=settings.image_size)
    scores, silhouettes = [], []
    with torch.no_grad():
        for start in range(0, len(HELD_OUT), 4):
            idx = torch.arange(start, min(start + 4, len(HELD_OUT)))
            from meshstyle.camera import Cameras
            from meshstyle.shading import Lights

            cams = Cameras(cameras.eye[idx], cameras.at[idx], cameras.up[idx])
            lts = Lights(lights.ambient[idx], lights.directional[idx], lights.direction[idx])
            if kind == "stylize":
                background = objective.style_mean
            else:
                background = torch.tensor([0.5, 0.5, 0.5])
            out = render(vertices, faces, colours, cams, lts, raster, background)
            features = objective.features(out.images)
            if kind == "stylize":
                value = style_loss(features, objective.target_grams, out.silhouettes)
            else:
                value = objective.activation(features)
            scores.append(float(value) * len(idx))
            silhouettes.append(out.silhouettes)
    return sum(scores) / len(HELD_OUT), torch.cat(silhouettes)


def run_case(
    name: str, preset: str, out: Path, reuse: bool = False, overrides: dict | None = None
) -> dict:
    from meshstyle.commands.edit import build_objective, run_job, skipped_outcome
    from meshstyle.fit import iou
    from meshstyle.jobfolder import COMPLETE_MARKER
    from meshstyle.jobs import plan_jobs
    from meshstyle.mesh import load_mesh, normalise
    from meshstyle.precision import resolve_precision
    from meshstyle.runtime import resolve_device
    from meshstyle.settings import replace, resolve_settings
    from meshstyle.textures import initial_colours

    kind, mesh_rel, style_rel = CASES[name]
    mesh_path = DATA / mesh_rel
    style_path = None if style_rel is None else DATA / style_rel
    settings = resolve_settings(
        preset, overrides, base="fast" if kind == "stylize" else "deepdream"
    )
    device = resolve_device("cpu")
    precision = resolve_precision(settings.precision, device.torch_device).name
    job = plan_jobs(
        kind, [mesh_path], None if style_path is None else [style_path], layer=settings.layer
    )[0]

    # CPU time (all threads) at the end of every step: a loaded machine inflates it less
    # than wall time.
    stamps: list[float] = []
    start = time.perf_counter()
    if reuse and job.is_complete(out):
        outcome = skipped_outcome(job, out)
        wall = json.loads((job.folder(out) / COMPLETE_MARKER).read_text())["seconds"]
    else:
        outcome = run_job(
            job, settings, out, device, progress=lambda _: stamps.append(time.process_time())
        )
    if outcome.status == "done":
        wall = time.perf_counter() - start
    elif outcome.status != "skipped":
        raise SystemExit(f"bench/edit.py: case {name} {outcome.status}: {outcome.error}")

    mesh, transform = normalise(load_mesh(mesh_path))
    v0 = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    f0 = torch.as_tensor(mesh.faces, dtype=torch.int64)
    c0 = initial_colours(mesh, settings.texture_size)
    # Scored in fp32 whatever the run used, so that precisions are compared on one scale.
    objective = build_objective(job, replace(settings, precision="fp32"), f0, device)
    v1, f1, c1, seams = reload_output(
        Path(outcome.outputs["obj"]), transform, settings.texture_size
    )
    before, sil0 = measure(kind, objective, settings, v0, f0, c0)
    after, sil1 = measure(kind, objective, settings, v1, f1, c1)
    extent0 = (v0.max(0).values - v0.min(0).values).max().item()
    extent1 = (v1.max(0).values - v1.min(0).values).max().item()
    moved = (v1 - v0).norm(dim=1) if v1.shape == v0.shape else torch.tensor([float("nan")])
    timing = outcome.timing or json.loads((job.folder(out) / COMPLETE_MARKER).read_text()).get(
        "timing", {}
    )
    step_total = sum(timing.values()) or 1.0
    result = {
        "case": name,
        "preset": preset,
        "precision": precision,
        "seed": settings.seed,
        "iterations": settings.iterations,
        "image_size": settings.image_size,
        "views": settings.views,
        "wall_seconds": round(wall, 1),
        "seconds_per_step": round(step_total / max(settings.iterations, 1), 4),
        "time_split": {k: round(v / step_total, 4) for k, v in timing.items()},
        # The renderer's own time: its share alone moves with the network's speed.
        "renderer_ms_per_step": round(
            1000 * timing.get("render", 0.0) / max(settings.iterations, 1), 2
        ),
        # The first step is left out: it loads numba's cache and warms the allocator.
        "cpu_seconds_per_step_median": (
            round(float(np.median(np.diff(stamps))), 4) if len(stamps) > 2 else None
        ),
        "finite": bool(torch.isfinite(v1).all() and torch.isfinite(c1).all()),
        "bbox_growth": round(extent1 / extent0, 4),
        "mean_vertex_move": round(float(moved.mean()), 5),
        "max_vertex_move": round(float(moved.max()), 5),
        "silhouette_iou": round(float(iou(sil0, sil1).mean()), 4),
        "seam_rms": seams,
        "outputs": outcome.outputs,
    }
    if kind == "stylize":
        result["style_loss_before"] = before
        result["style_loss_after"] = after
        result["style_loss_ratio"] = round(after / before, 4)
        result["pass"] = bool(
            result["style_loss_ratio"] <= 0.30
            and result["silhouette_iou"] >= 0.85
            and result["max_vertex_move"] > 1e-3
            and result["finite"]
            and result["bbox_growth"] <= 1.2
            and wall <= 180
        )
    else:
        result["activation_before"] = before
        result["activation_after"] = after
        result["activation_gain"] = round(after / max(before, 1e-12), 3)
        result["pass"] = bool(result["activation_gain"] >= 3.0 and result["finite"])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="default: fast / deepdream")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reuse", action="store_true", help="measure finished outputs again")
    parser.add_argument(
        "--precisions",
        nargs="*",
        default=[None],
        help="run each case in each of these (auto, fp32, bf16); default: the preset's",
    )
    parser.add_argument(
        "--seeds", nargs="*", type=int, default=[None], help="run each case with each seed"
    )
    parser.add_argument("--iterations", type=int, default=None, help="override the preset's")
    args = parser.parse_args(argv)
    from meshstyle.runtime import configure_threads

    threads = configure_threads(args.threads)
    results = []
    for name in args.cases:
        preset = args.preset or ("fast" if CASES[name][0] == "stylize" else "deepdream")
        for precision in args.precisions:
            for seed in args.seeds:
                overrides = {"precision": precision, "seed": seed, "iterations": args.iterations}
                tag = (
                    "-".join(f"{k}{v}" for k, v in overrides.items() if v is not None) or "default"
                )
                out = args.out if tag == "default" else args.out / tag
                results.append(run_case(name, preset, out, args.reuse, overrides))
                print(json.dumps(results[-1]), file=sys.stderr)
    summary = _noise_band(results)
    print(
        json.dumps(
            {
                "threads": threads,
                "threading_layer": numba.threading_layer(),
                "load_average": os.getloadavg(),
                "summary": summary,
                "results": results,
            },
            indent=2,
        )
    )
    return 0 if all(r["pass"] for r in results) else 1


def _noise_band(results: list[dict]) -> list[dict]:
    """Per case and precision, the range over seeds of the quality and time measures."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["case"], r["precision"]), []).append(r)
    keys = (
        "style_loss_ratio",
        "activation_gain",
        "silhouette_iou",
        "seam_rms",
        "wall_seconds",
        "seconds_per_step",
    )
    summary = []
    for (case, precision), runs in groups.items():
        entry = {"case": case, "precision": precision, "seeds": [r["seed"] for r in runs]}
        for key in keys:
            values = [r[key] for r in runs if key in r]
            if values:
                entry[key] = {
                    "min": min(values),
                    "mean": round(float(np.mean(values)), 4),
                    "max": max(values),
                }
        renderer = [r["time_split"].get("render", 0.0) for r in runs]
        entry["renderer_share_mean"] = round(float(np.mean(renderer)), 4)
        entry["renderer_ms_per_step_mean"] = round(
            float(np.mean([r["renderer_ms_per_step"] for r in runs])), 2
        )
        summary.append(entry)
    return summary


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
