"""Write edited meshes: texture cubes baked into an atlas, saved as OBJ+MTL+PNG and GLB.

Texture cubes are a renderer's format; other programs want one image and UVs. Every face
gets its own right triangle in the atlas, two faces to a square cell::

    +-----------+   face A: corners at texel centres (0, 0), (n, 0), (0, n) of the cell
    |A0     A1  |   face B: the mirror image, (c-1, c-1), (c-1-n, c-1), (c-1, c-1-n)
    |   A     B2|   with c = n + 3, so the two triangles are a full texel apart
    |A2     B   |
    |  B1     B0|
    +-----------+

Every texel of a cell belongs to the nearer triangle and holds that face's cube sampled at
the texel's barycentric coordinates, clamped onto the triangle. So a bilinear lookup
anywhere inside a face reads only that face's texels (no bleeding at seams, no black), and
at texel centres (corners, centroid, edge midpoints and every cube grid point, because n is
chosen as a multiple of 6 and of T - 1 where it fits) the atlas holds the cube's exact value.

Vertices given to the writers are already in the input file's frame; the caller inverts the
normalisation first.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from meshstyle.fsutil import atomic_write_bytes, atomic_write_text
from meshstyle.mesh import sanitise_name
from meshstyle.textures import sample_cube

#: Atlas side the automatic cell size aims to stay within; 4096² holds 100k faces.
MAX_ATLAS_SIDE = 4096

# Smaller atlases export and upload faster; use 2048² while it still gives faces a good
# triangle, and grow to MAX_ATLAS_SIDE only for large meshes.
_PREFERRED_ATLAS_SIDE = 2048

# (atlas side limit, shortest triangle leg) tried in turn: a 2048² atlas while faces still
# get 12-texel legs, else up to 4096² with legs of at least 6, else any leg within 4096².
_CELL_PASSES = ((_PREFERRED_ATLAS_SIDE, 12), (MAX_ATLAS_SIDE, 6), (MAX_ATLAS_SIDE, 1))

# Triangle legs (in texels) beyond this add file size but no detail a T <= 8 cube has.
_MAX_LEG = 24

# Texels sampled per chunk while baking: bounds the temporaries to some tens of MB.
_TEXELS_PER_CHUNK = 1 << 20


def _to_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _check_cubes(cubes) -> np.ndarray:
    cubes = _to_numpy(cubes)
    shape = cubes.shape
    if cubes.ndim != 5 or shape[1] != shape[2] or shape[2] != shape[3] or shape[4] != 3:
        raise ValueError(f"cubes must have shape (F, T, T, T, 3); got {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"cubes must hold at least one face and T >= 1; got {shape}")
    cubes = cubes.astype(np.float32, copy=False)
    if not np.all(np.isfinite(cubes)):
        raise ValueError("cubes must be finite colours in [0, 1]; got NaN or Inf")
    return np.clip(cubes, 0.0, 1.0)


def _pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def _layout(num_cells: int, cell: int) -> tuple[int, int, int]:
    """(width, height, columns) of the power-of-two atlas for square cells of ``cell`` px."""
    side = _pow2(math.ceil(math.sqrt(num_cells)) * cell)
    while (side // cell) ** 2 < num_cells:
        side *= 2
    columns = side // cell
    rows = math.ceil(num_cells / columns)
    return side, _pow2(rows * cell), columns


def atlas_cell_size(num_faces: int, texture_size: int) -> int:
    """Cell size (pixels) that :func:`bake_atlas` picks when ``tile`` is not given.

    The triangle leg n = cell - 3 is preferably a multiple of 6 and of T - 1, so that the
    corners, centroid, edge midpoints and cube grid points of every face land on texel
    centres. The largest leg up to 24 texels wins that fits a 2048² atlas with a leg of at
    least 12, else a 4096² atlas with a leg of at least 6, else any leg within 4096²; past
    about two million faces the cell stays at 4 pixels and the atlas grows.

    Args:
        num_faces: F.
        texture_size: T of the cubes.

    Returns:
        The cell size c >= 4 in pixels.
    """
    cells = max(1, math.ceil(num_faces / 2))
    step = math.lcm(6, max(1, texture_size - 1))
    legs = list(range(max(step, _MAX_LEG - _MAX_LEG % step), 0, -step))
    legs += [n for n in (18, 12, 6, 3, 2, 1) if n < legs[-1]]
    for limit, shortest in _CELL_PASSES:
        for leg in legs:
            if leg >= shortest and _layout(cells, leg + 3)[0] <= limit:
                return leg + 3
    return 4


def atlas_shape(num_faces: int, texture_size: int, *, tile: int | None = None) -> tuple[int, int]:
    """(H, W) of the atlas :func:`bake_atlas` makes for F faces, without baking it.

    Args:
        num_faces: F.
        texture_size: T of the cubes.
        tile: cell size in pixels, as for :func:`bake_atlas`.

    Returns:
        (height, width) in pixels, both powers of two.
    """
    cell = atlas_cell_size(num_faces, texture_size) if tile is None else int(tile)
    width, height, _ = _layout(max(1, math.ceil(num_faces / 2)), cell)
    return height, width


def _cell_weights(cell: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Texel offsets and clamped barycentrics of the two triangles of a cell.

    Returns:
        ``(offsets_a (Na, 2), weights_a (Na, 3), offsets_b (Nb, 2), weights_b (Nb, 3))``,
        offsets as (row, col) inside the cell.
    """
    leg = cell - 3
    rows, cols = np.meshgrid(np.arange(cell), np.arange(cell), indexing="ij")
    rows = rows.ravel()
    cols = cols.ravel()
    in_a = rows + cols <= cell - 1

    def barycentric(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        w = np.stack([1.0 - (x + y) / leg, x / leg, y / leg], axis=-1)
        # clamping keeps texels outside the triangle continuous with its edge
        w = np.maximum(w, 0.0)
        return w / w.sum(axis=-1, keepdims=True)

    wa = barycentric(cols[in_a].astype(np.float64), rows[in_a].astype(np.float64))
    wb = barycentric((cell - 1 - cols[~in_a]).astype(np.float64), (cell - 1 - rows[~in_a]))
    offsets_a = np.stack([rows[in_a], cols[in_a]], axis=-1)
    offsets_b = np.stack([rows[~in_a], cols[~in_a]], axis=-1)
    return offsets_a, wa, offsets_b, wb


def bake_atlas(cubes, *, tile: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bake per-face texture cubes into one texture atlas with per-corner UVs.

    Args:
        cubes: (F, T, T, T, 3) colours in [0, 1] (numpy or torch; values are clamped).
        tile: cell size in pixels (two faces per cell, triangle leg ``tile - 3`` texels);
            default :func:`atlas_cell_size`.

    Returns:
        ``(atlas, face_uvs)``: (H, W, 3) uint8 image with power-of-two sides, row 0 at the
        top; (F, 3, 2) float32 UVs, origin bottom-left, each corner at a texel centre.
        Sampling the atlas bilinearly at ``Σ w_k · face_uvs[f, k]`` returns
        ``sample_cube(cubes, w)[f]`` exactly at texel centres and interpolates between them.
    """
    cubes = _check_cubes(cubes)
    num_faces, t = cubes.shape[0], cubes.shape[1]
    cell = atlas_cell_size(num_faces, t) if tile is None else int(tile)
    if cell < 4:
        raise ValueError(f"tile must be at least 4 pixels; got {tile}")
    leg = cell - 3
    num_cells = math.ceil(num_faces / 2)
    width, height, columns = _layout(num_cells, cell)

    # unused space takes the mean colour so that mipmaps of the atlas do not darken
    mean = np.round(cubes.reshape(-1, 3).mean(axis=0) * 255.0).astype(np.uint8)
    atlas = np.empty((height, width, 3), dtype=np.uint8)
    atlas[:] = mean

    cell_ids = np.arange(num_cells)
    origin = np.stack([(cell_ids // columns) * cell, (cell_ids % columns) * cell], axis=-1)
    face_a = 2 * cell_ids
    # an odd face count leaves the last cell's B half empty: it shows face A's neighbour
    face_b = np.minimum(2 * cell_ids + 1, num_faces - 1)

    offsets_a, weights_a, offsets_b, weights_b = _cell_weights(cell)
    for offsets, weights, faces in ((offsets_a, weights_a, face_a), (offsets_b, weights_b, face_b)):
        chunk = max(1, _TEXELS_PER_CHUNK // len(offsets))
        for start in range(0, num_cells, chunk):
            stop = min(start + chunk, num_cells)
            colours = sample_cube(cubes[faces[start:stop]], weights)  # (n, N, 3)
            r = origin[start:stop, None, 0] + offsets[None, :, 0]
            c = origin[start:stop, None, 1] + offsets[None, :, 1]
            atlas[r, c] = np.round(np.clip(colours, 0.0, 1.0) * 255.0).astype(np.uint8)

    corners_a = np.array([[0, 0], [0, leg], [leg, 0]])  # (row, col) of vertices 0, 1, 2
    corners_b = (cell - 1) - corners_a
    texel = np.empty((num_faces, 3, 2), dtype=np.float64)
    texel[0::2] = origin[: (num_faces + 1) // 2, None, :] + corners_a
    texel[1::2] = origin[: num_faces // 2, None, :] + corners_b
    face_uvs = np.empty((num_faces, 3, 2), dtype=np.float32)
    face_uvs[..., 0] = (texel[..., 1] + 0.5) / width
    face_uvs[..., 1] = 1.0 - (texel[..., 0] + 0.5) / height
    return atlas, face_uvs


def _check_geometry(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    vertices = _to_numpy(vertices).astype(np.float64, copy=False)
    faces = _to_numpy(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3); got {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError("vertices must be finite; got NaN or Inf")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be int, shape (F, 3); got {faces.dtype} {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(
            f"faces must index vertices 0..{len(vertices) - 1}; got {faces.min()}..{faces.max()}"
        )
    return vertices, faces.astype(np.int64, copy=False)


def _bake_for(faces: np.ndarray, cubes, baked) -> tuple[np.ndarray, np.ndarray]:
    if baked is None:
        cubes = _check_cubes(cubes)
        if len(cubes) != len(faces):
            raise ValueError(f"cubes must hold one cube per face ({len(faces)}); got {len(cubes)}")
        return bake_atlas(cubes)
    atlas, face_uvs = baked
    atlas = _to_numpy(atlas)
    face_uvs = _to_numpy(face_uvs)
    if face_uvs.shape != (len(faces), 3, 2):
        raise ValueError(
            f"baked face_uvs must have shape ({len(faces)}, 3, 2); got {face_uvs.shape}"
        )
    return atlas, face_uvs


def _png_bytes(atlas: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(atlas, dtype=np.uint8), mode="RGB").save(
        buffer, format="PNG", compress_level=6
    )
    return buffer.getvalue()


def write_obj(
    folder: str | os.PathLike,
    name: str,
    vertices,
    faces,
    cubes,
    *,
    baked: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Path]:
    """Write a textured Wavefront OBJ: ``{name}.obj``, ``{name}.mtl`` and ``{name}.png``.

    The OBJ references the MTL with ``mtllib`` and the MTL the PNG with ``map_Kd`` by
    relative file name, so the three files move together; Blender and MeshLab open it
    textured. Each file is written atomically, the OBJ last.

    Args:
        folder: output folder (created if missing).
        name: base file name; sanitised with :func:`meshstyle.mesh.sanitise_name`.
        vertices: (V, 3) positions in the input's own frame.
        faces: (F, 3) int vertex indices.
        cubes: (F, T, T, T, 3) colours in [0, 1]; ignored when ``baked`` is given.
        baked: an ``(atlas, face_uvs)`` pair from :func:`bake_atlas`, to reuse one bake for
            several writers.

    Returns:
        ``{"obj": path, "mtl": path, "png": path}``.
    """
    vertices, faces = _check_geometry(vertices, faces)
    atlas, face_uvs = _bake_for(faces, cubes, baked)
    stem = sanitise_name(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "obj": folder / f"{stem}.obj",
        "mtl": folder / f"{stem}.mtl",
        "png": folder / f"{stem}.png",
    }
    material = f"{stem}_material"
    mtl = (
        "# meshstyle material: baked texture atlas\n"
        f"newmtl {material}\n"
        "Ka 0 0 0\n"
        "Kd 1 1 1\n"
        "Ks 0 0 0\n"
        "Ns 0\n"
        "d 1\n"
        "illum 1\n"
        f"map_Kd {paths['png'].name}\n"
    )
    num_vertices, num_faces = len(vertices), len(faces)
    corner = np.arange(3 * num_faces, dtype=np.int64).reshape(num_faces, 3) + 1
    face_table = np.stack([faces + 1, corner], axis=-1).reshape(num_faces, 6)
    obj = "".join(
        [
            f"# meshstyle: {num_vertices} vertices, {num_faces} faces\n",
            f"mtllib {paths['mtl'].name}\n",
            f"o {stem}\n",
            ("v %.9g %.9g %.9g\n" * num_vertices) % tuple(vertices.ravel().tolist()),
            ("vt %.8f %.8f\n" * (3 * num_faces))
            % tuple(face_uvs.astype(np.float64).ravel().tolist()),
            f"usemtl {material}\n",
            "s off\n",
            ("f %d/%d %d/%d %d/%d\n" * num_faces) % tuple(face_table.ravel().tolist()),
        ]
    )
    atomic_write_bytes(paths["png"], _png_bytes(atlas))
    atomic_write_text(paths["mtl"], mtl)
    atomic_write_text(paths["obj"], obj)
    return paths


def write_glb(
    path: str | os.PathLike,
    vertices,
    faces,
    cubes,
    *,
    baked: tuple[np.ndarray, np.ndarray] | None = None,
    png: bytes | None = None,
) -> Path:
    """Write a binary glTF 2.0 file with the baked atlas as base-colour texture.

    glTF stores UVs per vertex: corners that share a vertex and its UV share one glTF
    vertex, and a vertex is split only where its faces' UVs differ (along texture seams;
    everywhere for the per-face atlas). The material is double-sided, matching the renderer,
    unlit-looking (metallic 0, rough 1).

    Args:
        path: output ``.glb`` file, written atomically.
        vertices: (V, 3) positions in the input's own frame.
        faces: (F, 3) int vertex indices.
        cubes: (F, T, T, T, 3) colours in [0, 1]; ignored when ``baked`` is given.
        baked: an ``(atlas, face_uvs)`` pair from :func:`bake_atlas`.
        png: that atlas already encoded as PNG (the image :func:`write_obj` wrote), so a
            large atlas is not compressed twice.

    Returns:
        The written path.
    """
    from meshstyle.glb import glb_bytes

    vertices, faces = _check_geometry(vertices, faces)
    atlas, face_uvs = _bake_for(faces, cubes, baked)
    corners, uvs, triangles = _weld_corners(faces, face_uvs)
    data = glb_bytes(vertices[corners], uvs, triangles, _png_bytes(atlas) if png is None else png)
    return atomic_write_bytes(path, data)


def _weld_corners(
    faces: np.ndarray, face_uvs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One output vertex per distinct (vertex, UV) pair of the faces' corners.

    Args:
        faces: (F, 3) vertex indices; face_uvs: (F, 3, 2) the corners' UVs.

    Returns:
        ``(corners (N,), uvs (N, 2) float32, triangles (F, 3))``: the vertex index and UV of
        each output vertex, and the faces indexing them.
    """
    # + 0.0 makes -0.0 and 0.0 one UV; the bit patterns make exact keys for np.unique.
    uvs = (face_uvs.reshape(-1, 2).astype(np.float32) + np.float32(0.0)).copy()
    keys = np.column_stack([faces.reshape(-1).astype(np.int64), uvs.view(np.int32)])
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return faces.reshape(-1)[first], uvs[first], inverse.reshape(-1, 3)


def write_mesh_files(
    folder: str | os.PathLike,
    name: str,
    vertices,
    faces,
    cubes,
    *,
    baked: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, str]:
    """The textured mesh as ``{name}.obj`` + ``.mtl`` + ``.png`` and ``{name}.glb``, from one
    atlas bake (or from a texture image and UVs the edit already has).

    Args:
        folder: output folder.
        name: base file name.
        vertices: (V, 3) positions in the input's own frame.
        faces: (F, 3) int vertex indices.
        cubes: (F, T, T, T, 3) colours in [0, 1]; ignored when ``baked`` is given.
        baked: ``(image, face_uvs)``: an (H, W, 3) uint8 texture (row 0 at the top) and the
            (F, 3, 2) UVs that index it, written as they are instead of baking ``cubes``.

    Returns:
        File names (relative to ``folder``) by kind: ``obj``, ``mtl``, ``png`` and ``glb``.
    """
    if baked is None:
        baked = bake_atlas(cubes)
    written = write_obj(folder, name, vertices, faces, cubes, baked=baked)
    # The OBJ writer sanitises the name; the GLB takes the same one.
    stem = Path(written["obj"]).stem
    png = Path(written["png"]).read_bytes()
    glb = write_glb(Path(folder) / f"{stem}.glb", vertices, faces, cubes, baked=baked, png=png)
    return {**{kind: Path(path).name for kind, path in written.items()}, "glb": glb.name}
