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

    def ambient_only(self) -> bool:
        """Whether no view has a directional term (all zero, and not being optimised): the
        intensity is then the ambient one everywhere and the face normals play no part."""
        return not self.directional.requires_grad and not bool(self.directional.any())

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


def face_intensity(
    world_face_vertices: torch.Tensor, eye: torch.Tensor, lights: Lights
) -> torch.Tensor:
    """Flat two-sided light intensity of every face in every view.

    Faces are two-sided, so each face is lit on the side the camera sees: the normal is
    flipped towards the eye before taking n·l. Without this a face seen from behind would
    be dark even with the light behind the viewer.

    Args:
        world_face_vertices: (B, F, 3, 3) corners in world space.
        eye: (B, 3) eye positions.
        lights: per-view lights with batch B.

    Returns:
        (B, F) ``ambient + directional · max(0, n·l)`` with n the unit normal facing the eye.
    """
    v0, v1, v2 = world_face_vertices.unbind(-2)
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # (B, F, 3), length = twice the area
    # The side the eye sees is the sign of n·(eye - centroid); n need not be unit for it.
    to_eye = eye[:, None, :] - (v0 + v1 + v2) / 3.0
    facing = torch.where((n * to_eye).sum(-1) >= 0, 1.0, -1.0)
    n_dot_l = (n * lights.direction[:, None, :]).sum(-1)
    # Zero-area faces have n = 0: the clamp gives them cos 0 rather than NaN.
    cos = torch.relu(facing * n_dot_l / n.norm(dim=-1).clamp_min(1e-12))
    return lights.ambient[:, None] + lights.directional[:, None] * cos


class _ShadeSharedCubes(torch.autograd.Function):
    """``cubes[None] * intensity[..., None]`` with a backward that makes no B×F×K temporaries.

    Autograd's own multiply would expand the gradient by the intensity into a (B, F, K)
    temporary and reduce it over B, and multiply it by the cubes into a second one reduced
    over K; here both reductions read the gradient once, view by view.
    """

    @staticmethod
    def forward(ctx, cubes: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cubes, intensity)
        return cubes[None] * intensity[:, :, None]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cubes, intensity = ctx.saved_tensors
        grad_cubes = grad_intensity = None
        if ctx.needs_input_grad[0]:
            grad_cubes = grad[0] * intensity[0, :, None]
            for b in range(1, grad.shape[0]):
                grad_cubes.addcmul_(grad[b], intensity[b, :, None])
        if ctx.needs_input_grad[1]:
            grad_intensity = torch.stack(
                [torch.linalg.vecdot(grad[b], cubes) for b in range(grad.shape[0])]
            )
        return grad_cubes, grad_intensity


def shade_textures(
    textures: torch.Tensor, intensity: torch.Tensor, colour: torch.Tensor | None = None
) -> torch.Tensor:
    """Multiply texture cubes by a per-view, per-face light intensity (and a light colour).

    Args:
        textures: (F, T, T, T, 3), (1, F, T, T, T, 3) or (B, F, T, T, T, 3) colours.
        intensity: (B, F) light intensity.
        colour: (3,) light colour, or None for white.

    Returns:
        (B, F, T, T, T, 3) lit colours, contiguous.
    """
    if colour is not None:
        # On the F cubes before they are copied per view: B times less work.
        textures = textures * colour
    if textures.dim() == 6 and textures.shape[0] == 1:
        textures = textures[0]
    if textures.dim() == 5:
        n_faces, cube = textures.shape[0], textures.shape[1:]
        lit = _ShadeSharedCubes.apply(textures.reshape(n_faces, -1), intensity)
        return lit.view(intensity.shape[0], n_faces, *cube)
    return textures * intensity[:, :, None, None, None, None]


def light_textures(
    textures: torch.Tensor,
    world_face_vertices: torch.Tensor,
    eye: torch.Tensor,
    lights: Lights,
) -> torch.Tensor:
    """Multiply per-face texture cubes by flat two-sided lighting.

    See :func:`face_intensity` for the lighting and :func:`shade_textures` for the product.

    Args:
        textures: (B, F, T, T, T, 3) or (F, T, T, T, 3) colours in [0, 1].
        world_face_vertices: (B, F, 3, 3) corners in world space.
        eye: (B, 3) eye positions.
        lights: per-view lights with batch B.

    Returns:
        (B, F, T, T, T, 3) lit colours.
    """
    intensity = face_intensity(world_face_vertices, eye, lights)
    return shade_textures(textures, intensity, lights.colour)
