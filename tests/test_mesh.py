"""Mesh loading, validation, welding, normalisation and decimation."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from meshstyle.mesh import (
    SUPPORTED_SUFFIXES,
    Mesh,
    MeshError,
    Normalisation,
    decimate,
    load_mesh,
    normalise,
    sanitise_name,
    weld,
)
from tests.testdata import make_assets_module, shared_meshes


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def unwelded_box(offset=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """A 12-face box whose faces share no vertices (36 corners)."""
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    vertices = box.vertices[box.faces].reshape(-1, 3) + np.asarray(offset)
    return trimesh.Trimesh(vertices, np.arange(36).reshape(12, 3), process=False)


def textured_box(image: np.ndarray, seed: int = 0) -> tuple[trimesh.Trimesh, np.ndarray]:
    """An unwelded box with random per-corner UVs; returns the mesh and (12, 3, 2) UVs."""
    mesh = unwelded_box()
    uv = np.random.default_rng(seed).random((36, 2))
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(image), baseColorFactor=[255, 255, 255, 255]
    )
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return mesh, uv.reshape(12, 3, 2)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------
# formats


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".off", ".glb"])
def test_each_format_loads_and_welds(tmp_path, suffix):
    path = tmp_path / f"box{suffix}"
    unwelded_box().export(path)
    before = digest(path)
    mesh = load_mesh(path)
    assert mesh.faces.shape == (12, 3)
    assert mesh.vertices.shape == (8, 3)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int64
    assert mesh.name == "box" and mesh.source == path
    np.testing.assert_allclose(mesh.vertices.max(axis=0), [1.0, 0.5, 0.25], atol=1e-6)
    # every face keeps its geometry through the weld
    areas = trimesh.triangles.area(mesh.vertices[mesh.faces].astype(np.float64))
    np.testing.assert_allclose(areas.sum(), trimesh.creation.box(extents=(2, 1, 0.5)).area)
    assert digest(path) == before


def test_gltf_with_external_buffer(tmp_path):
    files = unwelded_box().export(file_type="gltf")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    mesh = load_mesh(tmp_path / "model.gltf")
    assert mesh.faces.shape == (12, 3) and mesh.vertices.shape == (8, 3)


def test_suffix_is_case_insensitive(tmp_path):
    path = tmp_path / "BOX.OBJ"
    unwelded_box().export(path, file_type="obj")
    assert load_mesh(path).num_faces == 12


def test_polygons_are_triangulated(tmp_path):
    path = write(
        tmp_path / "quads.obj",
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nv 2 1 0\nf 1 2 3 4\nf 2 5 6 3\n",
    )
    mesh = load_mesh(path)
    assert mesh.faces.shape == (4, 3)
    area = trimesh.triangles.area(mesh.vertices[mesh.faces].astype(np.float64)).sum()
    assert area == pytest.approx(2.0)


def test_glb_with_uv_texture_keeps_uvs_and_image(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (8, 16, 3), dtype=np.uint8)
    box, uv = textured_box(image)
    path = tmp_path / "textured.glb"
    box.export(path)
    mesh = load_mesh(path)
    assert mesh.has_texture
    np.testing.assert_array_equal(mesh.texture, image)
    np.testing.assert_allclose(mesh.face_uvs, uv, atol=1e-6)
    # welding joins the split corners but the UVs stay per face corner
    assert mesh.vertices.shape == (8, 3)


def test_glb_base_colour_factor_tints_the_texture(tmp_path):
    image = np.full((2, 2, 3), 255, dtype=np.uint8)
    box, _ = textured_box(image)
    box.visual.material.baseColorFactor = [255, 0, 0, 255]
    path = tmp_path / "tinted.glb"
    box.export(path)
    np.testing.assert_array_equal(load_mesh(path).texture, np.broadcast_to([255, 0, 0], (2, 2, 3)))


def test_obj_with_texture_keeps_uvs_and_image(tmp_path):
    image = np.random.default_rng(2).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "tex.png")
    write(tmp_path / "quad.mtl", "newmtl m\nKd 1 1 1\nmap_Kd tex.png\n")
    path = write(
        tmp_path / "quad.obj",
        "mtllib quad.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n",
    )
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.texture, image)
    np.testing.assert_allclose(mesh.face_uvs[0], [[0, 0], [1, 0], [1, 1]], atol=1e-6)
    np.testing.assert_allclose(mesh.face_uvs[1], [[0, 0], [1, 1], [0, 1]], atol=1e-6)


def test_scene_with_two_geometries_concatenates_with_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(unwelded_box(), geom_name="a")
    moved = np.eye(4)
    moved[:3, 3] = [10.0, 0.0, 0.0]
    scene.add_geometry(unwelded_box(), geom_name="b", transform=moved)
    path = tmp_path / "two.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert mesh.faces.shape == (24, 3) and mesh.vertices.shape == (16, 3)
    np.testing.assert_allclose(mesh.vertices.min(axis=0), [-1.0, -0.5, -0.25], atol=1e-6)
    np.testing.assert_allclose(mesh.vertices.max(axis=0), [11.0, 0.5, 0.25], atol=1e-6)


def test_mirroring_transform_keeps_faces_outward(tmp_path):
    scene = trimesh.Scene()
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=1), transform=mirror)
    path = tmp_path / "mirrored.glb"
    scene.export(path)
    mesh = load_mesh(path)
    tri = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tri.volume > 0  # positive volume: counter-clockwise seen from outside


def test_two_textured_geometries_pack_into_one_texture(tmp_path):
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    blue = np.zeros((8, 2, 3), dtype=np.uint8)
    blue[..., 2] = 255
    scene = trimesh.Scene()
    scene.add_geometry(textured_box(red, seed=3)[0], geom_name="red")
    scene.add_geometry(textured_box(blue, seed=4)[0], geom_name="blue")
    path = tmp_path / "packed.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert mesh.has_texture and mesh.face_uvs.shape == (24, 3, 2)
    from meshstyle.textures import sample_image

    colours = sample_image(mesh.texture, mesh.face_uvs, wrap=False)  # (24, 3, 3)
    expected = {"red": [1, 0, 0], "blue": [0, 0, 1]}
    for part, name in enumerate(load_scene_order(path)):
        # UVs sit half a texel inside each packed image: no colour from the neighbour
        np.testing.assert_allclose(
            colours[12 * part : 12 * part + 12],
            np.broadcast_to(expected[name], (12, 3, 3)),
            atol=1e-5,
        )


def load_scene_order(path: Path) -> list[str]:
    scene = trimesh.load_scene(path)
    return [scene.graph[node][1] for node in scene.graph.nodes_geometry]


# --------------------------------------------------------------------------------------
# welding


def seamed_copy(path: Path, out: Path) -> int:
    """Write ``out``: the mesh at ``path`` with a seam, the faces on its +x side given their
    own copies of their corners, as UV seams leave them.

    Returns:
        The number of vertices the faces use (vertices used by none are not loaded).
    """
    source = trimesh.load(path, process=False, force="mesh")
    vertices = np.asarray(source.vertices)
    faces = np.asarray(source.faces).copy()
    right = vertices[faces].mean(axis=1)[:, 0] > 0
    copied = np.unique(faces[right])
    renumber = np.full(len(vertices), -1)
    renumber[copied] = len(vertices) + np.arange(len(copied))
    faces[right] = renumber[faces[right]]
    make_assets = make_assets_module()
    text = make_assets.obj_text("seamed", np.concatenate([vertices, vertices[copied]]), faces)
    out.write_text(text)
    return len(np.unique(faces))


@pytest.mark.parametrize("name", ["teapot", *shared_meshes("teapot")])
def test_welds_seam_vertices(mesh_path, tmp_path, name):
    path = tmp_path / "seamed.obj"
    n_used = seamed_copy(mesh_path(name), path)
    raw = trimesh.load(path, process=False, force="mesh")
    # What welding must come to: the distinct positions of the corners, counted by NumPy.
    n_distinct = len(np.unique(raw.vertices[np.unique(raw.faces)], axis=0))
    before = digest(path)
    mesh = load_mesh(path)
    assert len(raw.vertices) == n_used > n_distinct + 50
    assert mesh.num_vertices == n_distinct
    assert mesh.num_faces == len(raw.faces)
    assert len(np.unique(mesh.vertices, axis=0)) == mesh.num_vertices
    # same triangles, face for face
    np.testing.assert_array_equal(
        mesh.vertices[mesh.faces], raw.vertices[raw.faces].astype(np.float32)
    )
    assert digest(path) == before


@pytest.mark.parametrize("name", ["knot", "sphere", *shared_meshes("bunny", "sphere_642")])
def test_meshes_load(mesh_path, name):
    mesh = load_mesh(mesh_path(name))
    assert mesh.num_faces > 0 and mesh.face_uvs is None and mesh.texture is None


def test_weld_keeps_order_and_joins_signed_zeros():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [-0.0, 0, 0], [5, 5, 5]])
    faces = np.array([[0, 1, 2], [3, 2, 1]])
    welded, new_faces = weld(vertices, faces)
    np.testing.assert_array_equal(welded, vertices[:3])  # unreferenced vertex 4 dropped
    np.testing.assert_array_equal(new_faces, [[0, 1, 2], [0, 2, 1]])


# --------------------------------------------------------------------------------------
# normalisation


@pytest.mark.parametrize(
    ("scale", "offset"),
    [(1.0, 0.0), (1e8, 0.0), (1e-8, 0.0), (1e8, 3e8), (1e-8, -5e-8), (3.0, 1000.0)],
)
def test_normalisation_round_trip(scale, offset):
    rng = np.random.default_rng(5)
    vertices = (rng.normal(size=(50, 3)) * [1.0, 0.3, 0.1] * scale + offset).astype(np.float32)
    mesh = Mesh(vertices, rng.integers(0, 50, (20, 3)))
    normalised, norm = normalise(mesh)
    v = normalised.vertices
    assert np.all(np.isfinite(v))
    lo, hi = v.min(axis=0), v.max(axis=0)
    assert np.max(hi - lo) == pytest.approx(2.0, abs=1e-6)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
    assert lo[0] == pytest.approx(-1.0, abs=1e-6) and hi[0] == pytest.approx(1.0, abs=1e-6)
    back = norm.invert(norm.apply(vertices.astype(np.float64)))
    np.testing.assert_allclose(back, vertices, rtol=1e-12, atol=abs(offset) * 1e-15)
    np.testing.assert_allclose(
        norm.invert(v), vertices, rtol=1e-6, atol=1e-6 * (abs(offset) + scale)
    )
    assert norm.invert(v).dtype == np.float32


def test_normalisation_of_flat_mesh():
    vertices = np.array([[0, 0, 7], [4, 0, 7], [0, 2, 7]], dtype=np.float32)
    normalised, norm = normalise(Mesh(vertices, [[0, 1, 2]]))
    np.testing.assert_allclose(normalised.vertices, [[-1, -0.5, 0], [1, -0.5, 0], [-1, 0.5, 0]])
    np.testing.assert_allclose(norm.centre, [2, 1, 7])
    assert norm.scale == pytest.approx(0.5)


def test_normalising_a_single_point_is_an_error():
    mesh = Mesh(np.ones((3, 3), dtype=np.float32), [[0, 1, 2]], name="dot")
    with pytest.raises(MeshError, match="dot: .*one point"):
        normalise(mesh)


def test_normalisation_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    norm = Normalisation(centre=[1.0, 2.0, 3.0], scale=4.0)
    v = torch.tensor([[1.0, 2.0, 3.5]], requires_grad=True)
    out = norm.apply(v)
    assert out.dtype == torch.float32
    assert out.tolist() == [[0.0, 0.0, 2.0]]
    out.sum().backward()
    assert v.grad.tolist() == [[4.0, 4.0, 4.0]]
    assert norm.invert(out).tolist() == [[1.0, 2.0, 3.5]]
    assert norm.as_dict() == {"centre": [1.0, 2.0, 3.0], "scale": 4.0}
    with pytest.raises(ValueError, match="read-only"):
        norm.centre[0] = 5.0


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_normalisation_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        Normalisation(centre=[0, 0, 0], scale=scale)


# --------------------------------------------------------------------------------------
# hard inputs


def expect_error(path: Path, pattern: str, **kwargs) -> str:
    before = digest(path) if path.is_file() else None
    with pytest.raises(MeshError, match=pattern) as info:
        load_mesh(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    assert "Traceback" not in message
    if before is not None:
        assert digest(path) == before
    return message


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nothere.obj", "no such file")


def test_directory_is_not_a_file(tmp_path):
    folder = tmp_path / "folder.obj"
    folder.mkdir()
    expect_error(folder, "not a regular file")


def test_unsupported_extension(tmp_path):
    path = write(tmp_path / "points.xyz", "0 0 0\n")
    message = expect_error(path, "unsupported file type '.xyz'")
    assert ".obj" in message


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    expect_error(path, "file is empty")


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes(tmp_path, suffix, seed):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(seed).bytes(2000))
    expect_error(path, "cannot parse|no mesh data|no faces|degenerate|NaN")


def test_text_that_is_not_a_mesh(tmp_path):
    expect_error(write(tmp_path / "notes.obj", "hello world\n"), "no mesh data found")


def test_nan_coordinates(tmp_path):
    path = write(tmp_path / "nan.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    expect_error(path, "1 vertices have NaN or Inf")


def test_inf_coordinates(tmp_path):
    path = tmp_path / "inf.ply"
    mesh = trimesh.Trimesh([[0, 0, 0], [1, 0, np.inf], [0, 1, 0]], [[0, 1, 2]], process=False)
    mesh.export(path)
    expect_error(path, "NaN or Inf")


def test_point_cloud(tmp_path):
    path = write(tmp_path / "bunny.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    message = expect_error(path, "no faces")
    assert message == f"{path}: mesh has no faces (a point cloud?)"


def test_point_cloud_ply(tmp_path):
    path = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(0).random((10, 3))).export(path)
    expect_error(path, "no faces")


def test_only_degenerate_faces(tmp_path):
    path = write(
        tmp_path / "flat.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nv 3 0 0\nf 1 2 3\nf 2 3 4\nf 1 1 2\n"
    )
    expect_error(path, "all 3 faces are degenerate")


def test_degenerate_and_out_of_range_faces_are_dropped(tmp_path):
    path = write(
        tmp_path / "mixed.obj",
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 2 0 0\nf 1 2 3\nf 1 2 4\nf 1 2 9\nf 2 3 -1\n",
    )
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [1, 2, 3]])
    assert mesh.num_vertices == 4


def test_out_of_range_faces_in_ply_are_dropped(tmp_path):
    path = write(
        tmp_path / "bad.ply",
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nelement face 2\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 7\n",
    )
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2]])


def test_too_many_faces_suggests_decimate(mesh_path):
    path = mesh_path("teapot")
    n_faces = len(trimesh.load(path, process=False, force="mesh").faces)
    message = expect_error(path, f"{n_faces} faces, more than the limit of 1000", max_faces=1000)
    assert "--decimate 1000" in message
    assert load_mesh(path, max_faces=n_faces).num_faces == n_faces


def test_float32_overflow(tmp_path):
    path = write(tmp_path / "huge.obj", "v 0 0 0\nv 1e300 0 0\nv 0 1 0\nf 1 2 3\n")
    expect_error(path, "float32 range")


def test_huge_and_tiny_files_normalise(tmp_path):
    # 1e-30: areas of order 1e-60 underflow float32; faces must still count as good.
    for scale in (1e30, 1e8, 1e-8, 1e-30):
        # PLY stores float32 exactly; trimesh's OBJ writer rounds to 8 decimals
        path = tmp_path / f"box_{scale:g}.ply"
        box = unwelded_box()
        trimesh.Trimesh(box.vertices * scale, box.faces, process=False).export(path)
        normalised, norm = normalise(load_mesh(path))
        np.testing.assert_allclose(np.ptp(normalised.vertices, axis=0), [2.0, 1.0, 0.5], rtol=1e-6)
        assert norm.scale == pytest.approx(1.0 / scale)


# --------------------------------------------------------------------------------------
# names and the Mesh container


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("teapot", "teapot"),
        ("my teapot v2", "my_teapot_v2"),
        ("../../etc/passwd", "etc_passwd"),
        ("a\\b/c", "a_b_c"),
        ("..", "mesh"),
        ("", "mesh"),
        ("x\x00y\x1b", "x_y"),
        ("Café", "Cafe"),
        ("CON", "CON_"),
        ("a..b", "a_b"),
        (".hidden", "hidden"),
        ("x" * 300, "x" * 64),
    ],
)
def test_sanitise_name(raw, safe):
    assert sanitise_name(raw) == safe


def test_mesh_name_comes_from_a_sanitised_stem(tmp_path):
    path = tmp_path / "my teapot (final).obj"
    unwelded_box().export(path)
    assert load_mesh(path).name == "my_teapot_final"


def test_mesh_validates_shapes():
    with pytest.raises(ValueError, match=r"faces must be int, shape \(F, 3\); got float64"):
        Mesh(np.zeros((3, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="faces must index vertices 0..2"):
        Mesh(np.zeros((3, 3)), [[0, 1, 3]])
    with pytest.raises(ValueError, match=r"vertices must have shape \(V, 3\)"):
        Mesh(np.zeros((3, 2)), [[0, 1, 2]])
    with pytest.raises(ValueError, match="face_uvs"):
        Mesh(np.zeros((3, 3)), [[0, 1, 2]], face_uvs=np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="texture must be uint8"):
        Mesh(np.zeros((3, 3)), [[0, 1, 2]], texture=np.zeros((2, 2, 3)))


# --------------------------------------------------------------------------------------
# decimation

needs_simplifier = pytest.mark.skipif(
    importlib.util.find_spec("fast_simplification") is None,
    reason="fast-simplification not installed",
)


@needs_simplifier
@pytest.mark.parametrize("name", ["knot", "teapot", *shared_meshes("bunny")])
def test_decimate(mesh_path, name):
    mesh = load_mesh(mesh_path(name))
    simple = decimate(mesh, 1000)
    assert 900 <= simple.num_faces <= 1000
    assert simple.num_vertices < mesh.num_vertices
    assert simple.name == mesh.name and simple.face_uvs is None
    lo, hi = simple.vertices.min(axis=0), simple.vertices.max(axis=0)
    np.testing.assert_allclose(lo, mesh.vertices.min(axis=0), atol=0.05 * np.ptp(mesh.vertices))
    np.testing.assert_allclose(hi, mesh.vertices.max(axis=0), atol=0.05 * np.ptp(mesh.vertices))


def test_decimate_below_target_is_identity(mesh_path):
    mesh = load_mesh(mesh_path("sphere"))
    assert mesh.num_faces < 5000
    assert decimate(mesh, 5000) is mesh


@pytest.mark.parametrize("target", [0, 3, 2.5, "100", True])
def test_decimate_rejects_bad_targets(target):
    mesh = Mesh(np.eye(3), [[0, 1, 2]], name="tri")
    with pytest.raises(MeshError, match="tri: decimate target"):
        decimate(mesh, target)


def test_decimate_without_the_package_says_how_to_install(mesh_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fast_simplification", None)
    mesh = load_mesh(mesh_path("knot"))
    with pytest.raises(MeshError, match="pip install fast-simplification"):
        decimate(mesh, 1000)


def _load_without_plain_path(path: Path, monkeypatch) -> Mesh:
    import meshstyle.mesh as module

    with monkeypatch.context() as patch:
        patch.setattr(module, "_plain_obj", lambda path: None)
        return load_mesh(path)


@pytest.mark.parametrize(
    "shape",
    [
        trimesh.creation.icosphere(subdivisions=2),
        trimesh.creation.torus(1.0, 0.3),
        trimesh.creation.box(),
    ],
)
def test_plain_obj_reads_what_trimesh_reads(tmp_path, monkeypatch, shape):
    # Geometry-only OBJ files skip trimesh (its import is half a second of every start);
    # the result must be the mesh the full reader gives.
    from meshstyle.mesh import _plain_obj

    path = tmp_path / "shape.obj"
    normals = "".join("vn {} {} {}\n".format(*n.tolist()) for n in shape.vertex_normals)
    body = "".join("v {!r} {!r} {!r}\n".format(*v.tolist()) for v in shape.vertices)
    faces = "".join(
        f"f {a + 1}//{a + 1} {b + 1}//{b + 1} {c + 1}//{c + 1}\n" for a, b, c in shape.faces
    )
    path.write_text(f"# a comment\no shape\n{body}{normals}s 1\n{faces}")
    assert _plain_obj(path) is not None
    plain = load_mesh(path)
    full = _load_without_plain_path(path, monkeypatch)
    np.testing.assert_array_equal(plain.vertices, full.vertices)
    np.testing.assert_array_equal(plain.faces, full.faces)
    assert plain.face_uvs is None and full.face_uvs is None


@pytest.mark.parametrize(
    "extra",
    ["vt 0 0\n", "mtllib box.mtl\n", "usemtl red\n", "o a\no b\n", "l 1 2\n", "v 0 0 0 1 0 0\n"],
)
def test_obj_with_more_than_geometry_takes_the_full_reader(tmp_path, extra):
    from meshstyle.mesh import _plain_obj

    path = tmp_path / "box.obj"
    trimesh.creation.box().export(path)
    path.write_text(extra + path.read_text())
    assert _plain_obj(path) is None
    assert len(load_mesh(path).faces) == 12
