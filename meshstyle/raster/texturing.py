"""Texture lookup and shading of one pixel: trilinear sampling of a face's texture cube at
perspective-correct barycentrics (axis ``k`` of the cube follows corner ``k``).

Shared rasterizer math (see :mod:`.device`): plain functions for every backend.
"""

from __future__ import annotations

from .device import unsigned
from .layout import (
    FACE_AREA,
    FACE_INV_Z0,
    FACE_INV_Z1,
    FACE_INV_Z2,
    FACE_U0,
    FACE_U1,
    FACE_U2,
    FACE_V0,
    FACE_V1,
    FACE_V2,
)
from .screen import edge_weights


def texel_coords(w0, w1, w2, iz0, iz1, iz2, z, size):
    """Trilinear lookup position in a face's T x T x T texture cube.

    Perspective-correct weights ``w_k z / z_k`` are clipped to [0, 1] and renormalised; axis
    ``k`` of the cube follows vertex ``k`` at position ``w_k (T - 1)``.

    Returns:
        (lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2): lower and upper cell index per axis and
        the fractional position between them (upper index == lower index when T == 1).
    """
    p0 = min(max(w0 * iz0 * z, 0.0), 1.0)
    p1 = min(max(w1 * iz1 * z, 0.0), 1.0)
    p2 = min(max(w2 * iz2 * z, 0.0), 1.0)
    total = p0 + p1 + p2
    if total > 0.0:
        p0 /= total
        p1 /= total
        p2 /= total
    else:
        p0 = 1.0 / 3.0
        p1 = 1.0 / 3.0
        p2 = 1.0 / 3.0
    if size == 1:
        return 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0
    top = size - 2
    s0 = p0 * (size - 1)
    s1 = p1 * (size - 1)
    s2 = p2 * (size - 1)
    # int() truncates, which is floor here because positions are >= 0.
    lo0 = min(int(s0), top)
    lo1 = min(int(s1), top)
    lo2 = min(int(s2), top)
    return lo0, lo1, lo2, lo0 + 1, lo1 + 1, lo2 + 1, s0 - lo0, s1 - lo1, s2 - lo2


def texel_weight(corner, lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2):
    """Index and weight of one of the 8 trilinear corners (bit k of ``corner`` picks axis k).

    Returns:
        (i, j, k, weight).
    """
    if corner & 1:
        i = hi0
        weight = t0
    else:
        i = lo0
        weight = 1.0 - t0
    if corner & 2:
        j = hi1
        weight *= t1
    else:
        j = lo1
        weight *= 1.0 - t1
    if corner & 4:
        k = hi2
        weight *= t2
    else:
        k = lo2
        weight *= 1.0 - t2
    return i, j, k, weight


def sample_texture(textures, b, f, lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2):
    """Trilinear sample of face ``f``'s texture cube at a :func:`texel_coords` position.

    Returns:
        (r, g, b) float64.
    """
    r = 0.0
    g = 0.0
    bl = 0.0
    for corner in range(8):
        i, j, k, weight = texel_weight(corner, lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2)
        r += weight * textures[b, f, i, j, k, 0]
        g += weight * textures[b, f, i, j, k, 1]
        bl += weight * textures[b, f, i, j, k, 2]
    return r, g, bl


def shade_pixel(
    b,
    row,
    col,
    face_info,
    textures,
    background,
    use_rgb,
    far,
    face_index,
    zbuffer,
    rgb,
    alpha,
    depth,
):
    """Final colour, alpha and depth of one pixel once its visible face is known.

    Args:
        b, row, col: the pixel.
        face_info: (B, F, FACE_INFO_SIZE) float64.
        textures: (B, F, T, T, T, 3) float32 (ignored unless ``use_rgb``).
        background: (B, 3) float32.
        use_rgb: whether ``rgb`` is computed.
        far: depth written at empty pixels.
        face_index: (B, H, W) int32, the visible face or -1.
        zbuffer: (B, H, W) float64, the visible face's depth.
        rgb: (B, 3, H, W) float32, written when ``use_rgb``.
        alpha, depth: (B, H, W) float32, written.
    """
    r = unsigned(row)
    c = unsigned(col)
    f = face_index[b, r, c]
    if f < 0:
        alpha[b, r, c] = 0.0
        depth[b, r, c] = far
        if use_rgb:
            rgb[b, 0, r, c] = background[b, 0]
            rgb[b, 1, r, c] = background[b, 1]
            rgb[b, 2, r, c] = background[b, 2]
        return
    z = zbuffer[b, r, c]
    alpha[b, r, c] = 1.0
    depth[b, r, c] = z
    if use_rgb:
        w0, w1, w2 = edge_weights(
            face_info[b, f, FACE_U0],
            face_info[b, f, FACE_V0],
            face_info[b, f, FACE_U1],
            face_info[b, f, FACE_V1],
            face_info[b, f, FACE_U2],
            face_info[b, f, FACE_V2],
            face_info[b, f, FACE_AREA],
            float(col),
            float(row),
        )
        lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2 = texel_coords(
            w0,
            w1,
            w2,
            face_info[b, f, FACE_INV_Z0],
            face_info[b, f, FACE_INV_Z1],
            face_info[b, f, FACE_INV_Z2],
            z,
            textures.shape[2],
        )
        red, green, blue = sample_texture(textures, b, f, lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2)
        rgb[b, 0, r, c] = red
        rgb[b, 1, r, c] = green
        rgb[b, 2, r, c] = blue
