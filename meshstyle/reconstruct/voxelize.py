"""Meshes to voxel grids and voxel grids to meshes, in the layout of :mod:`.layout`.

``voxels[n, i, j, k]`` stands for the point ``(c(i), c(j), c(k))`` with
``c(i) = ((i + 0.5) / S - 0.5) * 2 * extent``; a voxel is set when that point is inside.
"""

from __future__ import annotations

import numba
import numpy as np

# Ray positions are nudged by these irrational-looking fractions of a voxel so that no ray
# passes exactly through a mesh vertex or along an edge shared by two faces (which would
# count one crossing twice or not at all).
_NUDGE_X = 1.234567e-4
_NUDGE_Y = 7.654321e-5


@numba.njit(parallel=True, cache=True)
def _crossings(face_xyz, size, extent, out):  # pragma: no cover - compiled
    """Record, per voxel, the mesh crossings on the ray from -z up to its centre.

    face_xyz: (B, F, 3, 3) float64 corners; out: (B, S, S, S + 1) int32 zeros, receives at
    the first voxel along +z above each crossing +1 where the face winds counter-clockwise
    seen from -z, -1 where it winds clockwise.
    """
    step = 2.0 * extent / size
    for b in numba.prange(face_xyz.shape[0]):
        for f in range(face_xyz.shape[1]):
            x0, y0, z0 = face_xyz[b, f, 0, 0], face_xyz[b, f, 0, 1], face_xyz[b, f, 0, 2]
            x1, y1, z1 = face_xyz[b, f, 1, 0], face_xyz[b, f, 1, 1], face_xyz[b, f, 1, 2]
            x2, y2, z2 = face_xyz[b, f, 2, 0], face_xyz[b, f, 2, 1], face_xyz[b, f, 2, 2]
            det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            if det == 0.0 or not np.isfinite(det):
                continue
            sign = 1 if det > 0.0 else -1
            lo_i = max(0, int(np.floor((min(x0, x1, x2) + extent) / step - 0.5)))
            hi_i = min(size - 1, int(np.ceil((max(x0, x1, x2) + extent) / step - 0.5)))
            lo_j = max(0, int(np.floor((min(y0, y1, y2) + extent) / step - 0.5)))
            hi_j = min(size - 1, int(np.ceil((max(y0, y1, y2) + extent) / step - 0.5)))
            for i in range(lo_i, hi_i + 1):
                px = (i + 0.5 + _NUDGE_X) * step - extent
                for j in range(lo_j, hi_j + 1):
                    py = (j + 0.5 + _NUDGE_Y) * step - extent
                    t1 = ((px - x0) * (y2 - y0) - (x2 - x0) * (py - y0)) / det
                    t2 = ((x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)) / det
                    if t1 < 0.0 or t2 < 0.0 or t1 + t2 > 1.0:
                        continue
                    z = z0 + t1 * (z1 - z0) + t2 * (z2 - z0)
                    k = int(np.ceil((z + extent) / step - 0.5))
                    k = min(max(k, 0), size)
                    out[b, i, j, k] += sign


INSIDE_RULES = ("nonzero", "parity")


def voxelize(
    vertices, faces, size: int = 32, extent: float = 0.5, inside: str = "nonzero"
) -> np.ndarray:
    """Occupancy of closed meshes at the centres of a size^3 grid, from rays along +z.

    Args:
        vertices: (B, V, 3) or (V, 3) positions.
        faces: (F, 3) int indices of a closed (watertight) surface.
        size: grid side S.
        extent: the grid spans [-extent, extent]^3.
        inside: "nonzero": a centre is inside where the surface winds round it (signed
            crossings below it do not sum to 0), so a part that a folded or overlapping
            surface wraps twice stays inside; "parity": where the crossings below it are odd
            in number (such a part comes out empty). The two agree on a surface that does
            not cross itself.

    Returns:
        (B, S, S, S) bool, or (S, S, S) for unbatched input.
    """
    if inside not in INSIDE_RULES:
        raise ValueError(f"inside must be one of {list(INSIDE_RULES)}; got {inside!r}")
    vertices = np.asarray(vertices, dtype=np.float64)
    single = vertices.ndim == 2
    if single:
        vertices = vertices[None]
    faces = np.asarray(faces, dtype=np.int64)
    face_xyz = np.ascontiguousarray(vertices[:, faces])
    crossings = np.zeros((len(vertices), size, size, size + 1), dtype=np.int32)
    _crossings(face_xyz, int(size), float(extent), crossings)
    below = np.cumsum(crossings[..., :size], axis=-1)
    # A signed sum is odd exactly when the number of crossings is (NumPy's % is floored).
    occupied = below % 2 == 1 if inside == "parity" else below != 0
    return occupied[0] if single else occupied


def voxel_centres(size: int = 32, extent: float = 0.5) -> np.ndarray:
    """(S,) coordinates of the voxel centres along one axis."""
    return ((np.arange(size) + 0.5) / size - 0.5) * 2.0 * extent


def voxel_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) intersection over union of two (N, S, S, S) bool grids; 1 where both are empty."""
    a = np.asarray(a, dtype=bool).reshape(len(a), -1)
    b = np.asarray(b, dtype=bool).reshape(len(b), -1)
    inter = (a & b).sum(1)
    union = (a | b).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


# The 6 face directions and, for each, its 4 corners as offsets in half-voxels, ordered
# counter-clockwise seen from outside.
_DIRECTIONS = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.int64
)
_QUADS = np.array(
    [
        [[1, -1, -1], [1, 1, -1], [1, 1, 1], [1, -1, 1]],
        [[-1, -1, -1], [-1, -1, 1], [-1, 1, 1], [-1, 1, -1]],
        [[-1, 1, -1], [-1, 1, 1], [1, 1, 1], [1, 1, -1]],
        [[-1, -1, -1], [1, -1, -1], [1, -1, 1], [-1, -1, 1]],
        [[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]],
        [[-1, -1, -1], [-1, 1, -1], [1, 1, -1], [1, -1, -1]],
    ],
    dtype=np.float64,
)


def voxel_surface(voxels: np.ndarray, extent: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The boundary of a voxel grid as a triangle mesh of cube faces.

    Args:
        voxels: (S, S, S) bool, indexed [x, y, z].
        extent: the grid spans [-extent, extent]^3.

    Returns:
        vertices (4Q, 3) float32 and faces (2Q, 3) int64 for the Q exposed cube faces.
    """
    voxels = np.asarray(voxels, dtype=bool)
    size = voxels.shape[0]
    padded = np.pad(voxels, 1)
    centres = voxel_centres(size, extent)
    half = extent / size
    vertices, faces = [], []
    count = 0
    for direction, quad in zip(_DIRECTIONS, _QUADS, strict=True):
        neighbour = np.roll(padded, -direction, axis=(0, 1, 2))[1:-1, 1:-1, 1:-1]
        exposed = np.argwhere(voxels & ~neighbour)
        if len(exposed) == 0:
            continue
        centre = centres[exposed]  # (Q, 3)
        corners = centre[:, None, :] + quad[None] * half  # (Q, 4, 3)
        base = count + 4 * np.arange(len(exposed))[:, None]
        faces.append(np.concatenate([base + [0, 1, 2], base + [0, 2, 3]]))
        vertices.append(corners.reshape(-1, 3))
        count += 4 * len(exposed)
    if not vertices:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    return np.concatenate(vertices).astype(np.float32), np.concatenate(faces).astype(np.int64)
