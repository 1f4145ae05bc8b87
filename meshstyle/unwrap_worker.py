"""The automatic UV unwrap (xatlas), in a process of its own.

:func:`meshstyle.uvtexture.unwrap` runs this file as a script. xatlas is native code that
can end its process: it crashes (a segmentation fault while packing charts) on some exactly
symmetric meshes, trimesh's icosphere of 81 920 faces among them. In a child process such
a crash fails one job with a message instead of ending a whole batch.

Import-light on purpose (NumPy and xatlas): it starts in a fraction of a second.

Usage: python -P unwrap_worker.py IN.npz OUT.npy
    IN holds ``vertices`` (V, 3) float32, ``faces`` (F, 3) uint32, ``resolution`` and
    ``padding``; OUT gets the (F, 3, 2) float32 texture coordinates. Exit status 0 when
    written, 3 when xatlas changed the faces (message on stderr).
"""

from __future__ import annotations

import sys

import numpy as np

#: Exit status when the unwrap does not map back onto the input's faces.
CHANGED_FACES = 3


def unwrap_here(
    vertices: np.ndarray, faces: np.ndarray, resolution: int, padding: int
) -> np.ndarray:
    """xatlas's UV layout of a mesh, in this process, faces kept in their order.

    Args:
        vertices: (V, 3) float32 positions.
        faces: (F, 3) uint32 vertex indices.
        resolution: the texture size the charts are packed for.
        padding: texels of empty space around each chart.

    Returns:
        (F, 3, 2) float32 texture coordinates in [0, 1], origin bottom-left.

    Raises:
        ValueError: xatlas changed the faces, so its UVs cannot be mapped back.
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, faces)
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = int(padding)
    pack.bilinear = True
    atlas.generate(pack_options=pack)
    mapping, indices, uvs = atlas[0]
    if indices.shape != faces.shape or not np.array_equal(mapping[indices], faces):
        raise ValueError("the UV unwrap changed the mesh's faces; cannot map its UVs back")
    return np.ascontiguousarray(uvs[indices], dtype=np.float32)


def main(argv: list[str]) -> int:
    source, target = argv
    with np.load(source) as data:
        arrays = {name: data[name] for name in data.files}
    try:
        uvs = unwrap_here(
            arrays["vertices"], arrays["faces"], int(arrays["resolution"]), int(arrays["padding"])
        )
    except ValueError as error:
        print(error, file=sys.stderr)
        return CHANGED_FACES
    np.save(target, uvs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
