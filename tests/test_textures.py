"""Texture cubes: trilinear sampling convention, logits, UV-texture initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meshstyle.textures import (
    colours_to_logits,
    cube_grid_weights,
    cubes_from_uv_texture,
    logits_to_colours,
    sample_cube,
    sample_image,
    uniform_cubes,
)


@pytest.fixture
def cubes() -> np.ndarray:
    return np.random.default_rng(0).random((6, 4, 4, 4, 3)).astype(np.float32)


def test_vertices_read_the_cube_corners(cubes):
    samples = sample_cube(cubes, np.eye(3))  # weight 1 on vertex 0, 1, 2
    np.testing.assert_array_equal(samples[:, 0], cubes[:, 3, 0, 0])
    np.testing.assert_array_equal(samples[:, 1], cubes[:, 0, 3, 0])
    np.testing.assert_array_equal(samples[:, 2], cubes[:, 0, 0, 3])


def test_grid_points_on_the_simplex_are_exact(cubes):
    points = [(i, j, 3 - i - j) for i in range(4) for j in range(4 - i)]
    samples = sample_cube(cubes, np.array(points) / 3.0)
    for n, (i, j, k) in enumerate(points):
        np.testing.assert_allclose(samples[:, n], cubes[:, i, j, k], atol=1e-6)


def test_between_grid_points_is_trilinear():
    cubes = np.zeros((1, 2, 2, 2, 3), dtype=np.float32)
    cubes[0, 1, 0, 0, 0] = 1.0  # red on vertex 0's corner
    cubes[0, 0, 1, 1, 1] = 1.0  # green on the corner opposite to it
    w = np.array([[0.25, 0.5, 0.25]])
    expected_red = 0.25 * 0.5 * 0.75  # w0 * (1 - w1) * (1 - w2)
    expected_green = 0.75 * 0.5 * 0.25  # (1 - w0) * w1 * w2
    np.testing.assert_allclose(sample_cube(cubes, w)[0, 0], [expected_red, expected_green, 0.0])


def test_texture_size_one_is_constant(cubes):
    constant = cubes[:, :1, :1, :1]
    w = np.random.default_rng(1).dirichlet([1, 1, 1], size=(6, 5))
    samples = sample_cube(constant, w)
    np.testing.assert_array_equal(samples, np.broadcast_to(constant[:, 0, 0, 0, None], (6, 5, 3)))


def test_out_of_range_weights_clamp_to_the_cube(cubes):
    np.testing.assert_array_equal(
        sample_cube(cubes, np.array([[1.5, -0.2, 0.0]])), sample_cube(cubes, np.array([[1, 0, 0]]))
    )


def test_per_face_weights_and_shapes(cubes):
    w = np.random.default_rng(2).dirichlet([1, 1, 1], size=(6, 7))
    out = sample_cube(cubes, w)
    assert out.shape == (6, 7, 3) and out.dtype == np.float32
    one = sample_cube(cubes[2:3], w[2:3])
    np.testing.assert_allclose(out[2:3], one)
    with pytest.raises(ValueError, match=r"cubes must have shape \(F, T, T, T, 3\)"):
        sample_cube(cubes[:, :, :3], w)
    with pytest.raises(ValueError, match=r"weights must have shape \(6, N, 3\)"):
        sample_cube(cubes, w[:3])


def test_torch_matches_numpy_and_has_gradients(cubes):
    w = np.random.default_rng(3).dirichlet([1, 1, 1], size=(6, 9))
    t_cubes = torch.tensor(cubes, requires_grad=True)
    out = sample_cube(t_cubes, torch.tensor(w))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), sample_cube(cubes, w), atol=1e-6)
    out.sum().backward()
    # the trilinear weights of each sample sum to one, so each face's gradient sums to 9 × 3
    np.testing.assert_allclose(t_cubes.grad.sum(dim=(1, 2, 3, 4)).numpy(), 27.0, rtol=1e-5)


def test_logits_round_trip_and_stay_finite():
    colours = np.array([0.0, 1e-9, 0.25, 0.5, 0.75, 1.0])
    logits = colours_to_logits(colours)
    assert logits.dtype == np.float32 and np.all(np.isfinite(logits))
    np.testing.assert_allclose(
        logits_to_colours(logits), np.clip(colours, 1e-4, 1 - 1e-4), atol=1e-6
    )
    assert logits[3] == 0.0
    extreme = logits_to_colours(np.array([-1e30, 1e30, np.inf, -np.inf]))
    np.testing.assert_allclose(extreme, [0, 1, 1, 0], atol=1e-30)


def test_logits_in_torch():
    colours = torch.tensor([0.0, 0.5, 1.0], requires_grad=True)
    logits = colours_to_logits(colours)
    assert torch.isfinite(logits).all()
    back = logits_to_colours(logits)
    back.sum().backward()
    assert torch.allclose(back, torch.tensor([1e-4, 0.5, 1 - 1e-4]))


def test_cube_grid_weights():
    w = cube_grid_weights(3)
    assert w.shape == (3, 3, 3, 3)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0)
    np.testing.assert_allclose(w[0, 0, 0], [1 / 3] * 3)
    np.testing.assert_allclose(w[2, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(w[1, 1, 0], [0.5, 0.5, 0])
    np.testing.assert_allclose(w[2, 2, 2], [1 / 3] * 3)
    np.testing.assert_allclose(cube_grid_weights(1)[0, 0, 0], [1 / 3] * 3)


def test_sample_image_at_texel_centres_and_orientation():
    image = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3) * 10
    # uv (0, 0) is the bottom-left corner: the centre of the bottom-left texel is (1/8, 1/4)
    np.testing.assert_allclose(sample_image(image, [0.125, 0.25]), image[1, 0] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(sample_image(image, [0.875, 0.75]), image[0, 3] / 255.0, rtol=1e-6)
    halfway = sample_image(image, [0.25, 0.75])
    np.testing.assert_allclose(halfway, (image[0, 0] + image[0, 1]) / 2 / 255.0, rtol=1e-6)
    # repeat: one full tile to the right reads the same texel
    np.testing.assert_allclose(sample_image(image, [1.125, 0.25]), image[1, 0] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(
        sample_image(image, [-0.5, 0.25], wrap=False), image[1, 0] / 255.0, rtol=1e-6
    )


def test_cubes_from_uv_texture_reads_the_image():
    h, w = 16, 32
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    image = np.stack([cols * 8, rows * 16, np.full_like(rows, 77)], axis=-1).astype(np.uint8)
    # corner UVs at texel centres, so grid points along edges hit texel centres too
    centre = lambda c, r: ((c + 0.5) / w, 1 - (r + 0.5) / h)  # noqa: E731
    face_uvs = np.array([[centre(3, 12), centre(21, 12), centre(3, 0)]])
    cubes = cubes_from_uv_texture(face_uvs, image, 4)
    assert cubes.shape == (1, 4, 4, 4, 3) and cubes.dtype == np.float32
    np.testing.assert_allclose(cubes[0, 3, 0, 0], image[12, 3] / 255.0, atol=1e-6)
    np.testing.assert_allclose(cubes[0, 0, 3, 0], image[12, 21] / 255.0, atol=1e-6)
    np.testing.assert_allclose(cubes[0, 0, 0, 3], image[0, 3] / 255.0, atol=1e-6)
    np.testing.assert_allclose(cubes[0, 1, 2, 0], image[12, 15] / 255.0, atol=1e-6)
    # (0, 0, 0) and the diagonal both stand for the centroid
    np.testing.assert_allclose(cubes[0, 0, 0, 0], cubes[0, 1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(cubes[0, 0, 0, 0], cubes[0, 3, 3, 3], atol=1e-6)
    # between grid points trilinear sampling also reads the off-simplex grid points, which
    # hold projected colours: close to a linear image, though not exactly equal to it
    weights = np.random.default_rng(4).dirichlet([1, 1, 1], size=(1, 50))
    uv = np.einsum("fnk,fkc->fnc", weights, face_uvs)
    np.testing.assert_allclose(sample_cube(cubes, weights), sample_image(image, uv), atol=0.03)


def test_cubes_from_uv_texture_size_one_is_the_centroid_colour():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    image[1, 1] = 255  # bottom-right texel
    face_uvs = np.array([[[0.75, 0.25], [0.75, 0.25], [0.75, 0.25]]])
    np.testing.assert_allclose(cubes_from_uv_texture(face_uvs, image, 1)[0, 0, 0, 0], [1, 1, 1])


def test_uniform_cubes():
    cubes = uniform_cubes(5, 3, (0.2, 0.4, 0.6))
    assert cubes.shape == (5, 3, 3, 3, 3) and cubes.dtype == np.float32
    np.testing.assert_allclose(cubes[4, 2, 1, 0], [0.2, 0.4, 0.6])
    cubes[0] = 0  # a real array, not a read-only broadcast view
    with pytest.raises(ValueError, match="colour must be three values"):
        uniform_cubes(5, 3, (2.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="T >= 1"):
        uniform_cubes(5, 0)
