"""The edit loop with each texture and shape parameterisation, on a toy objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from meshstyle.edit import edit_mesh
from meshstyle.objectives import LossParts
from meshstyle.settings import resolve_settings
from meshstyle.shading import Lights


class RedObjective:
    """Wants every rendered pixel red and the silhouettes a little larger."""

    name = "toy"

    def lights(self, cameras, rng):
        b = cameras.batch_size
        return Lights(torch.ones(b), torch.zeros(b), -cameras.forward)

    def backgrounds(self, rng):
        return torch.tensor([0.5, 0.5, 0.5])

    def features(self, images):
        return {}

    def loss(self, features, images, silhouettes, vertices, base_vertices):
        red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
        total = ((images - red).square().sum(1) * silhouettes).mean() - silhouettes.mean()
        return LossParts(total, {"loss": float(total.detach())})


def toy_settings(**changes):
    """The ``fast`` preset shrunk for the toy objective: 32 px, one view, T = 2."""
    small = {
        "iterations": 8,
        "image_size": 32,
        "views": 1,
        "texture_size": 2,
        "texture_resolution": 32,
    }
    return resolve_settings("fast", {**small, **changes})


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=2)
    vertices = torch.as_tensor(np.asarray(mesh.vertices) * 0.8, dtype=torch.float32)
    return vertices, torch.as_tensor(np.asarray(mesh.faces), dtype=torch.int64)


@pytest.mark.parametrize(
    "texture_mode, vertex_mode, colour_space",
    [
        ("uv", "smooth", "decorrelated"),
        ("cubes", "raw", "rgb"),
        ("cubes", "smooth", "decorrelated"),
    ],
)
def test_every_parameterisation_moves_towards_the_objective(
    sphere, texture_mode, vertex_mode, colour_space
):
    vertices, faces = sphere
    settings = toy_settings(
        texture_mode=texture_mode,
        vertex_mode=vertex_mode,
        colour_space=colour_space,
        initial_colour="grey",
    )
    colours = torch.full((len(faces), 2, 2, 2, 3), 0.8)
    result = edit_mesh(vertices, faces, colours, RedObjective(), settings, backend="cpu")
    assert torch.isfinite(result.vertices).all() and torch.isfinite(result.colours).all()
    # started grey (initial_colour), and became redder
    red = result.colours[..., 0].mean() - result.colours[..., 1:].mean()
    assert red > 0.01
    assert (result.vertices - vertices).abs().max() > 0
    if texture_mode == "uv":
        image, face_uvs = result.texture
        assert image.dtype == np.uint8 and face_uvs.shape == (len(faces), 3, 2)
        assert image[..., 0].mean() > image[..., 1].mean()
    else:
        assert result.texture is None


def test_keep_size_removes_the_move_and_the_growth(sphere):
    """Free offsets change the toy sphere's size (its grey pixels cost more than its
    coverage earns early on, so it shrinks); with keep_size the offsets keep their mean and
    uniform-scale part at zero."""
    from meshstyle.edit import remove_move_and_scale

    vertices, faces = sphere
    centred = vertices - vertices.mean(dim=0)
    norm_sq = centred.square().sum()
    # The projection removes exactly a move and a scaling and keeps what is orthogonal.
    bump = torch.zeros_like(vertices)
    bump[0] = centred[0].flip(0)
    bump = remove_move_and_scale(bump, centred, norm_sq)
    offsets = torch.tensor([0.1, -0.2, 0.3]) + 0.05 * centred + bump
    assert torch.allclose(remove_move_and_scale(offsets, centred, norm_sq), bump, atol=1e-6)

    growth = {}
    for keep in (False, True):
        settings = toy_settings(iterations=6, vertex_lr_scale=0.1, keep_size=keep)
        colours = torch.full((len(faces), 2, 2, 2, 3), 0.8)
        result = edit_mesh(vertices, faces, colours, RedObjective(), settings, backend="cpu")
        moved = result.vertices - vertices
        growth[keep] = float((moved * centred).sum() / norm_sq)
        if keep:
            assert moved.mean(dim=0).abs().max() < 1e-5
    assert abs(growth[False]) > 1e-3 and abs(growth[True]) < 1e-5, growth


def test_seam_term_keeps_both_sides_of_a_uv_seam_alike(sphere):
    from meshstyle.uvtexture import SeamPoints

    vertices, faces = sphere
    gaps = {}
    for weight in (0.0, 30.0):
        settings = toy_settings(initial_colour="grey", seam_weight=weight)
        colours = torch.full((len(faces), 2, 2, 2, 3), 0.8)
        result = edit_mesh(vertices, faces, colours, RedObjective(), settings, backend="cpu")
        assert ("seam" in result.history[-1]) == (weight > 0)
        _, face_uvs = result.texture
        gaps[weight] = float(SeamPoints(faces.numpy(), face_uvs, 2).gap(result.colours))
    assert gaps[30.0] < 0.5 * gaps[0.0]


def test_seam_term_is_scaled_by_the_loss():
    from meshstyle.edit import _with_seam_term

    for value in (-40.0, 2e10):
        total = torch.tensor(value, requires_grad=True)
        gap = torch.tensor(0.01, requires_grad=True)
        result = _with_seam_term(LossParts(total, {"loss": value, "style": value}), gap, 3.0)
        assert result.parts["seam"] == pytest.approx(3.0 * abs(value) * 0.01)
        assert result.parts["loss"] == pytest.approx(value + result.parts["seam"])
        result.total.backward()
        assert float(total.grad) == 1.0  # the scale is a constant, not a gradient path
        assert float(gap.grad) == pytest.approx(3.0 * abs(value))


def test_the_unwrap_is_announced_as_a_phase(sphere):
    vertices, faces = sphere
    colours = torch.full((len(faces), 2, 2, 2, 3), 0.8)
    phases, steps = [], []
    edit_mesh(
        vertices,
        faces,
        colours,
        RedObjective(),
        toy_settings(iterations=2),
        backend="cpu",
        progress=lambda report: steps.append(report.step),
        on_phase=phases.append,
    )
    assert phases == [f"unwrapping UVs of {len(faces)} faces", ""]
    assert steps == [1, 2]  # the step callback sees steps only
