"""OBJ files as people write them: relative indices, other encodings, binary junk."""

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
