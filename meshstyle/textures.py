"""Per-face texture cubes: sampling, logit conversion and initialisation.

Each face carries a T×T×T grid of RGB colours (docs/architecture.md, section 3). A point with
barycentric coordinates (w0, w1, w2) reads the grid at the continuous position
``p_k = w_k · (T - 1)`` along axis k (axis k follows vertex k) with 8-corner trilinear
interpolation. Only the simplex ``p0 + p1 + p2 = T - 1`` is ever read inside a face; the
rest of the cube is what the original renderer stores and optimises, so we keep its layout.

The optimiser works on logits (colour = sigmoid(logit)) so colours stay in (0, 1) without
clipping; conversions here clamp so that logits are always finite.
"""

from __future__ import annotations

import sys

import numpy as np

# Colours are clamped to [eps, 1 - eps] before the logit: 0 and 1 would give ±inf, and
# 1e-4 is far below one 8-bit step, so the clamp is invisible in any image.
_COLOUR_EPS = 1e-4

# exp() of anything beyond this overflows float32; sigmoid is already 0 or 1 there.
_LOGIT_LIMIT = 80.0


def _torch_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _check_cubes(cubes) -> int:
    shape = tuple(cubes.shape)
    if len(shape) != 5 or shape[1] != shape[2] or shape[2] != shape[3] or shape[4] != 3:
        raise ValueError(f"cubes must have shape (F, T, T, T, 3); got {shape}")
    if shape[1] < 1:
        raise ValueError(f"texture size T must be at least 1; got {shape[1]}")
    return shape[1]


def sample_cube(cubes, weights):
    """Sample per-face texture cubes at barycentric coordinates.

    Args:
        cubes: (F, T, T, T, 3) colours (or logits: sampling is linear), numpy or torch.
        weights: (F, N, 3) barycentric coordinates per face, or (N, 3) shared by all faces.
            Values outside [0, 1] are clamped to the cube.

    Returns:
        (F, N, 3) samples, same array type and float dtype as ``cubes``. At vertex k
        (weight 1 on k) the sample is the cube corner on axis k, e.g. ``cubes[:, T-1, 0, 0]``
        for vertex 0; T = 1 gives the constant colour ``cubes[:, 0, 0, 0]``.
    """
    t = _check_cubes(cubes)
    if _torch_tensor(cubes) or _torch_tensor(weights):
        return _sample_cube_torch(cubes, weights, t)
    cubes = np.asarray(cubes)
    if not np.issubdtype(cubes.dtype, np.floating):
        cubes = cubes.astype(np.float32)
    w = np.asarray(weights, dtype=np.float64)
    w = _broadcast_weights(w, cubes.shape[0])
    pos = np.clip(w, 0.0, 1.0) * (t - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), t - 1)
    hi = np.minimum(lo + 1, t - 1)
    frac = (pos - lo).astype(cubes.dtype)
    face = np.arange(cubes.shape[0])[:, None]
    out = np.zeros(w.shape[:2] + (3,), dtype=cubes.dtype)
    for a in (0, 1):
        ia = hi[..., 0] if a else lo[..., 0]
        fa = frac[..., 0] if a else 1 - frac[..., 0]
        for b in (0, 1):
            ib = hi[..., 1] if b else lo[..., 1]
            fb = frac[..., 1] if b else 1 - frac[..., 1]
            for c in (0, 1):
                ic = hi[..., 2] if c else lo[..., 2]
                fc = frac[..., 2] if c else 1 - frac[..., 2]
                out += (fa * fb * fc)[..., None] * cubes[face, ia, ib, ic]
    return out


def _broadcast_weights(w, num_faces: int):
    if w.ndim == 2 and w.shape[-1] == 3:
        w = w[None]
        return (
            w.expand(num_faces, *w.shape[1:])
            if hasattr(w, "expand")
            else np.broadcast_to(w, (num_faces,) + w.shape[1:])
        )
    if w.ndim != 3 or w.shape[0] != num_faces or w.shape[2] != 3:
        raise ValueError(
            f"weights must have shape ({num_faces}, N, 3) or (N, 3); got {tuple(w.shape)}"
        )
    return w


def _sample_cube_torch(cubes, weights, t: int):
    import torch

    cubes = torch.as_tensor(cubes)
    if not cubes.is_floating_point():
        cubes = cubes.float()
    w = torch.as_tensor(weights, device=cubes.device).to(torch.float64)
    w = _broadcast_weights(w, cubes.shape[0])
    pos = w.clamp(0.0, 1.0) * (t - 1)
    lo = pos.floor().long().clamp(max=t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    frac = (pos - lo).to(cubes.dtype)
    face = torch.arange(cubes.shape[0], device=cubes.device)[:, None]
    out = torch.zeros(w.shape[:2] + (3,), dtype=cubes.dtype, device=cubes.device)
    for a in (0, 1):
        ia, fa = (hi[..., 0], frac[..., 0]) if a else (lo[..., 0], 1 - frac[..., 0])
        for b in (0, 1):
            ib, fb = (hi[..., 1], frac[..., 1]) if b else (lo[..., 1], 1 - frac[..., 1])
            for c in (0, 1):
                ic, fc = (hi[..., 2], frac[..., 2]) if c else (lo[..., 2], 1 - frac[..., 2])
                out = out + (fa * fb * fc)[..., None] * cubes[face, ia, ib, ic]
    return out


def colours_to_logits(colours, eps: float = _COLOUR_EPS):
    """Inverse sigmoid of colours, clamped so the result is finite.

    Args:
        colours: (...) colours in [0, 1], numpy (float32 result) or torch (same dtype).
        eps: colours are clamped to [eps, 1 - eps] first.

    Returns:
        (...) logits with ``logits_to_colours(logits) ≈ colours``.
    """
    if _torch_tensor(colours):
        import torch

        c = colours.clamp(eps, 1.0 - eps)
        return torch.log(c) - torch.log1p(-c)
    c = np.clip(np.asarray(colours, dtype=np.float64), eps, 1.0 - eps)
    return (np.log(c) - np.log1p(-c)).astype(np.float32)


def logits_to_colours(logits):
    """Sigmoid of texture logits.

    Args:
        logits: (...) numpy (float32 result) or torch (same dtype, differentiable).

    Returns:
        (...) colours in [0, 1]; never NaN for finite or infinite logits.
    """
    if _torch_tensor(logits):
        return logits.sigmoid()
    x = np.clip(np.asarray(logits, dtype=np.float64), -_LOGIT_LIMIT, _LOGIT_LIMIT)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def cube_grid_weights(t: int) -> np.ndarray:
    """Barycentric coordinates that each cube grid point stands for.

    Grid point (i, j, k) lies on the simplex when i + j + k = T - 1; every grid point is
    projected there as (i, j, k) / (i + j + k), and (0, 0, 0) becomes the centroid.

    Args:
        t: texture size T.

    Returns:
        (T, T, T, 3) float64 weights summing to 1.
    """
    if t < 1:
        raise ValueError(f"texture size T must be at least 1; got {t}")
    idx = np.stack(np.meshgrid(*(np.arange(t, dtype=np.float64),) * 3, indexing="ij"), axis=-1)
    total = idx.sum(axis=-1, keepdims=True)
    return np.where(total > 0, idx / np.maximum(total, 1.0), 1.0 / 3.0)


def sample_image(image: np.ndarray, uv: np.ndarray, *, wrap: bool = True) -> np.ndarray:
    """Bilinear lookup of an image at texture coordinates (OpenGL conventions).

    Texel (row r, col c) has its centre at ``u = (c + 0.5) / W``, ``v = 1 - (r + 0.5) / H``:
    the uv origin is the bottom-left corner, row 0 the top of the image.

    Args:
        image: (H, W, C) uint8 or float image.
        uv: (..., 2) texture coordinates.
        wrap: repeat the image outside [0, 1] (as ``GL_REPEAT``); otherwise clamp to the edge.

    Returns:
        (..., C) float32 values; uint8 images are scaled to [0, 1].
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape (H, W, C); got {image.shape}")
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    h, w = image.shape[:2]
    uv = np.asarray(uv, dtype=np.float64)
    x = uv[..., 0] * w - 0.5
    y = (1.0 - uv[..., 1]) * h - 0.5
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)

    def index(i, n):
        return np.mod(i, n) if wrap else np.clip(i, 0, n - 1)

    xa, xb = index(x0, w), index(x0 + 1, w)
    ya, yb = index(y0, h), index(y0 + 1, h)
    img = image.astype(np.float64) / scale
    top = img[ya, xa] * (1 - fx) + img[ya, xb] * fx
    bottom = img[yb, xa] * (1 - fx) + img[yb, xb] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def cubes_from_uv_texture(face_uvs: np.ndarray, image: np.ndarray, t: int) -> np.ndarray:
    """Initial texture cubes that reproduce a UV-mapped image.

    Grid point (i, j, k) takes the image colour at ``uv = Σ_k w_k · uv_k`` with
    ``w = (i, j, k) / (i + j + k)`` (the centroid for (0, 0, 0)), read bilinearly with
    repeat wrapping.

    Args:
        face_uvs: (F, 3, 2) texture coordinates per face corner, origin bottom-left.
        image: (H, W, 3) uint8 RGB image, row 0 at the top.
        t: texture size T >= 1.

    Returns:
        (F, T, T, T, 3) float32 colours in [0, 1].
    """
    face_uvs = np.asarray(face_uvs, dtype=np.float64)
    if face_uvs.ndim != 3 or face_uvs.shape[1:] != (3, 2):
        raise ValueError(f"face_uvs must have shape (F, 3, 2); got {face_uvs.shape}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3); got {image.shape}")
    weights = cube_grid_weights(t).reshape(-1, 3)  # (T³, 3)
    out = np.empty((len(face_uvs), t**3, 3), dtype=np.float32)
    # chunks keep the (chunk, T³, 2) temporaries small for meshes with many faces
    step = max(1, 2_000_000 // (t**3))
    for start in range(0, len(face_uvs), step):
        uv = np.einsum("nk,fkc->fnc", weights, face_uvs[start : start + step])
        out[start : start + step] = sample_image(image, uv, wrap=True)
    return out.reshape(len(face_uvs), t, t, t, 3)


def uniform_cubes(num_faces: int, t: int, colour=(0.5, 0.5, 0.5)) -> np.ndarray:
    """Texture cubes of one colour.

    Args:
        num_faces: F.
        t: texture size T >= 1.
        colour: RGB in [0, 1].

    Returns:
        (F, T, T, T, 3) float32 colours.
    """
    if num_faces < 0 or t < 1:
        raise ValueError(f"need num_faces >= 0 and T >= 1; got F={num_faces}, T={t}")
    rgb = np.asarray(colour, dtype=np.float32).reshape(-1)
    if rgb.shape != (3,) or not np.all((rgb >= 0) & (rgb <= 1)):
        raise ValueError(f"colour must be three values in [0, 1]; got {np.asarray(colour)}")
    return np.broadcast_to(rgb, (num_faces, t, t, t, 3)).copy()


def initial_colours(mesh, texture_size: int):
    """Per-face texture cubes a mesh starts with: from its UV texture when it has one, else clay.

    Args:
        mesh: a loaded :class:`meshstyle.mesh.Mesh`.
        texture_size: cube size T.

    Returns:
        (F, T, T, T, 3) float32 torch tensor of colours in [0, 1].
    """
    import torch

    from meshstyle.preview import CLAY

    if mesh.face_uvs is not None and mesh.texture is not None:
        cubes = cubes_from_uv_texture(mesh.face_uvs, mesh.texture, texture_size)
    else:
        cubes = uniform_cubes(len(mesh.faces), texture_size, CLAY)
    return torch.as_tensor(cubes, dtype=torch.float32)
