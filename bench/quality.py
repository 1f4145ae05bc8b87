"""How good stylize and deepdream results look, scored without the training loss; prints JSON.

Runs (or reuses) one job per case as ``meshstyle stylize``/``deepdream`` would, then reloads
what the job wrote (the OBJ and its texture image) and measures:

- ``palette``: sliced Wasserstein distance between albedo colours sampled at random points
  inside the faces (area-weighted) and the painting's pixels, divided by the same distance
  for a plain grey (0.5) mesh: 1 is no better than grey, 0 is the painting's palette.
  Target: at most 0.5.
- ``heldout_gram`` and ``heldout_gram_ratio``: the style (Gram) loss on 8 views at 192 px
  (elevations 10° and 50°, azimuths between the usual ones: views and a resolution no
  training step used), after, and after / before.
- ``dihedral_ratio``: mean angle between the normals of adjacent faces, after / before (a
  crumpled surface has sharp creases). Target: at most 1.5.
- ``silhouette_iou``: mean IoU of the input's and output's silhouettes on the held-out
  views. Target: at least 0.85.
- ``chamfer``: squared-distance chamfer between 10 000 surface samples of input and output in
  the normalised frame (longest side spans [-1, 1]): mean of the squared nearest-neighbour
  distances one way plus the other way, as PyTorch3D's ``chamfer_distance``. Shape edited:
  at least 0.002.
- ``seam_rms``: root mean square colour step (of 255) between the texture's two sides of
  every UV seam, at the points both sides stand for.
- ``luminance_std``: standard deviation of the sampled albedo luminance (Rec. 709 weights), how
  visible a pattern is. Deepdream target: at least 0.12.
- ``wall_seconds`` and ``seconds_per_step`` of the job, from its completion marker.

A gallery sheet (one row per case: painting, two held-out views) is written as
``OUT/quality_gallery.png``.

Usage:
    python bench/quality.py [--preset P] [--out bench-quality] [--meshes bunny teapot]
        [--paintings munch1 gris1 gogh1 hokusai1] [--no-deepdream] [--reuse]
        [--markdown table.md] [--no-gram]
    python bench/quality.py --score FOLDER ... (score finished job folders only)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MESHES = ("bunny", "teapot")
PAINTINGS = ("munch1", "gris1", "gogh1", "hokusai1")
HELD_OUT = [(e, a) for e in (10.0, 50.0) for a in (45.0, 135.0, 225.0, 315.0)]
HELD_OUT_SIZE = 192
SAMPLES = 10_000
PALETTE_DIRECTIONS = 128
GREY = 0.5
TARGETS = {
    "palette": 0.5,
    "dihedral_ratio": 1.5,
    "silhouette_iou": 0.85,
    "chamfer": 0.002,
    "deepdream_luminance_std": 0.12,
}


def surface_samples(vertices, faces, count: int, seed: int):
    """Area-weighted random points inside the faces.

    Returns:
        (face index (N,), barycentric weights (N, 3), points (N, 3)).
    """
    rng = np.random.default_rng(seed)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face = rng.choice(len(faces), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    weights = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    points = np.einsum("nk,nkc->nc", weights, tri[face])
    return face, weights, points


def albedo_samples(mesh, seed: int = 0) -> np.ndarray:
    """(N, 3) texture colours at random points inside the faces of a textured mesh."""
    from meshstyle.textures import sample_image

    face, weights, _ = surface_samples(mesh.vertices, mesh.faces, SAMPLES, seed)
    uv = np.einsum("nk,nkc->nc", weights, mesh.face_uvs[face])
    return sample_image(mesh.texture, uv, wrap=True)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: int = PALETTE_DIRECTIONS):
    """Mean over fixed random directions of the 1D Wasserstein-1 distance of projections."""
    rng = np.random.default_rng(1234)
    d = rng.standard_normal((3, directions))
    d /= np.linalg.norm(d, axis=0, keepdims=True)
    n = min(len(a), len(b))
    q = (np.arange(n) + 0.5) / n
    pa = _quantiles(a @ d, q)
    pb = _quantiles(b @ d, q)
    return float(np.abs(pa - pb).mean())


def _quantiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(values, q, axis=0)`` (its default linear method) from one sort.

    np.quantile partitions once per requested quantile: with 10 000 of them it took about
    40 s a job; sorting once gives the same numbers in milliseconds.
    """
    ordered = np.sort(values, axis=0)
    h = q * (len(ordered) - 1)
    low = np.floor(h).astype(np.int64)
    high = np.minimum(low + 1, len(ordered) - 1)
    t = (h - low)[:, None]
    return ordered[low] + t * (ordered[high] - ordered[low])


def painting_pixels(path: Path) -> np.ndarray:
    from meshstyle.images import load_image

    image = load_image(path, size=256)
    pixels = image.permute(1, 2, 0).reshape(-1, 3).numpy()
    rng = np.random.default_rng(0)
    return pixels[rng.choice(len(pixels), size=min(SAMPLES, len(pixels)), replace=False)]


def palette_distance(albedo: np.ndarray, painting: np.ndarray) -> float:
    grey = np.full_like(painting, GREY)
    return sliced_wasserstein(albedo, painting) / sliced_wasserstein(grey, painting)


def mean_dihedral(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Mean angle (radians) between the normals of faces sharing an edge."""
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.maximum(length, 1e-20)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges.sort(axis=1)
    owner = np.tile(np.arange(len(faces)), 3)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, owner = edges[order], owner[order]
    same = np.all(edges[1:] == edges[:-1], axis=1)
    a, b = owner[:-1][same], owner[1:][same]
    cos = np.clip(np.abs((normals[a] * normals[b]).sum(axis=1)), 0.0, 1.0)
    # |cos|: faces may be wound either way; a crease is the angle between the planes
    return float(np.arccos(cos).mean())


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    ta = torch.as_tensor(a, dtype=torch.float32)
    tb = torch.as_tensor(b, dtype=torch.float32)

    def one_way(x, y):
        best = [torch.cdist(x[i : i + 2000], y).min(dim=1).values for i in range(0, len(x), 2000)]
        return torch.cat(best).square().mean()

    return float(one_way(ta, tb) + one_way(tb, ta))


def held_out(vertices, faces, colours, style_mean):
    """Renders of the held-out views at HELD_OUT_SIZE, lit by the stylize light rule."""
    from meshstyle.camera import Cameras
    from meshstyle.renderer import RenderSettings, render
    from meshstyle.settings import EditSettings
    from meshstyle.views import tilted_lights

    elev = torch.tensor([e for e, _ in HELD_OUT])
    azim = torch.tensor([a for _, a in HELD_OUT])
    cameras = Cameras.from_angles(2.732, elev, azim)
    lights = tilted_lights(cameras, EditSettings(), np.random.default_rng(12345))
    with torch.no_grad():
        return render(
            vertices,
            faces,
            colours,
            cameras,
            lights,
            RenderSettings(image_size=HELD_OUT_SIZE),
            style_mean,
        )


def score_folder(folder: Path, network=None) -> dict:
    """Score one finished stylize or deepdream job folder."""
    import tomllib

    from meshstyle.fit import iou
    from meshstyle.images import load_image
    from meshstyle.jobfolder import COMPLETE_MARKER
    from meshstyle.losses import style_grams, style_loss
    from meshstyle.mesh import load_mesh, normalise
    from meshstyle.textures import cubes_from_uv_texture, initial_colours
    from meshstyle.uvtexture import SeamPoints

    marker = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8"))
    if "made_from" in marker:
        inputs = marker["made_from"]["inputs"]
        settings = marker["made_from"]["settings"]
        mesh_path = Path(inputs["mesh"]["path"])
        style_path = Path(inputs["style"]["path"]) if inputs.get("style") else None
    else:  # folders written before the marker recorded its inputs
        settings = tomllib.loads((folder / "settings.toml").read_text(encoding="utf-8"))
        mesh_path = Path(settings["mesh"])
        style_path = Path(settings["style"]) if "style" in settings else None
    source, transform = normalise(load_mesh(mesh_path))
    output = load_mesh(folder / marker["outputs"]["obj"])
    v1 = transform.apply(output.vertices).astype(np.float64)
    v0 = source.vertices.astype(np.float64)
    result = {
        "case": folder.name,
        "kind": "stylize" if style_path is not None else "deepdream",
        "wall_seconds": marker.get("seconds"),
        "seconds_per_step": round(
            sum(marker.get("timing", {}).values()) / max(settings["iterations"], 1), 4
        ),
        "finite": bool(np.isfinite(v1).all()),
    }
    albedo = albedo_samples(output)
    luminance = albedo @ np.array([0.2126, 0.7152, 0.0722])
    result["luminance_std"] = round(float(luminance.std()), 4)
    result["albedo_mean"] = [round(float(x), 3) for x in albedo.mean(axis=0)]
    result["dihedral_ratio"] = round(
        mean_dihedral(v1, output.faces) / mean_dihedral(v0, source.faces), 3
    )
    _, _, p0 = surface_samples(v0, source.faces, SAMPLES, 1)
    _, _, p1 = surface_samples(v1, output.faces, SAMPLES, 1)
    result["chamfer"] = round(chamfer(p0, p1), 5)

    t = 4
    f0 = torch.as_tensor(source.faces)
    f1 = torch.as_tensor(output.faces)
    c0 = initial_colours(source, t)
    c1 = torch.as_tensor(cubes_from_uv_texture(output.face_uvs, output.texture, t))
    result["seam_rms"] = round(255.0 * SeamPoints(output.faces, output.face_uvs, t).rms(c1), 1)
    t_v0 = torch.as_tensor(v0, dtype=torch.float32)
    t_v1 = torch.as_tensor(v1, dtype=torch.float32)
    if style_path is not None:
        style = load_image(style_path, size=HELD_OUT_SIZE)
        background = style.mean(dim=(1, 2))
    else:
        background = torch.full((3,), GREY)
    before = held_out(t_v0, f0, c0, background)
    after = held_out(t_v1, f1, c1, background)
    result["silhouette_iou"] = round(float(iou(before.silhouettes, after.silhouettes).mean()), 4)
    if style_path is not None:
        painting = painting_pixels(style_path)
        result["palette"] = round(palette_distance(albedo, painting), 3)
        result["painting_mean"] = [round(float(x), 3) for x in painting.mean(axis=0)]
        if network is not None:
            grams = style_grams(network, style[None])
            with torch.no_grad():
                g0 = float(style_loss(network(before.images), grams, before.silhouettes))
                g1 = float(style_loss(network(after.images), grams, after.silhouettes))
            result["heldout_gram"] = round(g1, 4)
            result["heldout_gram_ratio"] = round(g1 / g0, 4)
        result["pass"] = bool(
            result["palette"] <= TARGETS["palette"]
            and result["dihedral_ratio"] <= TARGETS["dihedral_ratio"]
            and result["silhouette_iou"] >= TARGETS["silhouette_iou"]
            and result["chamfer"] >= TARGETS["chamfer"]
            and result["finite"]
        )
        result["_gallery"] = [style.permute(1, 2, 0).numpy(), after.images[0], after.images[5]]
    else:
        result["pass"] = bool(
            result["luminance_std"] >= TARGETS["deepdream_luminance_std"]
            and result["dihedral_ratio"] <= TARGETS["dihedral_ratio"]
            and result["finite"]
        )
        result["_gallery"] = [before.images[0], after.images[0], after.images[5]]
    return result


def dumps_strict(value, indent: int | None = 2) -> str:
    """JSON with NaN and infinities as null (a measure of a degenerate mesh can be NaN)."""
    from meshstyle.jobfolder import strict_json

    return json.dumps(strict_json(value), indent=indent, allow_nan=False)


def markdown_table(results: list[dict]) -> str:
    """The results as a Markdown table (the README's)."""
    lines = [
        "| job | palette | held-out Gram after/before | dihedral ratio | silhouette IoU "
        "| chamfer | seam RMS | luminance std | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [
            r["case"],
            r.get("palette", "-"),
            r.get("heldout_gram_ratio", "-"),
            r["dihedral_ratio"],
            r["silhouette_iou"],
            r["chamfer"],
            r["seam_rms"],
            r["luminance_std"],
            round(r["wall_seconds"]) if r.get("wall_seconds") else "-",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def run_cases(args) -> list[Path]:
    """Run every case that is not already complete in ``args.out``; return the job folders."""
    from meshstyle.commands.edit import run_job
    from meshstyle.jobs import plan_jobs
    from meshstyle.runtime import resolve_device
    from meshstyle.settings import resolve_settings

    device = resolve_device("cpu")
    meshes = [DATA / "meshes" / f"{m}.obj" for m in args.meshes]
    styles = [DATA / "styles" / f"{p}.jpg" for p in args.paintings]
    plans = []
    if styles:
        settings = resolve_settings(args.preset or "fast", base="fast")
        plans += [(job, settings) for job in plan_jobs("stylize", meshes, styles)]
    if args.deepdream:
        settings = resolve_settings(args.dream_preset or "deepdream", base="deepdream")
        plans += [(j, settings) for j in plan_jobs("deepdream", meshes, layer=settings.layer)]
    folders = []
    for job, settings in plans:
        if not (args.reuse and job.is_complete(args.out)):
            start = time.perf_counter()
            run_job(job, settings, args.out, device)
            print(f"{job.name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        folders.append(job.folder(args.out))
    return folders


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="stylize preset (default: fast)")
    parser.add_argument("--dream-preset", default=None, help="deepdream preset")
    parser.add_argument("--out", type=Path, default=REPO / "bench-quality")
    parser.add_argument("--meshes", nargs="*", default=list(MESHES))
    parser.add_argument("--paintings", nargs="*", default=list(PAINTINGS))
    parser.add_argument("--no-deepdream", dest="deepdream", action="store_false")
    parser.add_argument("--reuse", action="store_true", help="keep finished job folders")
    parser.add_argument("--score", nargs="*", type=Path, help="only score these job folders")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument(
        "--no-gram",
        dest="gram",
        action="store_false",
        help="skip the held-out style loss (VGG on 16 renders: about half a minute a job)",
    )
    args = parser.parse_args(argv)

    from meshstyle.features import load_feature_network
    from meshstyle.images import contact_sheet, save_png
    from meshstyle.runtime import configure_threads

    threads = configure_threads(args.threads)
    folders = args.score if args.score else run_cases(args)
    network = (
        load_feature_network("vgg19", ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
        if args.gram
        else None
    )
    results, rows, labels = [], [], []
    for folder in folders:
        result = score_folder(folder, network)
        gallery = result.pop("_gallery")
        rows.append(gallery)
        labels.append(f"{result['case']}  palette {result.get('palette', '-')}")
        results.append(result)
        print(dumps_strict(result, indent=None), file=sys.stderr)
    # --out is where the gallery goes, also when only scoring: never into a job's OUT.
    out = args.out
    save_png(out / "quality_gallery.png", contact_sheet(rows, labels))
    stylize = [r for r in results if r["kind"] == "stylize"]
    summary = {
        key: round(float(np.mean([r[key] for r in stylize])), 4)
        for key in ("palette", "heldout_gram_ratio", "dihedral_ratio", "silhouette_iou", "chamfer")
        if stylize and all(key in r for r in stylize)
    }
    print(
        dumps_strict(
            {
                "threads": threads,
                "targets": TARGETS,
                "mean_stylize": summary,
                "results": results,
                "gallery": str(out / "quality_gallery.png"),
            }
        )
    )
    if args.markdown:
        args.markdown.write_text(markdown_table(results), encoding="utf-8")
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
