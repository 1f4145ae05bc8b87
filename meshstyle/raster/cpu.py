"""CPU kernels: numba ``@njit(parallel=True, cache=True)`` loops around :mod:`.geometry`.

Each kernel is a pure function of NumPy arrays writing into preallocated outputs. The two
drivers :func:`forward` and :func:`backward` chain them and own the scratch arrays; the
autograd Function in :mod:`meshstyle.raster.function` calls only these two.

Forward: per-face setup (parallel over faces) -> binning of faces into square tiles by their
pixel boxes, in face order (serial per image, cheap) -> per-tile z-buffer and shading
(parallel over tiles; each tile only tests the faces binned to it).

Backward: per-pixel scan records and next-active pointers (parallel over pixels, rows and
columns) -> per-face gradients (parallel over faces; each face writes only its own slots, so
there are no races and no atomics).

Kernels compile once and are cached on disk. Numba keys that cache on this file alone, not on
the geometry functions compiled into the kernels, so a change to ``geometry.py`` is detected
here and the stale cache entries are dropped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from . import geometry

TILE = 16  # pixels per tile side in the forward binning
CHUNKS_PER_THREAD = 32  # interleaved work chunks per thread, for load balance

_device = geometry.compile_functions(njit)
setup_face = _device.setup_face
fragment = _device.fragment
shade_pixel = _device.shade_pixel
pack_pixel = _device.pack_pixel
is_active = _device.is_active
kato_face_gradient = _device.kato_face_gradient
interior_face_gradient = _device.interior_face_gradient
finite_or_zero = _device.finite_or_zero


def _chunks(n_items: int) -> int:
    # Static prange scheduling gives each thread one contiguous block; chunks that each take
    # every n_chunks-th item spread costly regions (the object's middle, big faces) over all
    # threads. Computed here: numba.get_num_threads() in a kernel would defeat caching.
    return max(1, min(n_items, CHUNKS_PER_THREAD * numba.get_num_threads()))


# --------------------------------------------------------------------------- forward


@njit(parallel=True, cache=True)
def setup_faces(face_vertices, height, width, face_info, face_bbox):
    """Screen setup of every face.

    Args:
        face_vertices: (B, F, 3, 3) float32.
        height, width: render grid size.
        face_info: (B, F, FACE_INFO_SIZE) float64, written.
        face_bbox: (B, F, 4) int32, written.
    """
    n_batch, n_faces = face_vertices.shape[0], face_vertices.shape[1]
    for item in prange(n_batch * n_faces):
        setup_face(
            face_vertices, item // n_faces, item % n_faces, height, width, face_info, face_bbox
        )


@njit(parallel=True, cache=True)
def count_bins(face_bbox, tile, tiles_x, counts):
    """Number of faces whose pixel box touches each tile.

    Args:
        face_bbox: (B, F, 4) int32.
        tile: tile side in pixels.
        tiles_x: tiles per row.
        counts: (B, n_tiles) int64, written.
    """
    n_batch, n_faces = face_bbox.shape[0], face_bbox.shape[1]
    for b in prange(n_batch):
        for t in range(counts.shape[1]):
            counts[b, t] = 0
        for f in range(n_faces):
            r0 = face_bbox[b, f, 0]
            r1 = face_bbox[b, f, 1]
            c0 = face_bbox[b, f, 2]
            c1 = face_bbox[b, f, 3]
            if r0 > r1 or c0 > c1:
                continue
            for ty in range(r0 // tile, r1 // tile + 1):
                for tx in range(c0 // tile, c1 // tile + 1):
                    counts[b, ty * tiles_x + tx] += 1


@njit(parallel=True, cache=True)
def fill_bins(face_bbox, tile, tiles_x, cursor, bin_faces):
    """List, per tile and in increasing face order, the faces whose box touches it.

    Args:
        face_bbox: (B, F, 4) int32.
        tile, tiles_x: as in :func:`count_bins`.
        cursor: (B, n_tiles) int64, start of each tile's list in ``bin_faces``; advanced.
        bin_faces: (total,) int32, written.
    """
    n_batch, n_faces = face_bbox.shape[0], face_bbox.shape[1]
    for b in prange(n_batch):
        for f in range(n_faces):
            r0 = face_bbox[b, f, 0]
            r1 = face_bbox[b, f, 1]
            c0 = face_bbox[b, f, 2]
            c1 = face_bbox[b, f, 3]
            if r0 > r1 or c0 > c1:
                continue
            for ty in range(r0 // tile, r1 // tile + 1):
                for tx in range(c0 // tile, c1 // tile + 1):
                    t = ty * tiles_x + tx
                    bin_faces[cursor[b, t]] = f
                    cursor[b, t] += 1


@njit(parallel=True, cache=True)
def raster_tiles(
    face_info,
    face_bbox,
    tile,
    tiles_x,
    bin_start,
    bin_faces,
    textures,
    background,
    use_rgb,
    near,
    far,
    face_index,
    zbuffer,
    rgb,
    alpha,
    depth,
    n_chunks,
):
    """Z-buffer and shade every tile, testing only the faces binned to it.

    Nearest depth wins; at equal depth the lower face index wins (faces arrive in increasing
    order, and the explicit test keeps that rule independent of the order).

    Args:
        face_info: (B, F, FACE_INFO_SIZE) float64.
        face_bbox: (B, F, 4) int32.
        tile, tiles_x: tile side and tiles per row.
        bin_start: (B, n_tiles + 1) int64, tile ``t``'s faces are
            ``bin_faces[bin_start[b, t]:bin_start[b, t + 1]]``.
        bin_faces: (total,) int32.
        textures: (B, F, T, T, T, 3) float32 (any shape when not ``use_rgb``).
        background: (B, 3) float32.
        use_rgb: whether to write ``rgb``.
        near, far: depth range.
        face_index: (B, H, W) int32, written (-1 where empty).
        zbuffer: (B, H, W) float64 scratch.
        rgb: (B, 3, H, W) float32, written when ``use_rgb``.
        alpha, depth: (B, H, W) float32, written.
    """
    n_batch, height, width = face_index.shape
    tiles_y = (height + tile - 1) // tile
    n_tiles = tiles_y * tiles_x
    n_items = n_batch * n_tiles
    for chunk in prange(n_chunks):
        for item in range(chunk, n_items, n_chunks):
            b = item // n_tiles
            t = item % n_tiles
            row0 = (t // tiles_x) * tile
            col0 = (t % tiles_x) * tile
            row1 = min(row0 + tile, height) - 1
            col1 = min(col0 + tile, width) - 1
            for row in range(row0, row1 + 1):
                for col in range(col0, col1 + 1):
                    face_index[b, row, col] = -1
                    zbuffer[b, row, col] = np.inf
            for k in range(bin_start[b, t], bin_start[b, t + 1]):
                f = bin_faces[k]
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
                for row in range(max(face_bbox[b, f, 0], row0), min(face_bbox[b, f, 1], row1) + 1):
                    pv = float(row)
                    for col in range(
                        max(face_bbox[b, f, 2], col0), min(face_bbox[b, f, 3], col1) + 1
                    ):
                        hit, w0, w1, w2, z = fragment(
                            u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, float(col), pv, near, far
                        )
                        if hit:
                            zb = zbuffer[b, row, col]
                            if z < zb or (z == zb and f < face_index[b, row, col]):
                                zbuffer[b, row, col] = z
                                face_index[b, row, col] = f
            for row in range(row0, row1 + 1):
                for col in range(col0, col1 + 1):
                    shade_pixel(
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
                    )


def forward(
    face_vertices,
    textures,
    background,
    near,
    far,
    use_rgb,
    face_info,
    face_bbox,
    face_index,
    rgb,
    alpha,
    depth,
):
    """Rasterize a batch of faces into preallocated outputs.

    Args:
        face_vertices: (B, F, 3, 3) float32, C-contiguous.
        textures: (B, F, T, T, T, 3) float32, C-contiguous (unused unless ``use_rgb``).
        background: (B, 3) float32.
        near, far: depth range.
        use_rgb: whether to write ``rgb``.
        face_info: (B, F, FACE_INFO_SIZE) float64, written (kept for the backward pass).
        face_bbox: (B, F, 4) int32, written (kept for the backward pass).
        face_index: (B, H, W) int32, written.
        rgb: (B, 3, H, W) float32, written when ``use_rgb``.
        alpha, depth: (B, H, W) float32, written.
    """
    n_batch, height, width = face_index.shape
    setup_faces(face_vertices, height, width, face_info, face_bbox)
    tiles_x = (width + TILE - 1) // TILE
    tiles_y = (height + TILE - 1) // TILE
    counts = np.empty((n_batch, tiles_x * tiles_y), dtype=np.int64)
    count_bins(face_bbox, TILE, tiles_x, counts)
    bin_start = np.zeros((n_batch, counts.shape[1] + 1), dtype=np.int64)
    flat = np.cumsum(counts.ravel())
    bin_start[:, 1:] = flat.reshape(counts.shape)
    bin_start[1:, 0] = bin_start[:-1, -1]
    cursor = bin_start[:, :-1].copy()  # a copy: fill_bins advances it
    bin_faces = np.empty(int(flat[-1]) if flat.size else 0, dtype=np.int32)
    fill_bins(face_bbox, TILE, tiles_x, cursor, bin_faces)
    zbuffer = np.empty((n_batch, height, width), dtype=np.float64)
    raster_tiles(
        face_info,
        face_bbox,
        TILE,
        tiles_x,
        bin_start,
        bin_faces,
        textures,
        background,
        use_rgb,
        float(near),
        float(far),
        face_index,
        zbuffer,
        rgb,
        alpha,
        depth,
        _chunks(counts.size),
    )


# --------------------------------------------------------------------------- backward


@njit(parallel=True, cache=True)
def pack_scans(
    rgb,
    alpha,
    grad_rgb,
    grad_alpha,
    use_rgb_grad,
    use_alpha_grad,
    face_index,
    depth,
    scan_x,
    scan_y,
    faces_y,
    depth_y,
    active,
):
    """Scan records of every pixel in row-major and column-major layouts.

    Args:
        rgb: (B, 3, H, W) float32; alpha, depth: (B, H, W) float32.
        grad_rgb: (B, 3, H, W) float32; grad_alpha: (B, H, W) float32 (each ignored unless
            its flag is set).
        face_index: (B, H, W) int32.
        scan_x: (B, H, W, 8) float32, written; scan_y: (B, W, H, 8) float32, written.
        faces_y: (B, W, H) int32, written (transpose of face_index).
        depth_y: (B, W, H) float32, written (transpose of depth).
        active: (B, H, W) uint8, written (see geometry.is_active).
    """
    n_batch, height, width = face_index.shape
    for item in prange(n_batch * height):
        b = item // height
        row = item % height
        for col in range(width):
            pack_pixel(
                b,
                row,
                col,
                rgb,
                alpha,
                grad_rgb,
                grad_alpha,
                use_rgb_grad,
                use_alpha_grad,
                scan_x,
                scan_y,
            )
            faces_y[b, col, row] = face_index[b, row, col]
            depth_y[b, col, row] = depth[b, row, col]
            active[b, row, col] = 1 if is_active(scan_x, b, row, col, use_rgb_grad) else 0


@njit(parallel=True, cache=True)
def link_active(active, next_x, next_y):
    """Next active pixel in both directions along every row and column.

    Args:
        active: (B, H, W) uint8.
        next_x: (B, H, W, 2) int32, written: ``[..., 0]`` the first active column >= col
            (W if none), ``[..., 1]`` the last active column <= col (-1 if none).
        next_y: (B, W, H, 2) int32, written: the same along each column, over rows.
    """
    n_batch, height, width = active.shape
    for item in prange(n_batch * height):
        b = item // height
        row = item % height
        nxt = width
        for col in range(width - 1, -1, -1):
            if active[b, row, col]:
                nxt = col
            next_x[b, row, col, 0] = nxt
        prv = -1
        for col in range(width):
            if active[b, row, col]:
                prv = col
            next_x[b, row, col, 1] = prv
    for item in prange(n_batch * width):
        b = item // width
        col = item % width
        nxt = height
        for row in range(height - 1, -1, -1):
            if active[b, row, col]:
                nxt = row
            next_y[b, col, row, 0] = nxt
        prv = -1
        for row in range(height):
            if active[b, row, col]:
                prv = row
            next_y[b, col, row, 1] = prv


@njit(parallel=True, cache=True)
def face_gradients(
    face_info,
    face_bbox,
    face_index,
    scan_x,
    depth_x,
    next_x,
    scan_y,
    faces_y,
    depth_y,
    next_y,
    grad_rgb,
    grad_depth,
    use_vertex_grad,
    use_texture_grad,
    use_depth_grad,
    use_kato,
    occlusion_aware,
    eps,
    grad_face_vertices,
    grad_textures,
    n_chunks,
):
    """Gradients of every face: Kato's x/y term plus exact depth and texture terms.

    Args:
        face_info: (B, F, FACE_INFO_SIZE) float64; face_bbox: (B, F, 4) int32.
        face_index: (B, H, W) int32 (also the row-major scan faces).
        scan_x, depth_x, next_x / scan_y, faces_y, depth_y, next_y: scan arrays of
            :func:`pack_scans` and :func:`link_active`.
        grad_rgb: (B, 3, H, W) float32; grad_depth: (B, H, W) float32.
        use_*: which terms to compute; occlusion_aware, eps: see ``rasterize``.
        grad_face_vertices: (B, F, 3, 3) float64, written.
        grad_textures: (B, F, T, T, T, 3) float32, written when ``use_texture_grad``.
        n_chunks: number of interleaved work chunks.
    """
    n_batch, n_faces = face_info.shape[0], face_info.shape[1]
    height, width = face_index.shape[1], face_index.shape[2]
    texture_size = grad_textures.shape[2]
    n_items = n_batch * n_faces
    for chunk in prange(n_chunks):
        for item in range(chunk, n_items, n_chunks):
            b = item // n_faces
            f = item % n_faces
            for i in range(3):
                for j in range(3):
                    grad_face_vertices[b, f, i, j] = 0.0
            if use_texture_grad:
                for i in range(texture_size):
                    for j in range(texture_size):
                        for k in range(texture_size):
                            for c in range(3):
                                grad_textures[b, f, i, j, k, c] = 0.0
            if use_vertex_grad and use_kato:
                kato_face_gradient(
                    b,
                    f,
                    face_info,
                    height,
                    width,
                    scan_x,
                    face_index,
                    depth_x,
                    next_x,
                    scan_y,
                    faces_y,
                    depth_y,
                    next_y,
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
                    texture_size,
                    grad_face_vertices,
                    grad_textures,
                )
            for i in range(3):
                for j in range(3):
                    grad_face_vertices[b, f, i, j] = finite_or_zero(grad_face_vertices[b, f, i, j])


def backward(
    face_info,
    face_bbox,
    face_index,
    rgb,
    alpha,
    depth,
    grad_rgb,
    grad_alpha,
    grad_depth,
    use_vertex_grad,
    use_texture_grad,
    occlusion_aware,
    eps,
    grad_face_vertices,
    grad_textures,
):
    """Gradients of a rasterization with respect to face vertices and textures.

    Args:
        face_info, face_bbox: as written by :func:`forward`.
        face_index: (B, H, W) int32; rgb: (B, 3, H, W) or None; alpha, depth: (B, H, W).
        grad_rgb: (B, 3, H, W) float32 or None; grad_alpha, grad_depth: (B, H, W) float32
            or None (None: that output did not reach the loss).
        use_vertex_grad, use_texture_grad: which gradients are wanted.
        occlusion_aware, eps: see ``rasterize``.
        grad_face_vertices: (B, F, 3, 3) float64, written.
        grad_textures: (B, F, T, T, T, 3) float32, written when ``use_texture_grad``.
    """
    n_batch, height, width = face_index.shape
    use_rgb_grad = grad_rgb is not None and rgb is not None
    use_alpha_grad = grad_alpha is not None
    use_depth_grad = grad_depth is not None
    use_kato = use_vertex_grad and (use_rgb_grad or use_alpha_grad)
    empty_image = np.zeros((1, 1, 1, 1), dtype=np.float32)
    empty_map = np.zeros((1, 1, 1), dtype=np.float32)
    rgb_arg = rgb if use_rgb_grad else empty_image
    grad_rgb_arg = grad_rgb if use_rgb_grad else empty_image
    grad_alpha_arg = grad_alpha if use_alpha_grad else empty_map
    grad_depth_arg = grad_depth if use_depth_grad else empty_map
    if use_kato:
        scan_x = np.empty((n_batch, height, width, geometry.RECORD_SIZE), dtype=np.float32)
        scan_y = np.empty((n_batch, width, height, geometry.RECORD_SIZE), dtype=np.float32)
        faces_y = np.empty((n_batch, width, height), dtype=np.int32)
        depth_y = np.empty((n_batch, width, height), dtype=np.float32)
        active = np.empty((n_batch, height, width), dtype=np.uint8)
        pack_scans(
            rgb_arg,
            alpha,
            grad_rgb_arg,
            grad_alpha_arg,
            use_rgb_grad,
            use_alpha_grad,
            face_index,
            depth,
            scan_x,
            scan_y,
            faces_y,
            depth_y,
            active,
        )
        next_x = np.empty((n_batch, height, width, 2), dtype=np.int32)
        next_y = np.empty((n_batch, width, height, 2), dtype=np.int32)
        link_active(active, next_x, next_y)
    else:
        scan_x = scan_y = np.zeros((1, 1, 1, geometry.RECORD_SIZE), dtype=np.float32)
        faces_y = np.zeros((1, 1, 1), dtype=np.int32)
        depth_y = empty_map
        next_x = next_y = np.zeros((1, 1, 1, 2), dtype=np.int32)
    face_gradients(
        face_info,
        face_bbox,
        face_index,
        scan_x,
        depth,
        next_x,
        scan_y,
        faces_y,
        depth_y,
        next_y,
        grad_rgb_arg,
        grad_depth_arg,
        use_vertex_grad,
        use_texture_grad,
        use_depth_grad,
        use_kato,
        occlusion_aware,
        float(eps),
        grad_face_vertices,
        grad_textures,
        _chunks(face_info.shape[0] * face_info.shape[1]),
    )


# --------------------------------------------------------------------------- cache guard

_KERNELS = (
    setup_faces,
    count_bins,
    fill_bins,
    raster_tiles,
    pack_scans,
    link_active,
    face_gradients,
)


def _drop_stale_cache() -> None:
    """Forget cached kernels compiled from another version of ``geometry.py``."""
    try:
        digest = hashlib.sha256(Path(geometry.__file__).read_bytes()).hexdigest()[:16]
        cache_dir = Path(setup_faces._cache._cache_path)
        marker = cache_dir / f"cpu.geometry-{digest}.stamp"
        if marker.exists():
            return
        for kernel in _KERNELS:
            kernel._cache.flush()
        for old in cache_dir.glob("cpu.geometry-*.stamp"):
            old.unlink()
        marker.touch()
    except (AttributeError, OSError):
        # Unusual cache setups (read-only installs, numba internals changed): keep going.
        pass


_drop_stale_cache()
