"""Mesh files as people write them: relative indices, other encodings, binary junk."""

import numpy as np
import pytest
from PIL import Image

from meshstyle.mesh import MeshError, load_mesh


def test_relative_indices_count_back_from_the_vertices_read_so_far(tmp_path):
    path = tmp_path / "two.obj"
    path.write_text(
        "o a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\no b\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf -3 -2 -1\n"
    )
    mesh = load_mesh(path)
    corners = np.sort(mesh.vertices[mesh.faces].reshape(-1, 3)[:, 2])
    assert len(mesh.faces) == 2
    np.testing.assert_array_equal(corners, [0, 0, 0, 1, 1, 1])  # one triangle at each z


def test_relative_uv_indices(tmp_path):
    Image.fromarray(np.full((4, 4, 3), (255, 0, 0), np.uint8)).save(tmp_path / "red.png")
    (tmp_path / "m.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd red.png\n")
    path = tmp_path / "uv.obj"
    path.write_text(
        "mtllib m.mtl\nvt 0.5 0.5\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
        "usemtl m\nf -3/-3 -2/-2 -1/-1\n"
    )
    mesh = load_mesh(path)
    np.testing.assert_allclose(np.sort(mesh.face_uvs[0].ravel()), [0, 0, 0, 0, 1, 1])


@pytest.mark.parametrize("where", ["obj", "mtl"])
def test_latin1_comments_keep_the_texture(tmp_path, where):
    Image.fromarray(np.full((4, 4, 3), (0, 0, 255), np.uint8)).save(tmp_path / "blue.png")
    mtl = b"newmtl m\n" + (b"# cr\xe8me br\xfbl\xe9e\n" if where == "mtl" else b"")
    (tmp_path / "m.mtl").write_bytes(mtl + b"Kd 1 1 1\nmap_Kd blue.png\n")
    comment = b"# caf\xe9 (Latin-1), mentions mtllib other.mtl\n" if where == "obj" else b""
    path = tmp_path / "tex.obj"
    path.write_bytes(
        comment + b"mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
        b"usemtl m\nf 1/1 2/2 3/3\n"
    )
    mesh = load_mesh(path)
    assert mesh.texture is not None and mesh.face_uvs is not None
    assert mesh.texture[..., 2].mean() > 200 and mesh.texture[..., 0].mean() < 50


def test_binary_data_in_an_obj_is_named(tmp_path):
    path = tmp_path / "blob.obj"
    path.write_bytes(
        b"v 0 0 0\nv 1 0 0\nv 0 1 0\n\x00\x01\xff\xfe" + bytes(range(256)) + b"f 1 2 3\n"
    )
    with pytest.raises(MeshError, match=r"blob\.obj: cannot parse as OBJ: binary data at byte 24"):
        load_mesh(path)


def test_non_utf8_obj_without_texture_loads(tmp_path):
    path = tmp_path / "plain.obj"
    path.write_bytes(b"# \xa9 1998 \xc9tude\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert len(load_mesh(path).faces) == 1


LATIN1_FILES = {
    "a.off": b"OFF\n# caf\xe9\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
    "a.ply": b"ply\nformat ascii 1.0\ncomment caf\xe9\nelement vertex 3\nproperty float x\n"
    b"property float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\n"
    b"end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
    "a.stl": b"solid caf\xe9\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\n"
    b"vertex 0 1 0\nendloop\nendfacet\nendsolid\n",
}


@pytest.mark.parametrize("name", sorted(LATIN1_FILES))
def test_latin1_text_in_other_formats(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(LATIN1_FILES[name])
    assert len(load_mesh(path).faces) == 1


@pytest.mark.parametrize("suffix", [".stl", ".ply"])
def test_binary_stl_and_ply_still_load(tmp_path, suffix):
    import trimesh

    path = tmp_path / f"ball{suffix}"
    trimesh.creation.icosphere(subdivisions=1).export(path)
    assert len(load_mesh(path).faces) == 80


def test_binary_data_in_an_off_file_is_named(tmp_path):
    path = tmp_path / "junk.off"
    path.write_bytes(b"OFF\n" + bytes(range(256)) * 4)
    with pytest.raises(MeshError, match=r"junk\.off: cannot parse as OFF: binary data at byte 4"):
        load_mesh(path)
