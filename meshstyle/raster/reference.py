"""A slow, obvious NumPy rasterizer used only by the tests as ground truth.

It implements the same rules as the kernels (docs/architecture.md, sections 3 and 4) from
scratch, in NDC rather than pixel units, with plain loops and no binning, skipping or scan
layouts:

- coverage: all screen barycentrics of the pixel centre >= 0; depth ``1 / sum(w_i / z_i)``
  within [near, far]; nearest wins, ties to the lower face index;
- texture: trilinear at clipped, renormalised perspective-correct barycentrics;
- gradient: textures from the sampling weights; depth by central differences in float64;
  x and y by Kato's rule, each edge and scan line visited directly.

Everything works at the render resolution (no anti-aliasing) on NumPy arrays.
"""

from __future__ import annotations

import math

import numpy as np


def pixel_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """NDC centres: x of each column (W,) and y of each row (H,), float64."""
    xs = (2.0 * np.arange(width) + 1.0 - width) / width
    ys = (height - 1.0 - 2.0 * np.arange(height)) / height
    return xs, ys


def _face_ok(face: np.ndarray) -> bool:
    if not np.all(np.isfinite(face)) or np.any(face[:, 2] <= 0):
        return False
    (x0, y0, _), (x1, y1, _), (x2, y2, _) = face
    return (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0) != 0.0


def _barycentric(face: np.ndarray, x, y):
    """Unclipped screen barycentrics of points (x, y) in a face, via sub-triangle areas."""
    (x0, y0, _), (x1, y1, _), (x2, y2, _) = face
    total = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    w0 = ((x1 - x) * (y2 - y) - (x2 - x) * (y1 - y)) / total
    w1 = ((x2 - x) * (y0 - y) - (x0 - x) * (y2 - y)) / total
    w2 = ((x0 - x) * (y1 - y) - (x1 - x) * (y0 - y)) / total
    return w0, w1, w2


def _depth(face: np.ndarray, w0, w1, w2):
    return 1.0 / (w0 / face[0, 2] + w1 / face[1, 2] + w2 / face[2, 2])


def _texel_weights(face, w0, w1, w2, size):
    """Per point, the 8 trilinear (index triple, weight) pairs."""
    z = _depth(face, w0, w1, w2)
    p = np.stack([w0 / face[0, 2] * z, w1 / face[1, 2] * z, w2 / face[2, 2] * z], -1)
    p = np.clip(p, 0.0, 1.0)
    total = p.sum(-1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / 3.0)
    if size == 1:
        lower = np.zeros(p.shape, dtype=np.int64)
        frac = np.zeros(p.shape)
        upper = lower
    else:
        position = p * (size - 1)
        lower = np.minimum(np.floor(position).astype(np.int64), size - 2)
        frac = position - lower
        upper = lower + 1
    out = []
    for corner in range(8):
        index = []
        weight = np.ones(p.shape[:-1])
        for axis in range(3):
            if corner >> axis & 1:
                index.append(upper[..., axis])
                weight = weight * frac[..., axis]
            else:
                index.append(lower[..., axis])
                weight = weight * (1.0 - frac[..., axis])
        out.append((tuple(index), weight))
    return out


def forward(
    face_vertices: np.ndarray,
    textures: np.ndarray | None,
    background: np.ndarray,
    height: int,
    width: int,
    near: float,
    far: float,
) -> dict[str, np.ndarray | None]:
    """Rasterize at render resolution.

    Args:
        face_vertices: (B, F, 3, 3) float32.
        textures: (B, F, T, T, T, 3) float32 or None.
        background: (B, 3).

    Returns:
        dict with rgb (B, 3, H, W) float32 or None, alpha, depth (B, H, W) float32 and
        face_index (B, H, W) int32.
    """
    fv = np.asarray(face_vertices, dtype=np.float64)
    n_batch, n_faces = fv.shape[:2]
    xs, ys = pixel_centres(height, width)
    x, y = np.meshgrid(xs, ys)
    face_index = np.full((n_batch, height, width), -1, dtype=np.int32)
    zbuf = np.full((n_batch, height, width), np.inf)
    for b in range(n_batch):
        for f in range(n_faces):
            face = fv[b, f]
            if not _face_ok(face):
                continue
            with np.errstate(all="ignore"):
                w0, w1, w2 = _barycentric(face, x, y)
                inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
                z = _depth(face, w0, w1, w2)
            draw = inside & (z >= near) & (z <= far) & (z < zbuf[b])
            zbuf[b][draw] = z[draw]
            face_index[b][draw] = f
    covered = face_index >= 0
    alpha = covered.astype(np.float32)
    depth = np.where(covered, zbuf, far).astype(np.float32)
    rgb = None
    if textures is not None:
        tex = np.asarray(textures, dtype=np.float64)
        size = tex.shape[2]
        rgb = np.empty((n_batch, 3, height, width), dtype=np.float64)
        rgb[:] = np.asarray(background, dtype=np.float64)[:, :, None, None]
        for b in range(n_batch):
            for f in np.unique(face_index[b][covered[b]]):
                mask = face_index[b] == f
                face = fv[b, f]
                w0, w1, w2 = _barycentric(face, x[mask], y[mask])
                colour = np.zeros((mask.sum(), 3))
                for index, weight in _texel_weights(face, w0, w1, w2, size):
                    colour += weight[:, None] * tex[b, f][index]
                rgb[b][:, mask] = colour.T
        rgb = rgb.astype(np.float32)
    return {"rgb": rgb, "alpha": alpha, "depth": depth, "face_index": face_index}


def _depth_at(face, x, y):
    w0, w1, w2 = _barycentric(face, x, y)
    return _depth(face, w0, w1, w2)


def _depth_gradient(face, x, y, grad, step=1e-6):
    """d(sum grad * depth)/d(face) by central differences in float64, (3, 3)."""
    out = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            h = step * max(1.0, abs(face[i, j]))
            plus = face.copy()
            minus = face.copy()
            plus[i, j] += h
            minus[i, j] -= h
            diff = _depth_at(plus, x, y) - _depth_at(minus, x, y)
            out[i, j] = np.sum(grad * diff) / (2 * h)
    return out


def backward(
    face_vertices: np.ndarray,
    textures_shape: tuple[int, ...] | None,
    outputs: dict[str, np.ndarray | None],
    grad_rgb: np.ndarray | None,
    grad_alpha: np.ndarray | None,
    grad_depth: np.ndarray | None,
    eps: float,
    occlusion_aware: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradients w.r.t. face vertices (B, F, 3, 3) and textures, float64.

    Args:
        face_vertices: (B, F, 3, 3) float32 (as given to :func:`forward`).
        textures_shape: shape of the textures, or None when rasterized without them.
        outputs: the dict returned by :func:`forward`.
        grad_rgb: (B, 3, H, W) or None; grad_alpha, grad_depth: (B, H, W) or None.
        eps: lever-distance epsilon (NDC).
        occlusion_aware: skip expansion pixels behind the visible surface.
    """
    fv = np.asarray(face_vertices, dtype=np.float64)
    n_batch, n_faces = fv.shape[:2]
    face_index = outputs["face_index"]
    height, width = face_index.shape[1:]
    xs, ys = pixel_centres(height, width)
    x, y = np.meshgrid(xs, ys)
    use_rgb = grad_rgb is not None and outputs["rgb"] is not None
    # Per pixel, the 4 channels r, g, b, alpha: value and incoming gradient (0 where unused).
    values = np.zeros((n_batch, 4, height, width))
    grads = np.zeros((n_batch, 4, height, width))
    if use_rgb:
        values[:, :3] = outputs["rgb"]
        grads[:, :3] = grad_rgb
    values[:, 3] = outputs["alpha"]
    if grad_alpha is not None:
        grads[:, 3] = grad_alpha
    depth_map = outputs["depth"].astype(np.float64)

    grad_fv = np.zeros((n_batch, n_faces, 3, 3))
    grad_tex = None if textures_shape is None else np.zeros(textures_shape)
    for b in range(n_batch):
        for f in range(n_faces):
            face = fv[b, f]
            if not _face_ok(face):
                continue
            mask = face_index[b] == f
            if mask.any() and grad_depth is not None:
                grad_fv[b, f] += _depth_gradient(face, x[mask], y[mask], grad_depth[b][mask])
            if mask.any() and grad_tex is not None and use_rgb:
                w0, w1, w2 = _barycentric(face, x[mask], y[mask])
                g = grad_rgb[b][:, mask].T.astype(np.float64)
                for index, weight in _texel_weights(face, w0, w1, w2, textures_shape[2]):
                    np.add.at(grad_tex[b, f], index, weight[:, None] * g)
            if use_rgb or grad_alpha is not None:
                for edge in range(3):
                    i, j, k = edge, (edge + 1) % 3, (edge + 2) % 3
                    for axis in (0, 1):
                        _kato_edge(
                            face,
                            i,
                            j,
                            k,
                            axis,
                            b,
                            f,
                            face_index[b],
                            values[b],
                            grads[b],
                            depth_map[b],
                            xs,
                            ys,
                            eps,
                            occlusion_aware,
                            grad_fv,
                        )
    return grad_fv, grad_tex


def _kato_edge(
    face,
    i,
    j,
    k,
    axis,
    b,
    f,
    face_index,
    values,
    grads,
    depth,
    xs,
    ys,
    eps,
    occlusion_aware,
    grad_fv,
):
    """Kato's rule for edge i-j, moving vertices along ``axis`` (0: x, 1: y)."""
    height, width = face_index.shape
    move, across = (0, 1) if axis == 0 else (1, 0)
    pi, pj = face[i], face[j]
    if pi[across] == pj[across]:
        return
    centroid = face[:, :2].mean(0)

    # The edge's line as a function of the 'across' coordinate.
    def line_at(t):
        return pi[move] + (pj[move] - pi[move]) * (t - pi[across]) / (pj[across] - pi[across])

    # Pixel index along the scan as a function of the 'move' coordinate.
    if axis == 0:
        lines, centres_along, n_along = ys, xs, width  # scan rows; index along = column

        def to_index(value):
            return (value * width + width - 1) / 2

    else:
        lines, centres_along, n_along = xs, ys, height  # scan columns; index along = row

        def to_index(value):
            return (height - 1 - value * height) / 2

    # +1 when the face lies towards increasing pixel index along the scan.
    inside = 1 if to_index(centroid[move]) > to_index(line_at(centroid[across])) else -1

    lo, hi = sorted((pi[across], pj[across]))
    for d0, t in enumerate(lines):
        if not lo <= t <= hi:
            continue
        cross_value = line_at(t)
        cross = to_index(cross_value)
        if not 0 <= cross <= n_along - 1:
            continue
        d1_in = math.ceil(cross) if inside > 0 else math.floor(cross)
        d1_out = d1_in - inside
        if not (0 <= d1_in < n_along and 0 <= d1_out < n_along):
            continue

        def pixel(d1, d0=d0):
            return (d0, d1) if axis == 0 else (d1, d0)

        def contribute(d1, target, cross_value=cross_value, t=t):
            delta = sum(
                grads[(c, *pixel(d1))] * (target[c] - values[(c, *pixel(d1))]) for c in range(4)
            )
            if not delta < 0:
                return
            for vertex, other in ((i, face[j]), (j, face[i])):
                if other[across] == t:
                    continue
                # Moving this vertex alone by s moves the crossing at t by
                # s * (other - t) / (other - vertex) along 'move'.
                lever = (other[across] - face[vertex][across]) / (other[across] - t)
                step = (centres_along[d1] - cross_value) * lever
                step = step + eps if step > 0 else step - eps
                grad_fv[b, f, vertex, move] += delta / step

        # Expansion.
        if face_index[pixel(d1_in)] == f:
            target = values[(slice(None), *pixel(d1_in))]
            d1 = d1_out
            while 0 <= d1 < n_along:
                skip = False
                if occlusion_aware:
                    row, col = pixel(d1)
                    w0, w1, w2 = _barycentric(face, xs[col], ys[row])
                    inv = w0 / face[0, 2] + w1 / face[1, 2] + w2 / face[2, 2]
                    # Nearer than the face's plane by more than a 1e-6 fraction.
                    skip = inv <= 0 or depth[row, col] * inv < 1.0 - 1e-6
                if not skip:
                    contribute(d1, target)
                d1 -= inside
        # Contraction: the face's extent along this scan line, far end opposite the edge.
        ends = []
        for a, c in ((0, 1), (1, 2), (2, 0)):
            pa, pc = face[a], face[c]
            if pa[across] != pc[across] and min(pa[across], pc[across]) <= t <= max(
                pa[across], pc[across]
            ):
                ends.append(
                    to_index(
                        pa[move]
                        + (pc[move] - pa[move]) * (t - pa[across]) / (pc[across] - pa[across])
                    )
                )
            elif pa[across] == pc[across] == t:
                ends.extend([to_index(pa[move]), to_index(pc[move])])
        far = max(ends) if inside > 0 else min(ends)
        limit = math.floor(far) if inside > 0 else math.ceil(far)
        target = values[(slice(None), *pixel(d1_out))]
        d1 = d1_in
        while 0 <= d1 < n_along and (limit - d1) * inside >= 0:
            if face_index[pixel(d1)] == f:
                contribute(d1, target)
            d1 += inside
