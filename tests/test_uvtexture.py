"""UV texture images: unwrap, bilinear lookup into cubes, the pyramid and its export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from meshstyle.textures import cube_grid_weights, sample_image
from meshstyle.uvtexture import BilinearMap, PyramidTexture, SeamPoints, unwrap, uv_grid


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=2)
    return np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.faces)


def test_unwrap_keeps_faces_and_gives_uvs_in_the_unit_square(sphere):
    vertices, faces = sphere
    uv = unwrap(vertices, faces, 128)
    assert uv.shape == (len(faces), 3, 2)
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    # charts do not collapse faces: every face keeps a positive UV area
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    assert np.all(np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) > 0)


def test_lookup_matches_sample_image():
    rng = np.random.default_rng(0)
    image = rng.random((16, 24, 3)).astype(np.float32)
    uv = rng.random((200, 2))
    lookup = BilinearMap(uv, 16, 24)
    got = lookup(torch.as_tensor(image.reshape(-1, 3))).numpy()
    # away from the border sample_image's wrap and our clamp agree
    inside = (uv[:, 0] * 24 > 0.5) & (uv[:, 0] * 24 < 23.5)
    inside &= (uv[:, 1] * 16 > 0.5) & (uv[:, 1] * 16 < 15.5)
    assert np.allclose(got[inside], sample_image(image, uv[inside]), atol=1e-5)
    # at the border the lookup clamps to the edge texel
    corner = lookup_one(image, [0.0, 1.0])
    assert np.allclose(corner, image[0, 0], atol=1e-6)


def lookup_one(image, uv):
    h, w = image.shape[:2]
    return BilinearMap(np.array([uv]), h, w)(torch.as_tensor(image.reshape(-1, 3))).numpy()[0]


def test_lookup_backward_is_the_transpose():
    rng = np.random.default_rng(1)
    uv = rng.random((50, 2))
    lookup = BilinearMap(uv, 5, 7)
    texels = torch.rand(35, 3, requires_grad=True)
    weights = torch.rand(50, 3)
    (lookup(texels) * weights).sum().backward()
    # the lookup is linear: its Jacobian, column by column, from unit images
    jacobian = np.stack(
        [lookup(torch.eye(35)[:, i : i + 1]).numpy()[:, 0] for i in range(35)], axis=1
    )
    assert np.allclose(texels.grad.numpy(), jacobian.T @ weights.numpy(), atol=1e-5)


def test_colour_lookups_equal_channel_by_channel_ones_bit_for_bit():
    # Three channels take their own unrolled path through both kernels.
    rng = np.random.default_rng(2)
    lookup = BilinearMap(rng.random((300, 2)), 9, 11)
    texels = torch.rand(99, 3, requires_grad=True)
    weights = torch.rand(300, 3)
    out = lookup(texels)
    (out * weights).sum().backward()
    for c in range(3):
        one = texels.detach()[:, c : c + 1].clone().requires_grad_()
        single = lookup(one)
        (single * weights[:, c : c + 1]).sum().backward()
        assert torch.equal(out.detach()[:, c : c + 1], single.detach())
        assert torch.equal(texels.grad[:, c : c + 1], one.grad)


def test_cubes_read_the_image_at_each_grid_points_uv(sphere):
    vertices, faces = sphere
    uv = unwrap(vertices, faces, 64)
    texture = PyramidTexture(uv, 64, 3, torch.tensor([0.2, 0.5, 0.7]))
    with torch.no_grad():
        for level in texture.levels:
            level.normal_()
        image = texture.image().numpy()
        cubes = texture.cubes().numpy()
    assert cubes.shape == (len(faces), 3, 3, 3, 3)
    # grid point (i, j, k) stands for barycentric weights (i, j, k) / (i + j + k)
    weights = cube_grid_weights(3)
    f, i, j, k = 7, 2, 1, 0
    point_uv = weights[i, j, k] @ uv[f].astype(np.float64)
    assert np.allclose(cubes[f, i, j, k], sample_image(image, point_uv[None])[0], atol=1e-5)
    assert np.allclose(uv_grid(uv, 3)[f, i, j, k], point_uv, atol=1e-6)


def test_pyramid_starts_at_the_initial_colour_and_coarse_levels_spread(sphere):
    vertices, faces = sphere
    uv = unwrap(vertices, faces, 64)
    texture = PyramidTexture(uv, 64, 2, torch.tensor([0.3, 0.4, 0.5]))
    assert [tuple(level.shape[-2:]) for level in texture.levels] == [
        (64, 64),
        (32, 32),
        (16, 16),
        (8, 8),
    ]
    assert torch.allclose(texture.cubes(), torch.tensor([0.3, 0.4, 0.5]), atol=1e-4)
    with torch.no_grad():
        texture.levels[-1][0, :, 4, 4] = 1.0
        image = texture.image()
    changed = (image - torch.tensor([0.3, 0.4, 0.5])).abs().amax(dim=-1) > 1e-3
    # one coarse texel changes a whole region of the full-resolution image
    assert changed.sum() > 64


def test_export_gives_uint8_image_and_the_uvs(sphere):
    vertices, faces = sphere
    uv = unwrap(vertices, faces, 32)
    image, face_uvs = PyramidTexture(uv, 32, 2, torch.tensor([1.0, 0.0, 0.5])).export()
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert np.array_equal(face_uvs, uv)
    assert np.abs(image[5, 5].astype(int) - [255, 0, 128]).max() <= 1


def _quad(second_uvs):
    """Two triangles sharing the edge 0-2; the second face's UVs as given."""
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    face_uvs = np.array([[[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]], second_uvs], dtype=np.float32)
    return faces, face_uvs


def test_no_seam_where_neighbours_share_uvs():
    faces, face_uvs = _quad([[0.1, 0.1], [0.4, 0.4], [0.1, 0.4]])
    seams = SeamPoints(faces, face_uvs, 3)
    assert seams.groups == 0 and len(seams.point) == 0
    assert float(seams.gap(torch.rand(2, 3, 3, 3, 3))) == 0.0


def test_one_texel_cubes_have_no_seam_points():
    faces, face_uvs = _quad([[0.6, 0.6], [0.9, 0.9], [0.6, 0.9]])
    seams = SeamPoints(faces, face_uvs, 1)  # the one grid point is each face's centroid
    assert seams.groups == 0 and float(seams.gap(torch.rand(2, 1, 1, 1, 3))) == 0.0


def test_seam_groups_pair_the_points_of_a_cut_edge():
    # The second face in another chart: the shared edge 0-2 is a seam.
    faces, face_uvs = _quad([[0.6, 0.6], [0.9, 0.9], [0.6, 0.9]])
    t = 3
    seams = SeamPoints(faces, face_uvs, t)
    # The T = 3 grid points on an edge stand for its two corners and the points at weights
    # 1:2, 1:1 (also 2:2) and 2:1: five surface points, each read by both faces.
    assert seams.groups == 5
    weights = cube_grid_weights(t).reshape(-1, 3)
    face, entry = seams.point // t**3, seams.point % t**3
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    position = np.einsum("nk,nkc->nc", weights[entry], vertices[faces[face]])
    for group in range(seams.groups):
        same = position[seams.group == group]
        assert np.allclose(same, same[0]) and len(same) >= 2
        assert len(set(face[seams.group == group].tolist())) == 2
    # Equal colours on both sides: no gap; one side 0.2 darker: the mean squared distance
    # from the mean is 3 channels x 0.1^2.
    cubes = torch.full((2, t, t, t, 3), 0.5)
    assert float(seams.gap(cubes)) == 0.0
    cubes[1] -= 0.2
    assert float(seams.gap(cubes)) == pytest.approx(3 * 0.1**2, rel=1e-5)


def test_seam_points_of_an_unwrapped_sphere_are_one_surface_point(sphere):
    vertices, faces = sphere
    uv = unwrap(vertices, faces, 128)
    t = 3
    seams = SeamPoints(faces, uv, t)
    assert seams.groups > 0
    weights = cube_grid_weights(t).reshape(-1, 3)
    face, entry = seams.point // t**3, seams.point % t**3
    position = np.einsum("nk,nkc->nc", weights[entry], vertices[faces[face]])
    grid_uv = uv_grid(uv, t).reshape(-1, 2)[seams.point]
    for group in range(seams.groups):
        members = seams.group == group
        assert np.abs(position[members] - position[members][0]).max() < 1e-5
        assert np.abs(grid_uv[members] - grid_uv[members][0]).max() > 1e-5  # a real seam


def _stand_in_worker(folder, crash_when: str):
    """A worker script that logs each call's first vertex, then crashes
    (SIGSEGV, as xatlas does) when ``crash_when`` holds, else unwraps as the real one."""
    import meshstyle.uvtexture as uvtexture

    log = folder / "calls.txt"
    script = folder / "worker.py"
    script.write_text(
        "import json, os, signal, sys\n"
        "import numpy as np\n"
        f"sys.path.insert(0, {str(uvtexture._WORKER.parent)!r})\n"
        "data = np.load(sys.argv[1])\n"
        "vertices = data['vertices']\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(vertices[0].tolist()) + '\\n')\n"
        f"if {crash_when}:\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
        "import unwrap_worker\n"
        "sys.exit(unwrap_worker.main(sys.argv[1:]))\n"
    )
    return script, log


def test_a_crashing_unwrap_is_retried_on_moved_vertices(sphere, tmp_path, monkeypatch):
    import meshstyle.uvtexture as uvtexture

    vertices, faces = sphere
    # Crash on the exact positions only, as xatlas does on the big icosphere.
    script, log = _stand_in_worker(tmp_path, f"vertices[0].tolist() == {vertices[0].tolist()}")
    monkeypatch.setattr(uvtexture, "_WORKER", script)
    uv = unwrap(vertices, faces, 64)
    assert uv.shape == (len(faces), 3, 2) and uv.min() >= 0.0 and uv.max() <= 1.0
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    moved = np.array(json.loads(calls[1]))
    shift = np.abs(moved - vertices[0]).max()
    assert 0 < shift < 1e-3 * np.ptp(vertices, axis=0).max()


def test_an_unwrap_that_always_crashes_is_a_one_line_error(sphere, tmp_path, monkeypatch):
    import meshstyle.uvtexture as uvtexture

    vertices, faces = sphere
    script, log = _stand_in_worker(tmp_path, "True")
    monkeypatch.setattr(uvtexture, "_WORKER", script)
    with pytest.raises(ValueError, match=r"xatlas\) crashed on this mesh \(signal SIGSEGV\)"):
        unwrap(vertices, faces, 64)
    assert len(log.read_text().splitlines()) == 2


@pytest.mark.slow
def test_the_big_icosphere_that_crashes_xatlas_unwraps():
    # xatlas 0.0.11 crashes in its chart packing on these exact positions (a segmentation
    # fault that used to end the process); unwrap retries on moved vertices.
    mesh = trimesh.creation.icosphere(subdivisions=6)
    faces = np.asarray(mesh.faces)
    uv = unwrap(np.asarray(mesh.vertices, dtype=np.float32), faces, 256)
    assert uv.shape == (len(faces), 3, 2)
    assert np.isfinite(uv).all() and uv.min() >= 0.0 and uv.max() <= 1.0


def test_a_layout_is_made_once_a_process_and_a_failure_remembered(sphere, tmp_path, monkeypatch):
    import meshstyle.uvtexture as uvtexture

    vertices, faces = sphere
    script, log = _stand_in_worker(tmp_path, "False")
    monkeypatch.setattr(uvtexture, "_WORKER", script)
    first = unwrap(vertices, faces, 64)
    first[:] = -1.0  # the caller's copy: the kept layout is not touched
    again = unwrap(vertices.copy(), faces.copy(), 64)
    assert len(log.read_text().splitlines()) == 1
    assert again.min() >= 0.0 and again.max() <= 1.0
    unwrap(vertices, faces, 128)  # another resolution is another layout
    unwrap(vertices * 2.0, faces, 64)  # and so is another shape
    assert len(log.read_text().splitlines()) == 3

    # A mesh whose unwrap crashes twice fails at once the next time, with the same words.
    (tmp_path / "crash").mkdir()
    crashing, crash_log = _stand_in_worker(tmp_path / "crash", "True")
    monkeypatch.setattr(uvtexture, "_WORKER", crashing)
    shifted = vertices + 1.0
    messages = []
    for _ in range(2):
        with pytest.raises(ValueError, match="crashed on this mesh") as error:
            unwrap(shifted, faces, 64)
        messages.append(str(error.value))
    assert len(crash_log.read_text().splitlines()) == 2 and messages[0] == messages[1]


def test_kept_layouts_stay_within_their_memory_limit(sphere, monkeypatch):
    import meshstyle.uvtexture as uvtexture

    vertices, faces = sphere
    size = len(faces) * 3 * 2 * 4
    monkeypatch.setattr(uvtexture, "_LAYOUT_CACHE_BYTES", 2 * size)
    for shift in range(4):
        unwrap(vertices + shift, faces, 32)
    assert len(uvtexture._LAYOUTS) == 2
