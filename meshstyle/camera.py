"""Cameras: eye positions from angles, look-at, and projection to NDC.

Conventions (docs/architecture.md, section 3): world is right-handed with +y up. The eye at
``distance d, elevation e, azimuth a`` (degrees) is ``d·(cos e·sin a, sin e, cos e·cos a)``:
azimuth 0 sees the mesh's +z side, azimuth 90 its +x side, positive elevation looks down.
Camera space has x to the right of the image, y up and z the depth in front of the eye, so
a camera-space point at +x lands in the right half of the image (no mirroring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Distance at which a mesh normalised to [-1, 1] fills the frame at the default angle.
DEFAULT_DISTANCE = 2.732
#: Default vertical half field of view in degrees.
DEFAULT_VIEWING_ANGLE = 30.0
# Vertices closer to the eye than this are clamped before the perspective divide so that
# nothing divides by zero; the rasterizer then skips such faces by their true depth.
_MIN_DIVISOR = 1e-6


def eye_from_angles(
    distance: torch.Tensor | float,
    elevation: torch.Tensor | float,
    azimuth: torch.Tensor | float,
) -> torch.Tensor:
    """Eye positions from spherical angles in degrees.

    Args:
        distance: (B,) or scalar distance from the origin.
        elevation: (B,) or scalar elevation in degrees (positive looks down from above).
        azimuth: (B,) or scalar azimuth in degrees (0 sees +z, 90 sees +x).

    Returns:
        (B, 3) float32 eye positions (B = 1 when every argument is a scalar).
    """
    d, e, a = torch.broadcast_tensors(
        torch.as_tensor(distance, dtype=torch.float32).reshape(-1),
        torch.as_tensor(elevation, dtype=torch.float32).reshape(-1),
        torch.as_tensor(azimuth, dtype=torch.float32).reshape(-1),
    )
    e = torch.deg2rad(e)
    a = torch.deg2rad(a)
    return torch.stack(
        (d * torch.cos(e) * torch.sin(a), d * torch.sin(e), d * torch.cos(e) * torch.cos(a)),
        dim=-1,
    )


def _normalise(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def look_at_rotation(eye: torch.Tensor, at: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """World-to-camera rotations whose rows are the camera's right, up and forward axes.

    Args:
        eye: (B, 3) eye positions.
        at: (B, 3) points looked at.
        up: (B, 3) approximate up directions.

    Returns:
        (B, 3, 3) rotation matrices R with camera = R @ (world - eye).
    """
    forward = _normalise(at - eye)
    right = torch.linalg.cross(forward, up, dim=-1)
    # Looking straight up or down makes `up` parallel to the view direction; any horizontal
    # right axis is then as good as another, so fall back to world +x.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    fallback = torch.tensor([1.0, 0.0, 0.0], dtype=eye.dtype, device=eye.device).expand_as(right)
    right = _normalise(torch.where(degenerate, fallback, right))
    true_up = torch.linalg.cross(right, forward, dim=-1)
    return torch.stack((right, true_up, forward), dim=-2)


def look_at(
    vertices: torch.Tensor,
    eye: torch.Tensor,
    at: torch.Tensor | None = None,
    up: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transform world-space vertices into camera space.

    Args:
        vertices: (B, V, 3) or (V, 3) world-space vertices.
        eye: (B, 3) eye positions.
        at: (B, 3) or (3,) look-at points; the origin when None.
        up: (B, 3) or (3,) up directions; +y when None.

    Returns:
        (B, V, 3) camera-space vertices: x right, y up, z depth in front of the eye.
    """
    eye = eye.reshape(-1, 3).to(vertices)
    batch = eye.shape[0]
    at = torch.zeros(3) if at is None else torch.as_tensor(at)
    up = torch.tensor([0.0, 1.0, 0.0]) if up is None else torch.as_tensor(up)
    at = at.to(vertices).reshape(-1, 3).expand(batch, 3)
    up = up.to(vertices).reshape(-1, 3).expand(batch, 3)
    if vertices.dim() == 2:
        vertices = vertices.unsqueeze(0).expand(batch, -1, -1)
    rotation = look_at_rotation(eye, at, up)
    return torch.einsum("bij,bvj->bvi", rotation, vertices - eye[:, None, :])


def perspective(
    vertices: torch.Tensor, viewing_angle: float = DEFAULT_VIEWING_ANGLE, aspect: float = 1.0
) -> torch.Tensor:
    """Perspective projection of camera-space vertices to NDC x, y and camera depth z.

    Args:
        vertices: (B, V, 3) camera-space vertices.
        viewing_angle: vertical half field of view in degrees.
        aspect: image width / height; x is divided by it so nothing stretches.

    Returns:
        (B, V, 3): NDC x, NDC y, and the unchanged camera depth z.
    """
    if not 0.0 < viewing_angle < 90.0:
        raise ValueError(f"viewing_angle must be in (0, 90) degrees; got {viewing_angle}")
    tan = math.tan(math.radians(viewing_angle))
    z = vertices[..., 2]
    # Keep the sign so points behind the eye stay behind; only the magnitude is bounded.
    divisor = torch.where(z >= 0, z.clamp_min(_MIN_DIVISOR), z.clamp_max(-_MIN_DIVISOR)) * tan
    x = vertices[..., 0] / (divisor * aspect)
    y = vertices[..., 1] / divisor
    return torch.stack((x, y, z), dim=-1)


def orthographic(vertices: torch.Tensor, scale: float = 1.0, aspect: float = 1.0) -> torch.Tensor:
    """Orthographic projection: camera-space x, y scaled so that ±scale spans the image height.

    Args:
        vertices: (B, V, 3) camera-space vertices.
        scale: half extent of the visible region along y, in world units.
        aspect: image width / height.

    Returns:
        (B, V, 3): NDC x, NDC y, and the unchanged camera depth z.
    """
    if not scale > 0.0:
        raise ValueError(f"orthographic scale must be positive; got {scale}")
    return torch.stack(
        (vertices[..., 0] / (scale * aspect), vertices[..., 1] / scale, vertices[..., 2]), dim=-1
    )


@dataclass(frozen=True)
class Cameras:
    """A batch of B look-at cameras.

    Attributes:
        eye: (B, 3) eye positions in world space.
        at: (B, 3) points looked at.
        up: (B, 3) up directions.
        viewing_angle: vertical half field of view in degrees (perspective only).
        orthographic: use an orthographic projection instead of perspective.
        ortho_scale: half extent along y of the orthographic view, world units.
    """

    eye: torch.Tensor
    at: torch.Tensor
    up: torch.Tensor
    viewing_angle: float = DEFAULT_VIEWING_ANGLE
    orthographic: bool = False
    ortho_scale: float = 1.0

    @classmethod
    def from_angles(
        cls,
        distance: torch.Tensor | float = DEFAULT_DISTANCE,
        elevation: torch.Tensor | float = 0.0,
        azimuth: torch.Tensor | float = 0.0,
        **kwargs,
    ) -> Cameras:
        """Cameras looking at the origin from spherical angles in degrees (see module doc)."""
        eye = eye_from_angles(distance, elevation, azimuth)
        batch = eye.shape[0]
        at = torch.zeros(batch, 3)
        up = torch.tensor([[0.0, 1.0, 0.0]]).expand(batch, 3).clone()
        return cls(eye=eye, at=at, up=up, **kwargs)

    @property
    def batch_size(self) -> int:
        return self.eye.shape[0]

    @property
    def forward(self) -> torch.Tensor:
        """(B, 3) unit view directions in world space."""
        return _normalise(self.at - self.eye)

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(
            self.eye.to(device),
            self.at.to(device),
            self.up.to(device),
            self.viewing_angle,
            self.orthographic,
            self.ortho_scale,
        )

    def transform(self, vertices: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
        """World-space vertices (B, V, 3) or (V, 3) to NDC x, y and depth z, (B, V, 3)."""
        cam = look_at(vertices, self.eye, self.at, self.up)
        if self.orthographic:
            return orthographic(cam, self.ortho_scale, aspect)
        return perspective(cam, self.viewing_angle, aspect)


def face_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Gather per-face corners.

    Args:
        vertices: (B, V, 3).
        faces: (F, 3) integer indices.

    Returns:
        (B, F, 3, 3): corner k of face f is ``vertices[:, faces[f, k]]``.
    """
    return vertices[:, faces.long()]
