"""Silhouette fitting: deform a template mesh until its silhouettes match target ones.

This is the renderer's proof that its approximate gradient carries shape (the paper's
single-image reconstruction, without the network): only silhouettes supervise it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from meshstyle.camera import Cameras
from meshstyle.renderer import RenderSettings, render


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Soft intersection-over-union per view.

    Args:
        a: (B, H, W) silhouettes in [0, 1].
        b: (B, H, W) silhouettes in [0, 1].

    Returns:
        (B,) IoU; 1 where both are empty.
    """
    inter = (a * b).flatten(1).sum(1)
    union = (a + b - a * b).flatten(1).sum(1)
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.ones_like(union))


def uniform_laplacian(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Σ‖v − mean of v's neighbours‖², a smoothness regulariser.

    Args:
        vertices: (V, 3).
        faces: (F, 3).

    Returns:
        Scalar.
    """
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.cat([edges, edges.flip(1)])
    count = torch.zeros(len(vertices), device=vertices.device).index_add_(
        0, edges[:, 0], torch.ones(len(edges), device=vertices.device)
    )
    total = torch.zeros_like(vertices).index_add_(0, edges[:, 0], vertices[edges[:, 1]])
    mean = total / count.clamp_min(1)[:, None]
    return ((vertices - mean) ** 2).sum()


@dataclass(frozen=True)
class FitSettings:
    """How a silhouette fit runs.

    Attributes:
        iterations: Adam steps.
        lr: Adam learning rate on the vertex positions.
        smooth_weight: weight of the uniform Laplacian regulariser.
        image_size: silhouette size.
        views_per_step: views rendered per step (cycled through the targets).
    """

    iterations: int = 300
    lr: float = 0.01
    smooth_weight: float = 0.05
    image_size: int = 64
    views_per_step: int = 8


def fit_silhouettes(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    targets: torch.Tensor,
    cameras: Cameras,
    settings: FitSettings | None = None,
    progress: Callable[[int, float], None] | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Move ``vertices`` so that the mesh's silhouettes match ``targets``.

    Args:
        vertices: (V, 3) template vertices.
        faces: (F, 3) template faces.
        targets: (N, H, W) target silhouettes, one per camera.
        cameras: N cameras.
        settings: fit settings.
        progress: called with (step, loss).
        backend: rasterizer backend.

    Returns:
        (V, 3) fitted vertices.
    """
    settings = settings or FitSettings()
    raster = RenderSettings(image_size=settings.image_size, anti_aliasing=False, backend=backend)
    fitted = vertices.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([fitted], lr=settings.lr)
    n = cameras.batch_size
    per_step = min(settings.views_per_step, n)
    for step in range(settings.iterations):
        index = (torch.arange(per_step) + step * per_step) % n
        subset = Cameras(
            cameras.eye[index],
            cameras.at[index],
            cameras.up[index],
            cameras.viewing_angle,
            cameras.orthographic,
            cameras.ortho_scale,
        )
        silhouettes = render(fitted, faces, None, subset, settings=raster).silhouettes
        loss = (1 - iou(silhouettes, targets[index])).mean()
        loss = loss + settings.smooth_weight * uniform_laplacian(fitted, faces)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress(step, float(loss.detach()))
    return fitted.detach()
