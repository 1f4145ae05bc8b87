"""Make the bundled sample meshes and style paintings.

Everything here is generated from formulas and fixed random seeds, so the files are the
project's own and the script reproduces them exactly (no downloads, a few seconds)::

    python assets/make_assets.py [OUT_FOLDER]      # default: the folder of this script

Meshes (OBJ, y up, closed parts, counter-clockwise seen from outside):
    teapot.obj   a teapot of our own design: body and lid as one surface of revolution,
                 spout and handle as swept tubes (about 4.8k faces)
    knot.obj     a (2, 3) torus knot tube (about 3.8k faces)

Paintings (512×512 PNG):
    swirls.png   swirling brush strokes: line-integral convolution of noise along a field of
                 vortices, in night blues and golds
    circles.png  bold overlapping circles, rings and black lines on cream paper

Only numpy and Pillow are used, and Pillow only to encode the PNG files.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np

SIZE = 512


# --------------------------------------------------------------------------------------
# meshes


def catmull_rom(points: np.ndarray, samples_per_segment: np.ndarray) -> np.ndarray:
    """A Catmull-Rom spline through ``points`` (n, d), ends clamped; returns (m, d)."""
    padded = np.concatenate([points[:1], points, points[-1:]])
    out = [points[:1]]
    for i, count in enumerate(samples_per_segment):
        p0, p1, p2, p3 = padded[i : i + 4]
        t = (np.arange(1, count + 1) / count)[:, None]
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    return np.concatenate(out)


def revolve(profile: np.ndarray, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Surface of revolution about +y of a (radius, height) profile from pole to pole.

    The first and last profile points must lie on the axis; they become single vertices.
    """
    inner = profile[1:-1]
    theta = np.arange(segments) * (2 * np.pi / segments)
    ring = np.stack(
        [
            inner[:, None, 0] * np.cos(theta)[None],
            np.broadcast_to(inner[:, None, 1], (len(inner), segments)),
            -inner[:, None, 0] * np.sin(theta)[None],
        ],
        axis=-1,
    ).reshape(-1, 3)
    bottom = [[0.0, profile[0, 1], 0.0]]
    top = [[0.0, profile[-1, 1], 0.0]]
    vertices = np.concatenate([bottom, ring, top])
    rings = len(inner)
    idx = 1 + np.arange(rings * segments).reshape(rings, segments)
    nxt = np.roll(idx, -1, axis=1)
    faces = [np.stack([np.zeros(segments, dtype=np.int64), nxt[0], idx[0]], axis=-1)]
    quads_a = np.stack([idx[:-1], nxt[:-1], nxt[1:]], axis=-1).reshape(-1, 3)
    quads_b = np.stack([idx[:-1], nxt[1:], idx[1:]], axis=-1).reshape(-1, 3)
    faces += [quads_a, quads_b]
    last = len(vertices) - 1
    faces.append(np.stack([np.full(segments, last), idx[-1], nxt[-1]], axis=-1))
    return vertices, np.concatenate(faces).astype(np.int64)


def tube(centre: np.ndarray, radius: np.ndarray, sides: int, *, closed_loop: bool = False):
    """A tube of varying radius along a curve (n, 3); capped ends unless ``closed_loop``."""
    tangent = np.gradient(centre, axis=0)
    if closed_loop:
        tangent = np.roll(centre, -1, axis=0) - np.roll(centre, 1, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    # parallel transport keeps the rings from twisting along the curve
    normals = np.empty_like(centre)
    seed = np.array([0.0, 0.0, 1.0]) if abs(tangent[0, 2]) < 0.9 else np.array([1.0, 0, 0])
    normals[0] = np.cross(np.cross(tangent[0], seed), tangent[0])
    normals[0] /= np.linalg.norm(normals[0])
    for i in range(1, len(centre)):
        n = normals[i - 1] - np.dot(normals[i - 1], tangent[i]) * tangent[i]
        normals[i] = n / np.linalg.norm(n)
    binormals = np.cross(tangent, normals)
    if closed_loop:
        # spread the leftover holonomy twist evenly so the loop closes without a seam
        twist = np.arctan2(
            np.dot(np.cross(normals[-1], normals[0]), tangent[0]), np.dot(normals[-1], normals[0])
        )
        phase = twist * np.arange(len(centre)) / len(centre)
    else:
        phase = np.zeros(len(centre))
    phi = np.arange(sides) * (2 * np.pi / sides)
    angle = phi[None, :] + phase[:, None]
    offsets = (
        np.cos(angle)[..., None] * normals[:, None] + np.sin(angle)[..., None] * binormals[:, None]
    )
    ring = centre[:, None] + radius[:, None, None] * offsets
    vertices = ring.reshape(-1, 3)
    n = len(centre)
    idx = np.arange(n * sides).reshape(n, sides)
    nxt = np.roll(idx, -1, axis=1)
    rows = np.arange(n if closed_loop else n - 1)
    a, b = idx[rows], nxt[rows]
    c, d = nxt[(rows + 1) % n], idx[(rows + 1) % n]
    faces = [
        np.stack([a, c, b], axis=-1).reshape(-1, 3),
        np.stack([a, d, c], axis=-1).reshape(-1, 3),
    ]
    if not closed_loop:
        start = len(vertices)
        vertices = np.concatenate([vertices, centre[:1], centre[-1:]])
        faces.append(np.stack([np.full(sides, start), idx[0], nxt[0]], axis=-1))
        faces.append(np.stack([np.full(sides, start + 1), nxt[-1], idx[-1]], axis=-1))
    return vertices, np.concatenate(faces).astype(np.int64)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces wound counter-clockwise seen from outside (positive enclosed volume)."""
    return faces if signed_volume(vertices, faces) > 0 else faces[:, ::-1].copy()


def join(*parts) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(v)
        faces.append(outward(v, f) + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def bezier(points: np.ndarray, count: int) -> np.ndarray:
    """Points (count, d) on the Bezier curve with control points (k, d), by de Casteljau."""
    t = np.linspace(0.0, 1.0, count)[:, None, None]
    p = np.broadcast_to(points, (count,) + points.shape).copy()
    while p.shape[1] > 1:
        p = (1 - t) * p[:, :-1] + t * p[:, 1:]
    return p[:, 0]


def make_teapot() -> tuple[np.ndarray, np.ndarray]:
    """Body with lid and knob, spout and handle; about 4.8k faces, 1 unit tall."""
    # (radius, height) from the bottom centre to the top of the knob
    profile = np.array(
        [
            [0.00, 0.00],
            [0.45, 0.00],
            [0.62, 0.03],
            [0.78, 0.16],
            [0.86, 0.34],
            [0.83, 0.52],
            [0.71, 0.68],
            [0.58, 0.76],
            [0.60, 0.79],  # the lid's lip
            [0.52, 0.82],
            [0.32, 0.90],
            [0.12, 0.94],
            [0.07, 0.97],  # knob
            [0.13, 1.02],
            [0.11, 1.07],
            [0.00, 1.09],
        ]
    )
    lengths = np.linalg.norm(np.diff(profile, axis=0), axis=1)
    counts = np.maximum(2, np.round(lengths / lengths.sum() * 38)).astype(int)
    body = revolve(catmull_rom(profile, counts), 40)

    spout_path = bezier(
        np.array([[0.60, 0.28, 0.0], [1.05, 0.30, 0.0], [1.05, 0.72, 0.0], [1.30, 0.86, 0.0]]), 28
    )
    spout_radius = (
        np.linspace(0.15, 0.055, len(spout_path)) + 0.02 * np.linspace(0, 1, len(spout_path)) ** 8
    )
    spout = tube(spout_path, spout_radius, 16)

    handle_path = bezier(
        np.array([[-0.62, 0.64, 0.0], [-1.20, 0.78, 0.0], [-1.22, 0.18, 0.0], [-0.72, 0.22, 0.0]]),
        28,
    )
    handle = tube(handle_path, np.full(len(handle_path), 0.055), 12)
    return join(body, spout, handle)


def make_knot(p: int = 2, q: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A (p, q) torus knot tube, one closed loop; about 3.8k faces."""
    t = np.arange(160) * (2 * np.pi / 160)
    r = 0.65 + 0.3 * np.cos(q * t)
    centre = np.stack([r * np.cos(p * t), 0.3 * np.sin(q * t), r * np.sin(p * t)], axis=-1)
    return join(tube(centre, np.full(len(t), 0.13), 12, closed_loop=True))


def obj_text(name: str, vertices: np.ndarray, faces: np.ndarray) -> str:
    header = (
        f"# {name}: made by assets/make_assets.py ({len(vertices)} vertices, {len(faces)} faces)\n"
    )
    v = "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in (vertices + 0.0).tolist())
    f = "".join(f"f {a} {b} {c}\n" for a, b, c in (faces + 1).tolist())
    return header + f"o {name}\n" + v + f


# --------------------------------------------------------------------------------------
# paintings


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a (H, W) array at pixel coordinates, clamped at the border."""
    h, w = image.shape
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0 = x.astype(np.int64)
    y0 = y.astype(np.int64)
    fx = x - x0
    fy = y - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Separable box blur of a (H, W) array with wrap-around borders."""
    out = image
    for axis in (0, 1):
        out = sum(np.roll(out, s, axis=axis) for s in range(-radius, radius + 1)) / (2 * radius + 1)
    return out


def swirl_field(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit flow direction at pixel positions: a few vortices over a rolling breeze."""
    vx = 1.0 + 0.0 * x
    vy = 0.45 * np.sin(x / 70.0 + y / 90.0)
    # (x, y, radius, strength): positive turns counter-clockwise on screen
    vortices = [
        (170, 170, 110, 3.2),
        (330, 120, 70, -2.6),
        (400, 300, 95, 2.8),
        (150, 390, 80, -2.4),
        (300, 440, 60, 2.0),
        (60, 60, 40, 1.5),
    ]
    for cx, cy, radius, strength in vortices:
        dx = x - cx
        dy = y - cy
        weight = strength * np.exp(-(dx * dx + dy * dy) / (2 * radius * radius))
        vx = vx - weight * dy / radius
        vy = vy + weight * dx / radius
    norm = np.sqrt(vx * vx + vy * vy) + 1e-9
    return vx / norm, vy / norm


def make_swirls(size: int = SIZE) -> np.ndarray:
    """Swirling brush strokes: noise smeared along the flow field (line integral convolution)."""
    rng = np.random.default_rng(1889)
    noise = box_blur(rng.random((size, size)), 1)
    noise = (noise - noise.mean()) / noise.std()
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    total = bilinear(noise, x, y)
    weight = np.ones_like(total)
    for direction in (1.0, -1.0):
        px, py = x.copy(), y.copy()
        for step in range(1, 15):
            vx, vy = swirl_field(px, py)
            px += direction * vx
            py += direction * vy
            w = np.exp(-((step / 9.0) ** 2))
            total += w * bilinear(noise, px, py)
            weight += w
    strokes = total / weight
    strokes = np.clip(0.5 + 0.28 * strokes / strokes.std(), 0.0, 1.0)

    # colour regions: gold near vortex cores and a moon, deep blue elsewhere, dark ground
    vx, vy = swirl_field(x, y)
    glow = np.zeros_like(x)
    for cx, cy, radius in ((170, 170, 60), (400, 300, 50), (300, 440, 35), (455, 70, 38)):
        glow = np.maximum(glow, np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2)))
    blue_dark = np.array([0.05, 0.10, 0.28])
    blue_light = np.array([0.35, 0.55, 0.85])
    gold_dark = np.array([0.70, 0.45, 0.08])
    gold_light = np.array([1.00, 0.90, 0.45])
    s = strokes[..., None]
    blue = blue_dark + (blue_light - blue_dark) * s
    gold = gold_dark + (gold_light - gold_dark) * s
    g = smoothstep(0.25, 0.75, glow)[..., None]
    colour = blue * (1 - g) + gold * g
    # a hint of teal where the flow runs upward, as if painted with a second brush
    colour += (0.10 * np.clip(-vy, 0, 1))[..., None] * np.array([-0.3, 0.6, 0.3])
    ground = smoothstep(470.0, 500.0, y + 18.0 * np.sin(x / 45.0))[..., None]
    colour = colour * (1 - ground) + ground * (np.array([0.08, 0.07, 0.10]) + 0.15 * s)
    return np.round(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8)


def coverage(distance: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a shape from its signed distance in pixels (inside < 0)."""
    return np.clip(0.5 - distance, 0.0, 1.0)


def segment_distance(x, y, a, b) -> np.ndarray:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(x - ax - t * dx, y - ay - t * dy)


def make_circles(size: int = SIZE) -> np.ndarray:
    """Bold overlapping circles, concentric rings and black lines on cream paper."""
    rng = np.random.default_rng(1926)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    paper = np.array([0.93, 0.89, 0.78]) - 0.06 * (y / size)[..., None]
    grain = box_blur(rng.random((size, size)), 2) - 0.5
    canvas = paper + 0.05 * grain[..., None]

    def paint(mask: np.ndarray, colour, alpha: float = 1.0) -> None:
        nonlocal canvas
        a = (alpha * mask)[..., None]
        canvas = canvas * (1 - a) + np.asarray(colour) * a

    palette = [
        (0.80, 0.12, 0.10),
        (0.10, 0.25, 0.60),
        (0.95, 0.75, 0.10),
        (0.12, 0.50, 0.30),
        (0.55, 0.20, 0.55),
        (0.95, 0.45, 0.15),
        (0.10, 0.10, 0.12),
    ]
    # a dark halo circle, then translucent overlapping discs
    cx, cy = 150.0, 160.0
    r = np.hypot(x - cx, y - cy)
    paint(coverage(r - 118), (0.08, 0.08, 0.12), 0.9)
    paint(coverage(r - 88), (0.20, 0.35, 0.75))
    paint(coverage(r - 60), (0.95, 0.80, 0.20))
    paint(coverage(r - 30), (0.75, 0.10, 0.12))
    for k in range(14):
        cx, cy = rng.uniform(40, size - 40, 2)
        radius = rng.uniform(14, 70)
        colour = palette[k % len(palette)]
        r = np.hypot(x - cx, y - cy)
        paint(coverage(r - radius), colour, 0.75)
        if k % 3 == 0:
            # a concentric ring inside, Kandinsky's circles within circles
            paint(
                coverage(np.abs(r - 0.55 * radius) - 0.12 * radius), palette[(k + 2) % len(palette)]
            )
    # squares of concentric rings in a row along the bottom
    for i in range(4):
        cx, cy = 300.0 + 52 * i, 450.0
        r = np.hypot(x - cx, y - cy)
        inside = (np.abs(x - cx) < 24) & (np.abs(y - cy) < 24)
        for j, radius in enumerate((22, 15, 8)):
            paint(coverage(r - radius) * inside, palette[(i + j) % len(palette)])
    # bold black lines and thin ones
    for a, b, width in (
        ((20, 470), (470, 40), 7.0),
        ((60, 20), (330, 500), 4.0),
        ((250, 60), (500, 240), 2.0),
        ((0, 300), (512, 360), 1.5),
        ((380, 20), (420, 500), 1.5),
    ):
        paint(coverage(segment_distance(x, y, a, b) - width / 2), (0.05, 0.05, 0.06))
    # a black triangle
    ax, ay, bx, by, qx, qy = 360.0, 140.0, 470.0, 190.0, 380.0, 250.0
    edges = [
        ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / np.hypot(bx - ax, by - ay),
        ((qx - bx) * (y - by) - (qy - by) * (x - bx)) / np.hypot(qx - bx, qy - by),
        ((ax - qx) * (y - qy) - (ay - qy) * (x - qx)) / np.hypot(ax - qx, ay - qy),
    ]
    paint(coverage(-np.minimum.reduce(edges)), (0.07, 0.06, 0.08))
    return np.round(np.clip(canvas, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary name and rename, so a file is never left half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(out: Path) -> list[Path]:
    """Write every asset into ``out`` and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (vertices, faces) in (("teapot", make_teapot()), ("knot", make_knot())):
        path = out / f"{name}.obj"
        write_atomic(path, obj_text(name, vertices, faces).encode("ascii"))
        written.append(path)
    for name, image in (("swirls", make_swirls()), ("circles", make_circles())):
        path = out / f"{name}.png"
        write_atomic(path, png_bytes(image))
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for written_path in main(target):
        print(written_path)
