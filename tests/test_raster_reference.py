"""The numba kernels against the slow NumPy reference on random small scenes.

Forward: face index and alpha exactly, rgb and depth to float tolerance. Backward (vertex
and texture gradients of a random linear loss on rgb, alpha and depth): 1e-5 relative to
the largest gradient. Anti-aliasing is applied to the reference by the same 2 x 2 average,
whose gradient spreads each output gradient over its four render pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meshstyle.raster import rasterize
from meshstyle.raster import reference as ref

NEAR, FAR, EPS = 0.1, 100.0, 1e-3


def random_scene(seed: int, n_batch: int = 2):
    """Overlapping random faces of both windings, some partly off-screen, depths 0.7..3.3."""
    rng = np.random.default_rng(seed)
    n_faces = int(rng.integers(10, 31))
    size = int(rng.integers(2, 5))
    centre = rng.uniform(-0.9, 0.9, (n_batch, n_faces, 1, 2))
    xy = centre + rng.uniform(-0.5, 0.5, (n_batch, n_faces, 3, 2))
    z = rng.uniform(1.0, 3.0, (n_batch, n_faces, 1, 1)) + rng.uniform(
        -0.3, 0.3, (n_batch, n_faces, 3, 1)
    )
    face_vertices = np.concatenate([xy, z], -1).astype(np.float32)
    textures = rng.uniform(0, 1, (n_batch, n_faces, size, size, size, 3)).astype(np.float32)
    background = rng.uniform(0, 1, (n_batch, 3)).astype(np.float32)
    return face_vertices, textures, background


def pool(array: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(array)
    if tensor.ndim == 3:
        return torch.nn.functional.avg_pool2d(tensor[:, None], 2)[:, 0].numpy()
    return torch.nn.functional.avg_pool2d(tensor, 2).numpy()


def spread(grad: np.ndarray | None) -> np.ndarray | None:
    """The gradient of a 2 x 2 average at render resolution."""
    if grad is None:
        return None
    return np.repeat(np.repeat(grad, 2, -1), 2, -2) / 4.0


CASES = [
    # (seed, (H, W), anti_aliasing, occlusion_aware, textured)
    (0, (16, 16), False, False, True),
    (1, (16, 16), False, True, True),
    (2, (16, 24), True, False, True),
    (3, (20, 16), True, True, True),
    (4, (32, 32), False, False, False),
    (5, (24, 32), False, True, False),
    (6, (12, 16), True, False, False),
    (7, (17, 23), False, False, True),
    (8, (32, 20), True, True, False),
    (9, (16, 16), False, False, True),
]


@pytest.mark.parametrize(("seed", "size", "anti_aliasing", "occlusion_aware", "textured"), CASES)
def test_kernels_equal_the_reference(seed, size, anti_aliasing, occlusion_aware, textured):
    face_vertices, textures, background = random_scene(seed)
    n_batch = face_vertices.shape[0]
    height, width = size
    leaf = torch.tensor(face_vertices, requires_grad=True)
    leaf_textures = torch.tensor(textures, requires_grad=True) if textured else None
    fragments = rasterize(
        leaf,
        leaf_textures,
        image_size=size,
        anti_aliasing=anti_aliasing,
        background=torch.tensor(background),
        near=NEAR,
        far=FAR,
        occlusion_aware=occlusion_aware,
        eps=EPS,
    )
    render = (2 * height, 2 * width) if anti_aliasing else (height, width)
    expected = ref.forward(
        face_vertices, textures if textured else None, background, *render, NEAR, FAR
    )
    assert np.array_equal(fragments.face_index.numpy(), expected["face_index"])
    assert (expected["face_index"] >= 0).mean() > 0.2, "scene too empty to test anything"
    finish = pool if anti_aliasing else (lambda a: a)
    assert np.array_equal(fragments.alpha.detach().numpy(), finish(expected["alpha"]))
    np.testing.assert_allclose(
        fragments.depth.detach().numpy(), finish(expected["depth"]), rtol=1e-6
    )
    if textured:
        np.testing.assert_allclose(
            fragments.rgb.detach().numpy(), finish(expected["rgb"]), atol=2e-6
        )
    else:
        assert fragments.rgb is None

    rng = np.random.default_rng(100 + seed)
    grad_alpha = rng.normal(size=(n_batch, height, width)).astype(np.float32)
    grad_depth = (0.1 * rng.normal(size=(n_batch, height, width))).astype(np.float32)
    grad_rgb = rng.normal(size=(n_batch, 3, height, width)).astype(np.float32) if textured else None
    loss = (fragments.alpha * torch.from_numpy(grad_alpha)).sum()
    loss = loss + (fragments.depth * torch.from_numpy(grad_depth)).sum()
    if textured:
        loss = loss + (fragments.rgb * torch.from_numpy(grad_rgb)).sum()
    loss.backward()

    lift = spread if anti_aliasing else (lambda g: g)
    grad_vertices, grad_textures = ref.backward(
        face_vertices,
        textures.shape if textured else None,
        expected,
        lift(grad_rgb),
        lift(grad_alpha),
        lift(grad_depth),
        EPS,
        occlusion_aware,
    )
    scale = np.abs(grad_vertices).max()
    assert scale > 0
    np.testing.assert_allclose(leaf.grad.numpy(), grad_vertices, rtol=1e-5, atol=1e-5 * scale)
    if textured:
        scale = np.abs(grad_textures).max()
        np.testing.assert_allclose(
            leaf_textures.grad.numpy(), grad_textures, rtol=1e-5, atol=1e-5 * scale
        )


@pytest.mark.parametrize("output", ["alpha", "rgb", "depth"])
def test_each_output_alone_equals_the_reference(output):
    """Gradients of one output at a time: the unused outputs reach the kernels as None."""
    face_vertices, textures, background = random_scene(11)
    leaf = torch.tensor(face_vertices, requires_grad=True)
    fragments = rasterize(
        leaf,
        torch.tensor(textures),
        image_size=16,
        anti_aliasing=False,
        background=torch.tensor(background),
    )
    rng = np.random.default_rng(7)
    value = getattr(fragments, output)
    weights = rng.normal(size=tuple(value.shape)).astype(np.float32)
    (value * torch.from_numpy(weights)).sum().backward()
    expected = ref.forward(face_vertices, textures, background, 16, 16, NEAR, FAR)
    grads = {"rgb": None, "alpha": None, "depth": None}
    grads[output] = weights
    grad_vertices, _ = ref.backward(
        face_vertices, textures.shape, expected, grads["rgb"], grads["alpha"], grads["depth"], EPS
    )
    scale = np.abs(grad_vertices).max()
    assert scale > 0
    np.testing.assert_allclose(leaf.grad.numpy(), grad_vertices, rtol=1e-5, atol=1e-5 * scale)
    if output == "depth":
        # Depth alone moves no edge: x and y get only the depth buffer's exact derivative.
        assert np.abs(grad_vertices[..., 2]).max() > 0


def test_a_face_repeated_loses_the_depth_tie_to_the_lower_index():
    face_vertices, textures, background = random_scene(12, n_batch=1)
    face_vertices[0, 5] = face_vertices[0, 2]
    fragments = rasterize(torch.tensor(face_vertices), image_size=24, anti_aliasing=False)
    expected = ref.forward(face_vertices, None, background, 24, 24, NEAR, FAR)
    index = fragments.face_index.numpy()
    assert np.array_equal(index, expected["face_index"])
    assert not (index == 5).any() and (index == 2).any()
