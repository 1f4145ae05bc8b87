"""Atlas baking and the OBJ/GLB writers, checked by reloading what they write."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from meshstyle.export import atlas_shape, bake_atlas, write_glb, write_obj
from meshstyle.mesh import load_mesh
from meshstyle.textures import cubes_from_uv_texture, sample_cube, sample_image

TOLERANCE = 2 / 255


def probe_weights(t: int) -> np.ndarray:
    """Corners, centroid, edge midpoints and every on-simplex cube grid point: (N, 3)."""
    points = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]]
    points += [[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]]
    if t > 1:
        points += [[i, j, t - 1 - i - j] for i in range(t) for j in range(t - i)]
        points[7:] = (np.array(points[7:]) / (t - 1)).tolist()
    return np.array(points, dtype=np.float64)


def atlas_samples(atlas: np.ndarray, face_uvs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bilinear atlas lookups at barycentric points of each face: (F, N, 3)."""
    return sample_image(atlas, np.einsum("nk,fkc->fnc", weights, face_uvs), wrap=False)


@pytest.fixture(scope="module")
def teapot(mesh_path):
    return load_mesh(mesh_path("teapot"))


@pytest.mark.parametrize(("faces", "t"), [(1, 4), (7, 4), (300, 1), (300, 2), (200, 3), (64, 5)])
def test_bake_atlas_reproduces_the_cubes(faces, t):
    cubes = np.random.default_rng(t).random((faces, t, t, t, 3)).astype(np.float32)
    atlas, face_uvs = bake_atlas(cubes)
    h, w, _ = atlas.shape
    assert atlas.dtype == np.uint8 and face_uvs.shape == (faces, 3, 2)
    assert h & (h - 1) == 0 and w & (w - 1) == 0
    assert np.all((face_uvs > 0) & (face_uvs < 1))
    weights = probe_weights(t)
    np.testing.assert_allclose(
        atlas_samples(atlas, face_uvs, weights), sample_cube(cubes, weights), atol=TOLERANCE
    )


def test_no_bleeding_between_faces():
    # one flat colour per face: any lookup inside or on the edge of a face must see only it
    colours = np.random.default_rng(7).random((41, 3)).astype(np.float32)
    cubes = colours[:, None, None, None, :]
    atlas, face_uvs = bake_atlas(cubes)
    weights = np.random.default_rng(8).dirichlet([0.3, 0.3, 0.3], size=200)
    weights = np.concatenate([weights, np.eye(3), [[0.5, 0.5, 0], [0.999, 0.0005, 0.0005]]])
    samples = atlas_samples(atlas, face_uvs, weights)
    np.testing.assert_allclose(
        samples, np.broadcast_to(colours[:, None], samples.shape), atol=1 / 255
    )


def test_explicit_tile_and_sizes():
    cubes = np.full((10, 2, 2, 2, 3), 0.5, dtype=np.float32)
    atlas, _ = bake_atlas(cubes, tile=9)
    assert atlas.shape[:2] == atlas_shape(10, 2, tile=9) == (32, 32)
    with pytest.raises(ValueError, match="tile must be at least 4"):
        bake_atlas(cubes, tile=3)
    assert max(atlas_shape(100_000, 4)) <= 4096
    assert max(atlas_shape(100_000, 8)) <= 4096
    assert atlas_shape(2464, 4) == (1024, 1024)


def test_bake_atlas_rejects_bad_cubes():
    with pytest.raises(ValueError, match=r"cubes must have shape \(F, T, T, T, 3\)"):
        bake_atlas(np.zeros((3, 4, 4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        bake_atlas(np.full((1, 1, 1, 1, 3), np.nan))


def test_write_obj_round_trip_through_trimesh(tmp_path, teapot):
    cubes = np.random.default_rng(9).random((teapot.num_faces, 4, 4, 4, 3)).astype(np.float32)
    paths = write_obj(tmp_path, "teapot", teapot.vertices, teapot.faces, cubes)
    assert paths == {
        "obj": tmp_path / "teapot.obj",
        "mtl": tmp_path / "teapot.mtl",
        "png": tmp_path / "teapot.png",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teapot.mtl", "teapot.obj", "teapot.png"]

    loaded = trimesh.load(paths["obj"], process=False, force="mesh")
    assert len(loaded.faces) == teapot.num_faces
    np.testing.assert_allclose(
        loaded.vertices[loaded.faces], teapot.vertices[teapot.faces], rtol=0, atol=1e-7
    )
    atlas = np.asarray(loaded.visual.material.image.convert("RGB"))
    face_uvs = loaded.visual.uv[loaded.faces]
    weights = probe_weights(4)
    np.testing.assert_allclose(
        atlas_samples(atlas, face_uvs, weights), sample_cube(cubes, weights), atol=TOLERANCE
    )


def test_write_obj_files_are_standard(tmp_path):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    cubes = np.full((2, 2, 2, 2, 3), 0.25, dtype=np.float32)
    paths = write_obj(tmp_path / "out", "../my mesh", vertices, faces, cubes)
    assert paths["obj"] == tmp_path / "out" / "my_mesh.obj"
    mtl = paths["mtl"].read_text().splitlines()
    assert "newmtl my_mesh_material" in mtl
    assert "Kd 1 1 1" in mtl and "map_Kd my_mesh.png" in mtl
    obj = paths["obj"].read_text().splitlines()
    assert "mtllib my_mesh.mtl" in obj and "usemtl my_mesh_material" in obj
    assert sum(line.startswith("v ") for line in obj) == 4
    assert sum(line.startswith("vt ") for line in obj) == 6
    assert [line for line in obj if line.startswith("f ")] == ["f 1/1 2/2 3/3", "f 3/4 2/5 4/6"]
    with Image.open(paths["png"]) as image:
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), 64)


def test_write_obj_accepts_torch_and_reloads_the_cubes(tmp_path, teapot):
    t = 4
    cubes = torch.rand((teapot.num_faces, t, t, t, 3), generator=torch.Generator().manual_seed(1))
    paths = write_obj(tmp_path, "tp", torch.from_numpy(teapot.vertices), teapot.faces, cubes)
    mesh = load_mesh(paths["obj"])
    np.testing.assert_array_equal(mesh.faces, teapot.faces)
    np.testing.assert_array_equal(mesh.vertices, teapot.vertices)
    # the cube grid points on the face's simplex come back exactly through the atlas
    back = cubes_from_uv_texture(mesh.face_uvs, mesh.texture, t)
    i, j, k = np.meshgrid(*(np.arange(t),) * 3, indexing="ij")
    on_simplex = (i + j + k) == t - 1
    np.testing.assert_allclose(back[:, on_simplex], cubes.numpy()[:, on_simplex], atol=TOLERANCE)


def test_write_obj_checks_inputs(tmp_path):
    vertices = np.zeros((3, 3))
    with pytest.raises(ValueError, match="one cube per face"):
        write_obj(tmp_path, "x", vertices, [[0, 1, 2]], np.zeros((2, 1, 1, 1, 3)))
    with pytest.raises(ValueError, match="faces must index vertices"):
        write_obj(tmp_path, "x", vertices, [[0, 1, 5]], np.zeros((1, 1, 1, 1, 3)))
    assert list(tmp_path.iterdir()) == []


def test_write_glb_round_trip(tmp_path, teapot):
    cubes = np.random.default_rng(10).random((teapot.num_faces, 4, 4, 4, 3)).astype(np.float32)
    atlas, face_uvs = baked = bake_atlas(cubes)
    path = write_glb(tmp_path / "teapot.glb", teapot.vertices, teapot.faces, cubes, baked=baked)
    assert path == tmp_path / "teapot.glb"
    assert [p.name for p in tmp_path.iterdir()] == ["teapot.glb"]

    scene = trimesh.load_scene(path)
    (geometry,) = scene.geometry.values()
    assert len(geometry.faces) == teapot.num_faces
    material = geometry.visual.material
    assert material.baseColorTexture.size == (atlas.shape[1], atlas.shape[0])
    assert material.doubleSided

    mesh = load_mesh(path)
    assert mesh.num_vertices == teapot.num_vertices and mesh.num_faces == teapot.num_faces
    np.testing.assert_array_equal(mesh.vertices[mesh.faces], teapot.vertices[teapot.faces])
    np.testing.assert_array_equal(mesh.texture, atlas)
    np.testing.assert_allclose(mesh.face_uvs, face_uvs, atol=1e-6)
    weights = probe_weights(4)
    np.testing.assert_allclose(
        atlas_samples(mesh.texture, mesh.face_uvs, weights),
        sample_cube(cubes, weights),
        atol=TOLERANCE,
    )


def test_writers_replace_existing_files_whole(tmp_path):
    vertices = np.eye(3)
    faces = [[0, 1, 2]]
    write_glb(tmp_path / "a.glb", vertices, faces, np.zeros((1, 1, 1, 1, 3)))
    write_glb(tmp_path / "a.glb", vertices, faces, np.ones((1, 1, 1, 1, 3)))
    np.testing.assert_array_equal(load_mesh(tmp_path / "a.glb").texture, 255)
    write_obj(tmp_path, "a", vertices, faces, np.zeros((1, 1, 1, 1, 3)))
    write_obj(tmp_path, "a", vertices, faces, np.ones((1, 1, 1, 1, 3)))
    np.testing.assert_array_equal(load_mesh(tmp_path / "a.obj").texture, 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.glb", "a.mtl", "a.obj", "a.png"]


def test_glb_container_is_well_formed(tmp_path):
    import json
    import struct

    from meshstyle.glb import glb_bytes

    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], dtype=np.float32)
    uvs = np.array([[0.0, 0.0], [1.0, 0.25], [0.5, 1.0]])
    data = glb_bytes(positions, uvs, np.array([[0, 1, 2]]), b"\x89PNG12345")
    magic, version, total = struct.unpack_from("<III", data)
    assert (magic, version, total) == (0x46546C67, 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    assert bin_type == 0x004E4942 and bin_length % 4 == 0
    assert 28 + json_length + bin_length == len(data)
    binary = data[28 + json_length :]
    assert document["buffers"] == [{"byteLength": bin_length}]
    views = document["bufferViews"]
    assert all(view["byteOffset"] % 4 == 0 for view in views)
    position = document["accessors"][0]
    assert position["min"] == [0, 0, 0] and position["max"] == [1, 2, 0]
    uv_view = views[document["accessors"][1]["bufferView"]]
    stored = np.frombuffer(binary, "<f4", 6, uv_view["byteOffset"]).reshape(3, 2)
    np.testing.assert_array_equal(stored, [[0, 1], [1, 0.75], [0.5, 0]])  # glTF's v is down
    image_view = views[document["images"][0]["bufferView"]]
    start = image_view["byteOffset"]
    assert binary[start : start + image_view["byteLength"]] == b"\x89PNG12345"


def _glb_document(path):
    import json
    import struct

    data = path.read_bytes()
    (json_length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + json_length])


def test_glb_shares_vertices_whose_uvs_agree(tmp_path):
    # A quad of two faces: one vertex per corner where the UVs agree, a split on a seam.
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = {0: [0.0, 0.0], 1: [1.0, 0.0], 2: [1.0, 1.0], 3: [0.0, 1.0]}
    face_uvs = np.array([[uv[i] for i in face] for face in faces], dtype=np.float32)
    atlas = np.full((4, 4, 3), 128, dtype=np.uint8)
    cubes = np.zeros((2, 1, 1, 1, 3))
    write_glb(tmp_path / "shared.glb", vertices, faces, cubes, baked=(atlas, face_uvs))
    seam = face_uvs.copy()
    seam[1, 1] = [0.5, 0.5]  # vertex 2 has another UV in the second face
    write_glb(tmp_path / "seam.glb", vertices, faces, cubes, baked=(atlas, seam))
    for name, count in (("shared", 4), ("seam", 5)):
        position = _glb_document(tmp_path / f"{name}.glb")["accessors"][0]
        assert position["count"] == count, name
        mesh = load_mesh(tmp_path / f"{name}.glb")
        np.testing.assert_array_equal(mesh.vertices[mesh.faces], vertices[faces])
    np.testing.assert_allclose(load_mesh(tmp_path / "seam.glb").face_uvs, seam, atol=1e-6)
