"""CPU kernels: numba ``@njit(parallel=True, cache=True)`` loops around the shared math.

Each kernel is a pure function of NumPy arrays writing into preallocated outputs. The two
drivers :func:`forward` and :func:`backward` chain them and own the scratch arrays; the
autograd Function in :mod:`meshstyle.raster.function` calls only these two.

Forward: per-face setup (parallel over faces) -> binning of faces into square tiles by their
pixel boxes, in face order (serial, cheap) -> per-tile z-buffer and shading (parallel over
tiles; each tile only tests the faces binned to it). Cheap passes stay serial on purpose:
every parallel region waits for all threads, which costs a scheduler time slice whenever
another process holds a core.

Backward: per-pixel scan channels in row and column layouts (parallel over pixel blocks) ->
active-run links along every row and column (parallel over lines) -> the faces ordered by
screen tile (serial, cheap) -> per-face gradients (parallel over runs of that order; each
face writes only its own slots, so there are no races and no atomics).

Compilation. The shared math (:mod:`.device`) is inlined into the kernels (numba-IR
inlining: a measured 5x on the forward pass over LLVM's own choices), array indices that
cannot be negative are unsigned (no wraparound select, so scans vectorise) and division
follows NumPy's error model (no zero-division branch; every division here is guarded or
cannot see zero). Only
:func:`~.edge_gradient.long_expansion_run`, a sum, gets fast-math (reassociation lets it
vectorise); coverage and depth decisions never do. Kernels compile once and are cached on
disk. Numba keys that cache on this file alone, not on the shared math compiled into the
kernels, so a change to those modules is detected here and the stale entries are dropped.

Threads. numba's OpenMP threading layer, from the system's libgomp (torch runs its own
bundled copy, so there are two pools); on Linux importing meshstyle puts OpenMP before TBB
in numba's order (:func:`meshstyle.runtime.prefer_openmp_threads`). Measured on 2 cores:
the portable ``workqueue`` layer ran the teapot's forward and backward at single-thread
speed next to torch's spinning pool, and a bunny ``fast`` step took 118 ms with it against
101 ms; TBB spent 35 ms of a bunny step in the renderer against OpenMP's 28; sharing one
libgomp (numba imported before torch) made no step faster, and stopping torch's spin-waits
(``OMP_WAIT_POLICY=PASSIVE``, ``GOMP_SPINCOUNT=0``) took 3 to 5 ms off the renderer but
added 16 to 19 ms to the network. The drivers hold a lock because they share scratch.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from . import device
from .backward_plan import gradient_terms, placeholders
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
    LINK_SLOTS,
    SCAN_CHANNELS,
)

TILE = 16  # pixels per tile side in the forward binning
BLOCK = 16  # pixels per tile side when transposing scan channels (cache-friendly)
CHUNKS_PER_THREAD = 32  # interleaved work chunks per thread, for load balance
# The backward's faces go to threads in runs of FACE_RUN neighbours on screen (ordered by
# tile), FACE_CHUNKS_PER_THREAD runs dealt round-robin: neighbours share scan lines, which
# then stay in cache (bunny, 2 x 256^2, 2 threads, A/B: face gradients 11.4 -> 8.3 ms).
FACE_RUN = 64
FACE_CHUNKS_PER_THREAD = 4
# Flags for the one reduction that gains from them: no effect on which pixels count.
FAST_SUM = {"reassoc", "nsz", "arcp", "contract"}

_LOCK = threading.Lock()


@njit(inline="always")
def _unsigned(index):
    return numba.uint64(index)


# Per-face functions, called once per face or edge, compile as ordinary functions: inlining
# them too would triple the compile time for no measurable speed.
_per_face = njit(error_model="numpy")
_device = device.compile_functions(
    njit(inline="always", error_model="numpy"),
    decorators={
        "long_expansion_run": njit(error_model="numpy", fastmath=FAST_SUM),
        "setup_face": _per_face,
        "edge_axis_gradient": _per_face,
        "kato_face_gradient": _per_face,
        "interior_face_gradient": _per_face,
        "face_gradient": _per_face,
        "link_line": _per_face,
    },
    replacements={"unsigned": _unsigned},
)
unsigned = _device.unsigned
setup_face = _device.setup_face
fragment = _device.fragment
shade_pixel = _device.shade_pixel
pack_pixel = _device.pack_pixel
pack_alpha_channels = _device.pack_alpha_channels
is_colour_channel = _device.is_colour_channel
link_line = _device.link_line
face_gradient = _device.face_gradient


def _chunks(n_items: int) -> int:
    # Static prange scheduling gives each thread one contiguous block; chunks that each take
    # every n_chunks-th item spread costly regions (the object's middle, big faces) over all
    # threads. Computed here: numba.get_num_threads() in a kernel would defeat caching.
    return max(1, min(n_items, CHUNKS_PER_THREAD * numba.get_num_threads()))


def _tile_grid(height: int, width: int) -> tuple[int, int]:
    """Tiles per row and per column of a render grid cut into TILE x TILE tiles."""
    return (width + TILE - 1) // TILE, (height + TILE - 1) // TILE


class _Scratch:
    """Reusable scratch arrays, so repeated calls do not page-fault fresh memory each time."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype, zeroed: bool = False) -> np.ndarray:
        """An array of this shape and type; ``zeroed``: all zero when first allocated (the
        caller must then keep the entries it never writes at zero)."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = np.zeros(shape, dtype=dtype) if zeroed else np.empty(shape, dtype=dtype)
            self._arrays[name] = array
        return array


_SCRATCH = _Scratch()


# --------------------------------------------------------------------------- forward


@njit(parallel=True, cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def count_bins(face_bbox, tile, tiles_x, counts):
    """Number of faces whose pixel box touches each tile.

    Args:
        face_bbox: (B, F, 4) int32.
        tile: tile side in pixels.
        tiles_x: tiles per row.
        counts: (B, n_tiles) int64, written.
    """
    n_batch, n_faces = face_bbox.shape[0], face_bbox.shape[1]
    for b in range(n_batch):
        for t in range(counts.shape[1]):
            counts[b, t] = 0
        for f in range(n_faces):
            r0 = face_bbox[b, f, BBOX_ROW_MIN]
            r1 = face_bbox[b, f, BBOX_ROW_MAX]
            c0 = face_bbox[b, f, BBOX_COL_MIN]
            c1 = face_bbox[b, f, BBOX_COL_MAX]
            if r0 > r1 or c0 > c1:
                continue
            for ty in range(r0 // tile, r1 // tile + 1):
                for tx in range(c0 // tile, c1 // tile + 1):
                    counts[b, ty * tiles_x + tx] += 1


@njit(cache=True, error_model="numpy")
def fill_bins(face_bbox, tile, tiles_x, cursor, bin_faces):
    """List, per tile and in increasing face order, the faces whose box touches it.

    Args:
        face_bbox: (B, F, 4) int32.
        tile, tiles_x: as in :func:`count_bins`.
        cursor: (B, n_tiles) int64, start of each tile's list in ``bin_faces``; advanced.
        bin_faces: (total,) int32, written.
    """
    n_batch, n_faces = face_bbox.shape[0], face_bbox.shape[1]
    for b in range(n_batch):
        for f in range(n_faces):
            r0 = face_bbox[b, f, BBOX_ROW_MIN]
            r1 = face_bbox[b, f, BBOX_ROW_MAX]
            c0 = face_bbox[b, f, BBOX_COL_MIN]
            c1 = face_bbox[b, f, BBOX_COL_MAX]
            if r0 > r1 or c0 > c1:
                continue
            for ty in range(r0 // tile, r1 // tile + 1):
                for tx in range(c0 // tile, c1 // tile + 1):
                    t = ty * tiles_x + tx
                    bin_faces[cursor[b, t]] = f
                    cursor[b, t] += 1


@njit(parallel=True, cache=True, error_model="numpy")
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
        n_chunks: number of interleaved work chunks.
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
                r = unsigned(row)
                for col in range(col0, col1 + 1):
                    face_index[b, r, unsigned(col)] = -1
                    zbuffer[b, r, unsigned(col)] = np.inf
            for k in range(bin_start[b, t], bin_start[b, t + 1]):
                f = bin_faces[k]
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
                row_min = max(face_bbox[b, f, BBOX_ROW_MIN], row0)
                row_max = min(face_bbox[b, f, BBOX_ROW_MAX], row1)
                col_min = max(face_bbox[b, f, BBOX_COL_MIN], col0)
                col_max = min(face_bbox[b, f, BBOX_COL_MAX], col1)
                for row in range(row_min, row_max + 1):
                    pv = float(row)
                    r = unsigned(row)
                    for col in range(col_min, col_max + 1):
                        hit, w0, w1, w2, z = fragment(
                            u0, v0, u1, v1, u2, v2, area, iz0, iz1, iz2, float(col), pv, near, far
                        )
                        if hit:
                            c = unsigned(col)
                            zb = zbuffer[b, r, c]
                            if z < zb or (z == zb and f < face_index[b, r, c]):
                                zbuffer[b, r, c] = z
                                face_index[b, r, c] = f
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
    tiles_x, tiles_y = _tile_grid(height, width)
    with _LOCK:
        setup_faces(face_vertices, height, width, face_info, face_bbox)
        counts = _SCRATCH.get("counts", (n_batch, tiles_x * tiles_y), np.int64)
        count_bins(face_bbox, TILE, tiles_x, counts)
        bin_start = np.zeros((n_batch, counts.shape[1] + 1), dtype=np.int64)
        flat = np.cumsum(counts.ravel())
        bin_start[:, 1:] = flat.reshape(counts.shape)
        bin_start[1:, 0] = bin_start[:-1, -1]
        cursor = bin_start[:, :-1].copy()  # a copy: fill_bins advances it
        bin_faces = np.empty(int(flat[-1]), dtype=np.int32)
        fill_bins(face_bbox, TILE, tiles_x, cursor, bin_faces)
        zbuffer = _SCRATCH.get("zbuffer", (n_batch, height, width), np.float64)
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


@njit(parallel=True, cache=True, error_model="numpy")
def pack_scans(
    rgb,
    alpha,
    depth,
    grad_rgb,
    grad_alpha,
    use_rgb_grad,
    use_alpha_grad,
    face_index,
    scan_x,
    scan_y,
    faces_y,
):
    """Scan channels of every pixel in row and column layouts (see scanlines.pack_pixel).

    Without ``use_rgb_grad`` the colour channels are not written: ``scan_x`` and ``scan_y``
    must then hold zeros there (arrays used only for calls without colour gradients).

    Args:
        rgb: (B, 3, H, W) float32; alpha, depth: (B, H, W) float32.
        grad_rgb: (B, 3, H, W) float32; grad_alpha: (B, H, W) float32 (each ignored unless
            its flag is set).
        face_index: (B, H, W) int32.
        scan_x: (B, H, SCAN_CHANNELS, W) float32, written.
        scan_y: (B, W, SCAN_CHANNELS, H) float32, written (the transpose).
        faces_y: (B, W, H) int32, written (transpose of face_index).
    """
    n_batch, height, width = face_index.shape
    # Tile by tile: pack the tile's pixels, then transpose them channel by channel while
    # they are in cache. Tiles are independent, so one parallel region does it all.
    # Without colour gradients only alpha's gradient, alpha and depth are written: the colour
    # channels of these (separate, zero-allocated) arrays stay zero from call to call.
    blocks_y = (height + BLOCK - 1) // BLOCK
    blocks_x = (width + BLOCK - 1) // BLOCK
    for item in prange(n_batch * blocks_y * blocks_x):
        b = item // (blocks_y * blocks_x)
        row0 = (item // blocks_x) % blocks_y * BLOCK
        col0 = item % blocks_x * BLOCK
        row1 = min(row0 + BLOCK, height)
        col1 = min(col0 + BLOCK, width)
        for row in range(row0, row1):
            for col in range(col0, col1):
                if use_rgb_grad:
                    pack_pixel(
                        b,
                        row,
                        col,
                        rgb,
                        alpha,
                        depth,
                        grad_rgb,
                        grad_alpha,
                        use_rgb_grad,
                        use_alpha_grad,
                        scan_x,
                    )
                else:
                    pack_alpha_channels(
                        b, row, col, alpha, depth, grad_alpha, use_alpha_grad, scan_x
                    )
        for col in range(col0, col1):
            for row in range(row0, row1):
                faces_y[b, unsigned(col), unsigned(row)] = face_index[
                    b, unsigned(row), unsigned(col)
                ]
        for k in range(SCAN_CHANNELS):
            if not use_rgb_grad and is_colour_channel(k):
                continue
            for col in range(col0, col1):
                for row in range(row0, row1):
                    scan_y[b, unsigned(col), k, unsigned(row)] = scan_x[
                        b, unsigned(row), k, unsigned(col)
                    ]


@njit(parallel=True, cache=True, error_model="numpy")
def link_scans(scan_x, scan_y, use_rgb_grad, links_x, links_y):
    """Active-run links along every row and every column (see scanlines.link_line).

    Args:
        scan_x: (B, H, SCAN_CHANNELS, W); scan_y: (B, W, SCAN_CHANNELS, H) float32.
        links_x: (B, H, W, 4) int32, written; links_y: (B, W, H, 4) int32, written.
    """
    n_batch, height, width = scan_x.shape[0], scan_x.shape[1], scan_x.shape[3]
    for item in prange(n_batch * (height + width)):
        b = item // (height + width)
        line = item % (height + width)
        if line < height:
            link_line(scan_x, b, line, width, use_rgb_grad, links_x)
        else:
            link_line(scan_y, b, line - height, height, use_rgb_grad, links_y)


@njit(cache=True, error_model="numpy")
def mark_visible(face_index, visible):
    """Flag the faces visible at one pixel or more.

    A face visible nowhere has no gradient at all: its texture and depth terms sum over its
    visible pixels, contraction only moves its edges over its own pixels and expansion
    starts from one of them. The backward pass skips such faces (often half of a closed
    mesh).

    Args:
        face_index: (B, H, W) int32.
        visible: (B, F) uint8, written.
    """
    n_batch, height, width = face_index.shape
    for b in range(n_batch):
        for f in range(visible.shape[1]):
            visible[b, f] = 0
        for row in range(height):
            for col in range(width):
                f = face_index[b, unsigned(row), unsigned(col)]
                if f >= 0:
                    visible[b, f] = 1


@njit(cache=True, error_model="numpy")
def order_faces(face_bbox, visible, tile, tiles_x, counts, order):
    """Faces in an order that keeps the backward's scan lines in cache.

    Each image's visible faces, grouped by the tile of their pixel box's centre (tiles in
    row-major order, faces in increasing index within a tile), then every face visible
    nowhere (they only get zero gradients). Neighbours on screen cross the same rows and
    columns, so the expansion scans of one run of the order read lines already in cache.

    Args:
        face_bbox: (B, F, 4) int32; visible: (B, F) uint8 from :func:`mark_visible`.
        tile, tiles_x: tile side in pixels and tiles per row.
        counts: (n_tiles + 1,) int64 scratch.
        order: (B * F,) int64, written: items ``b * F + f``.
    """
    n_batch, n_faces = visible.shape
    n_tiles = counts.shape[0] - 1
    n = 0
    for b in range(n_batch):
        for t in range(n_tiles + 1):
            counts[t] = 0
        for f in range(n_faces):
            if visible[b, f]:
                counts[_centre_tile(face_bbox, b, f, tile, tiles_x) + 1] += 1
        for t in range(n_tiles):
            counts[t + 1] += counts[t]
        for f in range(n_faces):
            if visible[b, f]:
                t = _centre_tile(face_bbox, b, f, tile, tiles_x)
                order[n + counts[t]] = b * n_faces + f
                counts[t] += 1
        # Filling moved each counts[t] to the end of tile t's run: the last is the total.
        n += counts[n_tiles - 1]
    for b in range(n_batch):
        for f in range(n_faces):
            if not visible[b, f]:
                order[n] = b * n_faces + f
                n += 1


@njit(inline="always")
def _centre_tile(face_bbox, b, f, tile, tiles_x):
    row = (face_bbox[b, f, BBOX_ROW_MIN] + face_bbox[b, f, BBOX_ROW_MAX]) // 2
    col = (face_bbox[b, f, BBOX_COL_MIN] + face_bbox[b, f, BBOX_COL_MAX]) // 2
    return (row // tile) * tiles_x + col // tile


@njit(parallel=True, cache=True, error_model="numpy")
def face_gradients(
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
    order,
    n_chunks,
):
    """Gradients of every face (see face_gradient.face_gradient), in runs of ``FACE_RUN``
    faces of ``order`` dealt round-robin to ``n_chunks`` chunks.

    Args:
        face_info: (B, F, FACE_INFO_SIZE) float64; face_bbox: (B, F, 4) int32.
        face_index: (B, H, W) int32 (also the row scan faces).
        scan_x, links_x / scan_y, faces_y, links_y: the row and column scan arrays of
            :func:`pack_scans` and :func:`link_scans`.
        grad_rgb: (B, 3, H, W) float32; grad_depth: (B, H, W) float32.
        use_*: which terms to compute (use_rgb_grad: whether colours have gradients);
            occlusion_aware, eps: see ``rasterize``.
        grad_face_vertices: (B, F, 3, 3) float64, written.
        grad_textures: (B, F, T, T, T, 3) float32, written when ``use_texture_grad``.
        visible: (B, F) uint8 from :func:`mark_visible`; other faces get zero gradients.
        order: (B * F,) int64 items ``b * F + f`` from :func:`order_faces`.
        n_chunks: number of work chunks.
    """
    n_faces = face_info.shape[1]
    n_items = order.shape[0]
    for chunk in prange(n_chunks):
        for start in range(chunk * FACE_RUN, n_items, n_chunks * FACE_RUN):
            for i in range(start, min(start + FACE_RUN, n_items)):
                item = order[i]
                face_gradient(
                    item // n_faces,
                    item % n_faces,
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
                )


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
    terms = gradient_terms(rgb, grad_rgb, grad_alpha, grad_depth, use_vertex_grad)
    use_rgb_grad = terms.use_rgb_grad
    use_alpha_grad = terms.use_alpha_grad
    empty = placeholders(np.zeros)
    rgb_arg = rgb if use_rgb_grad else empty["image"]
    grad_rgb_arg = grad_rgb if use_rgb_grad else empty["image"]
    grad_alpha_arg = grad_alpha if use_alpha_grad else empty["map"]
    grad_depth_arg = grad_depth if terms.use_depth_grad else empty["map"]
    channels = SCAN_CHANNELS
    with _LOCK:
        if terms.use_kato:
            # Silhouette-only calls keep their own zero-allocated scan arrays, whose colour
            # channels stay zero, so packing skips two thirds of the channels.
            kind = "rgb" if use_rgb_grad else "alpha"
            scan_x = _SCRATCH.get(
                f"scan_x_{kind}", (n_batch, height, channels, width), np.float32, zeroed=True
            )
            scan_y = _SCRATCH.get(
                f"scan_y_{kind}", (n_batch, width, channels, height), np.float32, zeroed=True
            )
            faces_y = _SCRATCH.get("faces_y", (n_batch, width, height), np.int32)
            links_x = _SCRATCH.get("links_x", (n_batch, height, width, LINK_SLOTS), np.int32)
            links_y = _SCRATCH.get("links_y", (n_batch, width, height, LINK_SLOTS), np.int32)
            pack_scans(
                rgb_arg,
                alpha,
                depth,
                grad_rgb_arg,
                grad_alpha_arg,
                use_rgb_grad,
                use_alpha_grad,
                face_index,
                scan_x,
                scan_y,
                faces_y,
            )
            link_scans(scan_x, scan_y, use_rgb_grad, links_x, links_y)
        else:
            scan_x = scan_y = empty["scan"]
            faces_y = empty["scan_faces"]
            links_x = links_y = empty["links"]
        visible = _SCRATCH.get("visible", face_info.shape[:2], np.uint8)
        mark_visible(face_index, visible)
        tiles_x, tiles_y = _tile_grid(height, width)
        n_tiles = tiles_x * tiles_y
        order = _SCRATCH.get("order", (n_batch * face_info.shape[1],), np.int64)
        order_faces(
            face_bbox,
            visible,
            TILE,
            tiles_x,
            _SCRATCH.get("tiles", (n_tiles + 1,), np.int64),
            order,
        )
        face_gradients(
            face_info,
            face_bbox,
            face_index,
            scan_x,
            links_x,
            scan_y,
            faces_y,
            links_y,
            grad_rgb_arg,
            grad_depth_arg,
            use_vertex_grad,
            use_texture_grad,
            terms.use_depth_grad,
            terms.use_kato,
            use_rgb_grad,
            occlusion_aware,
            float(eps),
            grad_face_vertices,
            grad_textures,
            visible,
            order,
            FACE_CHUNKS_PER_THREAD * numba.get_num_threads(),
        )


# --------------------------------------------------------------------------- cache guard

_KERNELS = (
    setup_faces,
    count_bins,
    fill_bins,
    raster_tiles,
    pack_scans,
    link_scans,
    mark_visible,
    order_faces,
    face_gradients,
)


def _drop_stale_cache() -> None:
    """Forget cached kernels compiled from another version of the shared math."""
    try:
        digest = device.source_digest()[:16]
        cache_dir = Path(setup_faces._cache._cache_path)
        marker = cache_dir / f"cpu.math-{digest}.stamp"
        if marker.exists():
            return
        for kernel in _KERNELS:
            kernel._cache.flush()
        for old in cache_dir.glob("cpu.*-*.stamp"):
            old.unlink()
        marker.touch()
    except (AttributeError, OSError):
        # Unusual cache setups (read-only installs, numba internals changed): keep going.
        pass


_drop_stale_cache()
