"""``meshstyle render``: a still or a turntable of a mesh as it is."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from meshstyle.runtime import Device


def render_mesh_to_file(
    mesh_path: Path,
    output: Path,
    *,
    image_size: int,
    elevation: float,
    azimuth: float,
    distance: float,
    frames: int,
    texture_size: int,
    device: Device,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Render ``mesh_path`` to ``output`` (.png: one view; .gif: ``frames`` views around).

    Raises:
        MeshError: the mesh cannot be used.
        ValueError: bad settings.
    """
    from meshstyle.images import save_gif, save_png
    from meshstyle.mesh import load_mesh, normalise
    from meshstyle.preview import render_frames, turntable_angles
    from meshstyle.textures import initial_colours

    for name, value in (("elevation", elevation), ("azimuth", azimuth), ("distance", distance)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value}")
    mesh, _ = normalise(load_mesh(mesh_path))
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=device.torch_device)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64, device=device.torch_device)
    colours = initial_colours(mesh, texture_size).to(device.torch_device)
    elevations, azimuths = turntable_angles(frames, elevation, azimuth)
    images = render_frames(
        vertices,
        faces,
        colours,
        elevations=elevations,
        azimuths=azimuths,
        distance=distance,
        image_size=image_size,
        backend=device.backend,
        progress=progress,
    )
    if output.suffix.lower() == ".gif":
        save_gif(output, images)
    else:
        save_png(output, images[0])
