"""Rendering meshes for people to look at: single views and turntables as uint8 frames."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from meshstyle.camera import DEFAULT_DISTANCE, Cameras
from meshstyle.renderer import RenderSettings, render
from meshstyle.shading import Lights

#: Colour of a mesh that carries no texture: a light clay grey.
CLAY = (0.78, 0.76, 0.72)
#: Views of a comparison sheet's rows: (elevation, azimuth) in degrees.
SHEET_VIEWS = ((30.0, 0.0), (30.0, 90.0), (30.0, 180.0), (30.0, 270.0))


def view_lights(cameras: Cameras, ambient: float = 0.5, directional: float = 0.5) -> Lights:
    """A key light over the viewer's shoulder: above and slightly right of each eye.

    Args:
        cameras: B cameras.
        ambient: ambient intensity.
        directional: directional intensity.

    Returns:
        B lights whose direction follows each camera.
    """
    to_eye = -cameras.forward
    right = torch.linalg.cross(cameras.forward, cameras.up.to(to_eye), dim=-1)
    right = right / right.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    direction = to_eye + 0.5 * cameras.up.to(to_eye) + 0.3 * right
    direction = direction / direction.norm(dim=-1, keepdim=True)
    batch = cameras.batch_size
    return Lights(
        ambient=torch.full((batch,), float(ambient)),
        directional=torch.full((batch,), float(directional)),
        direction=direction,
    )


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) floats to a list of (H, W, 3) uint8 frames, NaN-safe."""
    images = torch.nan_to_num(images.detach().float().cpu(), nan=0.0).clamp(0.0, 1.0)
    array = (images.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return list(array)


@torch.no_grad()
def render_frames(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    textures: torch.Tensor,
    *,
    elevations: np.ndarray,
    azimuths: np.ndarray,
    distance: float = DEFAULT_DISTANCE,
    image_size: int | tuple[int, int] = 256,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    backend: str = "auto",
    batch: int = 8,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Render one frame per (elevation, azimuth) pair, a few views per rasterizer call.

    Args:
        vertices: (V, 3) normalised vertices.
        faces: (F, 3) indices.
        textures: (F, T, T, T, 3) colours in [0, 1].
        elevations: (N,) degrees.
        azimuths: (N,) degrees.
        distance: camera distance.
        image_size: output size.
        background: RGB of empty pixels.
        backend: rasterizer backend.
        batch: views per call.
        progress: called with the number of frames finished after each call.

    Returns:
        N frames, (H, W, 3) uint8.
    """
    settings = RenderSettings(image_size=image_size, anti_aliasing=True, backend=backend)
    frames: list[np.ndarray] = []
    for start in range(0, len(azimuths), batch):
        elev = torch.as_tensor(np.asarray(elevations[start : start + batch], dtype=np.float32))
        azim = torch.as_tensor(np.asarray(azimuths[start : start + batch], dtype=np.float32))
        cameras = Cameras.from_angles(distance, elev, azim).to(vertices.device)
        lights = view_lights(cameras).to(vertices.device)
        out = render(vertices, faces, textures, cameras, lights, settings, background=background)
        frames.extend(to_uint8(out.images))
        if progress is not None:
            progress(len(frames))
    return frames


def turntable_angles(frames: int, elevation: float, start_azimuth: float = 0.0):
    """(elevations, azimuths) of ``frames`` evenly spaced views around the vertical axis."""
    azimuths = start_azimuth + np.arange(frames, dtype=np.float64) * (360.0 / frames)
    return np.full(frames, elevation, dtype=np.float64), azimuths


def sheet_frames(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    textures: torch.Tensor,
    *,
    distance: float = DEFAULT_DISTANCE,
    image_size: int = 256,
    backend: str = "auto",
) -> list[np.ndarray]:
    """One row of a comparison sheet: the mesh from the four ``SHEET_VIEWS``.

    Returns:
        4 frames, (image_size, image_size, 3) uint8.
    """
    return render_frames(
        vertices,
        faces,
        textures,
        elevations=np.array([e for e, _ in SHEET_VIEWS]),
        azimuths=np.array([a for _, a in SHEET_VIEWS]),
        distance=distance,
        image_size=image_size,
        backend=backend,
    )
