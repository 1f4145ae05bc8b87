"""Differentiable mesh rasterization with the approximate gradient of Kato et al. (2018).

Public entry points: :func:`rasterize`, :func:`rasterize_silhouettes`, :class:`Fragments`,
:class:`RasterSettings`, :func:`set_num_threads` and :func:`warm_up`.

Conventions (docs/architecture.md, section 3): NDC x right, y up, both in [-1, 1] across the image;
pixel (row r, col c) of an H x W image has its centre at x = (2c + 1 - W) / W,
y = (H - 1 - 2r) / H. Faces are two-sided. Depth is perspective-correct camera z.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as functional

from ..runtime import CUDA_HINT
from .function import RasterizeFunction, kernels_for
from .settings import BACKENDS, Fragments, RasterSettings

__all__ = [
    "BACKENDS",
    "Fragments",
    "RasterSettings",
    "rasterize",
    "rasterize_silhouettes",
    "set_num_threads",
    "warm_up",
]


def rasterize(
    face_vertices: torch.Tensor,
    textures: torch.Tensor | None = None,
    *,
    image_size: int | Sequence[int] = 256,
    anti_aliasing: bool = True,
    background: torch.Tensor | Sequence[float] | None = None,
    near: float = 0.1,
    far: float = 100.0,
    backend: str = "auto",
    occlusion_aware: bool = False,
    eps: float = 1e-3,
) -> Fragments:
    """Rasterize projected faces into colour, alpha, depth and face-index images.

    The backward pass gives textures their exact gradient, gives the corners' depth the
    exact gradient of the perspective-correct depth buffer, and gives the corners' x and y
    the approximate gradient of "Neural 3D Mesh Renderer" (Kato, Ushiku, Harada, CVPR 2018):
    for every edge and pixel whose colour would change if the edge moved over its centre,
    the change of colour over the vertex displacement needed, kept only where the change
    would lower the loss. It works for both windings.

    Args:
        face_vertices: (B, F, 3, 3) float32; per face and corner NDC x, NDC y and camera
            depth z. Faces with a non-finite coordinate, a corner with z <= 0 or zero screen
            area are skipped.
        textures: (B, F, T, T, T, 3) float32 colours in [0, 1] (already lit), sampled
            trilinearly at perspective-correct barycentrics, axis k following corner k; a
            batch of 1 is broadcast. None: no colour (``rgb`` is None).
        image_size: S for S x S, or (H, W).
        anti_aliasing: render at (2H, 2W) and average each 2 x 2 block (rgb, alpha, depth).
        background: colour of empty pixels: None (black), (3,) or (B, 3); it receives no
            gradient.
        near, far: drawn depth range; ``far`` is the depth of empty pixels.
        backend: "auto" (the tensors' device), "cpu" or "cuda".
        occlusion_aware: in the gradient's expansion term, skip pixels where the visible
            surface is nearer than the expanding face's plane. False reproduces the paper.
        eps: lever-distance epsilon added to every displacement (NDC units), as in the
            original renderer.

    Returns:
        Fragments with rgb (B, 3, H, W) or None, alpha (B, H, W), depth (B, H, W) and
        face_index (B, Hr, Wr) int32 at render resolution.

    Example::

        fragments = rasterize(face_vertices, textures, image_size=224)
        loss = style_loss(fragments.rgb, fragments.alpha)
        loss.backward()  # face_vertices.grad: Kato's x/y gradient + exact depth terms

    Raises:
        ValueError: on a tensor of the wrong dtype, shape or device, or a bad setting.
        RuntimeError: when the requested backend is not available.
    """
    settings = RasterSettings(
        image_size=_image_size(image_size),
        anti_aliasing=bool(anti_aliasing),
        near=near,
        far=far,
        eps=eps,
        occlusion_aware=bool(occlusion_aware),
        backend=backend,
    )
    _check_face_vertices(face_vertices)
    n_batch, n_faces = face_vertices.shape[:2]
    device = face_vertices.device
    textures = _check_textures(textures, n_batch, n_faces, device)
    background = _background(background, n_batch, device)
    resolved = _resolve_backend(settings.backend, device)
    rgb, alpha, depth, face_index = RasterizeFunction.apply(
        face_vertices, textures, background, settings, resolved
    )
    if textures is None:
        rgb = None
    if settings.anti_aliasing:
        # Averaging in torch carries the gradient back to the render-resolution pixels.
        alpha = functional.avg_pool2d(alpha[:, None], 2)[:, 0]
        depth = functional.avg_pool2d(depth[:, None], 2)[:, 0]
        if rgb is not None:
            rgb = functional.avg_pool2d(rgb, 2)
    return Fragments(rgb=rgb, alpha=alpha, depth=depth, face_index=face_index)


def rasterize_silhouettes(face_vertices: torch.Tensor, **kwargs) -> torch.Tensor:
    """Silhouettes only: ``rasterize(face_vertices, None, **kwargs).alpha``, (B, H, W)."""
    return rasterize(face_vertices, None, **kwargs).alpha


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the CPU kernels and in torch.

    numba's count is set first because setting it can reset torch's.

    Raises:
        ValueError: if ``n`` is not between 1 and the number of threads numba started with.
    """
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"threads must be an int in [1, {limit}]; got {n!r}")
    numba.set_num_threads(n)
    torch.set_num_threads(n)


def warm_up(backend: str = "cpu") -> None:
    """Compile (or load from the on-disk cache) every kernel of a backend, forward and
    backward, so that the first real call does not pause. Meant for a CLI progress step."""
    device = "cuda" if backend == "cuda" else "cpu"
    kernels_for(_resolve_backend(backend, torch.device(device)))
    face_vertices = torch.tensor(
        [[[[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]]]], device=device
    ).requires_grad_()
    textures = torch.full((1, 1, 2, 2, 2, 3), 0.5, device=device).requires_grad_()
    for occlusion_aware in (False, True):
        fragments = rasterize(
            face_vertices,
            textures,
            image_size=8,
            backend=backend,
            occlusion_aware=occlusion_aware,
        )
        (fragments.rgb.mean() - fragments.alpha.mean() + fragments.depth.mean()).backward()
        rasterize_silhouettes(
            face_vertices, image_size=8, backend=backend, occlusion_aware=occlusion_aware
        ).mean().backward()


# --------------------------------------------------------------------------- checks


def _image_size(image_size) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        return (image_size, image_size)
    if isinstance(image_size, Sequence) and not isinstance(image_size, str):
        return tuple(image_size)
    raise ValueError(f"image_size must be a positive int or (H, W) of them; got {image_size!r}")


def _describe(tensor: torch.Tensor) -> str:
    return f"{str(tensor.dtype).removeprefix('torch.')} {tuple(tensor.shape)}"


def _check_face_vertices(face_vertices) -> None:
    if not isinstance(face_vertices, torch.Tensor):
        raise ValueError(
            f"face_vertices must be a float32 tensor, shape (B, F, 3, 3); "
            f"got {type(face_vertices).__name__}"
        )
    if (
        face_vertices.dtype != torch.float32
        or face_vertices.ndim != 4
        or face_vertices.shape[2:] != (3, 3)
        or face_vertices.shape[0] < 1
    ):
        raise ValueError(
            f"face_vertices must be float32, shape (B, F, 3, 3) with B >= 1; "
            f"got {_describe(face_vertices)}"
        )


def _check_textures(textures, n_batch, n_faces, device):
    if textures is None:
        return None
    rule = f"textures must be float32, shape ({n_batch}, {n_faces}, T, T, T, 3) with T >= 1"
    if not isinstance(textures, torch.Tensor):
        raise ValueError(f"{rule}; got {type(textures).__name__}")
    shape = textures.shape
    if (
        textures.dtype != torch.float32
        or textures.ndim != 6
        or shape[0] not in (1, n_batch)
        or shape[1] != n_faces
        or shape[2] < 1
        or not shape[2] == shape[3] == shape[4]
        or shape[5] != 3
    ):
        raise ValueError(f"{rule}; got {_describe(textures)}")
    if textures.device != device:
        raise ValueError(
            f"textures must be on the device of face_vertices ({device}); got {textures.device}"
        )
    return textures.expand(n_batch, *shape[1:])


def _background(background, n_batch, device) -> torch.Tensor:
    if background is None:
        return torch.zeros((n_batch, 3), dtype=torch.float32, device=device)
    value = torch.as_tensor(background, dtype=torch.float32).to(device)
    if value.shape == (3,):
        value = value.expand(n_batch, 3)
    if value.shape != (n_batch, 3) or not torch.isfinite(value).all():
        raise ValueError(
            f"background must be finite, shape (3,) or ({n_batch}, 3); "
            f"got {tuple(torch.as_tensor(background).shape)}"
        )
    return value.detach()


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if backend == "auto":
        backend = "cuda" if device.type == "cuda" else "cpu"
    if device.type != backend and not (backend == "cuda" and _cuda_simulator()):
        hint = f". {CUDA_HINT}" if backend == "cuda" else ""
        raise ValueError(
            f"backend {backend!r} needs face_vertices on a {backend} device; got {device}{hint}"
        )
    if backend == "cuda":
        kernels_for("cuda")
    return backend


def _cuda_simulator() -> bool:
    """Whether numba's CUDA simulator is on: then the CUDA kernels run on CPU tensors."""
    import numba

    return bool(numba.config.ENABLE_CUDASIM)
