"""Exact gradients of one face from the pixels where it is visible: textures through the
trilinear sampling weights, corners through the perspective-correct depth.

Shared rasterizer math (see :mod:`.device`): plain functions for every backend.
"""

from __future__ import annotations

from .device import unsigned
from .layout import (
    BBOX_COL_MAX,
    BBOX_COL_MIN,
    BBOX_ROW_MAX,
    BBOX_ROW_MIN,
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
from .texturing import texel_coords, texel_weight


def interior_face_gradient(
    b,
    f,
    face_info,
    face_bbox,
    height,
    width,
    face_index,
    grad_rgb,
    grad_depth,
    use_texture_grad,
    use_depth_grad,
    texture_size,
    grad_face_vertices,
    grad_textures,
):
    """Exact texture and depth gradients from the pixels where face ``f`` is visible.

    Texture: the trilinear sampling weights times ``dL/drgb``. Depth: the derivative of
    ``z = 1 / sum(w_i / z_i)`` with the face index held fixed; with ``s = N / A``, ``N =
    sum(E_i / z_i)`` (``E_i`` the edge functions, ``A`` their sum, the doubled area),
    ``dz/dq = -z^2 (dN/dq - s dA/dq) / A`` for any corner coordinate ``q`` and
    ``dz/dz_k = z^2 w_k / z_k^2``. Pixel-unit derivatives are scaled to NDC: ``du/dx = W/2``,
    ``dv/dy = -H/2``.

    Writes only slot ``[b, f]`` of ``grad_face_vertices`` (float64, added to) and
    ``grad_textures`` (float32, added to).
    """
    if face_info[b, f, FACE_AREA] == 0.0:
        return
    u0 = face_info[b, f, FACE_U0]
    v0 = face_info[b, f, FACE_V0]
    u1 = face_info[b, f, FACE_U1]
    v1 = face_info[b, f, FACE_V1]
    u2 = face_info[b, f, FACE_U2]
    v2 = face_info[b, f, FACE_V2]
    iz0 = face_info[b, f, FACE_INV_Z0]
    iz1 = face_info[b, f, FACE_INV_Z1]
    iz2 = face_info[b, f, FACE_INV_Z2]
    area = face_info[b, f, FACE_AREA]
    half_w = 0.5 * width
    half_h = 0.5 * height
    gu0 = 0.0
    gu1 = 0.0
    gu2 = 0.0
    gv0 = 0.0
    gv1 = 0.0
    gv2 = 0.0
    gz0 = 0.0
    gz1 = 0.0
    gz2 = 0.0
    for row in range(face_bbox[b, f, BBOX_ROW_MIN], face_bbox[b, f, BBOX_ROW_MAX] + 1):
        for col in range(face_bbox[b, f, BBOX_COL_MIN], face_bbox[b, f, BBOX_COL_MAX] + 1):
            r = unsigned(row)
            c = unsigned(col)
            if face_index[b, r, c] != f:
                continue
            pu = float(col)
            pv = float(row)
            w0, w1, w2 = edge_weights(u0, v0, u1, v1, u2, v2, area, pu, pv)
            # Same expression as in fragment(), so z is bit-identical to the forward's.
            s = w0 * iz0 + w1 * iz1 + w2 * iz2
            z = 1.0 / s
            if use_texture_grad:
                lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2 = texel_coords(
                    w0, w1, w2, iz0, iz1, iz2, z, texture_size
                )
                gr = grad_rgb[b, 0, r, c]
                gg = grad_rgb[b, 1, r, c]
                gb = grad_rgb[b, 2, r, c]
                for corner in range(8):
                    i, j, k, weight = texel_weight(corner, lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2)
                    grad_textures[b, f, i, j, k, 0] += weight * gr
                    grad_textures[b, f, i, j, k, 1] += weight * gg
                    grad_textures[b, f, i, j, k, 2] += weight * gb
            if use_depth_grad:
                gd = grad_depth[b, r, c]
                if gd == 0.0:
                    continue
                zz = gd * z * z
                gz0 += zz * w0 * iz0 * iz0
                gz1 += zz * w1 * iz1 * iz1
                gz2 += zz * w2 * iz2 * iz2
                factor = -zz / area
                # dN/du_j and dN/dv_j for j = 0, 1, 2 (indices mod 3), minus s times the area's.
                gu0 += factor * (((v1 - pv) * iz2 - (v2 - pv) * iz1) - s * (v1 - v2))
                gu1 += factor * (((v2 - pv) * iz0 - (v0 - pv) * iz2) - s * (v2 - v0))
                gu2 += factor * (((v0 - pv) * iz1 - (v1 - pv) * iz0) - s * (v0 - v1))
                gv0 += factor * (((u2 - pu) * iz1 - (u1 - pu) * iz2) - s * (u2 - u1))
                gv1 += factor * (((u0 - pu) * iz2 - (u2 - pu) * iz0) - s * (u0 - u2))
                gv2 += factor * (((u1 - pu) * iz0 - (u0 - pu) * iz1) - s * (u1 - u0))
    if use_depth_grad:
        grad_face_vertices[b, f, 0, 0] += gu0 * half_w
        grad_face_vertices[b, f, 1, 0] += gu1 * half_w
        grad_face_vertices[b, f, 2, 0] += gu2 * half_w
        grad_face_vertices[b, f, 0, 1] -= gv0 * half_h
        grad_face_vertices[b, f, 1, 1] -= gv1 * half_h
        grad_face_vertices[b, f, 2, 1] -= gv2 * half_h
        grad_face_vertices[b, f, 0, 2] += gz0
        grad_face_vertices[b, f, 1, 2] += gz1
        grad_face_vertices[b, f, 2, 2] += gz2
