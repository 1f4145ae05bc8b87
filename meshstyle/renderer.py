"""Mesh-level rendering: vertices, faces, textures, cameras and lights to images.

This is the layer the applications use: it transforms vertices into each camera, lights
the texture cubes, and calls the differentiable rasterizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from meshstyle.camera import Cameras, face_vertices
from meshstyle.shading import Lights, light_textures


@dataclass(frozen=True)
class RenderSettings:
    """How images are rasterized.

    Attributes:
        image_size: output size, an int S (S×S) or (H, W).
        anti_aliasing: render at 2× and average-pool 2×2.
        near: nearest depth drawn.
        far: farthest depth drawn; the depth of empty pixels.
        backend: "auto", "cpu" or "cuda".
        occlusion_aware: a pixel behind a nearer surface does not pull an edge (the original
            paper's gradient ignores occlusion).
    """

    image_size: int | tuple[int, int] = 256
    anti_aliasing: bool = True
    near: float = 0.1
    far: float = 100.0
    backend: str = "auto"
    occlusion_aware: bool = False

    @property
    def height_width(self) -> tuple[int, int]:
        if isinstance(self.image_size, int):
            return self.image_size, self.image_size
        height, width = self.image_size
        return int(height), int(width)

    @property
    def aspect(self) -> float:
        height, width = self.height_width
        return width / height


@dataclass(frozen=True)
class Rendered:
    """Images of a batch of views.

    Attributes:
        images: (B, 3, H, W) RGB in [0, 1], or None for silhouette-only renders.
        silhouettes: (B, H, W) coverage in [0, 1].
        depth: (B, H, W) camera depth, ``far`` where empty.
    """

    images: torch.Tensor | None
    silhouettes: torch.Tensor
    depth: torch.Tensor


def project(vertices: torch.Tensor, faces: torch.Tensor, cameras: Cameras, aspect: float = 1.0):
    """Per-face corners in NDC for every camera.

    Args:
        vertices: (V, 3) or (B, V, 3) world-space vertices.
        faces: (F, 3) integer indices.
        cameras: B cameras.
        aspect: image width / height.

    Returns:
        (B, F, 3, 3) NDC x, NDC y and camera depth per face corner.
    """
    ndc = cameras.transform(vertices, aspect=aspect)
    return face_vertices(ndc, faces)


def render(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    textures: torch.Tensor | None,
    cameras: Cameras,
    lights: Lights | None = None,
    settings: RenderSettings | None = None,
    background: torch.Tensor | tuple[float, float, float] | None = None,
) -> Rendered:
    """Render a mesh from a batch of cameras.

    Args:
        vertices: (V, 3) or (B, V, 3) world-space vertices.
        faces: (F, 3) integer indices.
        textures: (F, T, T, T, 3) or (B, F, T, T, T, 3) colours in [0, 1], or None to
            render silhouettes only.
        cameras: B cameras.
        lights: B lights; unlit (colours as they are) when None.
        settings: rasterization settings.
        background: (3,) or (B, 3) colour of empty pixels; black when None.

    Returns:
        The rendered images, silhouettes and depth.
    """
    from meshstyle.raster import rasterize

    settings = settings or RenderSettings()
    batch = cameras.batch_size
    if vertices.dim() == 2:
        vertices = vertices.unsqueeze(0).expand(batch, -1, -1)
    if vertices.shape[0] != batch:
        raise ValueError(
            f"vertices batch must be 1 or match the {batch} cameras; got {tuple(vertices.shape)}"
        )
    ndc_faces = project(vertices, faces, cameras, settings.aspect).contiguous()
    colours = None
    if textures is not None:
        if lights is not None:
            world_faces = face_vertices(vertices, faces)
            colours = light_textures(textures, world_faces, cameras.eye.to(vertices), lights)
        else:
            colours = textures if textures.dim() == 6 else textures.unsqueeze(0)
        colours = colours.expand(batch, *colours.shape[1:]).contiguous()
    if background is not None:
        background = torch.as_tensor(background, dtype=torch.float32, device=vertices.device)
    fragments = rasterize(
        ndc_faces,
        colours,
        image_size=settings.image_size,
        anti_aliasing=settings.anti_aliasing,
        background=background,
        near=settings.near,
        far=settings.far,
        backend=settings.backend,
        occlusion_aware=settings.occlusion_aware,
    )
    return Rendered(images=fragments.rgb, silhouettes=fragments.alpha, depth=fragments.depth)
