"""Rasterization settings and results: frozen dataclasses with checked members."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RasterSettings:
    """How to rasterize; built and checked by :func:`meshstyle.raster.rasterize`.

    Attributes:
        image_size: output (H, W) in pixels.
        anti_aliasing: render at (2H, 2W) and average 2x2 blocks.
        near: nearest drawn depth (camera z), > 0.
        far: farthest drawn depth, > near; the depth of empty pixels.
        eps: the lever-distance epsilon of the approximate gradient (NDC units), >= 0.
        occlusion_aware: in the gradient's expansion term, skip pixels that lie behind the
            visible surface (nearer than the face's plane there). False reproduces the paper.
        backend: "auto", "cpu" or "cuda".
    """

    image_size: tuple[int, int] = (256, 256)
    anti_aliasing: bool = True
    near: float = 0.1
    far: float = 100.0
    eps: float = 1e-3
    occlusion_aware: bool = False
    backend: str = "auto"

    def __post_init__(self) -> None:
        size = self.image_size
        if (
            not isinstance(size, tuple)
            or len(size) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)
        ):
            raise ValueError(f"image_size must be a positive int or (H, W) of them; got {size!r}")
        if not (isinstance(self.near, (int, float)) and 0.0 < self.near < math.inf):
            raise ValueError(f"near must be a finite number > 0; got {self.near!r}")
        if not (isinstance(self.far, (int, float)) and self.near < self.far < math.inf):
            raise ValueError(f"far must be a finite number > near ({self.near}); got {self.far!r}")
        if not (isinstance(self.eps, (int, float)) and 0.0 <= self.eps < math.inf):
            raise ValueError(f"eps must be a finite number >= 0; got {self.eps!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {self.backend!r}")

    @property
    def render_size(self) -> tuple[int, int]:
        """The (H, W) the kernels work at: twice the image size with anti-aliasing."""
        height, width = self.image_size
        return (2 * height, 2 * width) if self.anti_aliasing else (height, width)


@dataclass(frozen=True)
class Fragments:
    """What :func:`meshstyle.raster.rasterize` returns.

    Attributes:
        rgb: (B, 3, H, W) float32 colours, the background where empty; None when no textures
            were given. Differentiable w.r.t. face vertices (approximate, x/y) and textures.
        alpha: (B, H, W) float32 coverage in [0, 1] (fractional at edges with anti-aliasing).
            Differentiable w.r.t. face vertices (approximate, x/y).
        depth: (B, H, W) float32 perspective-correct camera depth, ``far`` where empty
            (averaged with anti-aliasing). Differentiable w.r.t. face vertices (exact for the
            visible face, face index held fixed).
        face_index: (B, Hr, Wr) int32 index of the visible face, -1 where empty, at render
            resolution (Hr, Wr) = (2H, 2W) with anti-aliasing, else (H, W). No gradient.
    """

    rgb: torch.Tensor | None
    alpha: torch.Tensor
    depth: torch.Tensor
    face_index: torch.Tensor
