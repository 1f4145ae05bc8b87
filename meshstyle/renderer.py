"""Mesh-level rendering: vertices, faces, textures, cameras and lights to images.

This is the layer the applications use: it transforms vertices into each camera, lights
the texture cubes, and calls the differentiable rasterizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from meshstyle.camera import Cameras, face_vertices
from meshstyle.raster.settings import RasterSettings
from meshstyle.shading import Lights, light_textures, shade_textures


@dataclass(frozen=True)
class RenderSettings(RasterSettings):
    """How images are rasterized: a :class:`~meshstyle.raster.RasterSettings` (the same
    fields, checks and defaults, ``eps`` included) that also takes ``image_size`` as an int.

    Attributes:
        image_size: output (H, W) in pixels; an int S given here is stored as (S, S).
        anti_aliasing, near, far, eps, occlusion_aware, backend: see ``RasterSettings``.
    """

    def __post_init__(self) -> None:
        size = self.image_size
        # Positive ints only: any other value reaches RasterSettings' check as it was given.
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            object.__setattr__(self, "image_size", (size, size))
        elif isinstance(size, list):
            object.__setattr__(self, "image_size", tuple(size))
        super().__post_init__()

    @property
    def height_width(self) -> tuple[int, int]:
        """The output (H, W)."""
        return self.image_size

    @property
    def aspect(self) -> float:
        """Width over height."""
        height, width = self.image_size
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
        if lights is not None and lights.ambient_only():
            # The same product as light_textures (ambient + 0 * cos is ambient exactly),
            # without the normals' work (deepdream's light).
            intensity = lights.ambient[:, None].to(vertices).expand(batch, faces.shape[0])
            colours = shade_textures(textures, intensity, lights.colour)
        elif lights is not None:
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
        eps=settings.eps,
    )
    return Rendered(images=fragments.rgb, silhouettes=fragments.alpha, depth=fragments.depth)
