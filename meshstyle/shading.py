"""Flat per-face lighting of texture cubes: ambient + directional · max(0, n·l).

Lighting is applied to the textures before rasterization, in torch, so that its gradient
reaches the vertices through the face normals by ordinary autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Lights:
    """Per-view lights.

    Attributes:
        ambient: (B,) ambient intensity.
        directional: (B,) directional intensity.
        direction: (B, 3) unit vectors in world space pointing from the surface towards the
            light.
        colour: (3,) light colour multiplying both terms.
    """

    ambient: torch.Tensor
    directional: torch.Tensor
    direction: torch.Tensor
    colour: torch.Tensor | None = None

    @classmethod
    def simple(
        cls,
        batch: int = 1,
        ambient: float = 0.5,
        directional: float = 0.5,
        direction: tuple[float, float, float] = (0.0, 1.0, 0.0),
    ) -> Lights:
        """The same lights for every view of a batch."""
        d = torch.tensor(direction, dtype=torch.float32)
        d = d / d.norm().clamp_min(1e-12)
        return cls(
            ambient=torch.full((batch,), float(ambient)),
            directional=torch.full((batch,), float(directional)),
            direction=d.expand(batch, 3).clone(),
        )

    def to(self, device: torch.device | str) -> Lights:
        colour = None if self.colour is None else self.colour.to(device)
        return Lights(
            self.ambient.to(device), self.directional.to(device), self.direction.to(device), colour
        )


def face_normals(face_vertices: torch.Tensor) -> torch.Tensor:
    """Unit normals of triangles (right-hand rule on corner order).

    Args:
        face_vertices: (..., F, 3, 3) corners in world space.

    Returns:
        (..., F, 3) unit normals; zero-area faces get a zero normal rather than NaN.
    """
    v0, v1, v2 = face_vertices.unbind(-2)
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    length = n.norm(dim=-1, keepdim=True)
    return n / length.clamp_min(1e-12)


def light_textures(
    textures: torch.Tensor,
    world_face_vertices: torch.Tensor,
    eye: torch.Tensor,
    lights: Lights,
) -> torch.Tensor:
    """Multiply per-face texture cubes by flat two-sided lighting.

    Faces are two-sided, so each face is lit on the side the camera sees: the normal is
    flipped towards the eye before taking n·l. Without this a face seen from behind would
    be dark even with the light behind the viewer.

    Args:
        textures: (B, F, T, T, T, 3) or (F, T, T, T, 3) colours in [0, 1].
        world_face_vertices: (B, F, 3, 3) corners in world space.
        eye: (B, 3) eye positions.
        lights: per-view lights with batch B.

    Returns:
        (B, F, T, T, T, 3) lit colours.
    """
    normals = face_normals(world_face_vertices)  # (B, F, 3)
    centroids = world_face_vertices.mean(dim=-2)
    to_eye = eye[:, None, :] - centroids
    facing = torch.where((normals * to_eye).sum(-1, keepdim=True) >= 0, 1.0, -1.0)
    normals = normals * facing
    cos = torch.relu((normals * lights.direction[:, None, :]).sum(-1))  # (B, F)
    intensity = lights.ambient[:, None] + lights.directional[:, None] * cos  # (B, F)
    shade = intensity[:, :, None, None, None, None]
    if lights.colour is not None:
        shade = shade * lights.colour
    if textures.dim() == 5:
        textures = textures.unsqueeze(0)
    return textures * shade
