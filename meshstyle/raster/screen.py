"""Screen-space math of one face: setup, edge functions, coverage and depth at a point.

Coordinates. Faces come in as NDC ``x`` (right), ``y`` (up) and camera depth ``z``. Setup
turns them into pixel coordinates of the render grid, ``u`` (column) and ``v`` (row), in
which the centre of pixel ``(row r, col c)`` is exactly ``(u, v) = (c, r)``::

    u = (x * W + W - 1) / 2        v = (H - 1 - y * H) / 2

All arithmetic is float64 whatever the storage type, so that coverage and depth-order
decisions do not depend on float32 rounding. Like every module of shared rasterizer math
(see :mod:`.device`), these are plain functions over scalars and array elements that run as
Python, as ``numba.njit`` code and as CUDA device functions.
"""

from __future__ import annotations

import math

from .layout import (
    BBOX_COL_MAX,
    BBOX_COL_MIN,
    BBOX_ROW_MAX,
    BBOX_ROW_MIN,
    FACE_AREA,
    FACE_INFO_SIZE,
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


def setup_face(face_vertices, b, f, height, width, face_info, face_bbox):
    """Screen setup of one face: pixel coordinates, inverse depths, area and pixel box.

    A face is skipped (zero area, empty box) when a coordinate is not finite, a corner has
    ``z <= 0`` or its screen area is zero, so that no NaN or Inf can come out of it later.

    Args:
        face_vertices: (B, F, 3, 3) float32.
        b, f: batch and face index.
        height, width: render grid size.
        face_info: (B, F, FACE_INFO_SIZE) float64, written.
        face_bbox: (B, F, 4) int32, written.
    """
    x0 = float(face_vertices[b, f, 0, 0])
    y0 = float(face_vertices[b, f, 0, 1])
    z0 = float(face_vertices[b, f, 0, 2])
    x1 = float(face_vertices[b, f, 1, 0])
    y1 = float(face_vertices[b, f, 1, 1])
    z1 = float(face_vertices[b, f, 1, 2])
    x2 = float(face_vertices[b, f, 2, 0])
    y2 = float(face_vertices[b, f, 2, 1])
    z2 = float(face_vertices[b, f, 2, 2])
    fw = float(width)
    fh = float(height)
    u0 = (x0 * fw + fw - 1.0) * 0.5
    u1 = (x1 * fw + fw - 1.0) * 0.5
    u2 = (x2 * fw + fw - 1.0) * 0.5
    v0 = (fh - 1.0 - y0 * fh) * 0.5
    v1 = (fh - 1.0 - y1 * fh) * 0.5
    v2 = (fh - 1.0 - y2 * fh) * 0.5
    area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
    # NaN fails every comparison, so one chained test also rejects non-finite input.
    valid = (
        abs(u0) < math.inf
        and abs(u1) < math.inf
        and abs(u2) < math.inf
        and abs(v0) < math.inf
        and abs(v1) < math.inf
        and abs(v2) < math.inf
        and 0.0 < z0 < math.inf
        and 0.0 < z1 < math.inf
        and 0.0 < z2 < math.inf
        and abs(area) < math.inf
        and area != 0.0
    )
    if not valid:
        for k in range(FACE_INFO_SIZE):
            face_info[b, f, k] = 0.0
        face_bbox[b, f, BBOX_ROW_MIN] = 0
        face_bbox[b, f, BBOX_ROW_MAX] = -1
        face_bbox[b, f, BBOX_COL_MIN] = 0
        face_bbox[b, f, BBOX_COL_MAX] = -1
        return
    face_info[b, f, FACE_U0] = u0
    face_info[b, f, FACE_V0] = v0
    face_info[b, f, FACE_U1] = u1
    face_info[b, f, FACE_V1] = v1
    face_info[b, f, FACE_U2] = u2
    face_info[b, f, FACE_V2] = v2
    face_info[b, f, FACE_INV_Z0] = 1.0 / z0
    face_info[b, f, FACE_INV_Z1] = 1.0 / z1
    face_info[b, f, FACE_INV_Z2] = 1.0 / z2
    face_info[b, f, FACE_AREA] = area
    # Clamp in floating point before rounding: huge finite coordinates must not overflow ints.
    umin = min(max(min(u0, u1, u2), 0.0), fw)
    umax = min(max(max(u0, u1, u2), -1.0), fw - 1.0)
    vmin = min(max(min(v0, v1, v2), 0.0), fh)
    vmax = min(max(max(v0, v1, v2), -1.0), fh - 1.0)
    face_bbox[b, f, BBOX_ROW_MIN] = math.ceil(vmin)
    face_bbox[b, f, BBOX_ROW_MAX] = math.floor(vmax)
    face_bbox[b, f, BBOX_COL_MIN] = math.ceil(umin)
    face_bbox[b, f, BBOX_COL_MAX] = math.floor(umax)


def edge_weights(u0, v0, u1, v1, u2, v2, area, pu, pv):
    """Screen-space barycentric weights of the point ``(pu, pv)``; unclipped, sum 1.

    Dividing each edge function by the signed area makes the weights independent of the
    winding, so one ``all >= 0`` test covers both orientations (faces are two-sided).

    Returns:
        (w0, w1, w2) float64.
    """
    e0, e1, e2 = edge_functions(u0, v0, u1, v1, u2, v2, pu, pv)
    return e0 / area, e1 / area, e2 / area


def edge_functions(u0, v0, u1, v1, u2, v2, pu, pv):
    """The three edge functions at ``(pu, pv)``: twice the signed areas of the sub-triangles
    opposite each corner; they sum to the face's doubled area.

    Returns:
        (e0, e1, e2) float64.
    """
    e0 = (u1 - pu) * (v2 - pv) - (u2 - pu) * (v1 - pv)
    e1 = (u2 - pu) * (v0 - pv) - (u0 - pu) * (v2 - pv)
    e2 = (u0 - pu) * (v1 - pv) - (u1 - pu) * (v0 - pv)
    return e0, e1, e2


def fragment(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, pu, pv, near, far):
    """Coverage and perspective-correct depth of a face at a pixel centre.

    The pixel is covered when its centre is inside the face or on its boundary and the depth
    ``z = 1 / sum(w_i / z_i)`` lies in ``[near, far]``.

    Returns:
        (hit, w0, w1, w2, z): ``hit`` bool, screen weights and depth (float64).
    """
    e0, e1, e2 = edge_functions(u0, v0, u1, v1, u2, v2, pu, pv)
    # e / area >= 0 exactly when e has the area's sign or is zero (the quotient of finite
    # float32-sourced values cannot underflow), so most misses are decided without dividing.
    if area > 0.0:
        inside = e0 >= 0.0 and e1 >= 0.0 and e2 >= 0.0
    else:
        inside = e0 <= 0.0 and e1 <= 0.0 and e2 <= 0.0
    if inside:
        # The weights as edge_weights computes them, so the backward pass sees the same.
        w0 = e0 / area
        w1 = e1 / area
        w2 = e2 / area
        s = w0 * iz0 + w1 * iz1 + w2 * iz2
        if s > 0.0:
            z = 1.0 / s
            if near <= z <= far:
                return True, w0, w1, w2, z
    return False, 0.0, 0.0, 0.0, 0.0


def plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, pu, pv):
    """``1/z`` of the face's plane extended to the point ``(pu, pv)`` (may be <= 0)."""
    w0, w1, w2 = edge_weights(u0, v0, u1, v1, u2, v2, area, pu, pv)
    return w0 * iz0 + w1 * iz1 + w2 * iz2
