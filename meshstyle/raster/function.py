"""The autograd Function of the rasterizer: it marshals and nothing else.

It makes inputs contiguous, allocates outputs and scratch as tensors on the input's device,
hands array views of them to a kernel module, saves what the backward pass needs and returns
the results. All rasterization math lives in the kernels (:mod:`.cpu`, and :mod:`.cuda` where
present), which share the math of :mod:`.device`.

A kernel module provides::

    forward(face_vertices, textures, background, near, far, use_rgb,
            face_info, face_bbox, face_index, rgb, alpha, depth)
    backward(face_info, face_bbox, face_index, rgb, alpha, depth,
             grad_rgb, grad_alpha, grad_depth, use_vertex_grad, use_texture_grad,
             occlusion_aware, eps, grad_face_vertices, grad_textures)

with the shapes documented in :func:`meshstyle.raster.cpu.forward` and
:func:`meshstyle.raster.cpu.backward`; array arguments are NumPy views of CPU tensors or
CUDA array views (``numba.cuda.as_cuda_array``) of CUDA tensors, and optional gradients are
None when the corresponding output did not reach the loss.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

from .layout import FACE_INFO_SIZE
from .settings import RasterSettings


def kernels_for(backend: str) -> ModuleType:
    """The kernel module of a resolved backend name ("cpu" or "cuda").

    Raises:
        RuntimeError: for "cuda" when no CUDA kernel module is installed.
    """
    if backend == "cpu":
        from . import cpu

        return cpu
    try:
        return importlib.import_module("meshstyle.raster.cuda")
    except ModuleNotFoundError as error:
        if error.name != "meshstyle.raster.cuda":
            raise
        from ..runtime import CUDA_HINT

        raise RuntimeError(
            "backend 'cuda' is not available: meshstyle.raster.cuda is not part of this "
            f"installation; use backend='cpu' with CPU tensors. {CUDA_HINT}"
        ) from None


def _view(tensor: torch.Tensor):
    """Zero-copy array view of a contiguous tensor for the kernels."""
    tensor = tensor.detach()
    if tensor.is_cuda:
        from numba import cuda

        return cuda.as_cuda_array(tensor)
    return tensor.numpy()


def _maybe(tensor: torch.Tensor | None):
    return None if tensor is None else _view(tensor.contiguous())


class RasterizeFunction(torch.autograd.Function):
    """Differentiable rasterization at render resolution (no anti-aliasing here).

    Inputs: face_vertices (B, F, 3, 3) float32, textures (B, F, T, T, T, 3) float32 or None,
    background (B, 3) float32, settings, backend name. Outputs: rgb (B, 3, Hr, Wr) (an empty
    placeholder when textures is None), alpha, depth (B, Hr, Wr) float32 and face_index
    (B, Hr, Wr) int32.
    """

    @staticmethod
    def forward(ctx, face_vertices, textures, background, settings: RasterSettings, backend):
        kernels = kernels_for(backend)
        face_vertices = face_vertices.contiguous()
        n_batch, n_faces = face_vertices.shape[:2]
        height, width = settings.render_size
        device = face_vertices.device
        use_rgb = textures is not None

        def alloc(shape, dtype=torch.float32):
            return torch.empty(shape, dtype=dtype, device=device)

        face_info = alloc((n_batch, n_faces, FACE_INFO_SIZE), torch.float64)
        face_bbox = alloc((n_batch, n_faces, 4), torch.int32)
        face_index = alloc((n_batch, height, width), torch.int32)
        alpha = alloc((n_batch, height, width))
        depth = alloc((n_batch, height, width))
        if use_rgb:
            textures = textures.contiguous()
            rgb = alloc((n_batch, 3, height, width))
        else:
            textures = torch.zeros((1, 1, 1, 1, 1, 3), dtype=torch.float32, device=device)
            rgb = alloc((0, 3, height, width))
        kernels.forward(
            _view(face_vertices),
            _view(textures),
            _view(background.contiguous()),
            settings.near,
            settings.far,
            use_rgb,
            _view(face_info),
            _view(face_bbox),
            _view(face_index),
            _view(rgb),
            _view(alpha),
            _view(depth),
        )
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(face_index)
        if not use_rgb:
            ctx.mark_non_differentiable(rgb)
        ctx.save_for_backward(face_info, face_bbox, face_index, rgb, alpha, depth)
        ctx.settings = settings
        ctx.backend = backend
        ctx.use_rgb = use_rgb
        ctx.texture_shape = textures.shape
        return rgb, alpha, depth, face_index

    @staticmethod
    def backward(ctx, grad_rgb, grad_alpha, grad_depth, _grad_face_index):
        face_info, face_bbox, face_index, rgb, alpha, depth = ctx.saved_tensors
        use_vertex_grad = ctx.needs_input_grad[0]
        use_texture_grad = ctx.use_rgb and ctx.needs_input_grad[1]
        if not (use_vertex_grad or use_texture_grad):
            return None, None, None, None, None
        device = face_info.device
        n_batch, n_faces = face_info.shape[:2]
        grad_face_vertices = torch.empty(
            (n_batch, n_faces, 3, 3), dtype=torch.float64, device=device
        )
        if use_texture_grad:
            grad_textures = torch.empty(ctx.texture_shape, dtype=torch.float32, device=device)
        else:
            grad_textures = torch.zeros((1, 1, 1, 1, 1, 3), dtype=torch.float32, device=device)
        if not ctx.use_rgb:
            grad_rgb = None
        kernels_for(ctx.backend).backward(
            _view(face_info),
            _view(face_bbox),
            _view(face_index),
            _view(rgb) if ctx.use_rgb else None,
            _view(alpha),
            _view(depth),
            _maybe(grad_rgb),
            _maybe(grad_alpha),
            _maybe(grad_depth),
            use_vertex_grad,
            use_texture_grad,
            ctx.settings.occlusion_aware,
            ctx.settings.eps,
            _view(grad_face_vertices),
            _view(grad_textures),
        )
        return (
            grad_face_vertices.to(torch.float32) if use_vertex_grad else None,
            grad_textures if use_texture_grad else None,
            None,
            None,
            None,
        )
