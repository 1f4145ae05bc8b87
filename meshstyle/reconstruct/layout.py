"""Where the cameras of a data set stand and how its voxel grids are indexed.

Our layout (``"meshstyle"``), in the conventions of :mod:`meshstyle.camera`: view ``v`` of an
object is seen from distance 2.732, elevation 30 degrees, azimuth ``15 v`` degrees, vertical
half-angle 15 degrees, as a 64 x 64 image; objects lie in [-0.5, 0.5]^3 with +y up; and
``voxels[n, i, j, k]`` is set where the point
``((i + 0.5) / 32 - 0.5, (j + 0.5) / 32 - 0.5, (k + 0.5) / 32 - 0.5) = (x, y, z)`` is inside.

The original release (``"original"``: Kato et al.'s ``mesh_reconstruction`` data, rendered
from ShapeNet) differs in three ways, read from its code:

- its cameras stand at ``get_points_from_angles(2.732, 30, -15 v)``, i.e. at
  ``d (-cos e sin a, sin e, -cos e cos a)`` with ``a = 15 v``;
- its ``look_at`` takes the image's right axis as ``cross(up, forward)``, so every image is
  mirrored left-right against a physical camera (ours uses ``cross(forward, up)``);
- its evaluation voxelises a predicted mesh at ``x * 31/32 + 0.5`` scaled by 32 and then
  transposes the first two axes and flips the last, so its ground truth is indexed
  ``voxels[n, i, j, k]`` with ``i`` along y, ``j`` along x and ``k`` along -z, over a grid
  32/31 times wider than ours.

A mirror image of a mirrored render is a plain render of the mirrored world: reflecting the
world in z (``z -> -z``) turns the original's mirrored look-at into ours and moves its eyes to
``d (cos e sin a', sin e, cos e cos a')`` with ``a' = -15 v``. In that reflected world the
voxels are indexed ``(y, x, z)``, so swapping the first two axes gives our order. Everything
downstream (training, evaluation, predicted meshes) then works in our frame; a mesh
predicted from the original data is the ShapeNet object reflected in z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meshstyle.camera import Cameras

#: Views per object.
VIEWS = 24
#: Image side in pixels.
IMAGE_SIZE = 64
#: Voxel grid side.
VOXEL_SIZE = 32
#: Camera distance from the origin.
DISTANCE = 2.732
#: Camera elevation in degrees.
ELEVATION = 30.0
#: Vertical half field of view in degrees.
VIEWING_ANGLE = 15.0
#: Azimuth step between consecutive views, degrees.
AZIMUTH_STEP = 15.0


@dataclass(frozen=True)
class Layout:
    """A data set's camera and voxel conventions, expressed against ours.

    Attributes:
        name: "meshstyle" or "original".
        azimuth_sign: view ``v`` is at azimuth ``azimuth_sign * 15 v`` in our convention.
        swap_xy: the stored voxel grid indexes (y, x, z); swapped on load into (x, y, z).
        voxel_extent: half the side of the cube the voxel grid spans (0.5 in ours).
    """

    name: str
    azimuth_sign: float
    swap_xy: bool
    voxel_extent: float

    def azimuths(self, views: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B,) azimuths in degrees, our convention, of view indices ``views`` (B,)."""
        views = torch.as_tensor(np.asarray(views), dtype=torch.float32)
        return self.azimuth_sign * AZIMUTH_STEP * views

    def cameras(self, views) -> Cameras:
        """Cameras of view indices ``views`` (B,), in our convention."""
        azimuth = self.azimuths(views)
        return Cameras.from_angles(
            DISTANCE, torch.full_like(azimuth, ELEVATION), azimuth, viewing_angle=VIEWING_ANGLE
        )

    def voxels_to_ours(self, voxels: np.ndarray) -> np.ndarray:
        """Stored (N, 32, 32, 32) grids reindexed as ``[n, x, y, z]``."""
        if self.swap_xy:
            voxels = voxels.transpose(0, 2, 1, 3)
        return np.ascontiguousarray(voxels)

    def voxels_from_ours(self, voxels: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`voxels_to_ours`."""
        return self.voxels_to_ours(voxels)


MESHSTYLE = Layout("meshstyle", azimuth_sign=1.0, swap_xy=False, voxel_extent=0.5)
ORIGINAL = Layout("original", azimuth_sign=-1.0, swap_xy=True, voxel_extent=0.5 * 32 / 31)
LAYOUTS = {layout.name: layout for layout in (MESHSTYLE, ORIGINAL)}


def get_layout(name: str) -> Layout:
    """The layout called ``name``.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}; got {name!r}")
    return LAYOUTS[name]
