"""Laplacian-preconditioned vertex offsets: the matrix, the solve and its gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from meshstyle.smoothshape import SmoothOffsets, laplacian


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=2)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def test_laplacian_rows_sum_to_zero_and_hold_degrees(sphere):
    vertices, faces = sphere
    lap = laplacian(faces, len(vertices)).toarray()
    assert np.allclose(lap.sum(axis=1), 0.0)
    assert np.allclose(lap, lap.T)
    # icosphere vertices have 5 or 6 neighbours
    assert set(np.diag(lap).astype(int)) == {5, 6}


def test_offsets_solve_the_system(sphere):
    vertices, faces = sphere
    smooth = SmoothOffsets(faces, len(vertices), smoothness=10.0)
    with torch.no_grad():
        smooth.u.copy_(torch.randn(len(vertices), 3))
    d = smooth.offsets().detach().numpy()
    assert np.allclose(smooth.matrix @ d, smooth.u.detach().numpy(), atol=1e-4)


def test_zero_smoothness_is_plain_offsets(sphere):
    vertices, faces = sphere
    smooth = SmoothOffsets(faces, len(vertices), smoothness=0.0)
    with torch.no_grad():
        smooth.u.copy_(torch.randn(len(vertices), 3))
    assert torch.allclose(smooth.offsets(), smooth.u, atol=1e-6)


def test_gradient_matches_the_dense_inverse(sphere):
    vertices, faces = sphere
    smooth = SmoothOffsets(faces, len(vertices), smoothness=5.0)
    weights = torch.randn(len(vertices), 3)
    (smooth.offsets() * weights).sum().backward()
    inverse = np.linalg.inv(smooth.matrix.toarray())
    assert np.allclose(smooth.u.grad.numpy(), inverse.T @ weights.numpy(), atol=1e-4)


def test_a_push_on_one_vertex_moves_its_neighbourhood_smoothly(sphere):
    vertices, faces = sphere
    smooth = SmoothOffsets(faces, len(vertices), smoothness=20.0)
    with torch.no_grad():
        smooth.u[0] = torch.tensor([1.0, 0.0, 0.0])
    d = smooth.offsets().detach().numpy()[:, 0]
    neighbours = np.unique(faces[np.any(faces == 0, axis=1)])
    neighbours = neighbours[neighbours != 0]
    far = np.argmax(np.linalg.norm(vertices - vertices[0], axis=1))
    # the pushed vertex moves most, its neighbours almost as much, the far side little
    assert d[0] == d.max()
    assert d[neighbours].min() > 0.5 * d[0]
    assert 0 < d[far] < 0.3 * d[0]


def test_bad_smoothness_is_rejected(sphere):
    vertices, faces = sphere
    with pytest.raises(ValueError, match="smoothness"):
        SmoothOffsets(faces, len(vertices), smoothness=float("nan"))
