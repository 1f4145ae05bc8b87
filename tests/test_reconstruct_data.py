"""The reconstruction data: procedural objects, the file layout, voxels and layout checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from meshstyle.reconstruct import procedural
from meshstyle.reconstruct.check import PASS_IOU, check_layout, silhouette_ceiling, visual_hull
from meshstyle.reconstruct.data import load_split, sample_batch
from meshstyle.reconstruct.layout import MESHSTYLE, ORIGINAL
from meshstyle.reconstruct.voxelize import voxel_iou, voxel_surface, voxelize


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recon_data")
    for kind in ("chair", "airplane"):
        for split, count in (("train", 3), ("test", 2)):
            images, voxels = procedural.make_split(kind, split, count, seed=0)
            procedural.write_split(folder, kind, split, images, voxels)
    return folder


def test_make_split_layout_and_determinism():
    images, voxels = procedural.make_split("table", "train", 2, seed=3)
    assert images.dtype == np.uint8 and images.shape == (2, 24, 4, 64, 64)
    assert voxels.dtype == np.bool_ and voxels.shape == (2, 32, 32, 32)
    again, again_voxels = procedural.make_split("table", "train", 2, seed=3)
    assert np.array_equal(images, again) and np.array_equal(voxels, again_voxels)
    other, _ = procedural.make_split("table", "train", 2, seed=4)
    assert not np.array_equal(images, other)
    alpha = images[:, :, 3]
    # Objects are in frame and on black: masks neither empty nor touching the border.
    assert alpha.reshape(48, -1).max(1).min() == 255
    assert alpha[:, :, [0, -1], :].max() == 0 and alpha[:, :, :, [0, -1]].max() == 0
    assert np.all(
        images[:, :, :3][np.broadcast_to(alpha[:, :, None] == 0, (2, 24, 3, 64, 64))] == 0
    )


@pytest.mark.parametrize("kind", sorted(procedural.CLASSES))
def test_objects_fit_the_unit_cube_and_fill_voxels(kind):
    rng = np.random.default_rng(0)
    parts = procedural.normalise(procedural.CLASSES[kind](rng))
    vertices, faces, owner = procedural.object_mesh(parts)
    assert np.abs(vertices).max() <= 0.5
    assert np.isclose((vertices.max(0) - vertices.min(0)).max(), 0.98, atol=0.02)
    assert procedural.object_voxels(parts).sum() > 50


def test_voxelize_matches_exact_inside_tests():
    rng = np.random.default_rng(1)
    for kind in procedural.CLASSES:
        parts = procedural.normalise(procedural.CLASSES[kind](rng))
        exact = procedural.object_voxels(parts)
        meshed = np.zeros_like(exact)
        for part in parts:
            meshed |= voxelize(*part.mesh())
        assert voxel_iou(exact[None], meshed[None])[0] > 0.95, kind


def test_voxelize_keeps_what_an_overlapping_surface_wraps_twice():
    import trimesh

    def box(centre, flip=False):
        mesh = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
        faces = mesh.faces[:, ::-1] if flip else mesh.faces
        return mesh.vertices + centre, faces

    (va, fa), (vb, fb) = box((-0.1, 0, 0)), box((0.1, 0, 0))
    vertices, faces = np.concatenate([va, vb]), np.concatenate([fa, fb + len(va)])
    alone = voxelize(va, fa) | voxelize(vb, fb)
    both = voxelize(vertices, faces)
    assert np.array_equal(both, alone)
    parity = voxelize(vertices, faces, inside="parity")
    assert np.array_equal(parity, voxelize(va, fa) ^ voxelize(vb, fb))
    assert (alone & ~parity).sum() > 1000  # the overlap, lost by parity
    # A surface turned inside out (all faces wound the other way) encloses the same space.
    assert np.array_equal(voxelize(va, fa[:, ::-1]), voxelize(va, fa))
    with pytest.raises(ValueError, match="inside"):
        voxelize(va, fa, inside="even")


def test_voxel_surface_round_trip():
    grid = np.zeros((32, 32, 32), dtype=bool)
    grid[4:20, 10:12, 3:30] = True
    grid[25, 25, 25] = True
    vertices, faces = voxel_surface(grid)
    assert np.array_equal(voxelize(vertices, faces), grid)


def test_load_split_reads_our_layout(small_data):
    split = load_split(small_data, "train", MESHSTYLE)
    assert split.classes == ("airplane", "chair")
    assert split.images.shape == (6, 24, 4, 64, 64)
    assert list(split.labels) == [0, 0, 0, 1, 1, 1]
    objects, views_a, views_b = sample_batch(split, np.random.default_rng(0), 10)
    assert objects.shape == views_a.shape == views_b.shape == (10,)
    assert views_a.max() < 24 and objects.max() < 6


def test_check_data_confirms_the_right_layout(small_data):
    result = check_layout(load_split(small_data, "test", MESHSTYLE), per_class=2)
    assert result.passed and result.mean > 0.85, result


def test_visual_hull_holds_the_object_and_bounds_what_silhouettes_tell(small_data):
    split = load_split(small_data, "test", MESHSTYLE)
    for n in range(len(split)):
        hull = visual_hull(split.images[n, :, 3] > 0, split.layout)
        voxels = split.voxels[n]
        # The object's voxels lie inside every one of its masks (but for a few in parts
        # thinner than a pixel, which a mask may miss), and the hull is bigger than the
        # object: concave parts are filled.
        assert (hull & voxels).sum() >= 0.95 * voxels.sum()
        assert hull.sum() > voxels.sum()
    ceiling = silhouette_ceiling(split)
    assert ceiling.shape == (len(split),) and np.all((ceiling > 0.2) & (ceiling < 1.0))
    # From a mirrored camera ring the masks no longer agree about the object.
    mirrored = dataclasses.replace(MESHSTYLE, azimuth_sign=-1.0)
    assert silhouette_ceiling(split, layout=mirrored).mean() < ceiling.mean()
    assert set(check_layout(split, per_class=2).ceiling) == set(split.classes)


def test_check_data_rejects_wrong_conventions(small_data):
    split = load_split(small_data, "test", MESHSTYLE)
    mirrored = dataclasses.replace(MESHSTYLE, azimuth_sign=-1.0)
    assert check_layout(split, mirrored, per_class=2).mean < PASS_IOU
    # The original layout read as ours: swapped voxel axes and a mirrored azimuth.
    wrong = load_split(small_data, "test", ORIGINAL)
    assert check_layout(wrong, per_class=2).mean < PASS_IOU


def test_original_layout_maps_its_conventions_onto_ours(small_data, tmp_path):
    """Files written in the original's conventions read back as our data."""
    ours = load_split(small_data, "test", MESHSTYLE)
    for index, name in enumerate(ours.classes):
        members = ours.class_members(index)
        # The original's view v is at our azimuth -15 v, and its voxels are indexed (y, x, z):
        # reorder our views and swap the axes as its files would hold them.
        views = (-np.arange(24)) % 24
        images = ours.images[members][:, views]
        voxels = ours.voxels[members].transpose(0, 2, 1, 3)
        procedural.write_split(tmp_path, name, "test", images, voxels)
    original = load_split(tmp_path, "test", ORIGINAL)
    assert np.array_equal(original.voxels, ours.voxels)
    # The original grid spans 32/31 of ours, so the check is a little looser, but passes.
    assert check_layout(original, per_class=2).passed


def test_bad_files_name_the_file_and_rule(small_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*_val_images.npz"):
        load_split(small_data, "val", MESHSTYLE)
    np.savez_compressed(tmp_path / "box_train_images.npz", np.zeros((2, 24, 3, 64, 64), np.uint8))
    with pytest.raises(ValueError, match=r"box_train_images.npz: images must be uint8, shape"):
        load_split(tmp_path, "train", MESHSTYLE)
    np.savez_compressed(tmp_path / "box_train_images.npz", np.zeros((2, 24, 4, 64, 64), np.uint8))
    with pytest.raises(FileNotFoundError, match="box_train_voxels.npz"):
        load_split(tmp_path, "train", MESHSTYLE)
    np.savez_compressed(tmp_path / "box_train_voxels.npz", np.zeros((3, 32, 32, 32), bool))
    with pytest.raises(ValueError, match="3 voxel grids for 2 objects"):
        load_split(tmp_path, "train", MESHSTYLE)
    (tmp_path / "box_train_voxels.npz").write_text("not numpy")
    with pytest.raises(ValueError, match="box_train_voxels.npz: not a readable .npz"):
        load_split(tmp_path, "train", MESHSTYLE)
