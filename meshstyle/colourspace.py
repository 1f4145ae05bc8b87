"""Colours optimised in a decorrelated colour space, then squashed with a sigmoid.

Natural images' R, G and B are strongly correlated: most of their variation is brightness.
Optimising each channel's logit on its own lets Adam push the three channels apart (its
per-element step sizes are equal), which turns a brown painting into cyan, yellow and
magenta bands. Following Mordvintsev et al. ("Differentiable Image Parameterizations",
Distill 2018), parameters ``x`` live in a space whose axes are the principal directions of
ImageNet colour statistics, scaled by the square roots of their variances, and

    colour = sigmoid(x @ COLOUR_SQRT.T)

so a unit step along the first axis changes brightness and the rarer chroma axes move less.
"""

from __future__ import annotations

import numpy as np
import torch

# Square root of the colour covariance of ImageNet images (its SVD: U·sqrt(S)), as
# published with the Distill article; columns are the decorrelated axes (luminance first).
_IMAGENET_SQRT = np.array(
    [
        [0.26, 0.09, 0.02],
        [0.27, 0.00, -0.05],
        [0.27, -0.09, 0.03],
    ],
    dtype=np.float64,
)

#: The fixed colour transform: columns scaled so the largest has unit norm, so that
#: ``x`` has roughly the same scale as an RGB logit.
COLOUR_SQRT = _IMAGENET_SQRT / np.linalg.norm(_IMAGENET_SQRT, axis=0).max()

# Colours are clamped to [eps, 1 - eps] before the logit so that it stays finite.
_EPS = 1e-4


def to_colour(x: torch.Tensor, space: str = "decorrelated") -> torch.Tensor:
    """Colours from parameters.

    Args:
        x: (..., 3) parameters.
        space: "decorrelated" (the transform above) or "rgb" (per-channel logits).

    Returns:
        (..., 3) colours in (0, 1), differentiable.
    """
    if space == "rgb":
        return torch.sigmoid(x)
    if space != "decorrelated":
        raise ValueError(f"colour space must be decorrelated or rgb; got {space!r}")
    matrix = torch.as_tensor(COLOUR_SQRT, dtype=x.dtype, device=x.device)
    return torch.sigmoid(x @ matrix.T)


def from_colour(colours: torch.Tensor, space: str = "decorrelated") -> torch.Tensor:
    """Parameters that give ``colours`` back through :func:`to_colour`.

    Args:
        colours: (..., 3) colours in [0, 1] (clamped to [1e-4, 1 - 1e-4] first).
        space: "decorrelated" or "rgb".

    Returns:
        (..., 3) finite parameters.
    """
    c = colours.clamp(_EPS, 1.0 - _EPS)
    logits = torch.log(c) - torch.log1p(-c)
    if space == "rgb":
        return logits
    if space != "decorrelated":
        raise ValueError(f"colour space must be decorrelated or rgb; got {space!r}")
    inverse = torch.as_tensor(np.linalg.inv(COLOUR_SQRT), dtype=c.dtype, device=c.device)
    return logits @ inverse.T
