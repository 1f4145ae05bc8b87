"""Proving a data layout right: the voxels' surface, rendered from the layout's cameras,
must cover the same pixels as the images' alpha masks.

A wrong convention (a mirrored azimuth, swapped voxel axes, another voxel extent) shows
up as a low silhouette IoU, so ``check-data`` is the test that a layout's description
matches its files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meshstyle.reconstruct.data import Split
from meshstyle.reconstruct.layout import IMAGE_SIZE, VIEWS, Layout
from meshstyle.reconstruct.voxelize import voxel_surface

#: Mean IoU above which a layout is taken as right: a 32^3 voxel surface differs from the
#: rendered object only by half a voxel at its outline.
PASS_IOU = 0.75


@dataclass(frozen=True)
class LayoutCheck:
    """The agreement between voxels and masks on a sample.

    Attributes:
        per_class: class name -> mean silhouette IoU over its sampled objects and 24 views.
        mean: mean over classes.
        worst: the lowest single-object IoU (mean over its views).
        objects: objects checked.
    """

    per_class: dict[str, float]
    mean: float
    worst: float
    objects: int

    @property
    def passed(self) -> bool:
        return self.mean >= PASS_IOU


def voxel_silhouettes(voxels: np.ndarray, layout: Layout) -> torch.Tensor:
    """(24, 64, 64) silhouettes of a voxel grid's surface from the layout's 24 cameras.

    Args:
        voxels: (32, 32, 32) bool in our index order.
        layout: gives the cameras and the grid's extent.
    """
    from meshstyle.renderer import RenderSettings, render

    vertices, faces = voxel_surface(voxels, layout.voxel_extent)
    if len(faces) == 0:
        return torch.zeros(VIEWS, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        out = render(
            torch.from_numpy(vertices),
            torch.from_numpy(faces),
            None,
            layout.cameras(np.arange(VIEWS)),
            settings=RenderSettings(image_size=IMAGE_SIZE, backend="cpu"),
        )
    return out.silhouettes


def check_layout(split: Split, layout: Layout | None = None, per_class: int = 4) -> LayoutCheck:
    """Render the first objects' voxel surfaces and compare them with their alpha masks.

    Args:
        split: data read with some layout (its voxels already in our order).
        layout: the cameras and extent to test; the split's own when None.
        per_class: objects checked per class.

    Returns:
        The IoUs.
    """
    layout = layout or split.layout
    scores: dict[str, list[float]] = {}
    for index, name in enumerate(split.classes):
        for n in split.class_members(index)[:per_class]:
            rendered = voxel_silhouettes(split.voxels[n], layout)
            alpha = torch.from_numpy(split.images[n, :, 3].astype(np.float32) / 255.0)
            inter = (rendered * alpha).flatten(1).sum(1)
            union = (rendered + alpha - rendered * alpha).flatten(1).sum(1).clamp_min(1e-6)
            scores.setdefault(name, []).append(float((inter / union).mean()))
    table = {name: float(np.mean(values)) for name, values in scores.items()}
    return LayoutCheck(
        per_class=table,
        mean=float(np.mean(list(table.values()))),
        worst=float(min(min(v) for v in scores.values())),
        objects=sum(len(v) for v in scores.values()),
    )
