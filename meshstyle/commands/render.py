"""``meshstyle render``: a still or a turntable of a mesh as it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from meshstyle.runtime import Device


def initial_colours(mesh, texture_size: int) -> torch.Tensor:
    """Per-face texture cubes for a mesh: from its UV texture when it has one, else clay.

    Args:
        mesh: a loaded :class:`meshstyle.mesh.Mesh`.
        texture_size: cube size T.

    Returns:
        (F, T, T, T, 3) float32 colours in [0, 1].
    """
    from meshstyle.preview import CLAY
    from meshstyle.textures import cubes_from_uv_texture, uniform_cubes

    if mesh.face_uvs is not None and mesh.texture is not None:
        cubes = cubes_from_uv_texture(mesh.face_uvs, mesh.texture, texture_size)
    else:
        cubes = uniform_cubes(len(mesh.faces), texture_size, CLAY)
    return torch.as_tensor(cubes, dtype=torch.float32)


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
