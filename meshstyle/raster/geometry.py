"""The rasterizer's per-face and per-pixel math, written once for every backend.

Every function here is plain Python over scalars, tuples and element access into arrays that
the caller passes in: no allocation, no NumPy calls, no parallel loops, no globals other than
the ``math`` module, the upper-case constants and the functions of this module. That is what
lets the same source run as ordinary Python, as ``numba.njit`` code in
:mod:`meshstyle.raster.cpu` and as CUDA device functions in :mod:`meshstyle.raster.cuda`;
:func:`compile_functions` builds a compiled copy of the module's functions for any numba
decorator.

Coordinates. Faces come in as NDC ``x`` (right), ``y`` (up) and camera depth ``z``. Setup turns
them into pixel coordinates of the render grid, ``u`` (column) and ``v`` (row), in which the
centre of pixel ``(row r, col c)`` is exactly ``(u, v) = (c, r)``::

    u = (x * W + W - 1) / 2        v = (H - 1 - y * H) / 2

All arithmetic is float64 whatever the storage type, so that coverage and depth-order
decisions do not depend on float32 rounding.

Arrays used below (``B`` batch, ``F`` faces, ``H x W`` render grid, ``T`` texture size):

- ``face_vertices`` (B, F, 3, 3) float32: per corner NDC x, NDC y, depth z.
- ``face_info`` (B, F, FACE_INFO_SIZE) float64: per face u0, v0, u1, v1, u2, v2, 1/z0, 1/z1,
  1/z2 and the signed doubled area in pixel units (0 for a skipped face).
- ``face_bbox`` (B, F, 4) int32: inclusive pixel box row_min, row_max, col_min, col_max;
  empty (min > max) for a skipped face or one entirely off-screen.
- ``textures`` (B, F, T, T, T, 3) float32; ``grad_textures`` likewise.
- ``rgb`` (B, 3, H, W), ``alpha``, ``depth`` (B, H, W) float32; ``face_index`` (B, H, W) int32.
- Scan layouts used by the backward pass, one per screen axis: ``scan`` (B, L, SCAN_CHANNELS,
  P) float32 channels (see :func:`pack_pixel`), ``scan_faces`` (B, L, P) int32 and
  ``scan_links`` (B, L, P, 4) int32 (see :func:`link_line`), where a line ``L`` is a row and
  a position ``P`` a column for axis 0 (gradients along x), and the transpose for axis 1
  (gradients along y). Channels are stored per line so that a scan reads them with unit
  stride.
"""

from __future__ import annotations

import math
import types

FACE_INFO_SIZE = 10
SCAN_CHANNELS = 9
FLOAT32_MAX = 3.4028234663852886e38
# Occlusion-aware expansion skips a pixel only when its depth is nearer than the face's plane
# by more than this fraction, so that float32 depth rounding on a coplanar neighbour (a quad's
# other half) cannot flip the decision.
OCCLUSION_TOLERANCE = 1e-6
# Expansion runs of at least this many pixels go through long_expansion_run.
LONG_RUN = 16

# Functions that call one another and therefore must be compiled together.
DEVICE_FUNCTIONS = (
    "setup_face",
    "edge_functions",
    "edge_weights",
    "fragment",
    "texel_coords",
    "texel_weight",
    "sample_texture",
    "shade_pixel",
    "is_colour_channel",
    "pack_alpha_channels",
    "pack_pixel",
    "is_active",
    "change_dot",
    "lever_step",
    "expansion_run",
    "long_expansion_run",
    "link_line",
    "unsigned",
    "far_crossing",
    "plane_inverse_depth",
    "edge_axis_gradient",
    "kato_face_gradient",
    "interior_face_gradient",
    "finite_or_zero",
)


def compile_functions(jit, decorators=None, replacements=None) -> types.SimpleNamespace:
    """Compile this module's device functions with a numba decorator.

    Each function is re-created over a private globals dict in which the names of the other
    device functions refer to their compiled versions, so that calls between them resolve
    inside compiled code (numba cannot call a plain Python function from nopython code).

    Args:
        jit: a decorator such as ``numba.njit(inline="always")`` or ``cuda.jit(device=True)``.
        decorators: optional per-name decorators used instead of ``jit`` (for instance
            fast-math flags on :func:`long_expansion_run` alone).
        replacements: optional per-name compiled functions used as they are (for instance an
            :func:`unsigned` that casts to an unsigned integer type).

    Returns:
        A namespace with one compiled function per name in ``DEVICE_FUNCTIONS``.
    """
    decorators = decorators or {}
    replacements = replacements or {}
    namespace = {"math": math}
    namespace.update({name: value for name, value in globals().items() if name.isupper()})
    for name in DEVICE_FUNCTIONS:
        if name in replacements:
            namespace[name] = replacements[name]
            continue
        original = globals()[name]
        clone = types.FunctionType(
            original.__code__, namespace, name, original.__defaults__, original.__closure__
        )
        clone.__qualname__ = original.__qualname__
        clone.__module__ = original.__module__
        clone.__doc__ = original.__doc__
        namespace[name] = decorators.get(name, jit)(clone)
    return types.SimpleNamespace(**{name: namespace[name] for name in DEVICE_FUNCTIONS})


def unsigned(index):
    """An array index known to be >= 0, unchanged.

    Backends may replace it by a cast to an unsigned integer: numba then skips the
    negative-index wraparound, whose per-access select keeps loops from vectorising (a
    measured 10x on the expansion scan).
    """
    return index


# --------------------------------------------------------------------------- forward


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
        face_bbox[b, f, 0] = 0
        face_bbox[b, f, 1] = -1
        face_bbox[b, f, 2] = 0
        face_bbox[b, f, 3] = -1
        return
    face_info[b, f, 0] = u0
    face_info[b, f, 1] = v0
    face_info[b, f, 2] = u1
    face_info[b, f, 3] = v1
    face_info[b, f, 4] = u2
    face_info[b, f, 5] = v2
    face_info[b, f, 6] = 1.0 / z0
    face_info[b, f, 7] = 1.0 / z1
    face_info[b, f, 8] = 1.0 / z2
    face_info[b, f, 9] = area
    # Clamp in floating point before rounding: huge finite coordinates must not overflow ints.
    umin = min(max(min(u0, u1, u2), 0.0), fw)
    umax = min(max(max(u0, u1, u2), -1.0), fw - 1.0)
    vmin = min(max(min(v0, v1, v2), 0.0), fh)
    vmax = min(max(max(v0, v1, v2), -1.0), fh - 1.0)
    face_bbox[b, f, 0] = math.ceil(vmin)
    face_bbox[b, f, 1] = math.floor(vmax)
    face_bbox[b, f, 2] = math.ceil(umin)
    face_bbox[b, f, 3] = math.floor(umax)


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
            face_info[b, f, 0],
            face_info[b, f, 1],
            face_info[b, f, 2],
            face_info[b, f, 3],
            face_info[b, f, 4],
            face_info[b, f, 5],
            face_info[b, f, 9],
            float(col),
            float(row),
        )
        lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2 = texel_coords(
            w0,
            w1,
            w2,
            face_info[b, f, 6],
            face_info[b, f, 7],
            face_info[b, f, 8],
            z,
            textures.shape[2],
        )
        red, green, blue = sample_texture(textures, b, f, lo0, lo1, lo2, hi0, hi1, hi2, t0, t1, t2)
        rgb[b, 0, r, c] = red
        rgb[b, 1, r, c] = green
        rgb[b, 2, r, c] = blue


# --------------------------------------------------------------------------- backward


def pack_pixel(
    b, row, col, rgb, alpha, depth, grad_rgb, grad_alpha, use_rgb_grad, use_alpha_grad, scan_x
):
    """Write one pixel's scan channels into the row layout ``scan_x[b, row, :, col]``.

    Channels (``SCAN_CHANNELS``): 0-3 the incoming gradient of r, g, b, alpha; 4-7 their
    values; 8 the depth. Colour channels without a gradient hold zero gradient and zero
    value, so the change dot product needs no branches and gives the same result whatever
    the set of channels. The column layout is the transpose (``scan_y[b, col, :, row]``).
    """
    c = unsigned(col)
    r = unsigned(row)
    for k in range(3):
        if use_rgb_grad:
            scan_x[b, r, k, c] = grad_rgb[b, k, r, c]
            scan_x[b, r, 4 + k, c] = rgb[b, k, r, c]
        else:
            scan_x[b, r, k, c] = 0.0
            scan_x[b, r, 4 + k, c] = 0.0
    pack_alpha_channels(b, row, col, alpha, depth, grad_alpha, use_alpha_grad, scan_x)


def is_colour_channel(k):
    """Whether scan channel ``k`` holds a colour's gradient (0-2) or value (4-6)."""
    return k < 3 or 4 <= k < 7


def pack_alpha_channels(b, row, col, alpha, depth, grad_alpha, use_alpha_grad, scan_x):
    """The part of :func:`pack_pixel` that does not depend on colour: channels 3 (alpha's
    gradient), 7 (alpha) and 8 (depth)."""
    c = unsigned(col)
    r = unsigned(row)
    scan_x[b, r, 3, c] = grad_alpha[b, r, c] if use_alpha_grad else 0.0
    scan_x[b, r, 7, c] = alpha[b, r, c]
    scan_x[b, r, 8, c] = depth[b, r, c]


def is_active(scan, b, line, pos, use_rgb_grad):
    """Whether a pixel can contribute to any face's expansion term.

    With colour gradients any non-zero gradient may. With alpha alone the expanding face
    brings alpha 1, so only an empty pixel whose gradient asks for more alpha can.
    """
    p = unsigned(pos)
    if use_rgb_grad:
        return (
            scan[b, line, 0, p] != 0.0
            or scan[b, line, 1, p] != 0.0
            or scan[b, line, 2, p] != 0.0
            or scan[b, line, 3, p] != 0.0
        )
    return scan[b, line, 3, p] < 0.0 and scan[b, line, 7, p] == 0.0


def change_dot(scan, b, line, pos, r, g, bl, a):
    """``dL/dI . (I_new - I)`` at a pixel of a scan line, for a new colour ``(r, g, bl, a)``.

    The channels are summed in the fixed order r, g, b, alpha (the reference does the same),
    so that the sign test on the result is reproducible.
    """
    p = unsigned(pos)
    return (
        scan[b, line, 0, p] * (r - scan[b, line, 4, p])
        + scan[b, line, 1, p] * (g - scan[b, line, 5, p])
        + scan[b, line, 2, p] * (bl - scan[b, line, 6, p])
        + scan[b, line, 3, p] * (a - scan[b, line, 7, p])
    )


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
            scan[b, line, 0, p] * (r - scan[b, line, 4, p])
            + scan[b, line, 1, p] * (g - scan[b, line, 5, p])
            + scan[b, line, 2, p] * (bl - scan[b, line, 6, p])
            + scan[b, line, 3, p] * (a - scan[b, line, 7, p])
        )
        keep = delta < 0.0
        if occlusion_aware:
            inv = inv_depth0 + pos * inv_depth_step
            keep = keep and inv > 0.0 and scan[b, line, 8, p] * inv >= limit
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


def far_crossing(a0, a1, b0, b1, c0, c1, d0, inside):
    """Where line ``d0`` leaves the face on the side opposite edge ``a-b``.

    The line crosses edge ``a-b`` and, the face being convex, exactly one more boundary
    point in the ``inside`` direction: on edge ``a-c``, edge ``b-c`` or at vertex ``c``.
    Returns the crossing furthest in the ``inside`` direction.
    """
    best = math.nan
    if c0 == d0:
        best = c1
    if a0 != c0 and min(a0, c0) <= d0 <= max(a0, c0):
        value = a1 + (c1 - a1) * ((d0 - a0) / (c0 - a0))
        if best != best or (value - best) * inside > 0.0:
            best = value
    if b0 != c0 and min(b0, c0) <= d0 <= max(b0, c0):
        value = b1 + (c1 - b1) * ((d0 - b0) / (c0 - b0))
        if best != best or (value - best) * inside > 0.0:
            best = value
    return best


def plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, pu, pv):
    """``1/z`` of the face's plane extended to the point ``(pu, pv)`` (may be <= 0)."""
    w0, w1, w2 = edge_weights(u0, v0, u1, v1, u2, v2, area, pu, pv)
    return w0 * iz0 + w1 * iz1 + w2 * iz2


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
    for ``axis`` 1, giving y gradients) the edge crossing splits the line into the pixel on
    the face side (``d1_in``) and its outer neighbour (``d1_out``). Expansion: if the face is
    visible at ``d1_in``, each pixel from ``d1_out`` to the border would take ``d1_in``'s
    colour if the edge reached it. Contraction: each pixel of this face between the edge and
    the face's far side would take ``d1_out``'s colour if the edge passed it. A pixel
    contributes ``dL/dI . dI / dx`` only where ``dL/dI . dI < 0`` (the move lowers the loss);
    ``dx`` is the displacement of vertex ``ia`` (or ``ib``) alone that brings the crossing to
    the pixel centre, the lever rule. The inside side comes from the third vertex ``ic`` so
    both windings work. Expansion visits only active pixels, run by run (``scan_links``);
    the skipped pixels would add exactly zero.

    Args:
        scan: (B, L, SCAN_CHANNELS, P) float32 channels of :func:`pack_pixel` along lines.
        scan_faces: (B, L, P) int32 visible face index along lines.
        scan_links: (B, L, P, 4) int32 from :func:`link_line`.
        use_rgb_grad: whether colours have gradients; without them the only change an edge
            can make is to alpha, so contraction next to a covered pixel changes nothing.

    Adds into ``grad_face_vertices[b, f, ia, axis]`` and ``[b, f, ib, axis]`` (float64).
    """
    if axis == 0:
        # Line = row (v), position along it = column (u).
        a0 = face_info[b, f, 2 * ia + 1]
        a1 = face_info[b, f, 2 * ia]
        b0 = face_info[b, f, 2 * ib + 1]
        b1 = face_info[b, f, 2 * ib]
        c0 = face_info[b, f, 2 * ic + 1]
        c1 = face_info[b, f, 2 * ic]
        n_lines = height
        n_pos = width
        scale = 2.0 / width
    else:
        a0 = face_info[b, f, 2 * ia]
        a1 = face_info[b, f, 2 * ia + 1]
        b0 = face_info[b, f, 2 * ib]
        b1 = face_info[b, f, 2 * ib + 1]
        c0 = face_info[b, f, 2 * ic]
        c1 = face_info[b, f, 2 * ic + 1]
        n_lines = width
        n_pos = height
        scale = -2.0 / height
    span = b0 - a0
    if span == 0.0:
        return
    side = span * (c1 - a1) - (b1 - a1) * (c0 - a0)
    if side == 0.0:
        return
    inside = 1 if (side > 0.0) == (span > 0.0) else -1
    # Link slots: 0/2 next active and run end towards higher positions, 1/3 towards lower.
    next_slot = 1 if inside > 0 else 0
    end_slot = next_slot + 2
    lo = math.ceil(min(max(min(a0, b0), 0.0), float(n_lines)))
    hi = math.floor(min(max(max(a0, b0), -1.0), n_lines - 1.0))
    slope = (b1 - a1) / span
    u0 = face_info[b, f, 0]
    v0 = face_info[b, f, 1]
    u1 = face_info[b, f, 2]
    v1 = face_info[b, f, 3]
    u2 = face_info[b, f, 4]
    v2 = face_info[b, f, 5]
    iz0 = face_info[b, f, 6]
    iz1 = face_info[b, f, 7]
    iz2 = face_info[b, f, 8]
    area = face_info[b, f, 9]
    grad_a = 0.0
    grad_b = 0.0
    for d0 in range(lo, hi + 1):
        line = float(d0)
        cross = a1 + slope * (line - a0)
        # Both d1_in and d1_out must be on the grid; this also keeps huge values from ints.
        if not (0.0 <= cross <= n_pos - 1.0):
            continue
        if inside > 0:
            d1_in = math.ceil(cross)
            d1_out = d1_in - 1
        else:
            d1_in = math.floor(cross)
            d1_out = d1_in + 1
        if d1_in < 0 or d1_in >= n_pos or d1_out < 0 or d1_out >= n_pos:
            continue
        # A vertex lying on this line cannot move the crossing there: no lever.
        use_a = b0 != line
        use_b = a0 != line
        lever_a = span / (b0 - line) if use_a else 0.0
        lever_b = span / (line - a0) if use_b else 0.0
        ln = unsigned(d0)

        # Expansion: the face, visible at d1_in, grows over the pixels beyond the edge.
        if scan_faces[b, ln, unsigned(d1_in)] == f:
            p_in = unsigned(d1_in)
            r_in = scan[b, ln, 4, p_in]
            g_in = scan[b, ln, 5, p_in]
            b_in = scan[b, ln, 6, p_in]
            a_in = scan[b, ln, 7, p_in]
            slope_a = lever_a * scale
            slope_b = lever_b * scale
            # Offsets all have the outward sign here, so each step's sign is fixed.
            eps_a = eps if -inside * slope_a > 0.0 else -eps
            eps_b = eps if -inside * slope_b > 0.0 else -eps
            inv_depth0 = 0.0
            inv_depth_step = 0.0
            if occlusion_aware:
                if axis == 0:
                    inv_depth0 = plane_inverse_depth(
                        u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, 0.0, line
                    )
                    inv_depth_step = (
                        plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, 1.0, line)
                        - inv_depth0
                    )
                else:
                    inv_depth0 = plane_inverse_depth(
                        u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, line, 0.0
                    )
                    inv_depth_step = (
                        plane_inverse_depth(u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, line, 1.0)
                        - inv_depth0
                    )
            d1 = scan_links[b, ln, unsigned(d1_out), next_slot]
            while 0 <= d1 < n_pos:
                run_end = scan_links[b, ln, unsigned(d1), end_slot]
                run_lo = min(d1, run_end)
                run_hi = max(d1, run_end)
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
                d1 = scan_links[b, ln, unsigned(step), next_slot]

        # Contraction: the edge recedes over this face's pixels, revealing d1_out's colour.
        far_side = far_crossing(a0, a1, b0, b1, c0, c1, line, float(inside))
        if far_side != far_side:
            continue
        p_out = unsigned(d1_out)
        if not use_rgb_grad and scan[b, ln, 7, p_out] != 0.0:
            # Alpha only, and the revealed pixel is covered too: every change is zero.
            continue
        if inside > 0:
            limit = math.floor(min(max(far_side, -1.0), float(n_pos)))
        else:
            limit = math.ceil(min(max(far_side, -1.0), float(n_pos)))
        r_out = scan[b, ln, 4, p_out]
        g_out = scan[b, ln, 5, p_out]
        b_out = scan[b, ln, 6, p_out]
        a_out = scan[b, ln, 7, p_out]
        d1 = d1_in
        while 0 <= d1 < n_pos and (limit - d1) * inside >= 0:
            if scan_faces[b, ln, unsigned(d1)] == f:
                delta = change_dot(scan, b, ln, d1, r_out, g_out, b_out, a_out)
                if delta < 0.0:
                    offset = d1 - cross
                    if use_a:
                        grad_a += delta / lever_step(offset, lever_a, scale, eps)
                    if use_b:
                        grad_b += delta / lever_step(offset, lever_b, scale, eps)
            d1 += inside
    grad_face_vertices[b, f, ia, axis] += grad_a
    grad_face_vertices[b, f, ib, axis] += grad_b


def link_line(scan, b, line, n_pos, use_rgb_grad, scan_links):
    """Active-pixel links of one scan line, for skipping inactive pixels in expansion.

    Writes ``scan_links[b, line, pos, :]``: 0 the first active position >= pos (``n_pos`` if
    none), 1 the last active position <= pos (-1 if none), 2 the last position of the active
    run starting at an active ``pos`` going up, 3 the first going down.
    """
    nxt = n_pos
    run_end = n_pos
    previous_active = False
    for pos in range(n_pos - 1, -1, -1):
        p = unsigned(pos)
        active = is_active(scan, b, line, pos, use_rgb_grad)
        if active:
            if not previous_active:
                run_end = pos
            nxt = pos
        previous_active = active
        scan_links[b, line, p, 0] = nxt
        scan_links[b, line, p, 2] = run_end
    prv = -1
    run_end = -1
    previous_active = False
    for pos in range(n_pos):
        p = unsigned(pos)
        active = is_active(scan, b, line, pos, use_rgb_grad)
        if active:
            if not previous_active:
                run_end = pos
            prv = pos
        previous_active = active
        scan_links[b, line, p, 1] = prv
        scan_links[b, line, p, 3] = run_end


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
    if face_info[b, f, 9] == 0.0:
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
    if face_info[b, f, 9] == 0.0:
        return
    u0 = face_info[b, f, 0]
    v0 = face_info[b, f, 1]
    u1 = face_info[b, f, 2]
    v1 = face_info[b, f, 3]
    u2 = face_info[b, f, 4]
    v2 = face_info[b, f, 5]
    iz0 = face_info[b, f, 6]
    iz1 = face_info[b, f, 7]
    iz2 = face_info[b, f, 8]
    area = face_info[b, f, 9]
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
    for row in range(face_bbox[b, f, 0], face_bbox[b, f, 1] + 1):
        for col in range(face_bbox[b, f, 2], face_bbox[b, f, 3] + 1):
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


def finite_or_zero(value):
    """``value`` if it is finite and fits float32, else 0 or the float32 limit (sign kept)."""
    if value != value:
        return 0.0
    if value > FLOAT32_MAX:
        return FLOAT32_MAX
    if value < -FLOAT32_MAX:
        return -FLOAT32_MAX
    return value
