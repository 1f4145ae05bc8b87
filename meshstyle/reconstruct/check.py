"""Proving a data layout right, and how far silhouettes can tell its shapes apart.

- The voxels' surface, rendered from the layout's cameras, must cover the same pixels as
  the images' alpha masks. A wrong convention (a mirrored azimuth, swapped voxel axes,
  another voxel extent) shows up as a low silhouette IoU, so ``check-data`` is the test
  that a layout's description matches its files.
- The visual hull of an object's 24 masks (every voxel whose centre projects inside all
  of them) is the largest shape its silhouettes allow. Its voxel IoU with the true voxels
  is the *silhouette ceiling*: a shape that matches every silhouette but is otherwise free
  scores about this, because silhouettes never tell a hollow or a thin slab from the hull
  around it (a table top seen from 30 degrees above is such a slab). A class's ceiling
  says what IoU a silhouette-trained reconstructor can be expected to reach on it.
"""

from __future__ import annotations

import functools
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
        ceiling: class name -> mean voxel IoU of the checked objects' visual hulls (see
            :func:`visual_hull`) with their voxels.
    """

    per_class: dict[str, float]
    mean: float
    worst: float
    objects: int
    ceiling: dict[str, float]

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


@functools.lru_cache(maxsize=4)
def _hull_pixels(layout: Layout, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(24, size³) rows and columns of each voxel centre's pixel in each view.

    The same for every object of a layout, so computed once (the projection of 32768
    points into 24 views costs more than looking up one object's masks).
    """
    from meshstyle.reconstruct.voxelize import voxel_centres

    centres = voxel_centres(size, layout.voxel_extent)
    x, y, z = np.meshgrid(centres, centres, centres, indexing="ij")
    points = torch.from_numpy(np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32))
    ndc = layout.cameras(np.arange(VIEWS)).transform(points).numpy()  # (24, P, 3)
    # NDC x = -1 is the left edge of column 0; NDC y = +1 the top edge of row 0.
    column = np.clip(((ndc[..., 0] + 1) * 0.5 * IMAGE_SIZE).astype(np.int64), 0, IMAGE_SIZE - 1)
    row = np.clip(((1 - ndc[..., 1]) * 0.5 * IMAGE_SIZE).astype(np.int64), 0, IMAGE_SIZE - 1)
    return row, column


def visual_hull(alpha: np.ndarray, layout: Layout, size: int = 32) -> np.ndarray:
    """The voxels whose centres project inside every mask.

    Args:
        alpha: (24, 64, 64) masks (True or > 0 inside) seen from the layout's 24 cameras.
        layout: gives the cameras and the grid's extent.
        size: grid side.

    Returns:
        (size, size, size) bool in our index order ([x, y, z], +y up).
    """
    row, column = _hull_pixels(layout, size)
    inside = np.asarray(alpha) > 0
    views = np.arange(VIEWS)[:, None]
    return inside[views, row, column].all(0).reshape(size, size, size)


def silhouette_ceiling(
    split: Split, objects: np.ndarray | None = None, layout: Layout | None = None
) -> np.ndarray:
    """(N,) voxel IoU of each object's visual hull with its voxels.

    Args:
        split: the data.
        objects: indices into the split; all objects when None.
        layout: the cameras; the split's own when None.
    """
    from meshstyle.reconstruct.voxelize import voxel_iou

    layout = layout or split.layout
    objects = np.arange(len(split)) if objects is None else np.asarray(objects)
    hulls = np.stack([visual_hull(split.images[n, :, 3] > 0, layout) for n in objects])
    return voxel_iou(hulls, split.voxels[objects])


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
    ceiling: dict[str, float] = {}
    for index, name in enumerate(split.classes):
        members = split.class_members(index)[:per_class]
        ceiling[name] = float(silhouette_ceiling(split, members, layout).mean())
        for n in members:
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
        ceiling=ceiling,
    )
