"""The exact parts of the gradient against finite differences.

The kernels compute in float32, so ``torch.autograd.gradcheck`` (float64) does not apply;
central differences in float32 with steps large enough for float32 rounding stand in:

- textures: rgb is linear in the texture values, so a difference is exact up to rounding;
- depth: the depth buffer is smooth in the corners while no pixel changes face, so the
  loss only weights pixels whose face index stays the same under every perturbation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meshstyle.raster import rasterize


def scene(seed: int, n_faces: int = 12, size: int = 3, extent: float = 1.0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(1, n_faces, 1, 3, generator=generator) * torch.tensor([1.2, 1.2, 1.0])
    centres = centres + torch.tensor([-0.6, -0.6, 2.0])
    offsets = (torch.rand(1, n_faces, 3, 3, generator=generator) - 0.5) * torch.tensor(
        [extent, extent, 0.8]
    )
    faces = centres + offsets
    textures = torch.rand(1, n_faces, size, size, size, 3, generator=generator)
    return faces, textures


@pytest.mark.parametrize("anti_aliasing", [False, True])
def test_texture_gradient_equals_finite_differences(anti_aliasing):
    faces, textures = scene(0)
    kw = dict(image_size=(20, 16), anti_aliasing=anti_aliasing)
    weights = torch.randn(1, 3, 20, 16, generator=torch.Generator().manual_seed(1))
    leaf = textures.clone().requires_grad_()
    (rasterize(faces, leaf, **kw).rgb * weights).sum().backward()
    analytic = leaf.grad

    def loss(tex):
        with torch.no_grad():
            return float((rasterize(faces, tex, **kw).rgb.double() * weights.double()).sum())

    rng = np.random.default_rng(2)
    visible = torch.nonzero(analytic.abs().sum(-1) > 0)
    assert len(visible) > 20
    checked = 0
    for index in visible[rng.choice(len(visible), 12, replace=False)]:
        for channel in range(3):
            position = (*index.tolist(), channel)
            h = 0.25
            plus, minus = textures.clone(), textures.clone()
            plus[position] += h
            minus[position] -= h
            numeric = (loss(plus) - loss(minus)) / (2 * h)
            assert analytic[position].item() == pytest.approx(numeric, rel=1e-4, abs=1e-4)
            checked += 1
    assert checked == 36


@pytest.mark.parametrize("anti_aliasing", [False, True])
def test_depth_gradient_equals_finite_differences(anti_aliasing):
    faces, _ = scene(3, extent=1.6)
    size = (24, 20)
    kw = dict(image_size=size, anti_aliasing=anti_aliasing)
    weights = torch.randn(1, *size, generator=torch.Generator().manual_seed(4))
    h = 2e-3
    perturbations = [(f, i, j) for f in range(6) for i in range(3) for j in range(3)]

    def render(fv):
        with torch.no_grad():
            return rasterize(fv, **kw)

    # Pixels whose visible face is the same under every perturbation below.
    base = render(faces)
    stable = torch.ones_like(base.face_index, dtype=torch.bool)
    for f, i, j in perturbations:
        for sign in (1, -1):
            moved = faces.clone()
            moved[0, f, i, j] += sign * h
            stable &= render(moved).face_index == base.face_index
    # A render pixel averages into one output pixel: keep the output pixels made of stable,
    # covered render pixels only.
    keep = (stable & (base.face_index >= 0)).float()
    if anti_aliasing:
        keep = torch.nn.functional.avg_pool2d(keep[:, None], 2)[:, 0] == 1
    else:
        keep = keep == 1
    assert keep.sum() >= 40
    masked = weights * keep

    leaf = faces.clone().requires_grad_()
    (rasterize(leaf, **kw).depth * masked).sum().backward()
    analytic = leaf.grad

    def loss(fv):
        return float((render(fv).depth.double() * masked.double()).sum())

    nonzero = 0
    for f, i, j in perturbations:
        plus, minus = faces.clone(), faces.clone()
        plus[0, f, i, j] += h
        minus[0, f, i, j] -= h
        numeric = (loss(plus) - loss(minus)) / (2 * h)
        scale = analytic.abs().max().item()
        assert analytic[0, f, i, j].item() == pytest.approx(numeric, rel=2e-2, abs=2e-3 * scale)
        nonzero += abs(numeric) > 1e-3 * scale
    assert nonzero > 15
