"""Voxel IoU of a trained reconstructor, per class, as the original measures it.

Every object is reconstructed from each of its 24 views; each reconstruction is voxelised at
32^3 (a mesh by where its surface winds round each voxel centre, a voxel grid by the
threshold chosen on validation data, see :data:`THRESHOLDS`) and compared with the object's
voxels; a class's score is the mean over its objects and views.
"""

from __future__ import annotations

import numpy as np
import torch

from meshstyle.reconstruct.data import Split, to_float
from meshstyle.reconstruct.model import Reconstructor
from meshstyle.reconstruct.voxelize import voxel_iou, voxelize

#: Occupancy thresholds a voxel decoder's grid may be cut at; the one used is chosen on
#: validation data while training (a ray-stopping projection trains occupancies that stop a
#: ray together, each of them often below 0.5).
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


@torch.no_grad()
def _ious(model, images, voxels, extent, thresholds, inside) -> np.ndarray:
    """(T, B) IoU at each threshold (a mesh's IoU repeated: it has no threshold)."""
    model.eval()
    out = model(images)
    if model.kind == "mesh":
        predicted = voxelize(out.cpu().numpy(), model.faces.cpu().numpy(), 32, extent, inside)
        return np.tile(voxel_iou(predicted, voxels), (len(thresholds), 1))
    out = out.cpu().numpy()
    return np.stack([voxel_iou(out > t, voxels) for t in thresholds])


def score(
    model: Reconstructor,
    split: Split,
    objects: np.ndarray | None = None,
    views: np.ndarray | None = None,
    batch_size: int = 96,
    device: str = "cpu",
    thresholds: tuple[float, ...] = (0.5,),
    inside: str = "nonzero",
) -> np.ndarray:
    """Voxel IoU of reconstructions from given (object, view) pairs.

    Args:
        model: the network.
        split: the data.
        objects: (M,) object indices; all objects, each from all 24 views, when None.
        views: (M,) view per object (with ``objects``).
        batch_size: images per forward pass.
        device: torch device.
        thresholds: occupancy cuts for a voxel decoder (ignored for a mesh).
        inside: how a mesh is voxelised, see :func:`.voxelize.voxelize`.

    Returns:
        (T, M) IoU per threshold and pair, or (T, N, 24) per object and view when
        ``objects`` is None.
    """
    full = objects is None
    if full:
        n, views_per = len(split), split.images.shape[1]
        objects = np.repeat(np.arange(n), views_per)
        views = np.tile(np.arange(views_per), n)
    ious = np.zeros((len(thresholds), len(objects)))
    for start in range(0, len(objects), batch_size):
        o, v = objects[start : start + batch_size], views[start : start + batch_size]
        images = to_float(split.images[o, v]).to(device)
        ious[:, start : start + batch_size] = _ious(
            model, images, split.voxels[o], split.layout.voxel_extent, thresholds, inside
        )
    return ious.reshape(len(thresholds), len(split), -1) if full else ious


def per_class(split: Split, ious: np.ndarray) -> dict[str, float]:
    """Mean IoU per class name and ``"mean"`` over classes, from (N, ...) per-object IoUs."""
    per_object = ious.reshape(len(split), -1).mean(1)
    table = {
        name: float(per_object[split.labels == index].mean())
        for index, name in enumerate(split.classes)
    }
    table["mean"] = float(np.mean(list(table.values())))
    return table
