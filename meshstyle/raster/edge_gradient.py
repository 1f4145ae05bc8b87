"""Kato et al.'s approximate gradient of a face's corners along the screen axes.

Rasterization is piecewise constant in the corners' x and y, so its true gradient is zero
almost everywhere. Instead, for every edge ``a-b`` of a face (``c`` the third corner), every
screen axis and every scan line the edge crosses, each pixel whose colour would change if
the edge moved over its centre contributes ``dL/dI . dI / dx`` to the gradient of ``a`` and
of ``b``, but only where ``dL/dI . dI < 0`` (the move would lower the loss):

- ``dI``: the colour the pixel would have after the move minus the colour it has now. For
  *expansion* (the face grows over pixels beyond the edge) the face's own colour at the edge;
  for *contraction* (the edge recedes over the face's own pixels) the colour just outside.
- ``dx``: the displacement of that corner alone, the other fixed, that brings the edge's
  crossing of the line to the pixel centre (the lever rule), in NDC, plus ``eps`` away from
  zero as in the original renderer.

Scan coordinates. Axis 0 (x gradients) scans rows: a *line* is a row (pixel ``v``) and a
*position* along it a column (``u``); axis 1 (y gradients) scans columns, the transpose.
A corner's ``*_line`` and ``*_pos`` are its coordinates across and along the lines. On a
line the edge crosses at ``cross``; ``pos_in`` is the pixel next to it on the face's side,
``pos_out`` its neighbour outside; ``inside`` (+1 or -1) is the direction along the line
that points into the face.

Shared rasterizer math (see :mod:`.device`): plain functions for every backend.
"""

from __future__ import annotations

import math

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
    LINK_NEXT_DOWN,
    LINK_NEXT_UP,
    LINK_RUN_END_UP,
    LONG_RUN,
    OCCLUSION_TOLERANCE,
    SCAN_ALPHA,
    SCAN_B,
    SCAN_DEPTH,
    SCAN_G,
    SCAN_GRAD_ALPHA,
    SCAN_GRAD_B,
    SCAN_GRAD_G,
    SCAN_GRAD_R,
    SCAN_R,
)
from .scanlines import change_dot
from .screen import plane_inverse_depth


def lever_step(offset, lever, scale, eps):
    """NDC displacement of one vertex that moves an edge crossing by ``offset`` pixels.

    ``lever`` converts the crossing's move into the vertex's move (vertex alone, the other
    end fixed); ``scale`` converts pixels to NDC (negative for rows, whose axis points down);
    ``eps`` is added away from zero as in the original renderer, bounding ``1 / step``.
    """
    step = offset * (lever * scale)
    if step > 0.0:
        return step + eps
    return step - eps


def expansion_run(
    scan,
    b,
    line,
    lo,
    hi,
    r,
    g,
    bl,
    a,
    cross,
    slope_a,
    slope_b,
    eps_a,
    eps_b,
    occlusion_aware,
    inv_depth0,
    inv_depth_step,
):
    """Expansion terms of one run of consecutive pixels ``lo..hi`` of a scan line.

    Each pixel adds ``min(0, dL/dI . dI) / (offset * slope + eps)`` for both edge vertices,
    where ``slope`` is the lever times the NDC scale and ``eps`` carries the step's sign,
    constant along the run since all its pixels lie beyond the edge on the same side.
    Branch-free so that a compiler can vectorise it; with ``occlusion_aware`` a pixel nearer
    than the face's plane (``1/z = inv_depth0 + pos * inv_depth_step`` there) adds nothing.

    Returns:
        (grad_a, grad_b) float64 sums.
    """
    grad_a = 0.0
    grad_b = 0.0
    limit = 1.0 - OCCLUSION_TOLERANCE
    for pos in range(lo, hi + 1):
        p = unsigned(pos)
        delta = (
            scan[b, line, SCAN_GRAD_R, p] * (r - scan[b, line, SCAN_R, p])
            + scan[b, line, SCAN_GRAD_G, p] * (g - scan[b, line, SCAN_G, p])
            + scan[b, line, SCAN_GRAD_B, p] * (bl - scan[b, line, SCAN_B, p])
            + scan[b, line, SCAN_GRAD_ALPHA, p] * (a - scan[b, line, SCAN_ALPHA, p])
        )
        keep = delta < 0.0
        if occlusion_aware:
            inv = inv_depth0 + pos * inv_depth_step
            keep = keep and inv > 0.0 and scan[b, line, SCAN_DEPTH, p] * inv >= limit
        term = delta if keep else 0.0
        offset = pos - cross
        step_a = offset * slope_a + eps_a
        step_b = offset * slope_b + eps_b
        # One division per pixel serves both vertices.
        shared = term / (step_a * step_b)
        grad_a += shared * step_b
        grad_b += shared * step_a
    return grad_a, grad_b


def long_expansion_run(
    scan,
    b,
    line,
    lo,
    hi,
    r,
    g,
    bl,
    a,
    cross,
    slope_a,
    slope_b,
    eps_a,
    eps_b,
    occlusion_aware,
    inv_depth0,
    inv_depth_step,
):
    """:func:`expansion_run` under a second name, used for runs of ``LONG_RUN`` pixels or
    more, so that a backend can compile long runs for throughput (vectorised, not inlined)
    and short ones for latency (inlined)."""
    return expansion_run(
        scan,
        b,
        line,
        lo,
        hi,
        r,
        g,
        bl,
        a,
        cross,
        slope_a,
        slope_b,
        eps_a,
        eps_b,
        occlusion_aware,
        inv_depth0,
        inv_depth_step,
    )


def far_crossing(a_line, a_pos, b_line, b_pos, c_line, c_pos, line, inside):
    """Where scan line ``line`` leaves the face on the side opposite edge ``a-b``.

    The line crosses edge ``a-b`` and, the face being convex, exactly one more boundary
    point in the ``inside`` direction: on edge ``a-c``, edge ``b-c`` or at vertex ``c``.
    Returns the crossing furthest in the ``inside`` direction (a position), NaN if none.
    """
    best = math.nan
    if c_line == line:
        best = c_pos
    if a_line != c_line and min(a_line, c_line) <= line <= max(a_line, c_line):
        value = a_pos + (c_pos - a_pos) * ((line - a_line) / (c_line - a_line))
        if best != best or (value - best) * inside > 0.0:
            best = value
    if b_line != c_line and min(b_line, c_line) <= line <= max(b_line, c_line):
        value = b_pos + (c_pos - b_pos) * ((line - b_line) / (c_line - b_line))
        if best != best or (value - best) * inside > 0.0:
            best = value
    return best


def edge_in_scan_coordinates(face_info, b, f, ia, ib, ic, axis, height, width):
    """Corners ``ia``, ``ib``, ``ic`` of a face in the scan coordinates of ``axis``.

    Returns:
        (a_line, a_pos, b_line, b_pos, c_line, c_pos, n_lines, n_pos, scale): the corners'
        coordinates across and along the scan lines, the number of lines and of positions
        on each, and ``scale``, the NDC length of one pixel along the axis (negative for
        axis 1, since rows grow downwards while NDC y grows upwards).
    """
    if axis == 0:
        a_line = face_info[b, f, FACE_V0 + 2 * ia]
        a_pos = face_info[b, f, FACE_U0 + 2 * ia]
        b_line = face_info[b, f, FACE_V0 + 2 * ib]
        b_pos = face_info[b, f, FACE_U0 + 2 * ib]
        c_line = face_info[b, f, FACE_V0 + 2 * ic]
        c_pos = face_info[b, f, FACE_U0 + 2 * ic]
        return a_line, a_pos, b_line, b_pos, c_line, c_pos, height, width, 2.0 / width
    a_line = face_info[b, f, FACE_U0 + 2 * ia]
    a_pos = face_info[b, f, FACE_V0 + 2 * ia]
    b_line = face_info[b, f, FACE_U0 + 2 * ib]
    b_pos = face_info[b, f, FACE_V0 + 2 * ib]
    c_line = face_info[b, f, FACE_U0 + 2 * ic]
    c_pos = face_info[b, f, FACE_V0 + 2 * ic]
    return a_line, a_pos, b_line, b_pos, c_line, c_pos, width, height, -2.0 / height


def crossed_lines(a_line, b_line, n_lines):
    """The first and last scan line whose centre edge ``a-b`` spans, clamped to the grid
    in floating point (huge coordinates must not overflow integers)."""
    first = math.ceil(min(max(min(a_line, b_line), 0.0), float(n_lines)))
    last = math.floor(min(max(max(a_line, b_line), -1.0), n_lines - 1.0))
    return first, last


def edge_crossing(a_line, a_pos, slope, line, inside, n_pos):
    """Where the edge through ``a`` with ``slope`` (position per line) crosses ``line``.

    Returns:
        (valid, cross, pos_in, pos_out): ``valid`` when both pixels next to the crossing
        are on the grid (which also keeps huge values from integers); the crossing; the
        pixel on the face's side of it and its neighbour outside.
    """
    cross = a_pos + slope * (line - a_line)
    if not (0.0 <= cross <= n_pos - 1.0):
        return False, cross, 0, 0
    if inside > 0:
        pos_in = math.ceil(cross)
        pos_out = pos_in - 1
    else:
        pos_in = math.floor(cross)
        pos_out = pos_in + 1
    valid = 0 <= pos_in < n_pos and 0 <= pos_out < n_pos
    return valid, cross, pos_in, pos_out


def levers(a_line, b_line, span, line):
    """How far the crossing of ``line`` moves per unit move of ``a`` alone and ``b`` alone.

    A corner lying on the line cannot move the crossing there: it gets no lever.

    Returns:
        (use_a, use_b, lever_a, lever_b).
    """
    use_a = b_line != line
    use_b = a_line != line
    lever_a = span / (b_line - line) if use_a else 0.0
    lever_b = span / (line - a_line) if use_b else 0.0
    return use_a, use_b, lever_a, lever_b


def occlusion_plane(face_info, b, f, axis, line):
    """``1/z`` of the face's plane along scan ``line``: its value at position 0 and its
    change per position.

    Returns:
        (inv_depth0, inv_depth_step).
    """
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
    if axis == 0:
        inv_depth0 = plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, 0.0, line)
        inv_depth1 = plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, 1.0, line)
    else:
        inv_depth0 = plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, line, 0.0)
        inv_depth1 = plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, line, 1.0)
    return inv_depth0, inv_depth1 - inv_depth0


def expansion_along_line(
    face_info,
    b,
    f,
    axis,
    line,
    scan,
    scan_links,
    ln,
    n_pos,
    inside,
    cross,
    pos_in,
    pos_out,
    use_a,
    use_b,
    lever_a,
    lever_b,
    scale,
    eps,
    occlusion_aware,
    grad_a,
    grad_b,
):
    """Expansion terms of one scan line: the face, visible at ``pos_in``, grows over the
    pixels beyond the edge, from ``pos_out`` to the border, taking ``pos_in``'s colour.

    Only active pixels are visited, run by run (``scan_links``); the skipped ones would add
    exactly zero. With ``occlusion_aware`` a pixel nearer than the face's plane adds nothing.

    Args:
        ln: ``line`` as an index.
        grad_a, grad_b: the sums so far, added to in scan order (the order of the sums is
            part of the result).

    Returns:
        (grad_a, grad_b).
    """
    p_in = unsigned(pos_in)
    r_in = scan[b, ln, SCAN_R, p_in]
    g_in = scan[b, ln, SCAN_G, p_in]
    b_in = scan[b, ln, SCAN_B, p_in]
    a_in = scan[b, ln, SCAN_ALPHA, p_in]
    slope_a = lever_a * scale
    slope_b = lever_b * scale
    # Offsets all have the outward sign here, so each step's sign is fixed.
    eps_a = eps if -inside * slope_a > 0.0 else -eps
    eps_b = eps if -inside * slope_b > 0.0 else -eps
    inv_depth0 = 0.0
    inv_depth_step = 0.0
    if occlusion_aware:
        inv_depth0, inv_depth_step = occlusion_plane(face_info, b, f, axis, line)
    # Outwards is towards lower positions when the face is on the higher side.
    next_slot = LINK_NEXT_DOWN if inside > 0 else LINK_NEXT_UP
    end_slot = next_slot + (LINK_RUN_END_UP - LINK_NEXT_UP)
    pos = scan_links[b, ln, unsigned(pos_out), next_slot]
    while 0 <= pos < n_pos:
        run_end = scan_links[b, ln, unsigned(pos), end_slot]
        run_lo = min(pos, run_end)
        run_hi = max(pos, run_end)
        if run_hi - run_lo < LONG_RUN:
            run_a, run_b = expansion_run(
                scan,
                b,
                ln,
                run_lo,
                run_hi,
                r_in,
                g_in,
                b_in,
                a_in,
                cross,
                slope_a,
                slope_b,
                eps_a,
                eps_b,
                occlusion_aware,
                inv_depth0,
                inv_depth_step,
            )
        else:
            run_a, run_b = long_expansion_run(
                scan,
                b,
                ln,
                run_lo,
                run_hi,
                r_in,
                g_in,
                b_in,
                a_in,
                cross,
                slope_a,
                slope_b,
                eps_a,
                eps_b,
                occlusion_aware,
                inv_depth0,
                inv_depth_step,
            )
        grad_a += run_a if use_a else 0.0
        grad_b += run_b if use_b else 0.0
        step = run_end - inside
        if step < 0 or step >= n_pos:
            break
        pos = scan_links[b, ln, unsigned(step), next_slot]
    return grad_a, grad_b


def contraction_along_line(
    scan,
    scan_faces,
    b,
    f,
    ln,
    n_pos,
    a_line,
    a_pos,
    b_line,
    b_pos,
    c_line,
    c_pos,
    line,
    inside,
    cross,
    pos_in,
    pos_out,
    use_a,
    use_b,
    lever_a,
    lever_b,
    scale,
    eps,
    use_rgb_grad,
    grad_a,
    grad_b,
):
    """Contraction terms of one scan line: the edge recedes over this face's pixels, from
    ``pos_in`` to the face's far side, revealing ``pos_out``'s colour.

    Args:
        ln: ``line`` as an index.
        use_rgb_grad: whether colours have gradients; without them the only change an edge
            can make is to alpha, so contraction next to a covered pixel changes nothing.
        grad_a, grad_b: the sums so far, added to in scan order.

    Returns:
        (grad_a, grad_b).
    """
    far_side = far_crossing(a_line, a_pos, b_line, b_pos, c_line, c_pos, line, float(inside))
    if far_side != far_side:
        return grad_a, grad_b
    p_out = unsigned(pos_out)
    if not use_rgb_grad and scan[b, ln, SCAN_ALPHA, p_out] != 0.0:
        # Alpha only, and the revealed pixel is covered too: every change is zero.
        return grad_a, grad_b
    if inside > 0:
        limit = math.floor(min(max(far_side, -1.0), float(n_pos)))
    else:
        limit = math.ceil(min(max(far_side, -1.0), float(n_pos)))
    r_out = scan[b, ln, SCAN_R, p_out]
    g_out = scan[b, ln, SCAN_G, p_out]
    b_out = scan[b, ln, SCAN_B, p_out]
    a_out = scan[b, ln, SCAN_ALPHA, p_out]
    pos = pos_in
    while 0 <= pos < n_pos and (limit - pos) * inside >= 0:
        if scan_faces[b, ln, unsigned(pos)] == f:
            delta = change_dot(scan, b, ln, pos, r_out, g_out, b_out, a_out)
            if delta < 0.0:
                offset = pos - cross
                if use_a:
                    grad_a += delta / lever_step(offset, lever_a, scale, eps)
                if use_b:
                    grad_b += delta / lever_step(offset, lever_b, scale, eps)
        pos += inside
    return grad_a, grad_b


def edge_axis_gradient(
    b,
    f,
    ia,
    ib,
    ic,
    axis,
    face_info,
    height,
    width,
    scan,
    scan_faces,
    scan_links,
    use_rgb_grad,
    occlusion_aware,
    eps,
    grad_face_vertices,
):
    """Kato's approximate gradient of one edge ``ia-ib`` along one screen axis.

    For each scan line crossing the edge (rows for ``axis`` 0, giving x gradients; columns
    for ``axis`` 1, giving y gradients): expansion if the face is visible at ``pos_in``
    (:func:`expansion_along_line`), then contraction (:func:`contraction_along_line`). The
    inside side comes from the third corner ``ic``, so both windings work.

    Args:
        scan: (B, L, SCAN_CHANNELS, P) float32 channels of ``pack_pixel`` along lines.
        scan_faces: (B, L, P) int32 visible face index along lines.
        scan_links: (B, L, P, LINK_SLOTS) int32 from ``link_line``.

    Adds into ``grad_face_vertices[b, f, ia, axis]`` and ``[b, f, ib, axis]`` (float64).
    """
    a_line, a_pos, b_line, b_pos, c_line, c_pos, n_lines, n_pos, scale = edge_in_scan_coordinates(
        face_info, b, f, ia, ib, ic, axis, height, width
    )
    span = b_line - a_line
    if span == 0.0:
        return
    side = span * (c_pos - a_pos) - (b_pos - a_pos) * (c_line - a_line)
    if side == 0.0:
        return
    inside = 1 if (side > 0.0) == (span > 0.0) else -1
    first, last = crossed_lines(a_line, b_line, n_lines)
    slope = (b_pos - a_pos) / span
    grad_a = 0.0
    grad_b = 0.0
    for line_index in range(first, last + 1):
        line = float(line_index)
        valid, cross, pos_in, pos_out = edge_crossing(a_line, a_pos, slope, line, inside, n_pos)
        if not valid:
            continue
        use_a, use_b, lever_a, lever_b = levers(a_line, b_line, span, line)
        ln = unsigned(line_index)
        if scan_faces[b, ln, unsigned(pos_in)] == f:
            grad_a, grad_b = expansion_along_line(
                face_info,
                b,
                f,
                axis,
                line,
                scan,
                scan_links,
                ln,
                n_pos,
                inside,
                cross,
                pos_in,
                pos_out,
                use_a,
                use_b,
                lever_a,
                lever_b,
                scale,
                eps,
                occlusion_aware,
                grad_a,
                grad_b,
            )
        grad_a, grad_b = contraction_along_line(
            scan,
            scan_faces,
            b,
            f,
            ln,
            n_pos,
            a_line,
            a_pos,
            b_line,
            b_pos,
            c_line,
            c_pos,
            line,
            inside,
            cross,
            pos_in,
            pos_out,
            use_a,
            use_b,
            lever_a,
            lever_b,
            scale,
            eps,
            use_rgb_grad,
            grad_a,
            grad_b,
        )
    grad_face_vertices[b, f, ia, axis] += grad_a
    grad_face_vertices[b, f, ib, axis] += grad_b


def kato_face_gradient(
    b,
    f,
    face_info,
    height,
    width,
    scan_x,
    faces_x,
    links_x,
    scan_y,
    faces_y,
    links_y,
    use_rgb_grad,
    occlusion_aware,
    eps,
    grad_face_vertices,
):
    """Approximate x and y gradients of one face's corners: 3 edges x 2 axes.

    ``*_x`` are the row scan arrays (axis 0), ``*_y`` the column ones (axis 1); see
    :func:`edge_axis_gradient`. Writes only ``grad_face_vertices[b, f, :, 0:2]`` (float64),
    so faces can run in parallel.
    """
    if face_info[b, f, FACE_AREA] == 0.0:
        return
    for edge in range(3):
        ia = edge
        ib = (edge + 1) % 3
        ic = (edge + 2) % 3
        edge_axis_gradient(
            b,
            f,
            ia,
            ib,
            ic,
            0,
            face_info,
            height,
            width,
            scan_x,
            faces_x,
            links_x,
            use_rgb_grad,
            occlusion_aware,
            eps,
            grad_face_vertices,
        )
        edge_axis_gradient(
            b,
            f,
            ia,
            ib,
            ic,
            1,
            face_info,
            height,
            width,
            scan_y,
            faces_y,
            links_y,
            use_rgb_grad,
            occlusion_aware,
            eps,
            grad_face_vertices,
        )
