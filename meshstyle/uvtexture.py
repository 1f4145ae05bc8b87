"""A smooth UV texture image, optimised at several scales and sampled into texture cubes.

The rasterizer reads per-face texture cubes (docs/architecture.md, section 3). Optimising
those cubes directly gives every face its own colours: the result is a mosaic with a seam
at every edge. Here the optimised object is one texture image over a UV layout of the
whole mesh (the mesh's own UVs, or an automatic unwrap by xatlas), and every step samples
it at the UV position of each cube grid point, so neighbouring faces read neighbouring
texels.

The image is a Laplacian pyramid: parameters at resolutions R, R/2, R/4, ..., each
upsampled to R and summed. Adam moves every element by about the learning rate, so a
coarse level moves whole regions at once and colours spread across faces and charts before
fine detail forms (the multi-scale parameterisation of Mordvintsev et al., Distill 2018).
The sum is turned into colours by :mod:`meshstyle.colourspace`.
"""

from __future__ import annotations

import hashlib
import math
import signal
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numba
import numpy as np
import torch
import torch.nn.functional as F

from meshstyle.colourspace import from_colour, to_colour
from meshstyle.textures import cube_grid_weights
from meshstyle.unwrap_worker import CHANGED_FACES

# The coarsest pyramid level is at least this many texels across.
_COARSEST = 8

# Texels of empty space xatlas leaves around each chart, so that bilinear reads of a chart's
# border texels do not mix in a neighbouring chart.
_CHART_PADDING = 2


def unwrap(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """An automatic UV layout of a mesh (xatlas), faces kept in their order.

    A layout made once is kept for the rest of the process (the most recent, up to
    ``_LAYOUT_CACHE_BYTES``), and so is a failure: a batch paints one mesh with several
    paintings, and a large mesh's unwrap takes minutes (about 10 s at 80 000 faces). xatlas
    gives the same layout for the same input, so a kept one is what a new run would make.

    xatlas runs in a child process (:mod:`meshstyle.unwrap_worker`): it crashes on some
    exactly symmetric meshes (a known, open xatlas bug: github.com/jpcy/xatlas issue 146,
    "icosphere causes crash"), and a crash there fails this call instead of the process. After
    a crash it runs once more on vertices moved by 1e-4 of the mesh's size in random
    directions, which those meshes unwrap from (trimesh's icosphere of 81 920 faces: 1e-5
    still crashes); the UVs then belong to the faces as given, laid out for a shape within
    that distance of the mesh.

    Args:
        vertices: (V, 3) positions.
        faces: (F, 3) vertex indices.
        resolution: the texture size the charts are packed for (sets the padding's scale).

    Returns:
        (F, 3, 2) float32 texture coordinates in [0, 1], origin bottom-left.

    Raises:
        ValueError: xatlas crashed on both tries, or changed the faces.
    """
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    faces = np.ascontiguousarray(faces, dtype=np.uint32)
    key = _layout_key(vertices, faces, resolution)
    with _LAYOUT_LOCK:
        layout = _LAYOUTS.get(key)
        if layout is not None:
            _LAYOUTS.move_to_end(key)
    if layout is None:
        try:
            layout = _unwrap_with_retry(vertices, faces, resolution)
        except ValueError as error:
            layout = str(error)
        _remember_layout(key, layout)
    if isinstance(layout, str):
        raise ValueError(layout)
    return layout.copy()


# Layouts kept by unwrap, most recently used last: UVs, or the message of a failed unwrap.
_LAYOUTS: OrderedDict[bytes, np.ndarray | str] = OrderedDict()
_LAYOUT_CACHE_BYTES = 256 * 1024 * 1024  # 24 bytes a face: 11 million faces
_LAYOUT_LOCK = threading.Lock()


def _layout_key(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> bytes:
    digest = hashlib.blake2b(digest_size=20)
    for array in (vertices, faces):
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    digest.update(b"%d" % resolution)
    return digest.digest()


def _remember_layout(key: bytes, layout: np.ndarray | str) -> None:
    with _LAYOUT_LOCK:
        _LAYOUTS[key] = layout
        _LAYOUTS.move_to_end(key)
        while len(_LAYOUTS) > 1 and sum(_layout_bytes(v) for v in _LAYOUTS.values()) > (
            _LAYOUT_CACHE_BYTES
        ):
            _LAYOUTS.popitem(last=False)


def _layout_bytes(layout: np.ndarray | str) -> int:
    return layout.nbytes if isinstance(layout, np.ndarray) else len(layout)


def _unwrap_with_retry(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """xatlas in a child process, once more on moved vertices after a crash (see unwrap)."""
    try:
        return _unwrap_in_child(vertices, faces, resolution)
    except _WorkerCrashed:
        pass
    size = float(np.ptp(vertices, axis=0).max()) if len(vertices) else 0.0
    noise = np.random.default_rng(0).normal(0.0, _JITTER * size, vertices.shape)
    try:
        return _unwrap_in_child((vertices + noise).astype(np.float32), faces, resolution)
    except _WorkerCrashed as crash:
        raise ValueError(
            f"the automatic UV unwrap (xatlas) crashed on this mesh ({crash}); "
            "use --texture-mode cubes, or give the mesh UVs of its own"
        ) from None


# How far the retry moves each vertex, as a fraction of the mesh's size (see unwrap).
_JITTER = 1e-4

# The script unwrap runs; tests point it elsewhere to stand in for xatlas.
_WORKER = Path(__file__).with_name("unwrap_worker.py")


class _WorkerCrashed(Exception):
    """The unwrap's child process ended without its result; the message says how."""


def _unwrap_in_child(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """(F, 3, 2) UVs from one run of the worker; raises _WorkerCrashed if it died."""
    with tempfile.TemporaryDirectory(prefix="meshstyle-unwrap-") as folder:
        source, target = Path(folder) / "mesh.npz", Path(folder) / "uvs.npy"
        np.savez(
            source,
            vertices=vertices,
            faces=faces,
            resolution=int(resolution),
            padding=_CHART_PADDING,
        )
        # -P: the worker's folder (meshstyle/) must not shadow modules it imports.
        done = subprocess.run(
            [sys.executable, "-P", str(_WORKER), str(source), str(target)],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return np.load(target)
    message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if done.returncode == CHANGED_FACES:
        raise ValueError(message)
    if done.returncode < 0:
        number = -done.returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else number
        raise _WorkerCrashed(f"signal {name}")
    raise _WorkerCrashed(f"exit status {done.returncode}" + (f": {message}" if message else ""))


def uv_grid(face_uvs: np.ndarray, texture_size: int) -> np.ndarray:
    """Texture coordinates of every cube grid point of every face.

    Grid point (i, j, k) of face f stands for barycentric weights ``w`` (see
    :func:`meshstyle.textures.cube_grid_weights`) and reads the image at ``Σ_k w_k·uv_fk``.

    Args:
        face_uvs: (F, 3, 2) per-corner texture coordinates.
        texture_size: cube size T.

    Returns:
        (F, T, T, T, 2) float32 texture coordinates.
    """
    face_uvs = np.asarray(face_uvs, dtype=np.float64)
    if face_uvs.ndim != 3 or face_uvs.shape[1:] != (3, 2):
        raise ValueError(f"face_uvs must have shape (F, 3, 2); got {face_uvs.shape}")
    weights = cube_grid_weights(texture_size)
    return np.einsum("ijkn,fnc->fijkc", weights, face_uvs).astype(np.float32)


def bilinear_taps(uv: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The four texels and weights of a bilinear lookup at each texture coordinate.

    Same conventions as :func:`meshstyle.textures.sample_image` (texel (r, c) has its centre
    at ``u = (c + 0.5) / W``, ``v = 1 - (r + 0.5) / H``, row 0 at the top), clamped to the
    border.

    Args:
        uv: (N, 2) texture coordinates.
        height: H of the image.
        width: W of the image.

    Returns:
        ``(index (N, 4) int64 into the row-major (H·W) texels, weight (N, 4) float32)``.
    """
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    x = np.clip(uv[:, 0] * width - 0.5, 0.0, width - 1.0)
    y = np.clip((1.0 - uv[:, 1]) * height - 0.5, 0.0, height - 1.0)
    x0 = np.minimum(np.floor(x), width - 2 if width > 1 else 0).astype(np.int64)
    y0 = np.minimum(np.floor(y), height - 2 if height > 1 else 0).astype(np.int64)
    fx, fy = x - x0, y - y0
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    index = np.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1], 1)
    weight = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    return index, weight.astype(np.float32)


@numba.njit(parallel=True, cache=True)
def _gather_kernel(texels, index, weight, out):
    """out[n] = Σ_j weight[n, j] · texels[index[n, j]] for (T, C) texels, (N, J) taps and
    (N, C) out."""
    for n in numba.prange(index.shape[0]):
        if texels.shape[1] == 3 and index.shape[1] == 4:
            # Colours, the one use in an edit: the taps read once and the channels unrolled,
            # the same sums (bunny, 134k lookups of a 256² texture: 0.73 -> 0.48 ms).
            i0, i1, i2, i3 = index[n, 0], index[n, 1], index[n, 2], index[n, 3]
            w0, w1, w2, w3 = weight[n, 0], weight[n, 1], weight[n, 2], weight[n, 3]
            for c in range(3):
                acc = 0.0
                acc += w0 * texels[i0, c]
                acc += w1 * texels[i1, c]
                acc += w2 * texels[i2, c]
                acc += w3 * texels[i3, c]
                out[n, c] = acc
        else:
            for c in range(texels.shape[1]):
                acc = 0.0
                for j in range(index.shape[1]):
                    acc += weight[n, j] * texels[index[n, j], c]
                out[n, c] = acc


@numba.njit(parallel=True, cache=True)
def _scatter_kernel(grad_out, start, point, weight, grad_texels):
    """The transpose of the gather, per texel (no races): CSR rows ``start`` over taps."""
    for t in numba.prange(start.shape[0] - 1):
        if grad_out.shape[1] == 3:
            # Colours, the one use in an edit: one walk over the texel's taps for all three
            # channels instead of one per channel, the same sums (bunny: 1.43 -> 0.86 ms).
            a0 = a1 = a2 = 0.0
            for k in range(start[t], start[t + 1]):
                w, p = weight[k], point[k]
                a0 += w * grad_out[p, 0]
                a1 += w * grad_out[p, 1]
                a2 += w * grad_out[p, 2]
            grad_texels[t, 0] = a0
            grad_texels[t, 1] = a1
            grad_texels[t, 2] = a2
        else:
            for c in range(grad_out.shape[1]):
                acc = 0.0
                for k in range(start[t], start[t + 1]):
                    acc += weight[k] * grad_out[point[k], c]
                grad_texels[t, c] = acc


class BilinearMap:
    """A fixed bilinear lookup of many texture coordinates, as a sparse linear map.

    The UVs never change during an edit, so the texels and weights of every lookup are
    found once; each step is then one gather (forward) and its transpose (backward).

    Args:
        uv: (N, 2) texture coordinates.
        height: H of the images the map reads.
        width: W.
    """

    def __init__(self, uv: np.ndarray, height: int, width: int):
        self.height, self.width = int(height), int(width)
        index, weight = bilinear_taps(uv, height, width)
        self.index = np.ascontiguousarray(index)
        self.weight = np.ascontiguousarray(weight)
        # the transpose as CSR over texels, for the backward
        flat = index.ravel()
        order = np.argsort(flat, kind="stable")
        self.t_point = np.ascontiguousarray(order // 4)
        self.t_weight = np.ascontiguousarray(weight.ravel()[order])
        counts = np.bincount(flat, minlength=self.height * self.width)
        self.t_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __call__(self, texels: torch.Tensor) -> torch.Tensor:
        """(H·W, C) texels (row-major) -> (N, C) samples, differentiable."""
        return _BilinearLookup.apply(texels, self)

    def gather(self, texels: np.ndarray) -> np.ndarray:
        out = np.empty((len(self.index), texels.shape[1]), dtype=np.float32)
        _gather_kernel(np.ascontiguousarray(texels, dtype=np.float32), self.index, self.weight, out)
        return out

    def scatter(self, grad: np.ndarray) -> np.ndarray:
        out = np.empty((self.height * self.width, grad.shape[1]), dtype=np.float32)
        grad = np.ascontiguousarray(grad, dtype=np.float32)
        _scatter_kernel(grad, self.t_start, self.t_point, self.t_weight, out)
        return out


class _BilinearLookup(torch.autograd.Function):
    """Marshals tensors to the gather/scatter kernels of a :class:`BilinearMap`."""

    @staticmethod
    def forward(ctx, texels, lookup):
        ctx.lookup = lookup
        out = lookup.gather(texels.detach().cpu().numpy())
        return torch.from_numpy(out).to(device=texels.device, dtype=texels.dtype)

    @staticmethod
    def backward(ctx, grad):
        out = ctx.lookup.scatter(grad.detach().cpu().numpy())
        return torch.from_numpy(out).to(device=grad.device, dtype=grad.dtype), None


class SeamPoints:
    """Cube grid points that stand for one surface point but read different UVs.

    A grid point on a face's border (a barycentric weight zero) is also a grid point of
    the neighbouring faces there: the same vertex, or the same point of a shared edge. Where
    the faces lie in different UV charts those points read different texels, and nothing
    but a loss keeps the two sides' colours alike: the texture shows a seam. Groups of such
    points are found once; :meth:`gap` measures how far each point's colour is from its
    group's mean.

    Args:
        faces: (F, 3) vertex indices (welded: one index per surface point).
        face_uvs: (F, 3, 2) texture coordinates of the face corners.
        texture_size: cube size T.
        tolerance: UVs closer than this read the same texels (no seam).

    Attributes:
        point: (S,) int64 flat indices into the (F·T³) grid points on seams.
        group: (S,) int64 the seam group of each, in [0, G).
    """

    def __init__(self, faces: np.ndarray, face_uvs: np.ndarray, texture_size: int, tolerance=1e-5):
        t = int(texture_size)
        faces = np.asarray(faces, dtype=np.int64)
        n_faces = len(faces)
        ijk = np.stack(np.meshgrid(*(np.arange(t),) * 3, indexing="ij"), -1).reshape(-1, 3)
        on_border = (ijk > 0).sum(axis=1) <= 2
        on_border &= ijk.sum(axis=1) > 0  # (0, 0, 0) is the centroid
        entries = np.flatnonzero(on_border)
        # A border point's key: its corners' vertex indices in ascending order with their
        # weights as a reduced integer ratio (weights i/(i+j) of two corners; one corner: a
        # vertex). The same key on two faces is the same surface point.
        keys = []
        for e in entries:
            nonzero = np.flatnonzero(ijk[e])
            if len(nonzero) == 1:
                vertex = faces[:, nonzero[0]]
                keys.append(np.stack([vertex, vertex, np.ones(n_faces), np.zeros(n_faces)], 1))
                continue
            p, q = nonzero
            wp, wq = ijk[e, p], ijk[e, q]
            g = math.gcd(int(wp), int(wq))
            vp, vq = faces[:, p], faces[:, q]
            swap = vp > vq
            keys.append(
                np.stack(
                    [
                        np.where(swap, vq, vp),
                        np.where(swap, vp, vq),
                        np.where(swap, wq // g, wp // g),
                        np.where(swap, wp // g, wq // g),
                    ],
                    1,
                )
            )
        # (F·E, 4), face-major; T = 1 has no border point (its one point is the centroid)
        key = np.stack(keys, 1).reshape(-1, 4) if keys else np.zeros((0, 4))
        key = key.astype(np.int64)
        point = (np.arange(n_faces)[:, None] * t**3 + entries[None, :]).reshape(-1)
        uv = uv_grid(face_uvs, t).reshape(-1, 2)[point]
        _, group = np.unique(key, axis=0, return_inverse=True)
        group = group.reshape(-1)
        # A group is a seam when its points' UVs spread: compare each with the group's first.
        first = np.full(group.max() + 1 if len(group) else 0, -1, dtype=np.int64)
        first[group[::-1]] = np.arange(len(group))[::-1]
        spread = np.abs(uv - uv[first[group]]).max(axis=1) > tolerance
        is_seam = np.zeros(len(first), dtype=bool)
        np.logical_or.at(is_seam, group, spread)
        keep = is_seam[group]
        _, self.group = np.unique(group[keep], return_inverse=True)
        self.point = point[keep]
        self.groups = int(self.group.max()) + 1 if len(self.group) else 0
        self._indices: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def rms(self, cubes) -> float:
        """Root mean square colour step across the seams (colour units), for reports."""
        with torch.no_grad():
            return float(self.gap(torch.as_tensor(cubes, dtype=torch.float32))) ** 0.5

    def gap(self, cubes: torch.Tensor) -> torch.Tensor:
        """Mean squared distance of the seam points' colours from their groups' means.

        Args:
            cubes: (F, T, T, T, 3) colours.

        Returns:
            Scalar; zero when there is no seam.
        """
        if self.groups == 0:
            return cubes.sum() * 0.0
        if cubes.device not in self._indices:  # moved to the device once, not every step
            self._indices[cubes.device] = tuple(
                torch.as_tensor(a, device=cubes.device) for a in (self.point, self.group)
            )
        point, group = self._indices[cubes.device]
        # index_select and index_add are each other's backward: no scatter with atomics.
        colours = cubes.reshape(-1, 3).index_select(0, point)
        sums = torch.zeros(self.groups, 3, device=cubes.device, dtype=colours.dtype)
        sums = sums.index_add(0, group, colours)
        counts = torch.bincount(group, minlength=self.groups).to(colours.dtype)
        means = sums / counts[:, None]
        return ((colours - means.index_select(0, group)) ** 2).sum(dim=1).mean()


class PyramidTexture:
    """A UV texture image as a sum of upsampled levels, read as per-face texture cubes.

    Args:
        face_uvs: (F, 3, 2) texture coordinates of the mesh's face corners.
        resolution: side R of the texture image.
        texture_size: cube size T of the rasterizer's textures.
        initial: (3,) uniform starting colour, or (R', R', 3) starting image in [0, 1].
        colour_space: "decorrelated" or "rgb" (see :mod:`meshstyle.colourspace`).
        device: where the parameters live.
    """

    def __init__(
        self,
        face_uvs: np.ndarray,
        resolution: int,
        texture_size: int,
        initial: torch.Tensor,
        colour_space: str = "decorrelated",
        device: torch.device | str = "cpu",
    ):
        self.resolution = int(resolution)
        self.texture_size = int(texture_size)
        self.colour_space = colour_space
        self.face_uvs = np.asarray(face_uvs, dtype=np.float32)
        self._lookup = BilinearMap(
            uv_grid(self.face_uvs, texture_size).reshape(-1, 2), self.resolution, self.resolution
        )
        initial = torch.as_tensor(initial, dtype=torch.float32, device=device)
        if initial.dim() == 1:
            initial = initial.view(1, 1, 3)
        else:
            initial = F.interpolate(
                initial.permute(2, 0, 1)[None], size=(self.resolution,) * 2, mode="area"
            )[0].permute(1, 2, 0)
        # The starting image is a fixed offset; the levels start at zero.
        self._base = from_colour(initial, colour_space).permute(2, 0, 1)[None].contiguous()
        self.levels: list[torch.Tensor] = []
        size = self.resolution
        while True:
            self.levels.append(torch.zeros(1, 3, size, size, device=device, requires_grad=True))
            if size // 2 < _COARSEST:
                break
            size //= 2

    def parameters(self) -> list[torch.Tensor]:
        return list(self.levels)

    def image(self) -> torch.Tensor:
        """(R, R, 3) texture colours in (0, 1), row 0 at the top; differentiable."""
        total = self.levels[-1]
        # coarse to fine, one 2x upsampling per level: cheaper than upsampling each to R
        for level in reversed(self.levels[:-1]):
            total = (
                F.interpolate(total, size=level.shape[-2:], mode="bilinear", align_corners=False)
                + level
            )
        total = total + self._base
        return to_colour(total[0].permute(1, 2, 0), self.colour_space)

    def cubes(self) -> torch.Tensor:
        """(F, T, T, T, 3) cube colours read from the image at every grid point's UV."""
        t = self.texture_size
        samples = self._lookup(self.image().reshape(-1, 3))
        return samples.reshape(len(self.face_uvs), t, t, t, 3)

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """``(image, face_uvs)``: (R, R, 3) uint8 texture (row 0 at the top), (F, 3, 2) UVs."""
        with torch.no_grad():
            image = self.image().cpu().numpy()
        image = np.round(np.clip(np.nan_to_num(image, nan=0.5), 0.0, 1.0) * 255.0)
        return image.astype(np.uint8), self.face_uvs.copy()
