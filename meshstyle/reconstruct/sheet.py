"""A picture of reconstructions: input images next to renders of what the network made.

Each row is one test object: the input view, the reconstruction seen from the input's
camera and from 90 degrees further round, and the ground-truth voxels from that second view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from meshstyle.fsutil import atomic_path
from meshstyle.reconstruct.data import Split, to_float
from meshstyle.reconstruct.layout import IMAGE_SIZE, VIEWS
from meshstyle.reconstruct.model import Reconstructor
from meshstyle.reconstruct.voxelize import voxel_surface


def _shaded(vertices, faces, layout, view: int) -> np.ndarray:
    """(64, 64, 3) uint8 grey render of one mesh from one view of the layout."""
    from meshstyle.renderer import RenderSettings, render
    from meshstyle.shading import Lights

    if len(faces) == 0:
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    vertices = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    faces = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    textures = torch.full((len(faces), 1, 1, 1, 3), 0.8)
    with torch.no_grad():
        out = render(
            vertices,
            faces,
            textures,
            layout.cameras(np.array([view])),
            Lights.simple(1, ambient=0.45, directional=0.55, direction=(0.4, 1.0, 0.6)),
            RenderSettings(image_size=IMAGE_SIZE, backend="cpu"),
        )
    return (out.images[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)


def reconstruction_sheet(
    model: Reconstructor,
    split: Split,
    path: str | Path,
    per_class: int = 3,
    view: int = 3,
    threshold: float = 0.5,
) -> Path:
    """Write the sheet as a PNG.

    Args:
        model: the trained network (CPU).
        split: the objects.
        path: PNG to write (atomically).
        per_class: rows per class (the first objects of each class).
        view: the input view index.
        threshold: where a voxel decoder's occupancy is cut.
    """
    from PIL import Image

    layout = split.layout
    other = (view + VIEWS // 4) % VIEWS
    rows = []
    for index in range(len(split.classes)):
        for n in split.class_members(index)[:per_class]:
            image = split.images[n, view]
            with torch.no_grad():
                out = model.eval()(to_float(image[None]))[0].cpu().numpy()
            if model.kind == "mesh":
                vertices, faces = out, model.faces.cpu().numpy()
            else:
                vertices, faces = voxel_surface(out > threshold, layout.voxel_extent)
            truth = voxel_surface(split.voxels[n], layout.voxel_extent)
            rows.append(
                np.concatenate(
                    [
                        image[:3].transpose(1, 2, 0),
                        _shaded(vertices, faces, layout, view),
                        _shaded(vertices, faces, layout, other),
                        _shaded(*truth, layout, other),
                    ],
                    axis=1,
                )
            )
    grid = Image.fromarray(np.concatenate(rows, axis=0)).resize(
        (4 * IMAGE_SIZE * 2, len(rows) * IMAGE_SIZE * 2), Image.NEAREST
    )
    turn = 360 // VIEWS * (VIEWS // 4)
    sheet = _with_header(
        grid,
        [f"input (view {view})", "output", f"output +{turn}°", f"truth +{turn}°"],
    )
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(path)


def _with_header(grid, titles: list[str]):
    """``grid`` under a white band naming its columns (one title per equal-width column)."""
    from PIL import Image, ImageDraw, ImageFont

    column = grid.width // len(titles)
    try:
        font = ImageFont.load_default(size=14)
    except (TypeError, ImportError, OSError):  # PIL without FreeType: its bitmap font
        font = ImageFont.load_default()
    top, bottom = font.getbbox("Ag")[1::2]
    band = int(bottom - top) + 10
    sheet = Image.new("RGB", (grid.width, grid.height + band), (255, 255, 255))
    sheet.paste(grid, (0, band))
    draw = ImageDraw.Draw(sheet)
    for i, title in enumerate(titles):
        x = i * column + max(0, (column - font.getlength(title)) / 2)
        draw.text((x, 5 - top), title, fill=(0, 0, 0), font=font)
    return sheet
