"""Conventions, degenerate input, argument checks and determinism of the rasterizer."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from meshstyle.raster import (
    Fragments,
    RasterSettings,
    rasterize,
    rasterize_silhouettes,
    set_num_threads,
)


def tri(*corners) -> list[list[float]]:
    return [list(map(float, corner)) for corner in corners]


SMALL = tri((-0.3, -0.3, 2.0), (0.3, -0.3, 2.0), (0.0, 0.3, 2.0))


# --------------------------------------------------------------------------- conventions


def test_pixel_centres_follow_the_ndc_convention():
    # A tiny triangle around the centre of pixel (row 1, col 5) of a 4 x 8 image:
    # x = (2 * 5 + 1 - 8) / 8 = 0.375, y = (4 - 1 - 2 * 1) / 4 = 0.25.
    x, y, d = 0.375, 0.25, 0.01
    face = tri((x - d, y - d, 1.0), (x + d, y - d, 1.0), (x, y + d, 1.0))
    fragments = rasterize(torch.tensor([[face]]), image_size=(4, 8), anti_aliasing=False)
    index = fragments.face_index[0]
    assert index.shape == (4, 8)
    assert index[1, 5] == 0 and (index >= 0).sum() == 1
    assert fragments.alpha.shape == (1, 4, 8) and fragments.depth.shape == (1, 4, 8)


def test_positive_x_is_right_and_positive_y_is_up():
    right = tri((0.5, -0.2, 2.0), (0.9, -0.2, 2.0), (0.7, 0.2, 2.0))
    top = tri((-0.2, 0.5, 2.0), (0.2, 0.5, 2.0), (0.0, 0.9, 2.0))
    alpha = rasterize_silhouettes(torch.tensor([[right], [top]]), image_size=(16, 24))
    assert alpha[0, :, 12:].sum() > 0 and alpha[0, :, :12].sum() == 0
    assert alpha[1, :8].sum() > 0 and alpha[1, 8:].sum() == 0


def test_non_square_images_do_not_stretch():
    # The same NDC square covers the same fraction of rows and of columns at any aspect.
    square = [
        tri((-0.5, -0.5, 2), (0.5, -0.5, 2), (0.5, 0.5, 2)),
        tri((-0.5, -0.5, 2), (0.5, 0.5, 2), (-0.5, 0.5, 2)),
    ]
    for size in [(16, 48), (40, 8), (33, 17)]:
        alpha = rasterize_silhouettes(torch.tensor([square]), image_size=size, anti_aliasing=False)
        rows = alpha[0].amax(1).sum().item() / size[0]
        cols = alpha[0].amax(0).sum().item() / size[1]
        assert rows == pytest.approx(0.5, abs=1.5 / size[0])
        assert cols == pytest.approx(0.5, abs=1.5 / size[1])


def test_depth_is_perspective_correct():
    # A face leaning in depth: at a pixel with screen barycentrics w, z = 1 / sum(w_i / z_i).
    corners = np.array([[-0.8, -0.8, 1.0], [0.8, -0.8, 4.0], [0.0, 0.8, 2.0]])
    fragments = rasterize(
        torch.tensor(corners[None, None], dtype=torch.float32), image_size=8, anti_aliasing=False
    )
    row, col = 4, 4
    x, y = (2 * col + 1 - 8) / 8, (8 - 1 - 2 * row) / 8
    (x0, y0), (x1, y1), (x2, y2) = corners[:, :2]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    w0 = ((x1 - x) * (y2 - y) - (x2 - x) * (y1 - y)) / area
    w1 = ((x2 - x) * (y0 - y) - (x0 - x) * (y2 - y)) / area
    w2 = 1 - w0 - w1
    expected = 1 / (w0 / 1.0 + w1 / 4.0 + w2 / 2.0)
    assert fragments.depth[0, row, col].item() == pytest.approx(expected, rel=1e-6)


def test_empty_pixels_get_background_no_alpha_and_far_depth():
    textures = torch.full((2, 1, 2, 2, 2, 3), 0.5)
    fragments = rasterize(
        torch.tensor([[SMALL], [SMALL]]),
        textures,
        image_size=8,
        far=50.0,
        background=[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        anti_aliasing=False,
    )
    empty = fragments.face_index == -1
    assert empty.any() and (~empty).any()
    assert torch.all(fragments.alpha[empty] == 0) and torch.all(fragments.depth[empty] == 50.0)
    assert torch.allclose(fragments.rgb[1, :, 0, 0], torch.tensor([0.4, 0.5, 0.6]))
    assert torch.allclose(fragments.rgb[0, :, 4, 4], torch.tensor([0.5, 0.5, 0.5]))


def test_only_depths_between_near_and_far_are_drawn():
    faces = [tri((-1, -1, z), (1, -1, z), (0, 1, z)) for z in (0.05, 2.0, 200.0)]
    index = rasterize(torch.tensor([faces]), image_size=8, anti_aliasing=False).face_index
    assert set(index.unique().tolist()) <= {-1, 1}
    assert (index == 1).any()


def test_texture_cube_axes_follow_the_vertices():
    # A texture that is 1 only at the corner of axis k's far end: the colour at vertex k.
    faces = torch.tensor([[tri((-0.9, -0.9, 2), (0.9, -0.9, 2), (0.0, 0.9, 2))]])
    for k, (row, col) in enumerate([(7, 0), (7, 7), (0, 3)]):
        textures = torch.zeros(1, 1, 3, 3, 3, 3)
        index = [0, 0, 0]
        index[k] = 2
        textures[0, 0, index[0], index[1], index[2]] = 1.0
        rgb = rasterize(faces, textures, image_size=8, anti_aliasing=False).rgb[0, 0]
        covered = rasterize_silhouettes(faces, image_size=8, anti_aliasing=False)[0] > 0
        brightest = torch.nonzero(rgb == rgb[covered].max())[0].tolist()
        assert abs(brightest[0] - row) + abs(brightest[1] - col) <= 2, (k, brightest)


def test_texture_size_one_is_a_flat_colour():
    textures = torch.tensor([0.2, 0.4, 0.6]).view(1, 1, 1, 1, 1, 3)
    fragments = rasterize(torch.tensor([[SMALL]]), textures, image_size=8, anti_aliasing=False)
    covered = fragments.face_index[0] >= 0
    assert torch.allclose(fragments.rgb[0][:, covered].T, torch.tensor([0.2, 0.4, 0.6]))


def test_fragments_is_frozen_and_face_index_has_render_resolution():
    fragments = rasterize(torch.tensor([[SMALL]]), image_size=(6, 10))
    assert isinstance(fragments, Fragments) and fragments.rgb is None
    assert fragments.alpha.shape == (1, 6, 10)
    assert fragments.face_index.shape == (1, 12, 20)
    assert fragments.face_index.dtype == torch.int32
    with pytest.raises(dataclasses.FrozenInstanceError):
        fragments.alpha = None  # type: ignore[misc]


# --------------------------------------------------------------------------- degenerate input


DEGENERATE = {
    "zero area": tri((0.1, 0.1, 2), (0.1, 0.1, 2), (0.5, 0.2, 2)),
    "edge-on": tri((-0.5, -0.5, 2), (0.0, 0.0, 3), (0.5, 0.5, 4)),
    "corner behind the camera": tri((-0.5, -0.5, 2), (0.5, -0.5, -1), (0.0, 0.5, 2)),
    "corner at the eye": tri((-0.5, -0.5, 2), (0.5, -0.5, 0.0), (0.0, 0.5, 2)),
    "corner behind the near plane": tri((-0.5, -0.5, 2), (0.5, -0.5, 0.01), (0.0, 0.5, 2)),
    "nan": tri((math.nan, -0.5, 2), (0.5, -0.5, 2), (0.0, 0.5, 2)),
    "inf": tri((-0.5, -0.5, 2), (math.inf, -0.5, 2), (0.0, 0.5, 2)),
    "huge": tri((-1e30, -0.5, 2), (1e30, -0.5, 2), (0.0, 1e30, 2)),
    "huge depth": tri((-0.5, -0.5, 3e38), (0.5, -0.5, 2), (0.0, 0.5, 2)),
    "sliver": tri((-0.9, -0.9, 2), (0.9, 0.9, 2), (0.9, 0.9 + 1e-6, 2)),
}


@pytest.mark.parametrize("anti_aliasing", [False, True])
@pytest.mark.parametrize("occlusion_aware", [False, True])
def test_degenerate_faces_give_no_nan_or_inf(anti_aliasing, occlusion_aware):
    good = tri((-0.8, -0.7, 3), (0.7, -0.8, 3), (0.1, 0.8, 3))
    faces = torch.tensor([[good, *DEGENERATE.values(), good]])
    leaf = faces.clone().requires_grad_()
    textures = torch.rand(1, faces.shape[1], 2, 2, 2, 3, requires_grad=True)
    fragments = rasterize(
        leaf,
        textures,
        image_size=16,
        anti_aliasing=anti_aliasing,
        occlusion_aware=occlusion_aware,
    )
    for value in (fragments.rgb, fragments.alpha, fragments.depth):
        assert torch.isfinite(value).all()
    target = torch.rand(1, 3, 16, 16)
    loss = ((fragments.rgb - target) ** 2).sum() - fragments.alpha.sum() + fragments.depth.sum()
    loss.backward()
    assert torch.isfinite(leaf.grad).all() and torch.isfinite(textures.grad).all()
    index = set(fragments.face_index.unique().tolist())
    names = list(DEGENERATE)
    skipped = {
        "zero area",
        "edge-on",
        "corner behind the camera",
        "corner at the eye",
        "nan",
        "inf",
    }
    for name in skipped:
        assert names.index(name) + 1 not in index, name
        assert torch.all(leaf.grad[0, names.index(name) + 1] == 0), name
    # The face crossing the near plane is still drawn where its depth is >= near.
    assert names.index("corner behind the near plane") + 1 in index


def test_no_faces_gives_the_background():
    fragments = rasterize(
        torch.zeros(2, 0, 3, 3),
        torch.zeros(2, 0, 2, 2, 2, 3),
        image_size=(5, 7),
        background=[1.0, 0.0, 0.0],
    )
    assert torch.all(fragments.alpha == 0) and torch.all(fragments.depth == 100.0)
    assert torch.all(fragments.rgb[:, 0] == 1) and torch.all(fragments.rgb[:, 1:] == 0)


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"face_vertices": torch.zeros(1, 2, 3, 3, dtype=torch.float64)},
            r"face_vertices must be float32, shape \(B, F, 3, 3\).*got float64 \(1, 2, 3, 3\)",
        ),
        ({"face_vertices": torch.zeros(2, 3, 3)}, r"got float32 \(2, 3, 3\)"),
        ({"face_vertices": np.zeros((1, 2, 3, 3), np.float32)}, "got ndarray"),
        (
            {"textures": torch.zeros(1, 2, 2, 2, 3, 3)},
            r"textures must be float32, shape \(1, 2, T, T, T, 3\).*"
            r"got float32 \(1, 2, 2, 2, 3, 3\)",
        ),
        ({"textures": torch.zeros(1, 3, 2, 2, 2, 3)}, r"got float32 \(1, 3, 2, 2, 2, 3\)"),
        ({"image_size": 0}, "image_size must be a positive int"),
        ({"image_size": (8, 8, 8)}, "image_size must be a positive int"),
        ({"image_size": 8.0}, "image_size must be a positive int"),
        ({"near": 0.0}, "near must be a finite number > 0; got 0.0"),
        ({"near": 2.0, "far": 1.0}, r"far must be a finite number > near \(2.0\); got 1.0"),
        ({"eps": -1.0}, "eps must be a finite number >= 0; got -1.0"),
        (
            {"background": [0.0, 1.0]},
            r"background must be finite, shape \(3,\) or \(1, 3\); got \(2,\)",
        ),
        ({"backend": "metal"}, "backend must be one of"),
        ({"backend": "cuda"}, "backend 'cuda' needs face_vertices on a cuda device; got cpu"),
    ],
)
def test_bad_arguments_name_the_rule_and_the_value(kwargs, message):
    arguments = {"face_vertices": torch.zeros(1, 2, 3, 3), "image_size": 8}
    arguments.update(kwargs)
    face_vertices = arguments.pop("face_vertices")
    with pytest.raises(ValueError, match=message):
        rasterize(face_vertices, **arguments)


def test_settings_are_frozen_and_checked():
    settings = RasterSettings(image_size=(4, 6), anti_aliasing=True)
    assert settings.render_size == (8, 12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.near = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="backend must be one of"):
        RasterSettings(backend="gpu")


def test_texture_batch_of_one_is_broadcast():
    faces = torch.tensor([[SMALL], [SMALL]])
    textures = torch.rand(1, 1, 2, 2, 2, 3, requires_grad=True)
    rgb = rasterize(faces, textures, image_size=8).rgb
    assert torch.equal(rgb[0], rgb[1])
    rgb.sum().backward()
    assert textures.grad.shape == (1, 1, 2, 2, 2, 3) and textures.grad.abs().sum() > 0


# --------------------------------------------------------------------------- determinism


def scene(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(2, 40, 1, 3, generator=generator) * torch.tensor([1.6, 1.6, 2.0])
    centres = centres + torch.tensor([-0.8, -0.8, 2.0])
    faces = centres + (torch.rand(2, 40, 3, 3, generator=generator) - 0.5) * torch.tensor(
        [0.8, 0.8, 0.4]
    )
    textures = torch.rand(2, 40, 3, 3, 3, 3, generator=generator)
    return faces, textures


def render_and_grad(faces, textures):
    leaf = faces.clone().requires_grad_()
    tex = textures.clone().requires_grad_()
    fragments = rasterize(leaf, tex, image_size=(24, 20))
    target = torch.linspace(0, 1, 3 * 24 * 20).view(1, 3, 24, 20)
    (((fragments.rgb - target) ** 2).sum() + fragments.depth.sum()).backward()
    return fragments, leaf.grad, tex.grad


def test_results_do_not_depend_on_threads_or_batch():
    import numba

    faces, textures = scene()
    threads = numba.get_num_threads()
    try:
        set_num_threads(1)
        single = render_and_grad(faces, textures)
    finally:
        set_num_threads(threads)
    parallel = render_and_grad(faces, textures)
    for a, b in zip(single[0].__dict__.values(), parallel[0].__dict__.values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(single[1], parallel[1]) and torch.equal(single[2], parallel[2])
    # Each image of a batch is rendered as if alone.
    first = render_and_grad(faces[:1], textures[:1])
    assert torch.equal(first[0].rgb[0], parallel[0].rgb[0])
    assert torch.equal(first[1][0], parallel[1][0]) and torch.equal(first[2][0], parallel[2][0])


def test_backward_face_order_covers_every_face_once_visible_first_by_tile():
    from meshstyle.raster import cpu

    rng = np.random.default_rng(3)
    n_batch, n_faces, tile, tiles_x, tiles_y = 2, 50, 4, 3, 2
    rows = rng.integers(0, tile * tiles_y, (n_batch, n_faces, 2))
    cols = rng.integers(0, tile * tiles_x, (n_batch, n_faces, 2))
    bbox = np.stack([rows.min(-1), rows.max(-1), cols.min(-1), cols.max(-1)], -1)
    bbox = bbox.astype(np.int32)
    visible = (rng.random((n_batch, n_faces)) < 0.6).astype(np.uint8)
    order = np.empty(n_batch * n_faces, np.int64)
    cpu.order_faces(bbox, visible, tile, tiles_x, np.empty(tiles_x * tiles_y + 1, np.int64), order)

    assert sorted(order.tolist()) == list(range(n_batch * n_faces))
    n_visible = int(visible.sum())
    b, f = np.divmod(order, n_faces)
    assert visible[b[:n_visible], f[:n_visible]].all()
    assert not visible[b[n_visible:], f[n_visible:]].any()
    # Visible faces: image by image, tiles in row-major order of the box centre, then index.
    centre_tile = ((bbox[..., 0] + bbox[..., 1]) // 2 // tile) * tiles_x + (
        bbox[..., 2] + bbox[..., 3]
    ) // 2 // tile
    seen_b, seen_f = b[:n_visible], f[:n_visible]
    keys = list(zip(seen_b, centre_tile[seen_b, seen_f], seen_f, strict=True))
    assert keys == sorted(keys)


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="threads must be an int in"):
        set_num_threads(0)
    with pytest.raises(ValueError, match="threads must be an int in"):
        set_num_threads(10_000)


def test_calls_with_and_without_colour_gradients_do_not_leak_into_each_other():
    # The kernels reuse scratch arrays between calls; a silhouette backward after a colour
    # one (same shapes) must give exactly what it gives alone.
    faces, textures = scene(1)
    target = torch.linspace(0, 1, 24 * 20).view(1, 24, 20)

    def silhouette_grad():
        leaf = faces.clone().requires_grad_()
        alpha = rasterize(leaf, None, image_size=(24, 20)).alpha
        ((alpha - target) ** 2).sum().backward()
        return leaf.grad

    alone = silhouette_grad()
    colour = render_and_grad(faces, textures)[1]
    after = silhouette_grad()
    assert alone.abs().sum() > 0 and not torch.equal(alone, colour)
    assert torch.equal(alone, after)
    assert torch.equal(colour, render_and_grad(faces, textures)[1])
