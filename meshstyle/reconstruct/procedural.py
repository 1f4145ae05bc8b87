"""A procedural reconstruction data set: parametric objects built from primitives.

Every object is a union of boxes, cylinders and ellipsoids with proportions drawn at random
for its class (chairs, tables, lamps, airplanes, vessels). The same primitives give both the
images (their triangle meshes rendered with our rasterizer) and the voxels (exact inside
tests at the voxel centres), so the two agree up to the mesh's facets. Files follow the
``meshstyle`` layout of :mod:`.layout`; the set is a pure function of the seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from meshstyle.reconstruct.layout import IMAGE_SIZE, MESHSTYLE, VIEWS, VOXEL_SIZE
from meshstyle.reconstruct.voxelize import voxel_centres

#: Facets around a cylinder and around an ellipsoid's equator.
_SEGMENTS = 24
#: Rings of an ellipsoid from pole to pole.
_RINGS = 12


@dataclass(frozen=True)
class Primitive:
    """A solid: ``kind`` is "box", "cylinder" (axis along y) or "ellipsoid".

    Attributes:
        kind: the solid's kind.
        centre: (3,) centre.
        size: (3,) half extents along x, y, z (a cylinder's x and z are its radii).
    """

    kind: str
    centre: tuple[float, float, float]
    size: tuple[float, float, float]

    def scaled(self, offset: np.ndarray, scale: float) -> Primitive:
        centre = (np.asarray(self.centre) + offset) * scale
        return Primitive(self.kind, tuple(centre), tuple(np.asarray(self.size) * scale))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, s = np.asarray(self.centre), np.asarray(self.size)
        return c - s, c + s

    def inside(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points -> (...) bool."""
        d = (points - np.asarray(self.centre)) / np.asarray(self.size)
        if self.kind == "box":
            return np.all(np.abs(d) <= 1.0, axis=-1)
        if self.kind == "cylinder":
            return (d[..., 0] ** 2 + d[..., 2] ** 2 <= 1.0) & (np.abs(d[..., 1]) <= 1.0)
        return (d**2).sum(-1) <= 1.0

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """A closed triangle mesh: vertices (V, 3), faces (F, 3)."""
        unit_v, unit_f = _UNIT[self.kind]
        return unit_v * np.asarray(self.size) + np.asarray(self.centre), unit_f


def _unit_box() -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    f = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1]]
    f += [[2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    return v, np.array(f)


def _unit_cylinder() -> tuple[np.ndarray, np.ndarray]:
    # Vertices sit on a circle of radius 1/sqrt(cos(pi/n)), the geometric mean of the radii
    # at which the prism's facets touch (1) and its corners touch (1/cos(pi/n)) the true
    # cylinder: the facets straddle it, so the rendered area is close to the inside test's.
    n = _SEGMENTS
    a = 2 * np.pi * np.arange(n) / n
    r = 1.0 / np.sqrt(np.cos(np.pi / n))
    ring = np.stack([r * np.cos(a), np.zeros(n), r * np.sin(a)], 1)
    v = np.concatenate([ring + [0, -1, 0], ring + [0, 1, 0], [[0, -1, 0], [0, 1, 0]]])
    f = []
    for i in range(n):
        j = (i + 1) % n
        f += [[i, j, n + j], [i, n + j, n + i], [2 * n, j, i], [2 * n + 1, n + i, n + j]]
    return v, np.array(f)


def _unit_sphere() -> tuple[np.ndarray, np.ndarray]:
    n, m = _SEGMENTS, _RINGS
    v = [[0.0, -1.0, 0.0]]
    for r in range(1, m):
        theta = np.pi * r / m - np.pi / 2
        for s in range(n):
            phi = 2 * np.pi * s / n
            v.append([np.cos(theta) * np.cos(phi), np.sin(theta), np.cos(theta) * np.sin(phi)])
    v.append([0.0, 1.0, 0.0])
    top = len(v) - 1
    f = []
    for s in range(n):
        f.append([0, 1 + (s + 1) % n, 1 + s])
        f.append([top, top - n + s, top - n + (s + 1) % n])
    for r in range(m - 2):
        for s in range(n):
            a, b = 1 + r * n + s, 1 + r * n + (s + 1) % n
            f += [[a, b, b + n], [a, b + n, a + n]]
    return np.array(v), np.array(f)


_UNIT = {"box": _unit_box(), "cylinder": _unit_cylinder(), "ellipsoid": _unit_sphere()}


def _box(c, s) -> Primitive:
    return Primitive("box", tuple(map(float, c)), tuple(map(float, s)))


def _cyl(c, r, h) -> Primitive:
    return Primitive("cylinder", tuple(map(float, c)), (float(r), float(h), float(r)))


def _ell(c, s) -> Primitive:
    return Primitive("ellipsoid", tuple(map(float, c)), tuple(map(float, s)))


def chair(rng: np.random.Generator) -> list[Primitive]:
    """Seat, four legs, a back at -z, sometimes arms."""
    w, d = rng.uniform(0.35, 0.5), rng.uniform(0.35, 0.5)
    seat_y, t = rng.uniform(0.35, 0.55), rng.uniform(0.04, 0.08)
    back_h, leg = rng.uniform(0.35, 0.7), rng.uniform(0.04, 0.07)
    parts = [_box((0, seat_y, 0), (w, t, d))]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_box((sx * (w - leg), seat_y / 2, sz * (d - leg)), (leg, seat_y / 2, leg)))
    parts.append(_box((0, seat_y + back_h, -d + t), (w, back_h, t)))
    if rng.random() < 0.4:
        for sx in (-1, 1):
            parts.append(_box((sx * (w - t), seat_y + 0.2, 0), (t, t, d * 0.9)))
    return parts


def table(rng: np.random.Generator) -> list[Primitive]:
    """A rectangular top on four legs, or a round top on a pedestal."""
    h, t = rng.uniform(0.4, 0.8), rng.uniform(0.04, 0.08)
    if rng.random() < 0.5:
        w, d, leg = rng.uniform(0.6, 1.0), rng.uniform(0.35, 0.7), rng.uniform(0.04, 0.08)
        parts = [_box((0, h, 0), (w, t, d))]
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_box((sx * (w - leg), h / 2, sz * (d - leg)), (leg, h / 2, leg)))
        return parts
    r = rng.uniform(0.45, 0.8)
    return [
        _cyl((0, h, 0), r, t),
        _cyl((0, h / 2, 0), rng.uniform(0.05, 0.1), h / 2),
        _cyl((0, 0.03, 0), rng.uniform(0.25, 0.45) * r / 0.6, 0.03),
    ]


def lamp(rng: np.random.Generator) -> list[Primitive]:
    """A base, a pole, and a shade (drum or globe), the pole sometimes bent forward."""
    h, pole = rng.uniform(0.8, 1.4), rng.uniform(0.04, 0.07)
    base_r = rng.uniform(0.2, 0.35)
    parts = [_cyl((0, 0.03, 0), base_r, 0.03), _cyl((0, h / 2, 0), pole, h / 2)]
    top = np.array([0.0, h, 0.0])
    if rng.random() < 0.4:
        reach = rng.uniform(0.25, 0.5)
        parts.append(_box((0, h, reach / 2), (pole, pole, reach / 2)))
        top = np.array([0.0, h, reach])
    if rng.random() < 0.5:
        parts.append(_cyl(top + [0, 0.05, 0], rng.uniform(0.15, 0.3), rng.uniform(0.1, 0.18)))
    else:
        parts.append(_ell(top + [0, 0.1, 0], np.full(3, rng.uniform(0.15, 0.25))))
    return parts


def airplane(rng: np.random.Generator) -> list[Primitive]:
    """A fuselage along z, wings, a tail fin and stabilisers."""
    length, radius = rng.uniform(0.8, 1.1), rng.uniform(0.07, 0.12)
    span, chord = rng.uniform(0.6, 1.1), rng.uniform(0.12, 0.25)
    wing_z = rng.uniform(-0.1, 0.15)
    parts = [
        _ell((0, 0, 0), (radius, radius, length)),
        _box((0, rng.uniform(-0.5, 0.3) * radius, wing_z), (span, 0.06, chord)),
        _box((0, radius + 0.1, -length * 0.85), (0.05, rng.uniform(0.08, 0.18), 0.1)),
        _box((0, 0.02, -length * 0.85), (rng.uniform(0.2, 0.35), 0.05, 0.08)),
    ]
    if rng.random() < 0.5:
        for sx in (-1, 1):
            parts.append(_cyl((sx * span * 0.45, -radius, wing_z), 0.06, 0.06))
    return parts


def vessel(rng: np.random.Generator) -> list[Primitive]:
    """A hull (box or half-sunk ellipsoid) with a cabin and sometimes a mast."""
    length, beam = rng.uniform(0.8, 1.2), rng.uniform(0.2, 0.35)
    depth = rng.uniform(0.12, 0.22)
    if rng.random() < 0.5:
        parts = [_box((0, 0, 0), (beam, depth, length))]
    else:
        parts = [_ell((0, 0, 0), (beam, depth * 1.4, length))]
    cabin_l = rng.uniform(0.2, 0.45)
    parts.append(
        _box(
            (0, depth + 0.08, rng.uniform(-0.3, 0.2)),
            (beam * 0.7, rng.uniform(0.06, 0.14), cabin_l),
        )
    )
    if rng.random() < 0.5:
        parts.append(_cyl((0, depth + 0.35, 0.2), 0.03, rng.uniform(0.25, 0.4)))
    return parts


#: The classes, by name.
CLASSES: dict[str, Callable[[np.random.Generator], list[Primitive]]] = {
    "chair": chair,
    "table": table,
    "lamp": lamp,
    "airplane": airplane,
    "vessel": vessel,
}
#: Objects per split by default.
SPLITS = {"train": 200, "val": 20, "test": 40}


def normalise(parts: list[Primitive], margin: float = 0.98) -> list[Primitive]:
    """Centre the bounding box at 0; scale its longest side to ``margin`` (inside [-0.5, 0.5])."""
    lows, highs = zip(*(p.bounds() for p in parts), strict=True)
    low, high = np.min(lows, 0), np.max(highs, 0)
    scale = margin / float((high - low).max())
    return [p.scaled(-(low + high) / 2, scale) for p in parts]


def object_mesh(parts: list[Primitive]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All parts' meshes in one: vertices (V, 3), faces (F, 3), part index per face (F,)."""
    vertices, faces, owner = [], [], []
    count = 0
    for index, part in enumerate(parts):
        v, f = part.mesh()
        vertices.append(v)
        faces.append(f + count)
        owner.append(np.full(len(f), index))
        count += len(v)
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(owner)


def object_voxels(parts: list[Primitive], size: int = VOXEL_SIZE) -> np.ndarray:
    """(S, S, S) bool occupancy at the voxel centres, indexed [x, y, z]."""
    c = voxel_centres(size)
    points = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1)
    inside = np.zeros((size,) * 3, dtype=bool)
    for part in parts:
        inside |= part.inside(points)
    return inside


def render_views(vertices, faces, colours) -> np.ndarray:
    """The 24 views of a mesh in our layout: (24, 4, 64, 64) uint8, shaded RGB on black + alpha.

    Args:
        vertices: (V, 3).
        faces: (F, 3).
        colours: (F, 3) colours in [0, 1].
    """
    from meshstyle.renderer import RenderSettings, render
    from meshstyle.shading import Lights

    cameras = MESHSTYLE.cameras(np.arange(VIEWS))
    lights = Lights.simple(VIEWS, ambient=0.45, directional=0.55, direction=(0.4, 1.0, 0.6))
    textures = torch.as_tensor(colours, dtype=torch.float32)[:, None, None, None, :]
    with torch.no_grad():
        out = render(
            torch.as_tensor(vertices, dtype=torch.float32),
            torch.as_tensor(faces),
            textures,
            cameras,
            lights,
            RenderSettings(image_size=IMAGE_SIZE, anti_aliasing=True, backend="cpu"),
        )
    rgba = torch.cat([out.images, out.silhouettes[:, None]], 1).clamp(0, 1)
    return (rgba * 255 + 0.5).to(torch.uint8).numpy()


def make_object(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One object of class ``kind``: images (24, 4, 64, 64) uint8 and voxels (32, 32, 32) bool."""
    parts = normalise(CLASSES[kind](rng))
    vertices, faces, owner = object_mesh(parts)
    base = rng.uniform(0.25, 0.95, size=3)
    shades = np.clip(base + rng.normal(0, 0.08, size=(len(parts), 3)), 0.05, 1.0)
    return render_views(vertices, faces, shades[owner]), object_voxels(parts)


def split_rng(kind: str, split: str, seed: int) -> np.random.Generator:
    """The generator of one class's split, seeded from (seed, class, split)."""
    return np.random.default_rng([seed, zlib.crc32(f"{kind}/{split}".encode())])


def make_split(kind: str, split: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` objects: images (N, 24, 4, 64, 64) uint8 and voxels (N, 32, 32, 32) bool.

    The generator is seeded from (seed, class, split), so each file is reproducible alone.
    """
    rng = split_rng(kind, split, seed)
    images = np.zeros((count, VIEWS, 4, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    voxels = np.zeros((count, VOXEL_SIZE, VOXEL_SIZE, VOXEL_SIZE), dtype=bool)
    for n in range(count):
        images[n], voxels[n] = make_object(rng, kind)
    return images, voxels


def write_split(folder: Path, kind: str, split: str, images, voxels) -> list[Path]:
    """Write ``{kind}_{split}_images.npz`` and ``_voxels.npz`` atomically."""
    from meshstyle.fsutil import atomic_path

    written = []
    for name, array in (("images", images), ("voxels", voxels)):
        path = Path(folder) / f"{kind}_{split}_{name}.npz"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, array)
        written.append(path)
    return written
