"""One face's whole backward pass, as both backends run it.

The CPU kernel calls :func:`face_gradient` for the faces of each work chunk, the CUDA
kernel once per thread; either way each call writes only its own face's gradient slots,
so faces run in parallel without races or atomics.

Shared rasterizer math (see :mod:`.device`): plain functions for every backend.
"""

from __future__ import annotations

from .edge_gradient import kato_face_gradient
from .interior_gradient import interior_face_gradient
from .layout import FLOAT32_MAX


def finite_or_zero(value):
    """``value`` if it is finite and fits float32, else 0 or the float32 limit (sign kept)."""
    if value != value:
        return 0.0
    if value > FLOAT32_MAX:
        return FLOAT32_MAX
    if value < -FLOAT32_MAX:
        return -FLOAT32_MAX
    return value


def clear_face_gradients(b, f, use_texture_grad, grad_face_vertices, grad_textures):
    """Zero face ``f``'s slots of ``grad_face_vertices`` and, if used, ``grad_textures``."""
    for i in range(3):
        for j in range(3):
            grad_face_vertices[b, f, i, j] = 0.0
    if use_texture_grad:
        texture_size = grad_textures.shape[2]
        for i in range(texture_size):
            for j in range(texture_size):
                for k in range(texture_size):
                    for c in range(3):
                        grad_textures[b, f, i, j, k, c] = 0.0


def face_gradient(
    b,
    f,
    face_info,
    face_bbox,
    face_index,
    scan_x,
    links_x,
    scan_y,
    faces_y,
    links_y,
    grad_rgb,
    grad_depth,
    use_vertex_grad,
    use_texture_grad,
    use_depth_grad,
    use_kato,
    use_rgb_grad,
    occlusion_aware,
    eps,
    grad_face_vertices,
    grad_textures,
    visible,
):
    """Gradients of face ``f`` of image ``b``: Kato's x/y term plus exact depth and texture
    terms, clipped to finite float32 values.

    Args:
        face_info: (B, F, FACE_INFO_SIZE) float64; face_bbox: (B, F, 4) int32.
        face_index: (B, H, W) int32 (also the row scan faces).
        scan_x, links_x / scan_y, faces_y, links_y: the row and column scan arrays (see
            :mod:`.layout`).
        grad_rgb: (B, 3, H, W) float32; grad_depth: (B, H, W) float32.
        use_*: which terms to compute (use_rgb_grad: whether colours have gradients);
            occlusion_aware, eps: see ``rasterize``.
        grad_face_vertices: (B, F, 3, 3) float64, slot ``[b, f]`` written.
        grad_textures: (B, F, T, T, T, 3) float32, slot ``[b, f]`` written when
            ``use_texture_grad``.
        visible: (B, F) uint8, whether the face is visible anywhere; a face visible nowhere
            has no gradient at all and gets zeros.
    """
    clear_face_gradients(b, f, use_texture_grad, grad_face_vertices, grad_textures)
    if not visible[b, f]:
        return
    height, width = face_index.shape[1], face_index.shape[2]
    if use_vertex_grad and use_kato:
        kato_face_gradient(
            b,
            f,
            face_info,
            height,
            width,
            scan_x,
            face_index,
            links_x,
            scan_y,
            faces_y,
            links_y,
            use_rgb_grad,
            occlusion_aware,
            eps,
            grad_face_vertices,
        )
    if use_texture_grad or (use_vertex_grad and use_depth_grad):
        interior_face_gradient(
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
            use_vertex_grad and use_depth_grad,
            grad_textures.shape[2],
            grad_face_vertices,
            grad_textures,
        )
    for i in range(3):
        for j in range(3):
            grad_face_vertices[b, f, i, j] = finite_or_zero(grad_face_vertices[b, f, i, j])
