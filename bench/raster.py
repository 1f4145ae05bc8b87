"""Benchmark the rasterizer (forward and forward+backward) and print JSON.

Scenes: the teapot and bunny from ``../shared/data/meshes`` and icospheres of 20k and 82k
faces, normalised to a bounding-box centre at 0 and longest side spanning [-1, 1], seen from
distance 2.732, elevation 30, azimuth 45 (+90 per extra batch item) with a 30 degree
perspective half-angle. Modes: silhouette without anti-aliasing, textured RGB (T=4)
with anti-aliasing (what the applications render), and RGB with T=2 cubes without it (the
like-for-like of DEODR's vertex colours; ``versus_deodr`` pairs them). The backward pass
uses a squared-error loss against the rendering of a slightly rotated view (silhouette) or
against random colours (RGB, a dense gradient like a style loss). DEODR 0.2.3 is measured
on the same projected meshes when it is installed.

Usage: python bench/raster.py [--device cpu|cuda] [--repeat N] [--image-size S]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DISTANCE = 2.732
ELEVATION = 30.0
AZIMUTH = 45.0
VIEWING_ANGLE = 30.0

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_mesh(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 normalised, faces (F, 3) int64."""
    import trimesh

    if name.startswith("icosphere"):
        mesh = trimesh.creation.icosphere(subdivisions=int(name[-1]), radius=1.0)
    else:
        mesh = trimesh.load(DATA / "meshes" / f"{name}.obj", force="mesh", process=False)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    low, high = vertices.min(0), vertices.max(0)
    vertices = (vertices - (low + high) / 2) * (2.0 / (high - low).max())
    return vertices, np.asarray(mesh.faces, dtype=np.int64)


def camera_vertices(vertices: np.ndarray, azimuth: float, aspect: float) -> np.ndarray:
    """Project to (V, 3): NDC x, NDC y, camera depth."""
    e, a = math.radians(ELEVATION), math.radians(azimuth)
    eye = DISTANCE * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    cam = (vertices - eye) @ np.stack([right, up, forward]).T
    scale = 1.0 / math.tan(math.radians(VIEWING_ANGLE))
    z = cam[:, 2]
    return np.stack([cam[:, 0] * scale / z / aspect, cam[:, 1] * scale / z, z], -1)


def face_batch(vertices, faces, batch, azimuth_offset=0.0):
    import torch

    views = [
        camera_vertices(vertices, AZIMUTH + 90.0 * i + azimuth_offset, 1.0)[faces]
        for i in range(batch)
    ]
    return torch.tensor(np.stack(views), dtype=torch.float32)


def timed(fn, repeat: int) -> float:
    """Median wall time in milliseconds after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


# mode -> (texture size, anti-aliasing); "rgb-plain" is the like-for-like of DEODR's
# vertex colours without anti-aliasing (a T=2 cube interpolates its corners' colours).
MODES = {"silhouette": (0, False), "rgb": (4, True), "rgb-plain": (2, False)}
LABELS = {"silhouette": "silhouette, no AA", "rgb": "rgb T=4, AA", "rgb-plain": "rgb T=2, no AA"}


def bench_meshstyle(name, vertices, faces, batch, mode, size, device, repeat) -> dict:
    import torch

    from meshstyle.raster import rasterize

    fv = face_batch(vertices, faces, batch).to(device)
    target_fv = face_batch(vertices, faces, batch, azimuth_offset=5.0).to(device)
    rgb = mode != "silhouette"
    texture_size, anti_aliasing = MODES[mode]
    kwargs = dict(image_size=size, anti_aliasing=anti_aliasing, backend=device)
    generator = torch.Generator().manual_seed(0)
    textures = None
    if rgb:
        shape = (batch, len(faces), texture_size, texture_size, texture_size, 3)
        textures = torch.rand(shape, generator=generator).to(device)
        target = torch.rand((batch, 3, size, size), generator=generator).to(device)
    else:
        with torch.no_grad():
            target = rasterize(target_fv, None, **kwargs).alpha

    def forward():
        with torch.no_grad():
            rasterize(fv, textures, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()

    def forward_backward():
        leaf = fv.clone().requires_grad_()
        tex = None if textures is None else textures.clone().requires_grad_()
        fragments = rasterize(leaf, tex, **kwargs)
        image = fragments.rgb if rgb else fragments.alpha
        ((image - target) ** 2).mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        coverage = float((rasterize(fv, None, **kwargs).alpha > 0).float().mean())
    return {
        "scene": name,
        "faces": len(faces),
        "mode": LABELS[mode],
        "batch": batch,
        "forward_ms": round(timed(forward, repeat), 3),
        "forward_backward_ms": round(timed(forward_backward, repeat), 3),
        "coverage": round(coverage, 3),
    }


def bench_deodr(name, vertices, faces, mode, size, repeat) -> dict:
    """DEODR's 2D renderer on the same projected mesh (batch 1, its edge anti-aliasing)."""
    from deodr.differentiable_renderer import Scene2D
    from deodr.triangulated_mesh import ColoredTriMesh

    proj = camera_vertices(vertices, AZIMUTH, 1.0)
    # DEODR's pixel centres are integers with (0, 0) at the top-left corner.
    ij = np.stack([(proj[:, 0] * size + size - 1) / 2, (size - 1 - proj[:, 1] * size) / 2], -1)
    channels = 3 if mode == "rgb" else 1
    rng = np.random.default_rng(0)
    colors = (
        rng.uniform(size=(len(vertices), channels))
        if channels == 3
        else np.ones((len(vertices), 1))
    )
    mesh = ColoredTriMesh(faces.astype(np.uint32), vertices, colors=colors)
    try:
        edgeflags = mesh.edge_on_silhouette(ij)
        edge_note = "silhouette edges from DEODR's adjacency"
    except AssertionError:
        edgeflags = np.ones((len(faces), 3), dtype=bool)
        edge_note = "mesh not manifold: every edge flagged for anti-aliasing"
    faces32 = faces.astype(np.uint32)
    n = len(vertices)

    # DEODR only differentiates with back-face culling on; its faces must then face the camera
    # in its winding convention, which we try both ways and keep the one that draws more.
    def make(clockwise):
        return Scene2D(
            faces=faces32,
            faces_uv=faces32,
            ij=ij,
            depths=proj[:, 2],
            textured=np.zeros(len(faces), bool),
            uv=np.zeros((n, 2)),
            shade=np.zeros(n),
            colors=colors,
            shaded=np.zeros(len(faces), bool),
            edgeflags=edgeflags,
            height=size,
            width=size,
            nb_colors=channels,
            texture=np.zeros((0, 0, channels)),
            background_color=np.zeros(channels),
            clockwise=clockwise,
            backface_culling=True,
        )

    scene = max((make(c) for c in (False, True)), key=lambda s: float(np.abs(s.render()[0]).sum()))
    target = rng.uniform(size=(size, size, channels))

    def forward():
        scene.render(sigma=1.0)

    def forward_backward():
        image, _ = scene.render(sigma=1.0)
        scene.clear_gradients()
        scene.render_backward(2.0 * (image - target) / image.size)

    return {
        "scene": name,
        "faces": len(faces),
        "mode": "silhouette (1 channel)" if channels == 1 else "rgb vertex colours",
        "batch": 1,
        "forward_ms": round(timed(forward, repeat), 3),
        "forward_backward_ms": round(timed(forward_backward, repeat), 3),
        "notes": f"back-face culling on (needed for its gradients), sigma=1; {edge_note}",
    }


def versus(ours: list[dict], theirs: list[dict]) -> list[dict]:
    """Forward+backward of the like-for-like pairs (batch 1, no anti-aliasing) side by side;
    ``ratio`` > 1 means meshstyle is slower."""
    pairs = {"silhouette, no AA": "silhouette (1 channel)", "rgb T=2, no AA": "rgb vertex colours"}
    rows = []
    for mine in ours:
        if mine["batch"] != 1 or mine["mode"] not in pairs:
            continue
        for other in theirs:
            if other["scene"] == mine["scene"] and other["mode"] == pairs[mine["mode"]]:
                rows.append(
                    {
                        "scene": mine["scene"],
                        "mode": mine["mode"],
                        "meshstyle_ms": mine["forward_backward_ms"],
                        "deodr_ms": other["forward_backward_ms"],
                        "ratio": round(
                            mine["forward_backward_ms"] / other["forward_backward_ms"], 2
                        ),
                    }
                )
    return rows


STARTUP = """
import time, sys
start = time.perf_counter()
sys.path.insert(0, {repo!r})
import torch
import meshstyle.raster as raster
imported = time.perf_counter()
raster.warm_up({device!r})
done = time.perf_counter()
print(imported - start, done - imported)
"""


def startup(device: str) -> dict:
    """Cold processes: a first one compiles into an empty cache, a second loads it."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = {}
        for label in ("compile", "cached"):
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", STARTUP.format(repo=str(REPO), device=device)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            total = time.perf_counter() - start
            imported, first = (float(v) for v in result.stdout.split())
            out[label] = {
                "process_s": round(total, 3),
                "import_s": round(imported, 3),
                "first_forward_backward_s": round(first, 3),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--scenes", default="teapot,bunny,icosphere5,icosphere6")
    parser.add_argument("--no-startup", action="store_true", help="skip the subprocess timings")
    args = parser.parse_args()

    import numba
    import torch

    from meshstyle import runtime

    problem = runtime.timing_device_problem(args.device)
    if problem:
        parser.error(problem)

    report = {
        "device": args.device,
        "image_size": args.image_size,
        "repeat": args.repeat,
        "machine": {
            "cpu_count": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "torch_threads": torch.get_num_threads(),
            "threading_layer": None,
            "python": platform.python_version(),
            "numba": numba.__version__,
            "torch": torch.__version__,
            # Other processes share this machine's cores; timings move with their load.
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
    }
    if args.device == "cuda":
        report["machine"]["gpu"] = torch.cuda.get_device_name()
        report["machine"]["cuda_target"] = runtime.cuda_target()
    if not args.no_startup:
        report["startup"] = startup(args.device)
    meshes = {name: load_mesh(name) for name in args.scenes.split(",")}
    results = []
    for name, (vertices, faces) in meshes.items():
        for mode in MODES:
            for batch in (1, 4):
                results.append(
                    bench_meshstyle(
                        name,
                        vertices,
                        faces,
                        batch,
                        mode,
                        args.image_size,
                        args.device,
                        args.repeat,
                    )
                )
    report["meshstyle"] = results
    report["machine"]["threading_layer"] = numba.threading_layer()
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    try:
        import deodr

        deodr_results = []
        for name, (vertices, faces) in meshes.items():
            for mode in ("silhouette", "rgb"):
                deodr_results.append(
                    bench_deodr(name, vertices, faces, mode, args.image_size, args.repeat)
                )
        report["deodr"] = {"version": deodr.__version__, "results": deodr_results}
        report["versus_deodr"] = versus(results, deodr_results)
    except ImportError as error:
        report["deodr"] = {"installed": False, "error": str(error)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
