"""The lighting rewrite (intensity per face, shared cubes shaded without temporaries) gives
the values and gradients of the plain formula it replaced."""

from __future__ import annotations

import pytest
import torch

from meshstyle.camera import face_vertices
from meshstyle.shading import Lights, face_intensity, light_textures, shade_textures


def _formula(textures, world_face_vertices, eye, lights):
    """The lighting as first written: unit normals flipped to the eye, then one product."""
    v0, v1, v2 = world_face_vertices.unbind(-2)
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    normals = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    to_eye = eye[:, None, :] - world_face_vertices.mean(dim=-2)
    facing = torch.where((normals * to_eye).sum(-1, keepdim=True) >= 0, 1.0, -1.0)
    normals = normals * facing
    cos = torch.relu((normals * lights.direction[:, None, :]).sum(-1))
    intensity = lights.ambient[:, None] + lights.directional[:, None] * cos
    shade = intensity[:, :, None, None, None, None]
    if lights.colour is not None:
        shade = shade * lights.colour
    if textures.dim() == 5:
        textures = textures.unsqueeze(0)
    return textures * shade


def _scene(batch: int, faces: int, size: int, colour: bool, batched_textures: bool):
    g = torch.Generator().manual_seed(batch * 100 + faces)
    vertices = torch.randn(faces * 2, 3, generator=g)
    index = torch.randint(0, faces * 2, (faces, 3), generator=g)
    index[0] = torch.tensor([0, 0, 1])  # a zero-area face: normal 0, intensity = ambient
    shape = (batch, faces) if batched_textures else (faces,)
    textures = torch.rand(*shape, size, size, size, 3, generator=g)
    direction = torch.nn.functional.normalize(torch.randn(batch, 3, generator=g), dim=-1)
    lights = Lights(
        ambient=torch.rand(batch, generator=g),
        directional=torch.rand(batch, generator=g),
        direction=direction,
        colour=torch.rand(3, generator=g) if colour else None,
    )
    eye = 3.0 * torch.nn.functional.normalize(torch.randn(batch, 3, generator=g), dim=-1)
    return vertices, index, textures, eye, lights


@pytest.mark.parametrize(
    ("batch", "colour", "batched_textures"),
    [(1, False, False), (3, False, False), (2, True, False), (2, False, True), (3, True, True)],
)
def test_values_and_gradients_match_the_plain_formula(batch, colour, batched_textures):
    vertices, index, textures, eye, lights = _scene(batch, 40, 2, colour, batched_textures)
    grad_out = torch.randn(batch, 40, 2, 2, 2, 3, generator=torch.Generator().manual_seed(1))
    results = []
    for light in (light_textures, _formula):
        v = vertices.clone().requires_grad_(True)
        t = textures.clone().requires_grad_(True)
        world = face_vertices(v.expand(batch, -1, -1), index)
        out = light(t, world, eye, lights)
        out.backward(grad_out)
        results.append((out.detach(), v.grad, t.grad))
    (out, grad_v, grad_t), (ref, ref_v, ref_t) = results
    assert out.shape == ref.shape == (batch, 40, 2, 2, 2, 3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_t, ref_t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_v, ref_v, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(grad_v).all()


def test_zero_area_face_gets_ambient_only():
    vertices, index, _, eye, lights = _scene(2, 10, 1, False, False)
    intensity = face_intensity(face_vertices(vertices.expand(2, -1, -1), index), eye, lights)
    torch.testing.assert_close(intensity[:, 0], lights.ambient)


def test_shared_cube_gradients_pass_gradcheck():
    g = torch.Generator().manual_seed(3)
    cubes = torch.rand(5, 2, 2, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    intensity = torch.rand(3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(shade_textures, (cubes, intensity))
    # Only the gradient asked for is computed.
    out = shade_textures(cubes.detach(), intensity)
    (grad,) = torch.autograd.grad(out.sum(), intensity)
    torch.testing.assert_close(grad, cubes.detach().sum(dim=(1, 2, 3, 4)).expand(3, 5))
