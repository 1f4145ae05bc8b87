"""CUDA kernels: ``numba.cuda`` loops around the shared math, the same algorithm as :mod:`.cpu`.

This is the only module of meshstyle that knows CUDA. Its two drivers, :func:`forward` and
:func:`backward`, take the arguments of their namesakes in :mod:`meshstyle.raster.cpu` and
produce the same results: every per-face and per-pixel step calls the shared math
(:mod:`.device`), compiled as CUDA device functions, and every output element is computed
by one thread in the same order of operations as on the CPU. Forward outputs therefore match
the CPU's bit for bit; gradients match to rounding, because the CPU kernels sum long
expansion runs in a vectorised (reassociated) order.

Arrays. Views of CUDA tensors (``numba.cuda.as_cuda_array``) are used in place (zero copy):
the kernels run on the tensors' GPU, on torch's current stream of that GPU, and their
scratch comes from torch's allocator on that GPU, so that it is stream-ordered like any
other tensor. NumPy arrays (CPU tensors, which is how the CUDA simulator,
``NUMBA_ENABLE_CUDASIM=1``, runs these kernels without a GPU) are copied to the device and
the outputs copied back.

Forward: per-face setup (a thread per face) -> per-tile z-buffer and shading (a block per
square tile, a thread per pixel). Each block bins the faces itself: chunk by chunk it keeps
the faces whose pixel box touches the tile, compacted in shared memory in increasing face
order, and every pixel thread tests only those. Keeping the order makes the z-buffer
deterministic (nearest depth, ties to the lower face index, as on the CPU) without atomics,
global face lists or a host round trip to size them.

Backward: per-pixel scan channels in row and column layouts (a thread per pixel) ->
active-run links (a thread per row and per column) -> visible faces (a thread per pixel) ->
per-face gradients (a thread per face, writing only its own slots: no races, no atomics,
deterministic).

Exact arithmetic. CUDA compilers fuse a multiply and an add into one FMA by default, which
rounds once instead of twice: results would differ from the CPU kernels in the last bits, and
an edge function at a pixel centre exactly on a shared edge could become slightly negative for
both faces of the edge, leaving a hole. :func:`_exact_arithmetic` compiles these kernels with
contraction off.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
import types
import warnings

import numpy as np

from .. import runtime
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

if not runtime.cuda_simulator_enabled() and not runtime.numba_sees_gpu():
    raise RuntimeError(
        "backend 'cuda' is not available: numba finds no usable GPU "
        f"(CUDA target: {runtime.cuda_target()}) and the CUDA simulator is off "
        f"(NUMBA_ENABLE_CUDASIM=1 runs the kernels on the CPU, slowly). {runtime.CUDA_HINT}"
    )

from numba import cuda  # noqa: E402  (only once CUDA or its simulator is known to work)

TILE = 16  # pixels per tile side in the forward pass
TILE_THREADS = TILE * TILE  # one thread per pixel of a tile; also the binning chunk size
THREADS = 128  # threads per block of the one-thread-per-item kernels

# LTO would hand final code generation to nvJitLink, which knows nothing of the
# contraction setting below; there is no external device code to optimise across anyway.
_JIT_OPTIONS = {"lto": False} if "lto" in inspect.signature(cuda.jit).parameters else {}


@cuda.jit(device=True)
def _ceil(x):
    return int(math.ceil(x))


@cuda.jit(device=True)
def _floor(x):
    return int(math.floor(x))


# In CUDA code numba types math.ceil and math.floor of a float as float (the C functions),
# not int as in Python and in numba's CPU code; the shared math uses their results as indices
# and range bounds. Its functions therefore see, under the name ``math``, this module whose
# ceil and floor return ints and whose other names are the math module's.
_CUDA_MATH = types.ModuleType("meshstyle_raster_cuda_math")
_CUDA_MATH.__dict__.update(
    {name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
)
_CUDA_MATH.ceil = _ceil
_CUDA_MATH.floor = _floor


def _device_jit(function):
    """``cuda.jit(device=True)`` for a shared-math function, with CUDA's ``math`` shim.

    :func:`device.compile_functions` gives all its compiled copies one globals dict, and
    numba reads globals when a kernel first compiles, so rebinding ``math`` there is enough.
    """
    function.__globals__["math"] = _CUDA_MATH
    return cuda.jit(device=True)(function)


_device = device.compile_functions(_device_jit)
setup_face = _device.setup_face
fragment = _device.fragment
shade_pixel = _device.shade_pixel
pack_pixel = _device.pack_pixel
link_line = _device.link_line
face_gradient = _device.face_gradient


# --------------------------------------------------------------------------- forward


@cuda.jit(**_JIT_OPTIONS)
def setup_faces(face_vertices, height, width, face_info, face_bbox):
    """Screen setup of every face, a thread per face.

    Args:
        face_vertices: (B, F, 3, 3) float32.
        height, width: render grid size.
        face_info: (B, F, FACE_INFO_SIZE) float64, written.
        face_bbox: (B, F, 4) int32, written.
    """
    n_faces = face_vertices.shape[1]
    item = cuda.grid(1)
    if item < face_vertices.shape[0] * n_faces:
        setup_face(
            face_vertices, item // n_faces, item % n_faces, height, width, face_info, face_bbox
        )


@cuda.jit(**_JIT_OPTIONS)
def raster_tiles(
    face_info,
    face_bbox,
    tiles_x,
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
):
    """Z-buffer and shade every tile: a block of TILE x TILE threads per (image, tile).

    The block walks the faces in chunks of TILE_THREADS: each thread tests one face's pixel
    box against the tile, an inclusive prefix sum in shared memory gives every kept face its
    slot, and then each pixel thread tests the kept faces in increasing index order. Nearest
    depth wins; at equal depth the lower face index wins (the explicit test is the CPU's).

    Args:
        face_info: (B, F, FACE_INFO_SIZE) float64.
        face_bbox: (B, F, 4) int32.
        tiles_x: tiles per row.
        textures: (B, F, T, T, T, 3) float32 (any shape when not ``use_rgb``).
        background: (B, 3) float32.
        use_rgb: whether to write ``rgb``.
        near, far: depth range.
        face_index: (B, H, W) int32, written (-1 where empty).
        zbuffer: (B, H, W) float64 scratch, written.
        rgb: (B, 3, H, W) float32, written when ``use_rgb``.
        alpha, depth: (B, H, W) float32, written.

    Launch: B * n_tiles blocks of TILE_THREADS threads.
    """
    kept = cuda.shared.array(TILE_THREADS, np.int32)
    # Two buffers for the prefix sum: each round reads one and writes the other, so a round
    # needs one barrier instead of two.
    prefix = cuda.shared.array((2, TILE_THREADS), np.int32)
    height = face_index.shape[1]
    width = face_index.shape[2]
    n_faces = face_info.shape[1]
    tiles_y = (height + TILE - 1) // TILE
    n_tiles = tiles_y * tiles_x
    b = cuda.blockIdx.x // n_tiles
    t = cuda.blockIdx.x % n_tiles
    lane = cuda.threadIdx.x
    row0 = (t // tiles_x) * TILE
    col0 = (t % tiles_x) * TILE
    row1 = min(row0 + TILE, height) - 1
    col1 = min(col0 + TILE, width) - 1
    row = row0 + lane // TILE
    col = col0 + lane % TILE
    # Threads of pixels past the image edge still bin faces and reach every barrier.
    on_image = row <= row1 and col <= col1
    pu = float(col)
    pv = float(row)
    best_z = math.inf
    best_f = -1
    # No barrier is needed at the end of a chunk: the next chunk writes ``prefix[0]`` only
    # once every thread has passed this chunk's last barrier, after its last read of
    # ``prefix``, and ``kept`` only after its own first barrier, which every thread reaches
    # only once done with this chunk's list.
    for start in range(0, n_faces, TILE_THREADS):
        f = start + lane
        keep = 0
        if f < n_faces:
            r0 = face_bbox[b, f, BBOX_ROW_MIN]
            r1 = face_bbox[b, f, BBOX_ROW_MAX]
            c0 = face_bbox[b, f, BBOX_COL_MIN]
            c1 = face_bbox[b, f, BBOX_COL_MAX]
            if r0 <= r1 and c0 <= c1 and r0 <= row1 and r1 >= row0 and c0 <= col1 and c1 >= col0:
                keep = 1
        prefix[0, lane] = keep
        # A barrier that also counts: most chunks miss most tiles and skip the prefix sum
        # (the count is the same in every thread, so all skip together).
        n_kept = cuda.syncthreads_count(keep)
        if n_kept == 0:
            continue
        # Inclusive prefix sum of ``keep`` over the block (Hillis-Steele): a kept face's
        # sum is one past its slot in ``kept``, so kept faces stay in increasing order.
        src = 0
        offset = 1
        while offset < TILE_THREADS:
            total = prefix[src, lane]
            if lane >= offset:
                total += prefix[src, lane - offset]
            prefix[1 - src, lane] = total
            src = 1 - src
            offset *= 2
            cuda.syncthreads()
        if keep:
            kept[prefix[src, lane] - 1] = f
        cuda.syncthreads()
        if on_image:
            for k in range(n_kept):
                g = kept[k]
                # The CPU tests a face only inside its pixel box: so must we, to agree even
                # where rounding would put a point just outside the box on an edge.
                if (
                    face_bbox[b, g, BBOX_ROW_MIN] <= row <= face_bbox[b, g, BBOX_ROW_MAX]
                    and face_bbox[b, g, BBOX_COL_MIN] <= col <= face_bbox[b, g, BBOX_COL_MAX]
                ):
                    hit, w0, w1, w2, z = fragment(
                        face_info[b, g, FACE_U0],
                        face_info[b, g, FACE_V0],
                        face_info[b, g, FACE_U1],
                        face_info[b, g, FACE_V1],
                        face_info[b, g, FACE_U2],
                        face_info[b, g, FACE_V2],
                        face_info[b, g, FACE_AREA],
                        face_info[b, g, FACE_INV_Z0],
                        face_info[b, g, FACE_INV_Z1],
                        face_info[b, g, FACE_INV_Z2],
                        pu,
                        pv,
                        near,
                        far,
                    )
                    if hit and (z < best_z or (z == best_z and g < best_f)):
                        best_z = z
                        best_f = g
    if on_image:
        face_index[b, row, col] = best_f
        zbuffer[b, row, col] = best_z
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

    All arrays are views of CUDA memory or all are NumPy arrays (see the module docstring).
    """
    n_batch, height, width = face_index.shape
    n_faces = face_vertices.shape[1]
    with _Launcher(face_vertices, face_index) as launcher:
        face_vertices = launcher.input(face_vertices)
        textures = launcher.input(textures)
        background = launcher.input(background)
        face_info = launcher.output(face_info)
        face_bbox = launcher.output(face_bbox)
        face_index = launcher.output(face_index)
        rgb = launcher.output(rgb)
        alpha = launcher.output(alpha)
        depth = launcher.output(depth)
        zbuffer = launcher.scratch((n_batch, height, width), np.float64)
        launcher.per_item(
            setup_faces, n_batch * n_faces, face_vertices, height, width, face_info, face_bbox
        )
        tiles_x = (width + TILE - 1) // TILE
        tiles_y = (height + TILE - 1) // TILE
        launcher.launch(
            raster_tiles,
            n_batch * tiles_x * tiles_y,
            TILE_THREADS,
            face_info,
            face_bbox,
            tiles_x,
            textures,
            background,
            bool(use_rgb),
            float(near),
            float(far),
            face_index,
            zbuffer,
            rgb,
            alpha,
            depth,
        )


# --------------------------------------------------------------------------- backward


@cuda.jit(**_JIT_OPTIONS)
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
    """Scan channels of every pixel in row and column layouts, a thread per pixel.

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
    item = cuda.grid(1)
    if item >= n_batch * height * width:
        return
    b = item // (height * width)
    row = (item // width) % height
    col = item % width
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
    # The thread transposes the channels it has just written itself: no barrier needed.
    for k in range(scan_x.shape[2]):
        scan_y[b, col, k, row] = scan_x[b, row, k, col]
    faces_y[b, col, row] = face_index[b, row, col]


@cuda.jit(**_JIT_OPTIONS)
def link_scans(scan_x, scan_y, use_rgb_grad, links_x, links_y):
    """Active-run links along every row and every column, a thread per line.

    Args:
        scan_x: (B, H, SCAN_CHANNELS, W); scan_y: (B, W, SCAN_CHANNELS, H) float32.
        use_rgb_grad: whether colour gradients decide which pixels are active.
        links_x: (B, H, W, 4) int32, written; links_y: (B, W, H, 4) int32, written (see
            scanlines.link_line).
    """
    n_batch, height, width = scan_x.shape[0], scan_x.shape[1], scan_x.shape[3]
    item = cuda.grid(1)
    if item >= n_batch * (height + width):
        return
    b = item // (height + width)
    line = item % (height + width)
    if line < height:
        link_line(scan_x, b, line, width, use_rgb_grad, links_x)
    else:
        link_line(scan_y, b, line - height, height, use_rgb_grad, links_y)


@cuda.jit(**_JIT_OPTIONS)
def mark_visible(face_index, visible):
    """Flag the faces visible at one pixel or more, a thread per pixel.

    A face visible nowhere has no gradient at all (see ``cpu.mark_visible``), and the
    backward pass skips it. Threads of pixels showing the same face all store the same 1,
    so the result does not depend on their order.

    Args:
        face_index: (B, H, W) int32.
        visible: (B, F) uint8, zero on entry, written.
    """
    n_batch, height, width = face_index.shape
    item = cuda.grid(1)
    if item >= n_batch * height * width:
        return
    b = item // (height * width)
    f = face_index[b, (item // width) % height, item % width]
    if f >= 0:
        visible[b, f] = 1


@cuda.jit(**_JIT_OPTIONS)
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
):
    """Gradients of every face (see face_gradient.face_gradient), a thread per face.

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
    """
    n_faces = face_info.shape[1]
    item = cuda.grid(1)
    if item >= face_info.shape[0] * n_faces:
        return
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

    All arrays are views of CUDA memory or all are NumPy arrays (see the module docstring).
    """
    n_batch, height, width = face_index.shape
    n_faces = face_info.shape[1]
    terms = gradient_terms(rgb, grad_rgb, grad_alpha, grad_depth, use_vertex_grad)
    use_rgb_grad = terms.use_rgb_grad
    use_alpha_grad = terms.use_alpha_grad
    channels = SCAN_CHANNELS
    with _Launcher(face_info, face_index) as launcher:
        face_info = launcher.input(face_info)
        face_bbox = launcher.input(face_bbox)
        face_index = launcher.input(face_index)
        grad_face_vertices = launcher.output(grad_face_vertices)
        grad_textures = launcher.output(grad_textures)
        # Unused inputs still need arrays of the right rank for the kernels' types.
        empty = placeholders(lambda shape, dtype: launcher.scratch(shape, dtype, zero=True))
        grad_rgb = launcher.input(grad_rgb) if use_rgb_grad else empty["image"]
        grad_depth = launcher.input(grad_depth) if terms.use_depth_grad else empty["map"]
        if terms.use_kato:
            scan_x = launcher.scratch((n_batch, height, channels, width), np.float32)
            scan_y = launcher.scratch((n_batch, width, channels, height), np.float32)
            faces_y = launcher.scratch((n_batch, width, height), np.int32)
            links_x = launcher.scratch((n_batch, height, width, LINK_SLOTS), np.int32)
            links_y = launcher.scratch((n_batch, width, height, LINK_SLOTS), np.int32)
            launcher.per_item(
                pack_scans,
                n_batch * height * width,
                launcher.input(rgb) if use_rgb_grad else empty["image"],
                launcher.input(alpha),
                launcher.input(depth),
                grad_rgb,
                launcher.input(grad_alpha) if use_alpha_grad else empty["map"],
                use_rgb_grad,
                use_alpha_grad,
                face_index,
                scan_x,
                scan_y,
                faces_y,
            )
            launcher.per_item(
                link_scans,
                n_batch * (height + width),
                scan_x,
                scan_y,
                use_rgb_grad,
                links_x,
                links_y,
            )
        else:
            scan_x = scan_y = empty["scan"]
            faces_y = empty["scan_faces"]
            links_x = links_y = empty["links"]
        visible = launcher.scratch((n_batch, n_faces), np.uint8, zero=True)
        launcher.per_item(mark_visible, n_batch * height * width, face_index, visible)
        launcher.per_item(
            face_gradients,
            n_batch * n_faces,
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
            bool(use_vertex_grad),
            bool(use_texture_grad),
            terms.use_depth_grad,
            terms.use_kato,
            use_rgb_grad,
            bool(occlusion_aware),
            float(eps),
            grad_face_vertices,
            grad_textures,
            visible,
        )


# --------------------------------------------------------------------------- launching


class _Launcher:
    """Where and how the kernels of one driver call run; a context manager.

    With views of CUDA memory (the arrays that ``numba.cuda.as_cuda_array`` makes of CUDA
    tensors) it selects the GPU that holds them, launches on torch's current stream of that
    GPU and allocates scratch as torch tensors there. With NumPy arrays it copies inputs and
    outputs to the current device, launches on the default stream and, on a normal exit,
    copies the outputs back into the NumPy arrays.

    Args:
        probes: arrays of the call from which the GPU is found (the first non-empty one of
            CUDA memory decides); all arrays of one call are on one device.
    """

    def __init__(self, *probes):
        self._host = all(isinstance(probe, np.ndarray) for probe in probes)
        self._probes = probes
        self._copy_back = []  # (device array, NumPy array) pairs written on exit
        self._keep = []  # torch scratch tensors, alive until every launch is queued
        self._stack = contextlib.ExitStack()
        self._stream = 0
        self._device = None

    def __enter__(self) -> _Launcher:
        if not self._host:
            # torch is imported only here: it alone knows its current stream, and it gives
            # scratch memory that its allocator orders on that stream.
            import torch

            sized = [probe for probe in self._probes if probe.size > 0] or list(self._probes)
            self._device = torch.as_tensor(sized[0]).device
            index = self._device.index if self._device.index is not None else 0
            self._stack.enter_context(cuda.gpus[index])
            stream = torch.cuda.current_stream(self._device)
            self._stream = cuda.external_stream(stream.cuda_stream)
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        try:
            if error_type is None:
                for device_array, host_array in self._copy_back:
                    device_array.copy_to_host(host_array)
        finally:
            self._keep.clear()
            self._stack.close()

    def input(self, array):
        """A device array holding ``array`` (the array itself when it is one)."""
        if not self._host:
            return array
        return cuda.to_device(array)

    def output(self, array):
        """A device array for the kernels to write ``array`` through."""
        if not self._host:
            return array
        # Copied in as well as out, so that elements no kernel writes keep their values,
        # as with the CPU kernels, which write in place.
        device_array = cuda.to_device(array)
        if array.size > 0:
            self._copy_back.append((device_array, array))
        return device_array

    def scratch(self, shape, dtype, zero=False):
        """A device array of ``shape`` and NumPy ``dtype``, zeroed if ``zero``."""
        if self._host:
            if zero:
                return cuda.to_device(np.zeros(shape, dtype=dtype))
            return cuda.device_array(shape, dtype=dtype)
        import torch

        dtypes = {
            np.dtype(np.float64): torch.float64,
            np.dtype(np.float32): torch.float32,
            np.dtype(np.int32): torch.int32,
            np.dtype(np.uint8): torch.uint8,
        }
        make = torch.zeros if zero else torch.empty
        tensor = make(shape, dtype=dtypes[np.dtype(dtype)], device=self._device)
        self._keep.append(tensor)
        return cuda.as_cuda_array(tensor)

    def launch(self, kernel, blocks, threads, *args) -> None:
        """Launch ``kernel`` on ``blocks`` blocks of ``threads`` threads (none if 0 blocks)."""
        if blocks <= 0:
            return
        with _exact_arithmetic(), warnings.catch_warnings():
            # numba warns about grids under 128 blocks; small images and short passes such
            # as link_scans have them by nature, and the warning would reach users.
            warnings.filterwarnings("ignore", message="Grid size")
            kernel[blocks, threads, self._stream](*args)

    def per_item(self, kernel, n_items, *args) -> None:
        """Launch ``kernel`` with at least one thread per item, THREADS per block."""
        self.launch(kernel, (n_items + THREADS - 1) // THREADS, THREADS, *args)


# --------------------------------------------------------------------------- compilation

_COMPILE_LOCK = threading.Lock()


def _nvvm_module():
    """numba's NVVM binding module, or None under the simulator or if it moved."""
    if runtime.cuda_simulator_enabled():
        return None
    try:
        from numba.cuda.cudadrv import nvvm
    except ImportError:
        return None
    return nvvm if callable(getattr(nvvm, "compile_ir", None)) else None


@contextlib.contextmanager
def _exact_arithmetic():
    """Compile kernels launched inside without fused multiply-adds.

    ``numba.cuda.jit`` has no switch for NVVM's ``-fma`` option (it defaults to on, and
    ptxas then fuses the multiplies and adds that NVVM leaves unrounded). Within this block
    numba's NVVM entry point is wrapped to pass ``fma=False`` unless fast math is asked for,
    so that NVVM emits correctly rounded ``mul.rn``/``add.rn`` that ptxas may not fuse, the
    arithmetic of the CPU kernels. Launches of compiled kernels do not reach NVVM and cost
    only the lock. If numba's internals move, kernels compile with numba's defaults.
    """
    nvvm = _nvvm_module()
    if nvvm is None:
        yield
        return
    with _COMPILE_LOCK:
        original = nvvm.compile_ir

        def compile_ir(llvmir, **options):
            if not options.get("fastmath"):
                options.setdefault("fma", False)
            return original(llvmir, **options)

        nvvm.compile_ir = compile_ir
        try:
            yield
        finally:
            nvvm.compile_ir = original
