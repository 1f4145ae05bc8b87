"""Decorrelated colour parameters: shapes, invertibility, and what a step does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meshstyle.colourspace import COLOUR_SQRT, from_colour, to_colour


@pytest.mark.parametrize("space", ["decorrelated", "rgb"])
def test_round_trip_keeps_shape_and_colour(space):
    colours = torch.rand(5, 4, 3) * 0.98 + 0.01
    x = from_colour(colours, space)
    assert x.shape == colours.shape
    assert torch.allclose(to_colour(x, space), colours, atol=1e-5)


def test_extreme_colours_give_finite_parameters():
    x = from_colour(torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.5]]))
    assert torch.isfinite(x).all()
    assert torch.isfinite(to_colour(x)).all()


def test_first_axis_is_brightness_and_chroma_axes_move_less():
    # a step along the first parameter axis changes R, G and B together
    base = to_colour(torch.zeros(3))
    bright = to_colour(torch.tensor([0.5, 0.0, 0.0]))
    change = bright - base
    assert (change > 0).all() and change.max() / change.min() < 1.2
    norms = np.linalg.norm(COLOUR_SQRT, axis=0)
    assert norms[0] == pytest.approx(1.0) and norms[1] < 0.5 and norms[2] < 0.5


def test_unknown_space_is_rejected():
    with pytest.raises(ValueError, match="colour space"):
        to_colour(torch.zeros(3), "hsv")
